//! Arbitrary text through redaction: as a text message (the JSON walk),
//! as a URL, a request line and header values (the query and subprotocol
//! scanners). Never panics; redacting twice changes nothing; JSON stays
//! valid JSON, and no field a rule names keeps its value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wscope_events::redact::{Redactor, Rules, is_redacted};
use wscope_events::{Event, EventKind, Head, Message, Open, Timings};
use wscope_proto::OpCode;

/// Every value under a key named like a secret field is a marker.
fn no_secret_left(value: &Value, names: &[String]) -> bool {
    match value {
        Value::Object(map) => map.iter().all(|(key, value)| {
            let named = names.iter().any(|n| n.eq_ignore_ascii_case(key));
            (!named || value.as_str().is_some_and(is_redacted)) && no_secret_left(value, names)
        }),
        Value::Array(items) => items.iter().all(|item| no_secret_left(item, names)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rules = Rules::default();
    rules
        .add_json_path("json.a[0].b")
        .expect("a valid path is accepted");
    let redactor = Redactor::new(rules).expect("valid rules make a redactor");

    let message = Event {
        ts: 0,
        conn: "c1".into(),
        dir: None,
        kind: EventKind::Message(Message::new(OpCode::Text, data, usize::MAX)),
    };
    let once = redactor.redact(&message).into_owned();
    assert_eq!(redactor.redact(&once).into_owned(), once, "twice is once");
    let out = once.payload().and_then(|p| p.text.clone()).unwrap_or_default();
    if serde_json::from_str::<Value>(text).is_ok() {
        let json: Value = serde_json::from_str(&out).expect("redacted JSON is still JSON");
        assert!(
            no_secret_left(&json, &redactor.rules().json_fields),
            "a secret field kept its value: {out}"
        );
    } else {
        assert_eq!(out, text, "what is not JSON is left alone");
    }

    let open = Event {
        ts: 0,
        conn: "c1".into(),
        dir: None,
        kind: EventKind::Open(Open {
            url: format!("ws://h/{text}"),
            client: String::new(),
            server: String::new(),
            request: Head {
                line: format!("GET /{text} HTTP/1.1"),
                headers: vec![
                    ("Sec-WebSocket-Protocol".into(), text.into()),
                    ("Referer".into(), text.into()),
                    ("X-Api-Key".into(), text.into()),
                ],
            },
            response: Head::default(),
            subprotocol: Some(text.into()),
            extensions: Vec::new(),
            timings: Timings::default(),
            handshake: None,
            attempt: None,
        }),
    };
    let once = redactor.redact(&open).into_owned();
    assert_eq!(redactor.redact(&once).into_owned(), once, "twice is once");
});
