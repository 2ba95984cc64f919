//! The rules applied to whole events.

use super::*;
use crate::event::{Change, Close, Frame, HandshakeFailed, Message, Open, PathChange, Timings};
use wscope_proto::OpCode;

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";

fn redactor(rules: Rules) -> Redactor {
    Redactor::with_hasher(rules, hash::Hasher::with_key(b"test key")).unwrap()
}

fn event(kind: EventKind) -> Event {
    Event {
        ts: 1,
        conn: "c1".into(),
        dir: None,
        kind,
    }
}

fn open() -> Event {
    let headers = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    event(EventKind::Open(Open {
        url: "ws://h/chat?room=1&token=s3cret".into(),
        client: "127.0.0.1:1".into(),
        server: "127.0.0.1:2".into(),
        request: Head {
            line: "GET /chat?room=1&token=s3cret HTTP/1.1".into(),
            headers: headers(&[
                ("AUTHORIZATION", "Bearer abc"),
                ("Cookie", "sid=1"),
                ("X-Api-Key", "k3y"),
                ("x-auth-token", "t0k"),
                ("Origin", "http://x"),
                ("Referer", "http://x/page?sig=s1g"),
                (
                    "Sec-WebSocket-Protocol",
                    &format!("graphql-transport-ws, {JWT}"),
                ),
            ]),
        },
        response: Head {
            line: "HTTP/1.1 101 Switching Protocols".into(),
            headers: headers(&[("Sec-WebSocket-Protocol", "graphql-transport-ws")]),
        },
        subprotocol: Some("graphql-transport-ws".into()),
        extensions: Vec::new(),
        timings: Timings::default(),
        handshake: None,
        attempt: None,
    }))
}

fn text_message(text: &str) -> Event {
    event(EventKind::Message(Message::new(
        OpCode::Text,
        text.as_bytes(),
        usize::MAX,
    )))
}

fn message_text(event: &Event) -> &str {
    event.payload().unwrap().text.as_deref().unwrap()
}

#[test]
fn handshake_secrets_go_and_the_rest_stays() {
    let redactor = redactor(Rules::default());
    let redacted = redactor.redact(&open()).into_owned();
    let json = serde_json::to_string(&redacted).unwrap();
    for secret in ["s3cret", "Bearer abc", "sid=1", "k3y", "t0k", "s1g", JWT] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
    let EventKind::Open(open) = &redacted.kind else {
        unreachable!()
    };
    let marker = redactor.marker("s3cret");
    assert_eq!(open.url, format!("ws://h/chat?room=1&token={marker}"));
    assert_eq!(
        open.request.line,
        format!("GET /chat?room=1&token={marker} HTTP/1.1")
    );
    let value = |name: &str| {
        &open
            .request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
    };
    assert_eq!(value("AUTHORIZATION"), &redactor.marker("Bearer abc"));
    assert_eq!(value("Origin"), "http://x");
    assert_eq!(
        value("Sec-WebSocket-Protocol"),
        &format!("graphql-transport-ws, {}", redactor.marker(JWT))
    );
    assert_eq!(open.subprotocol.as_deref(), Some("graphql-transport-ws"));
    assert_eq!(
        open.response.headers[0].1, "graphql-transport-ws",
        "an ordinary subprotocol stays readable"
    );
}

#[test]
fn report_lines_redact_header_values_and_query_parameters() {
    let r = redactor(Rules::default());
    let mut cookie = "< Set-Cookie: sid=abc; HttpOnly".to_owned();
    r.redact_line(&mut cookie);
    assert!(cookie.starts_with("< Set-Cookie: <redacted:"), "{cookie}");
    assert!(!cookie.contains("abc"));
    let mut request = "> GET /feed?room=1&token=s3cret HTTP/1.1".to_owned();
    r.redact_line(&mut request);
    assert!(!request.contains("s3cret"), "{request}");
    assert!(request.contains("room=1"), "{request}");
    let mut url = "ws://h/x?access_token=abc".to_owned();
    r.redact_line(&mut url);
    assert!(!url.contains("abc"), "{url}");
    let mut plain = "< Server: nginx/1.22.1".to_owned();
    r.redact_line(&mut plain);
    assert_eq!(plain, "< Server: nginx/1.22.1");
    let mut words = "no Origin: refused (403)".to_owned();
    r.redact_line(&mut words);
    assert_eq!(words, "no Origin: refused (403)");
}

