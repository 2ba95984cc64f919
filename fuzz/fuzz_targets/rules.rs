//! Arbitrary text as a rules file: parsed into rules or refused with a
//! line inside the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = wscope::sources::rules::file::parse(text) {
        assert!(err.line <= text.lines().count() + 1, "{err}");
    }
});
