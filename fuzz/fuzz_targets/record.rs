//! Arbitrary bytes as a record file: the reader returns events or an error
//! naming a line, never panics; every event it returns writes back out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_events::RecordReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = RecordReader::new(data) else {
        return;
    };
    while let Ok(Some(event)) = reader.next_event() {
        let _ = serde_json::to_string(&event).expect("an event read back always serializes");
    }
});