#[test]
fn redacting_twice_changes_nothing() {
    let redactor = redactor(Rules::default());
    let once = redactor.redact(&open()).into_owned();
    assert_eq!(redactor.redact(&once).into_owned(), once);
    let message = redactor
        .redact(&text_message(r#"{"token":"abc"}"#))
        .into_owned();
    assert_eq!(redactor.redact(&message).into_owned(), message);
}

#[test]
fn equal_secrets_give_equal_markers_across_places() {
    let redactor = redactor(Rules::default());
    let open = redactor.redact(&open()).into_owned();
    let message = redactor
        .redact(&text_message(r#"{"auth":{"token":"s3cret"}}"#))
        .into_owned();
    let marker = redactor.marker("s3cret");
    assert!(serde_json::to_string(&open).unwrap().contains(&marker));
    assert_eq!(
        message_text(&message),
        format!(r#"{{"auth":{{"token":"{marker}"}}}}"#)
    );
    assert_ne!(marker, redactor.marker("other"));
}

#[test]
fn json_messages_nested_and_not() {
    let redactor = redactor(Rules::default());
    let nested = r#"{"op":"login","args":[{"user":"ann","PassWord":"hunter2"}]}"#;
    let out = redactor.redact(&text_message(nested)).into_owned();
    assert!(!message_text(&out).contains("hunter2"), "{out:?}");
    assert!(message_text(&out).contains(r#""user":"ann""#));
    assert_eq!(
        out.payload().unwrap().len,
        nested.len() as u64,
        "the wire size stays"
    );
    // Not JSON, not whole, or nothing secret: borrowed, untouched.
    for text in [
        "password=hunter2",
        r#"{"password":"hunter2""#,
        r#"{"user":"ann"}"#,
    ] {
        let message = text_message(text);
        assert!(
            matches!(redactor.redact(&message), Cow::Borrowed(_)),
            "{text}"
        );
    }
    let mut cut = text_message(r#"{"password":"hunter2"}"#);
    cut.truncate_payload(5);
    assert!(matches!(redactor.redact(&cut), Cow::Borrowed(_)));
    // Cut after the document: kept whole but marked cut, not looked at.
    let mut cut = text_message(r#"{"secret":"s"}         "#);
    cut.truncate_payload(14);
    assert!(matches!(redactor.redact(&cut), Cow::Borrowed(_)));
}

#[test]
fn binary_payloads_are_untouched() {
    let redactor = redactor(Rules::default());
    let binary = event(EventKind::Message(Message::new(
        OpCode::Binary,
        br#"{"password":"hunter2"}"#,
        usize::MAX,
    )));
    assert!(matches!(redactor.redact(&binary), Cow::Borrowed(_)));
    // Even one whose bytes were kept as text (a hand-written record).
    let mut as_text = Message::new(OpCode::Text, br#"{"password":"hunter2"}"#, usize::MAX);
    as_text.opcode = "binary".into();
    let binary = event(EventKind::Message(as_text));
    assert!(matches!(redactor.redact(&binary), Cow::Borrowed(_)));
}

#[test]
fn a_chosen_credential_subprotocol_is_redacted_too() {
    let redactor = redactor(Rules::default());
    let mut chosen = open();
    if let EventKind::Open(open) = &mut chosen.kind {
        open.subprotocol = Some(JWT.into());
    }
    let json = serde_json::to_string(&redactor.redact(&chosen)).unwrap();
    assert!(!json.contains(JWT), "{json}");
}

#[test]
fn single_frames_are_redacted_like_messages() {
    let redactor = redactor(Rules::default());
    let frame = event(EventKind::Frame(Frame::control(
        OpCode::Text,
        br#"{"secret":"x1"}"#,
    )));
    let out = redactor.redact(&frame).into_owned();
    assert!(!message_text(&out).contains("x1"), "{out:?}");
}

#[test]
fn notes_errors_and_refusals_lose_query_secrets() {
    let redactor = redactor(Rules::default());
    for kind in [
        EventKind::Note {
            text: "reconnecting to ws://h/?jwt=s3cret in 1s".into(),
        },
        EventKind::Error {
            message: "GET /?key=s3cret failed".into(),
        },
        EventKind::Close(Close::new(None, "bad ?password=s3cret")),
        EventKind::HandshakeFailed(HandshakeFailed {
            url: "ws://h/?signature=s3cret".into(),
            client: None,
            request: Some(Head {
                line: "GET /?signature=s3cret HTTP/1.1".into(),
                headers: vec![("X-Auth-Token".into(), "s3cret".into())],
            }),
            response: None,
            status: Some(401),
            body: "no access for ?auth=s3cret".into(),
            upstream_unreachable: false,
            diagnosis: String::new(),
        }),
    ] {
        let out = redactor.redact(&event(kind)).into_owned();
        let json = serde_json::to_string(&out).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert!(json.contains(&redactor.marker("s3cret")), "{json}");
    }
}

#[test]
fn added_rules_apply() {
    let mut rules = Rules::default();
    rules.add_header("X-Session").unwrap();
    rules.add_query("ticket").unwrap();
    rules.add_json_path("json.user.pin").unwrap();
    assert!(rules.add_json_path("user.pin").is_err());
    assert!(rules.add_query(" ").is_err());
    let redactor = redactor(rules);
    let mut with_session = open();
    if let EventKind::Open(open) = &mut with_session.kind {
        open.url.push_str("&ticket=t1ck");
        open.request.headers.push(("x-session".into(), "s5".into()));
    }
    let json = serde_json::to_string(&redactor.redact(&with_session)).unwrap();
    assert!(!json.contains("t1ck") && !json.contains("\"s5\""), "{json}");
    let out = redactor
        .redact(&text_message(r#"{"user":{"pin":1234},"pin":5}"#))
        .into_owned();
    assert_eq!(
        message_text(&out),
        format!(
            r#"{{"user":{{"pin":"{}"}},"pin":5}}"#,
            redactor.marker("1234")
        )
    );
}

#[test]
fn the_rules_serialise_for_the_record_header() {
    let mut rules = Rules::default();
    rules.add_json_path("json.a[0]").unwrap();
    let json = serde_json::to_value(&rules).unwrap();
    assert_eq!(json["marker"], "<redacted:HASH>");
    assert_eq!(json["json_paths"][0], "json.a[0]");
    assert!(
        json["headers"]
            .as_array()
            .unwrap()
            .contains(&"x-api-key".into())
    );
    let back: Rules = serde_json::from_value(json).unwrap();
    assert_eq!(back, rules);
}

#[test]
fn replay_differences_lose_secret_payloads_and_values() {
    let redactor = redactor(Rules::default());
    let payload = |text: &str| Payload::capture(text.as_bytes(), true, usize::MAX);
    let diff = event(EventKind::Diff(Diff {
        change: Change::Differs,
        expected: Some(1),
        actual: Some(1),
        old: Some(payload(r#"{"token":"old-s3cret","n":1}"#)),
        new: Some(payload(r#"{"token":"new-s3cret","n":2}"#)),
        paths: vec![
            PathChange {
                path: "json.token".into(),
                old: Some("old-s3cret".into()),
                new: Some("new-s3cret".into()),
            },
            PathChange {
                path: "json.n".into(),
                old: Some(1.into()),
                new: Some(2.into()),
            },
        ],
        old_code: None,
        new_code: None,
        note: String::new(),
    }));
    let json = serde_json::to_string(&redactor.redact(&diff)).unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    assert!(
        json.contains(r#""path":"json.n","old":1,"new":2"#),
        "{json}"
    );
    assert!(json.contains(&redactor.marker("new-s3cret")), "{json}");
}

mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// JSON documents whose keys are often secret names, in any case.
    fn documents() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("password".to_owned()),
            Just("Token".to_owned()),
            Just("SECRET".to_owned()),
            "[a-z]{1,6}",
        ];
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[ -~é€]{0,12}".prop_map(Value::from),
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn no_secret_left(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.iter().all(|(key, value)| {
                let named = SENSITIVE_JSON.iter().any(|n| n.eq_ignore_ascii_case(key));
                (!named || value.as_str().is_some_and(is_redacted)) && no_secret_left(value)
            }),
            Value::Array(items) => items.iter().all(no_secret_left),
            _ => true,
        }
    }

    proptest! {
        #[test]
        fn json_stays_json_with_every_secret_field_redacted(
            doc in documents(),
            pretty in any::<bool>(),
        ) {
            let text = if pretty {
                serde_json::to_string_pretty(&doc).unwrap()
            } else {
                serde_json::to_string(&doc).unwrap()
            };
            let redactor = redactor(Rules::default());
            let once = redactor.redact(&text_message(&text)).into_owned();
            let out: Value = serde_json::from_str(message_text(&once)).unwrap();
            prop_assert!(no_secret_left(&out), "{}", message_text(&once));
            prop_assert_eq!(redactor.redact(&once).into_owned(), once);
        }

        #[test]
        fn any_text_is_safe_and_redacting_twice_is_once(text in "\\PC{0,80}") {
            let redactor = redactor(Rules::default());
            let mut note = event(EventKind::Note { text: text.clone() });
            redactor.redact_in_place(&mut note);
            let again = redactor.redact(&note).into_owned();
            prop_assert_eq!(again, note);
            let message = redactor.redact(&text_message(&text)).into_owned();
            if serde_json::from_str::<Value>(&text).is_err() {
                prop_assert_eq!(message_text(&message), text.as_str());
            }
        }
    }
}
