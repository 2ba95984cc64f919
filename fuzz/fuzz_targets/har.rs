//! Arbitrary bytes as a HAR (whole, or put where the WebSocket parts of
//! one go, so the fuzzer reaches them): the reader gives events or an
//! error, never panics; every event serialises; and what the writer makes
//! of them reads back the same after one round (the connections that
//! opened, their messages to the microsecond when the times are in the
//! range wscope writes exactly).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_events::{Event, EventKind, read_har, write_har};

/// A WebSocket entry with the fuzzer's bytes in place of its messages, or
/// of the rest of its fields.
const MESSAGES: (&str, &str) = (
    r#"{"log":{"entries":[{"startedDateTime":"2025-11-30T06:27:36.527Z","time":64.676,"_resourceType":"websocket","request":{"method":"GET","url":"ws://127.0.0.1:9001/chat?a=1","httpVersion":"HTTP/1.1","headers":[{"name":"Host","value":"127.0.0.1:9001"}]},"response":{"status":101,"statusText":"Switching Protocols","httpVersion":"HTTP/1.1","headers":[{"name":"Sec-WebSocket-Protocol","value":"chat"}]},"serverIPAddress":"127.0.0.1","_webSocketMessages":["#,
    "]}]}}",
);
const ENTRY: (&str, &str) = (
    r#"{"log":{"entries":[{"_resourceType":"websocket","#,
    "}]}}",
);

/// What the writer keeps of an event: whether it is an open, its time,
/// and the rest of what a HAR holds of it.
type Kept = (bool, u64, String);

/// The opens and messages, as the writer keeps them, per connection in the
/// order they opened: ids aside (a refused upgrade takes an id on the
/// first read, and has no entry to read back), and how connections
/// interleave aside (where a HAR's times go back, a note left in place of
/// a message moves its connection's later events after another's).
fn kept(events: &[Event]) -> Vec<Vec<Kept>> {
    let opened: Vec<&str> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Open(_)))
        .map(|e| e.conn.as_str())
        .collect();
    opened
        .iter()
        .map(|conn| {
            events
                .iter()
                .filter(|e| e.conn == *conn)
                .filter_map(|e| match &e.kind {
                    EventKind::Open(open) => {
                        let heads = (&open.url, &open.request, &open.response);
                        let negotiated = (&open.subprotocol, &open.extensions, open.handshake);
                        Some((true, e.ts, format!("{heads:?} {negotiated:?}")))
                    }
                    EventKind::Message(m) => {
                        Some((false, e.ts, format!("{:?}", (e.dir, &m.opcode, &m.payload))))
                    }
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Times are written exactly, but message times before 2001 read back as
/// a monotonic clock's (placed after the open), and an open after the year
/// 9999 is written at its end.
fn exact((open, ts, _): &Kept) -> bool {
    if *open {
        *ts < 253_402_300_800_000_000
    } else {
        *ts >= 1_000_000_000_000_000
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let document = match pick % 3 {
        0 => rest.to_vec(),
        1 => [MESSAGES.0.as_bytes(), rest, MESSAGES.1.as_bytes()].concat(),
        _ => [ENTRY.0.as_bytes(), rest, ENTRY.1.as_bytes()].concat(),
    };
    let Ok(first) = read_har(&document) else {
        return;
    };
    for event in &first.events {
        serde_json::to_string(event).expect("an event read from a HAR serialises");
    }
    let before = kept(&first.events);
    if before.is_empty() {
        return;
    }
    let second = read_har(&write_har(&first.events)).expect("wscope's own HAR reads back");
    let after = kept(&second.events);
    if before.iter().flatten().all(exact) {
        assert_eq!(
            after, before,
            "a HAR wscope wrote reads back as what it was written from"
        );
    } else {
        assert_eq!(after.len(), before.len());
    }
    // And a second round changes nothing at all.
    let third = read_har(&write_har(&second.events)).expect("wscope's own HAR reads back");
    assert_eq!(third.events, second.events);
});
