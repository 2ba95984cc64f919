//! Arbitrary bytes through the proxy's tap, in arbitrary pieces, with and
//! without permessage-deflate: it reports what it can and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::Role;
use wscope_proto::deflate::DeflateParams;
use wscope_proto::tap::Tap;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(control & 0x3f) + 1;
    let sender = if control & 0x40 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let params = (control & 0x80 != 0).then(DeflateParams::default);
    let mut tap = Tap::new(sender, params, 64);
    tap.report_data_frames(true);
    let mut seen = Vec::new();
    for chunk in rest.chunks(piece) {
        tap.feed(chunk, &mut seen);
        seen.clear();
    }
    assert_eq!(tap.stats().bytes, rest.len() as u64);
});
