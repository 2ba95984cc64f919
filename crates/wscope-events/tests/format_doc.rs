//! Every JSON example in docs/FORMAT.md parses as what it claims to be, and
//! every event kind has at least one example: the document and the code
//! cannot drift apart.

use std::collections::BTreeSet;

use wscope_events::record::{Header, RecordReader};
use wscope_events::{Event, EventKind};

fn examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .expect("docs/FORMAT.md exists");
    let mut lines = Vec::new();
    let mut in_json = false;
    for line in doc.lines() {
        match line.trim() {
            "```json" => in_json = true,
            "```" => in_json = false,
            text if in_json && !text.is_empty() => lines.push(text.to_owned()),
            _ => {}
        }
    }
    lines
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Open(_) => "open",
        EventKind::HandshakeFailed(_) => "handshake_failed",
        EventKind::Frame(_) => "frame",
        EventKind::Message(_) => "message",
        EventKind::Close(_) => "close",
        EventKind::Closed(_) => "closed",
        EventKind::Error { .. } => "error",
        EventKind::Note { .. } => "note",
        EventKind::Diff(_) => "diff",
    }
}

#[test]
fn every_example_parses_and_every_kind_has_one() {
    let mut kinds = BTreeSet::new();
    let mut headers = 0;
    for line in examples() {
        if line.contains("\"format\"") {
            let header: Header =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(header.format, "wscope-record");
            headers += 1;
            continue;
        }
        let event: Event = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        // Writing it back gives an equal event (no field silently dropped).
        let again: Event = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(again, event);
        kinds.insert(kind_name(&event.kind));
    }
    assert_eq!(headers, 1, "one header example");
    let all = [
        "open",
        "handshake_failed",
        "frame",
        "message",
        "close",
        "closed",
        "error",
        "note",
        "diff",
    ];
    for kind in all {
        assert!(
            kinds.contains(kind),
            "docs/FORMAT.md has no example of {kind}"
        );
    }
}

#[test]
fn the_whole_file_example_reads() {
    let lines = examples();
    let start = lines
        .iter()
        .position(|l| l.contains("\"format\""))
        .expect("header example");
    let file = lines[start..].join("\n") + "\n";
    let mut reader = RecordReader::new(file.as_bytes()).expect("header reads");
    let mut n = 0;
    while reader.next_event().expect("events read").is_some() {
        n += 1;
    }
    assert!(n >= 1);
}
