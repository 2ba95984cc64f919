//! Arbitrary bytes as the middle of a WebSocket stream: the boundary
//! search never panics, and a boundary it proves is a header that decodes,
//! is not a continuation, and lies inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_capture::resync::{Found, find};
use wscope_proto::{Decoded, FrameHeader, OpCode, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let role = if control & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    match find(rest, role, control & 2 != 0) {
        Found::Boundary { at, at_first, .. } => {
            assert!(at_first <= at && at < rest.len());
            match FrameHeader::decode(&rest[at..]) {
                Decoded::Complete { header, .. } => {
                    assert_ne!(header.opcode, OpCode::Continuation);
                    assert_eq!(header.mask.is_some(), role == Role::Client);
                }
                Decoded::Incomplete { .. } => panic!("a proven boundary must hold a header"),
            }
        }
        Found::NeedMore { keep_from } => assert!(keep_from <= rest.len()),
    }
});
