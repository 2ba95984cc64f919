//! Arbitrary bytes as a capture file (after a real pcap or pcapng header,
//! so the fuzzer reaches the packets): the reader never panics, always
//! ends, and every event it gives serialises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_capture::{CaptureReader, Options};

/// A classic pcap header, Ethernet, and a pcapng section with one
/// Ethernet interface: the fuzzer's first byte picks one.
const PCAP: [u8; 24] = [
    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
];
const PCAPNG: [u8; 48] = [
    0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0, // section header
    1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0, 20, 0, 0, 0, // interface
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut file = match pick % 3 {
        0 => PCAP.to_vec(),
        1 => PCAPNG.to_vec(),
        _ => Vec::new(),
    };
    file.extend_from_slice(rest);
    let mut reader = CaptureReader::new(Options {
        max_payload: 256,
        frames: pick & 0x80 != 0,
        redact: pick & 0x40 != 0,
        binary: pick & 0x20 != 0,
        // Records wait for keys that never come, then are given up.
        keys_may_arrive: pick & 0x10 != 0,
    });
    reader.push_input("fuzz".into(), Box::new(std::io::Cursor::new(file)));
    while let Some(event) = reader.next_event() {
        serde_json::to_string(&event).expect("events serialise");
    }
    let _ = reader.take_problems();
});
