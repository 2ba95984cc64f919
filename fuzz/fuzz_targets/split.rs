//! Arbitrary bytes through the frame splitter, in arbitrary pieces: the
//! frames it returns are, byte for byte, the stream it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::split::{FrameSplitter, Piece};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(control & 0x3f) + 1;
    let mut splitter = FrameSplitter::new(4096);
    let mut pieces = Vec::new();
    let mut released = 0;
    for (i, chunk) in rest.chunks(piece).enumerate() {
        if splitter.feed(chunk, &mut pieces).is_err() {
            return;
        }
        // Now and then give up on the frame in progress, as the relay does
        // with a text frame that is not UTF-8.
        if control & 0x80 != 0 && i % 3 == 2 {
            released += splitter.release_partial().len();
        }
    }
    let passed: usize = pieces
        .iter()
        .map(|p| match p {
            Piece::Frame(f) => f.wire.len(),
            Piece::Rest(r) => r.len(),
        })
        .sum();
    assert_eq!(passed + released + splitter.pending(), rest.len());
});
