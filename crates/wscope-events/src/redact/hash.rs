//! The marker a secret becomes: `<redacted:HASH>`, HASH the first 8 hex
//! digits of an HMAC-SHA256 of the secret.
//!
//! Keyed, with a random key made when wscope starts and never written
//! anywhere: the same secret gets the same marker everywhere one run
//! writes it (the record file, `--json`, the UI, a HAR export), so a
//! reader can still see that two connections used the same token, but a
//! record file shared in a bug report gives nothing to guess against.
//! A plain hash of a short password or a 6-digit PIN is found by trying
//! every candidate offline; without the key there is nothing to try.
//! The price: markers from two runs cannot be compared.

use std::fmt::Write as _;

use ring::hmac;
use ring::rand::SystemRandom;

/// Every marker starts with this; replay and redaction itself look for it
/// (a value already redacted is left as it is).
pub const MARKER_PREFIX: &str = "<redacted";

/// How the marker looks, for the record header and the docs.
pub const MARKER_FORM: &str = "<redacted:HASH>";

/// Hex digits of the keyed hash kept in a marker: enough to tell the few
/// secrets of a session apart, too few to be worth anything else.
const HASH_DIGITS: usize = 8;

/// Turns secrets into markers with one key.
pub(crate) struct Hasher {
    key: hmac::Key,
}

impl Hasher {
    /// A hasher with a fresh random key.
    pub(crate) fn random() -> Hasher {
        let rng = SystemRandom::new();
        // The system's random source failing is not something to go on
        // without: a fixed key would make markers guessable again.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the system's random number generator works");
        Hasher { key }
    }

    /// A hasher with a given key (tests).
    #[cfg(test)]
    pub(crate) fn with_key(key: &[u8]) -> Hasher {
        Hasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// `<redacted:HASH>` for `secret`.
    pub(crate) fn marker(&self, secret: &str) -> String {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        let mut out = String::with_capacity(MARKER_PREFIX.len() + HASH_DIGITS + 2);
        out.push_str(MARKER_PREFIX);
        out.push(':');
        for byte in &tag.as_ref()[..HASH_DIGITS / 2] {
            let _ = write!(out, "{byte:02x}");
        }
        out.push('>');
        out
    }
}

/// Whether `value` is a marker already (or starts with one).
pub fn is_redacted(value: &str) -> bool {
    value.trim_start().starts_with(MARKER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_secrets_equal_markers_and_the_key_matters() {
        let hasher = Hasher::with_key(b"k1");
        let a = hasher.marker("s3cret");
        assert_eq!(a, hasher.marker("s3cret"));
        assert_ne!(a, hasher.marker("s3cret2"));
        assert!(a.starts_with("<redacted:") && a.ends_with('>'), "{a}");
        assert_eq!(a.len(), "<redacted:".len() + 8 + 1);
        assert_ne!(a, Hasher::with_key(b"k2").marker("s3cret"));
        assert_ne!(
            Hasher::random().marker("s3cret"),
            Hasher::random().marker("s3cret"),
            "each run has its own key"
        );
        assert!(is_redacted(&a));
        assert!(!is_redacted("s3cret"));
    }
}
