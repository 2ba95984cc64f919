//! Incremental UTF-8 validation for text messages (RFC 6455 section 8.1).
//!
//! A text message may arrive in many fragments, and a character may be split
//! across two of them. The validator keeps at most three bytes of an
//! unfinished character between calls, and reports the first byte that can
//! never be part of valid UTF-8 as soon as it is seen — before the message
//! ends — so an endpoint can fail the connection fast. The heavy lifting is
//! `std::str::from_utf8`, whose error already distinguishes "invalid" from
//! "cut short".

/// The first invalid byte, counted from the start of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8 {
    pub offset: u64,
}

/// Validates a text message fed in pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: usize,
    /// Bytes fed so far, for error offsets.
    seen: u64,
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, ready for the next message.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Checks the next piece. Fails at the first byte that makes the text
    /// invalid no matter what follows.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        let base = self.seen;
        self.seen += chunk.len() as u64;
        let mut consumed = 0usize;
        if self.pending_len > 0 {
            let pending = self.pending_len;
            let take = (4 - pending).min(chunk.len());
            let mut tmp = [0u8; 8];
            tmp[..pending].copy_from_slice(&self.pending[..pending]);
            tmp[pending..pending + take].copy_from_slice(&chunk[..take]);
            let tmp = &tmp[..pending + take];
            let resume = match std::str::from_utf8(tmp) {
                Ok(_) => tmp.len(),
                Err(e) if e.valid_up_to() > 0 => e.valid_up_to(),
                Err(e) => match e.error_len() {
                    None => {
                        // Still unfinished: keep collecting.
                        self.pending[pending..pending + take].copy_from_slice(&chunk[..take]);
                        self.pending_len += take;
                        return Ok(());
                    }
                    Some(_) => {
                        let bad = first_bad_in_sequence(tmp);
                        return Err(InvalidUtf8 {
                            offset: (base + bad as u64).saturating_sub(pending as u64),
                        });
                    }
                },
            };
            // The pending character finished inside `tmp`.
            consumed = resume - pending;
            self.pending_len = 0;
            chunk = &chunk[consumed..];
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                None => {
                    let rest = &chunk[e.valid_up_to()..];
                    self.pending[..rest.len()].copy_from_slice(rest);
                    self.pending_len = rest.len();
                    Ok(())
                }
                Some(_) => {
                    let at = e.valid_up_to() + first_bad_in_sequence(&chunk[e.valid_up_to()..]);
                    Err(InvalidUtf8 {
                        offset: base + (consumed + at) as u64,
                    })
                }
            },
        }
    }

    /// The message ended: an unfinished character is an error.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            Err(InvalidUtf8 {
                offset: self.seen - self.pending_len as u64,
            })
        } else {
            Ok(())
        }
    }
}

/// Within a sequence that `from_utf8` rejected at its start, the index of the
/// byte that made it invalid (the lead byte itself when it can never start a
/// character, otherwise the first continuation byte that does not fit).
fn first_bad_in_sequence(seq: &[u8]) -> usize {
    for end in 1..=seq.len().min(4) {
        if let Err(e) = std::str::from_utf8(&seq[..end])
            && e.error_len().is_some()
        {
            return end - 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_whole(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(bytes)?;
        v.finish()
    }

    #[test]
    fn valid_text_split_everywhere() {
        let text = "κόσμε 🎉 ok".as_bytes();
        for cut in 0..=text.len() {
            let mut v = Utf8Validator::new();
            v.feed(&text[..cut]).unwrap();
            v.feed(&text[cut..]).unwrap();
            v.finish().unwrap();
        }
        // Byte at a time.
        let mut v = Utf8Validator::new();
        for b in text {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }

    #[test]
    fn fails_fast_on_impossible_prefix() {
        // 0xF4 0x90 starts a code point above U+10FFFF: invalid before the
        // character is complete (Autobahn case 6.4.x).
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(&[0xCE, 0xBA, 0xF4]).unwrap();
        let err = v.feed(&[0x90]).unwrap_err();
        assert_eq!(err.offset, 13);
    }

    #[test]
    fn truncated_at_end_is_an_error() {
        assert!(check_whole(&[0x61, 0xE2, 0x82]).is_err());
        assert_eq!(check_whole(&[0x61, 0xE2, 0x82]).unwrap_err().offset, 1);
    }

    #[test]
    fn surrogates_and_overlongs_rejected() {
        assert!(check_whole(&[0xED, 0xA0, 0x80]).is_err());
        assert!(check_whole(&[0xC0, 0xAF]).is_err());
        assert!(check_whole(&[0xFF]).is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                           cuts in proptest::collection::vec(0usize..64, 0..4)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut v = Utf8Validator::new();
            let mut prev = 0;
            let mut result = Ok(());
            for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
                if result.is_ok() {
                    result = v.feed(&bytes[prev..c]);
                }
                prev = c;
            }
            if result.is_ok() {
                result = v.finish();
            }
            let std_result = std::str::from_utf8(&bytes);
            prop_assert_eq!(result.is_ok(), std_result.is_ok());
            if let Err(e) = std_result {
                // The incremental validator may not stop later than std's
                // first error position plus the bad sequence.
                let off = result.unwrap_err().offset as usize;
                prop_assert!(off >= e.valid_up_to() && off <= e.valid_up_to() + 3,
                    "offset {} vs std valid_up_to {}", off, e.valid_up_to());
            }
        }
    }
}
