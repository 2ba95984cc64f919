//! Arbitrary request targets as `wscope serve` behaviour paths: parsing
//! returns a plan or an error with a status, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(target) = std::str::from_utf8(data) {
        match wscope::sources::serve::behavior::parse(target) {
            Ok(_) => {}
            Err(err) => assert!((400..500).contains(&err.status)),
        }
    }
});
