//! Arbitrary bytes as a compressed message: inflate returns an error or data
//! within the limit, never panics, never grows past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::Role;
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate};

fuzz_target!(|data: &[u8]| {
    let mut inflater = PerMessageDeflate::new(Role::Server, DeflateParams::default());
    let mut out = Vec::new();
    let limit = 1 << 16;
    if inflater.decompress_chunk(data, &mut out, limit).is_ok() {
        let _ = inflater.finish_message(&mut out, limit);
    }
    assert!(
        out.len() <= limit + 64 * 1024,
        "output stays near the limit"
    );
});
