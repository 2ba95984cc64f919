//! Arbitrary bytes through the frame splitter, in arbitrary pieces: the
//! frames it returns are, byte for byte, the stream it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::split::FrameSplitter;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(control & 0x3f) + 1;
    let mut splitter = FrameSplitter::new(4096);
    let mut frames = Vec::new();
    for chunk in rest.chunks(piece) {
        if splitter.feed(chunk, &mut frames).is_err() {
            return;
        }
    }
    let rejoined: usize = frames.iter().map(|f| f.wire.len()).sum();
    assert_eq!(rejoined + splitter.pending(), rest.len());
});
