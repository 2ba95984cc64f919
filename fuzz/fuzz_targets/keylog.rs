//! Arbitrary bytes as a key log, read whole and read in two pieces cut
//! anywhere (as a followed file grows): never a panic, and the same
//! sessions and the same line errors either way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_capture::keylog::{KeyLog, LineReader, parse};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, text)) = data.split_first() else {
        return;
    };
    let mut whole = KeyLog::default();
    let errors = parse(text, &mut whole);
    let cut = usize::from(cut).min(text.len());
    let mut pieces = KeyLog::default();
    let mut piece_errors = Vec::new();
    let mut reader = LineReader::default();
    reader.feed(&text[..cut], &mut pieces, &mut piece_errors);
    reader.feed(&text[cut..], &mut pieces, &mut piece_errors);
    reader.finish(&mut pieces, &mut piece_errors);
    assert_eq!(errors, piece_errors);
    assert_eq!(whole.sessions(), pieces.sessions());
    assert_eq!(whole.unused(), pieces.unused());
});
