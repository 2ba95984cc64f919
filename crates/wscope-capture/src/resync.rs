//! Finding frame boundaries in the middle of a WebSocket stream.
//!
//! When the capture starts after the handshake, or bytes are missing in
//! the middle, there is no way to know where the next frame starts except
//! by trying: every offset is a candidate header, and a candidate is kept
//! only when it is a header its sender could have sent (the mask bit right
//! for the direction, a known opcode, reserved bits clear, a control frame
//! short and final, the length in its shortest form, an uncompressed text
//! payload valid UTF-8, a close payload a valid code) *and* the headers
//! that its length points to after it are too, [`CHAIN`] in a row, in an
//! order the RFC allows (no new message inside a fragmented one, no
//! continuation outside one) — or the chain ends exactly where the stream
//! did. Compressed payloads are random bytes, so a false chain inside one
//! is possible; an earlier candidate still waiting for its bytes is
//! preferred to a later proven one until [`PATIENCE`] bytes are held.
//! Frames that continue a message whose start is missing are passed over,
//! so decoding starts on a frame that begins something.

use wscope_proto::frame::FrameRules;
use wscope_proto::mask::apply_mask;
use wscope_proto::{CloseCode, Decoded, FrameHeader, OpCode, Role};

/// Headers that must line up, one after another, to accept a boundary.
pub const CHAIN: usize = 4;
/// Bytes held before a later proven candidate is taken over an earlier
/// one that is still undecided (a long frame still arriving).
pub const PATIENCE: usize = 256 * 1024;
/// How much of a text payload is checked for UTF-8.
const UTF8_CHECKED: usize = 4096;
/// A payload longer than this is not believed in a candidate header.
const MAX_PLAUSIBLE_PAYLOAD: u64 = 1 << 30;

/// The outcome of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Decoding can start at this offset, on a frame that is not a
    /// continuation; `skipped_frames` continuation frames before it were
    /// passed over (after the first `at_first` bytes of rubble).
    Boundary {
        at: usize,
        at_first: usize,
        skipped_frames: u32,
    },
    /// No boundary is provable in these bytes yet; try again with more.
    /// Everything before `keep_from` can never start one and may go.
    NeedMore { keep_from: usize },
}

/// Whether `header` is one that `sender` could have sent.
fn plausible(header: &FrameHeader, header_len: usize, sender: Role) -> bool {
    let mut violations = Vec::new();
    header.violations(
        header_len,
        FrameRules {
            sender,
            // RSV1 on a data frame is allowed: compression may be in use.
            deflate: true,
        },
        &mut violations,
    );
    violations.is_empty()
        && header.payload_len <= MAX_PLAUSIBLE_PAYLOAD
        && !(header.rsv1 && matches!(header.opcode, OpCode::Continuation))
}

/// Searches `buf` (what `sender` sent, from some unknown point) for a
/// frame boundary. `ended`: the stream ends with `buf` (a chain may stop
/// exactly at its end).
pub fn find(buf: &[u8], sender: Role, ended: bool) -> Found {
    let mut first_undecided = buf.len();
    for start in 0..buf.len() {
        match chain(buf, start, sender, ended) {
            Chain::Proven { first_new, skipped } => {
                if first_undecided < start && buf.len() < PATIENCE {
                    // An earlier candidate may still prove itself.
                    break;
                }
                return Found::Boundary {
                    at: first_new,
                    at_first: start,
                    skipped_frames: skipped,
                };
            }
            Chain::Undecided => {
                first_undecided = first_undecided.min(start);
            }
            Chain::Broken => {}
        }
    }
    Found::NeedMore {
        keep_from: first_undecided,
    }
}

enum Chain {
    Proven {
        first_new: usize,
        skipped: u32,
    },
    /// Plausible so far, but the bytes run out.
    Undecided,
    Broken,
}

