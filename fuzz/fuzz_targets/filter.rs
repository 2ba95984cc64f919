//! Arbitrary text as a filter expression: it parses or gives an error with
//! a column inside the text, never panics; what parses prints back to an
//! expression that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_events::filter::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match parse(source) {
        Ok(expr) => {
            let printed = expr.to_string();
            let again = parse(&printed).expect("a printed filter parses");
            assert_eq!(again, expr, "{printed}");
        }
        Err(err) => assert!(err.column <= source.chars().count()),
    }
});
