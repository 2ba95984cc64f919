//! Arbitrary bytes as a compressed message, inflated in arbitrary pieces
//! under an arbitrary limit: an error or the message, never a panic, and the
//! limit is exact. A message that fits comes out whole and the same as
//! without a limit; one that does not fails with `TooBig` after at most one
//! byte past the limit.
//!
//! Input: the limit's selector, the piece size, then the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate};
use wscope_proto::{Error, Role};

fuzz_target!(|data: &[u8]| {
    let [selector, piece, payload @ ..] = data else {
        return;
    };
    // Small limits, a power of two (where Vec's growth lands exactly) and
    // limits just beside it.
    let limit = match selector % 4 {
        0 => usize::from(*selector) * 3,
        1 => 1 << 16,
        2 => (1 << 16) - 1,
        _ => (1 << 16) + 1,
    };
    let piece = usize::from(*piece).max(1);

    let mut inflater = PerMessageDeflate::new(Role::Server, DeflateParams::default());
    let mut out = Vec::new();
    let limited = payload
        .chunks(piece)
        .try_for_each(|chunk| inflater.decompress_chunk(chunk, &mut out, limit))
        .and_then(|()| inflater.finish_message(&mut out, limit));

    let mut reference = PerMessageDeflate::new(Role::Server, DeflateParams::default());
    let mut whole = Vec::new();
    let unlimited = reference.decompress(payload, &mut whole, usize::MAX);

    let kept = out.len().min(whole.len());
    assert_eq!(
        out[..kept],
        whole[..kept],
        "the pieces inflated differently"
    );
    match limited {
        Ok(()) => {
            assert!(
                out.len() <= limit,
                "{} bytes under a {limit}-byte limit",
                out.len()
            );
            assert!(unlimited.is_ok(), "inflates under a limit but not without");
            assert_eq!(out, whole, "the limit changed what inflated");
        }
        Err(err) => {
            assert!(
                out.len() <= limit + 1,
                "{} bytes under a {limit}-byte limit",
                out.len()
            );
            if unlimited.is_ok() {
                assert!(
                    matches!(err, Error::TooBig { .. }),
                    "fails in pieces ({err}) but not whole"
                );
                assert!(
                    whole.len() > limit,
                    "a {}-byte message refused under a {limit}-byte limit",
                    whole.len()
                );
            }
        }
    }
});
