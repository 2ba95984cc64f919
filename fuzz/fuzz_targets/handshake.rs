//! Arbitrary bytes as an HTTP upgrade request and as a response: parsing and
//! validation return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::handshake::{Parsed, Request, Response, parse_extensions};

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Complete(request, len)) = Request::parse(data) {
        assert!(len <= data.len());
        let _ = request.validate_upgrade();
    }
    if let Ok(Parsed::Complete(response, _)) = Response::parse(data) {
        let _ = response.validate_upgrade("dGhlIHNhbXBsZSBub25jZQ==", &["chat".to_owned()]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(extensions) = parse_extensions(text) {
            let _ = wscope_proto::deflate::server_accept(&extensions);
        }
    }
});
