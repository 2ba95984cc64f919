//! Arbitrary bytes through the frame splitter, in arbitrary pieces: what
//! it hands out (whole frames, released partial frames and the rest of
//! them), in the order it hands it out, is the stream it was given, byte
//! for byte; what it still holds is the stream's tail.
//!
//! Input: a control byte (piece size, whether to release), then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::split::{FrameSplitter, Piece};
use wscope_proto::{Decoded, FrameHeader};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(control & 0x3f) + 1;
    let mut splitter = FrameSplitter::new(4096);
    let mut handed_out = Vec::new();
    let mut pieces = Vec::new();
    let mut fed = 0;
    for (i, chunk) in stream.chunks(piece).enumerate() {
        pieces.clear();
        let result = splitter.feed(chunk, &mut pieces);
        for p in &pieces {
            match p {
                Piece::Frame(frame) => {
                    assert_eq!(
                        frame.wire.len(),
                        frame.header_len + frame.header.payload_len as usize
                    );
                    handed_out.extend_from_slice(&frame.wire);
                }
                Piece::Rest(rest) => handed_out.extend_from_slice(rest),
            }
        }
        fed += chunk.len();
        if result.is_err() {
            // A frame over the limit: nothing after it can be cut, but
            // everything before it came out.
            assert!(splitter.feed(b"", &mut pieces).is_err());
            assert!(handed_out.len() <= fed);
            assert_eq!(handed_out, stream[..handed_out.len()]);
            return;
        }
        // Now and then give up on the frame in progress, as the relay does
        // with a text frame that is not UTF-8.
        if control & 0x80 != 0 && i % 3 == 2 {
            handed_out.extend_from_slice(&splitter.release_partial());
        }
        assert_eq!(handed_out.len() + splitter.pending(), fed);
        assert_eq!(handed_out, stream[..handed_out.len()], "after {fed} bytes");
    }
    // The bytes held are the tail of the stream: a frame begun (its header
    // and payload so far, as partial() shows them), or a header cut short.
    let held = &stream[handed_out.len()..];
    assert_eq!(held.len(), splitter.pending());
    match splitter.partial() {
        Some((header, header_len, so_far)) => {
            assert_eq!(
                FrameHeader::decode(held),
                Decoded::Complete { header, header_len }
            );
            assert_eq!(so_far, &held[header_len..]);
        }
        None => {
            // Not a frame in progress: either nothing, a header still
            // incomplete, or the released frame's rest still to come.
            if !held.is_empty() {
                assert!(matches!(
                    FrameHeader::decode(held),
                    Decoded::Incomplete { .. }
                ));
            }
        }
    }
});