fn chain(buf: &[u8], start: usize, sender: Role, ended: bool) -> Chain {
    let mut at = start;
    let mut links = 0;
    let mut first_new = None;
    let mut skipped = 0u32;
    // Inside a fragmented message? Unknown before the first data frame.
    let mut in_message: Option<bool> = None;
    loop {
        if at == buf.len() && ended && links > 0 && first_new.is_some() {
            break;
        }
        let (header, header_len) = match FrameHeader::decode(&buf[at..]) {
            Decoded::Complete { header, header_len } => (header, header_len),
            Decoded::Incomplete { .. } => {
                return if ended {
                    Chain::Broken
                } else {
                    Chain::Undecided
                };
            }
        };
        if !plausible(&header, header_len, sender) {
            return Chain::Broken;
        }
        if !header.opcode.is_control() {
            let continuation = header.opcode == OpCode::Continuation;
            if in_message == Some(!continuation) {
                return Chain::Broken;
            }
            in_message = Some(!header.fin);
        }
        let payload_at = at + header_len;
        if !payload_plausible(&header, &buf[payload_at.min(buf.len())..]) {
            return Chain::Broken;
        }
        if first_new.is_none() {
            if header.opcode == OpCode::Continuation {
                skipped += 1;
            } else {
                first_new = Some(at);
            }
        }
        links += 1;
        let next = at as u64 + header_len as u64 + header.payload_len;
        if links >= CHAIN && first_new.is_some() && next <= buf.len() as u64 {
            break;
        }
        if next > buf.len() as u64 {
            if ended {
                return Chain::Broken;
            }
            if links >= CHAIN && first_new.is_some() {
                // The last link's payload is still arriving: the headers
                // already line up.
                break;
            }
            return Chain::Undecided;
        }
        at = next as usize;
    }
    match first_new {
        Some(first_new) => Chain::Proven { first_new, skipped },
        None => Chain::Undecided,
    }
}

/// Whether the part of the payload at hand could be what `header` says:
/// an uncompressed text frame starting a message must be UTF-8 (a
/// character may be cut at the end), a close frame must carry nothing or
/// a code that may be sent.
fn payload_plausible(header: &FrameHeader, available: &[u8]) -> bool {
    let len = header.payload_len.min(available.len() as u64) as usize;
    let unmasked = |n: usize| {
        let mut bytes = available[..n].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut bytes, key, 0);
        }
        bytes
    };
    match header.opcode {
        OpCode::Text if !header.rsv1 => {
            let bytes = unmasked(len.min(UTF8_CHECKED));
            match std::str::from_utf8(&bytes) {
                Ok(_) => true,
                // Cut inside a character: fine if the frame goes on.
                Err(e) => {
                    e.error_len().is_none()
                        && ((bytes.len() as u64) < header.payload_len || !header.fin)
                }
            }
        }
        OpCode::Close => match header.payload_len {
            0 => true,
            1 => false,
            _ if len < 2 => true,
            _ => {
                let code = unmasked(2);
                CloseCode(u16::from_be_bytes([code[0], code[1]])).is_valid_on_wire()
            }
        },
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wscope_proto::frame::encode_frame;

    fn frames(sender: Role, count: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..count {
            let mask = (sender == Role::Client).then_some([1, 2, 3, i as u8]);
            let text = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 37 % 300));
            encode_frame(OpCode::Text, true, false, mask, text.as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn finds_the_first_whole_frame_after_a_cut() {
        for sender in [Role::Client, Role::Server] {
            let all = frames(sender, 20);
            // Cut somewhere inside the third frame.
            let mut boundaries = vec![0usize];
            let mut at = 0;
            while at < all.len() {
                if let Decoded::Complete { header, header_len } = FrameHeader::decode(&all[at..]) {
                    at += header_len + header.payload_len as usize;
                    boundaries.push(at);
                }
            }
            let cut = boundaries[2] + 5;
            match find(&all[cut..], sender, false) {
                Found::Boundary { at, .. } => assert_eq!(cut + at, boundaries[3], "{sender:?}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn continuation_frames_of_a_lost_start_are_passed_over() {
        let mut all = Vec::new();
        encode_frame(
            OpCode::Continuation,
            false,
            false,
            None,
            b"middle",
            &mut all,
        );
        encode_frame(OpCode::Continuation, true, false, None, b"end", &mut all);
        let start = all.len();
        encode_frame(OpCode::Text, true, false, None, b"next", &mut all);
        encode_frame(OpCode::Ping, true, false, None, b"", &mut all);
        encode_frame(OpCode::Binary, true, false, None, b"\x01", &mut all);
        match find(&all, Role::Server, false) {
            Found::Boundary {
                at, skipped_frames, ..
            } => {
                assert_eq!(at, start);
                assert_eq!(skipped_frames, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_masking_never_matches() {
        let all = frames(Role::Server, 10);
        assert!(matches!(
            find(&all, Role::Client, true),
            Found::NeedMore { .. }
        ));
    }

    #[test]
    fn a_short_stream_that_ends_cleanly_is_enough() {
        let all = frames(Role::Client, 2);
        assert!(matches!(
            find(&all, Role::Client, true),
            Found::Boundary { at: 0, .. }
        ));
        assert!(matches!(
            find(&all, Role::Client, false),
            Found::NeedMore { keep_from: 0 }
        ));
    }
}
