//! Evaluating a compiled filter against one event.
//!
//! A field that an event does not have (the direction of an `open`, the
//! close code of a message) makes every comparison on it false, `!=`
//! included, as in Wireshark: `dir != c2s` means "a s2c event", not
//! "anything but c2s". Strings and payloads (binary ones are held as
//! bytes) are borrowed from the event; a JSON payload is parsed at most
//! once per evaluation and only when the expression asks.

use std::borrow::Cow;

use serde_json::Value as Json;

use super::{Expr, Field, Op, PathStep, Value};
use crate::event::{Event, EventKind, Payload};

/// A date (`2026-11-26T04:00:00Z`) as microseconds since 1970.
pub(super) fn parse_time(text: &str) -> Option<f64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_micros() as f64)
}

/// What a field holds in one event.
enum Got<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Bytes(Cow<'a, [u8]>),
    Opcode(&'a str, u8),
    Json(&'a Json),
    /// Several strings, any of which may match (violations).
    Any(Vec<&'a str>),
}

struct Ctx<'a> {
    event: &'a Event,
    /// The payload parsed as JSON: not yet tried, or tried.
    json: Option<Option<Json>>,
}

impl Expr {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        let mut ctx = Ctx { event, json: None };
        self.eval(&mut ctx)
    }

    fn eval(&self, ctx: &mut Ctx<'_>) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(ctx) || b.eval(ctx),
            Expr::And(a, b) => a.eval(ctx) && b.eval(ctx),
            Expr::Not(a) => !a.eval(ctx),
            Expr::Flag(field) => matches!(get(field, ctx), Some(Got::Bool(true))),
            Expr::Exists(field) => match get(field, ctx) {
                Some(Got::Any(items)) => !items.is_empty(),
                Some(_) => true,
                None => false,
            },
            Expr::Compare(field, op, value) => match get(field, ctx) {
                Some(got) => compare(&got, *op, value),
                None => false,
            },
            Expr::In(field, values) => match get(field, ctx) {
                Some(got) => values.iter().any(|v| compare(&got, Op::Eq, v)),
                None => false,
            },
        }
    }
}

fn payload(event: &Event) -> Option<&Payload> {
    event.payload()
}

fn get<'a>(field: &Field, ctx: &'a mut Ctx<'_>) -> Option<Got<'a>> {
    let event = ctx.event;
    match field {
        Field::Dir => event.dir.map(|d| Got::Str(d.as_str())),
        Field::Opcode => match &event.kind {
            EventKind::Frame(frame) => Some(Got::Opcode(&frame.opcode, frame.opcode_bits)),
            EventKind::Message(message) => {
                let bits = if message.opcode == "text" { 1 } else { 2 };
                Some(Got::Opcode(&message.opcode, bits))
            }
            EventKind::Close(_) => Some(Got::Opcode("close", 8)),
            _ => None,
        },
        Field::Fin => match &event.kind {
            EventKind::Frame(frame) => Some(Got::Bool(frame.fin)),
            EventKind::Message(_) => Some(Got::Bool(true)),
            _ => None,
        },
        Field::Rsv(n) => match &event.kind {
            EventKind::Frame(frame) => Some(Got::Bool(match n {
                1 => frame.rsv1,
                2 => frame.rsv2,
                _ => frame.rsv3,
            })),
            EventKind::Message(message) => Some(Got::Bool(*n == 1 && message.compressed)),
            _ => None,
        },
        Field::Masked => match &event.kind {
            EventKind::Frame(frame) => Some(Got::Bool(frame.mask.is_some())),
            _ => None,
        },
        Field::Len => payload(event).map(|p| Got::Num(p.len as f64)),
        Field::Conn => Some(Got::Str(&event.conn)),
        Field::Text => payload(event).and_then(|p| p.text.as_deref()).map(Got::Str),
        Field::Payload => payload(event).map(|p| Got::Bytes(Cow::Borrowed(p.bytes()))),
        Field::CloseCode => match &event.kind {
            EventKind::Close(close) => close.code.map(|c| Got::Num(c as f64)),
            EventKind::Closed(closed) => Some(Got::Num(closed.code as f64)),
            _ => None,
        },
        Field::CloseReason => match &event.kind {
            EventKind::Close(close) => Some(Got::Str(&close.reason)),
            EventKind::Closed(closed) => Some(Got::Str(&closed.reason)),
            _ => None,
        },
        Field::Time => Some(Got::Num(event.ts as f64)),
        Field::Event => Some(Got::Str(kind_name(&event.kind))),
        Field::Violation => match &event.kind {
            EventKind::Frame(frame) => Some(Got::Any(
                frame.violations.iter().map(|v| v.text.as_str()).collect(),
            )),
            _ => None,
        },
        Field::Json(path) => {
            if ctx.json.is_none() {
                let parsed = payload(event)
                    .and_then(|p| p.text.as_deref())
                    .and_then(|text| serde_json::from_str::<Json>(text).ok());
                ctx.json = Some(parsed);
            }
            let mut node = ctx.json.as_ref()?.as_ref()?;
            for step in path {
                node = match step {
                    PathStep::Key(key) => node.get(key.as_str())?,
                    PathStep::Index(i) => node.get(*i)?,
                };
            }
            Some(Got::Json(node))
        }
    }
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

/// A direction written either way.
fn canonical_dir(word: &str) -> &str {
    match word {
        "client" => "c2s",
        "server" => "s2c",
        other => other,
    }
}

fn order(op: Op, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ordering == Equal,
        Op::Ne => ordering != Equal,
        Op::Lt => ordering == Less,
        Op::Le => ordering != Greater,
        Op::Gt => ordering == Greater,
        Op::Ge => ordering != Less,
        Op::Contains | Op::Matches => false,
    }
}

fn compare_str(got: &str, op: Op, value: &Value) -> bool {
    match (op, value) {
        (Op::Matches, Value::Regex(re)) => re.is_match(got),
        (Op::Contains, Value::Str(v) | Value::Word(v)) => got.contains(v.as_str()),
        (_, Value::Str(v) | Value::Word(v)) => order(op, canonical_dir(got).cmp(canonical_dir(v))),
        (_, Value::Num(n)) => got
            .parse::<f64>()
            .ok()
            .and_then(|g| g.partial_cmp(n))
            .is_some_and(|o| order(op, o)),
        _ => false,
    }
}

fn compare(got: &Got<'_>, op: Op, value: &Value) -> bool {
    match got {
        Got::Str(s) => compare_str(s, op, value),
        Got::Num(g) => match value {
            Value::Num(n) => g.partial_cmp(n).is_some_and(|o| order(op, o)),
            Value::Str(date) => parse_time(date)
                .and_then(|t| g.partial_cmp(&t))
                .is_some_and(|o| order(op, o)),
            _ => false,
        },
        Got::Bool(b) => match value {
            Value::Bool(v) => order(op, b.cmp(v)),
            _ => false,
        },
        Got::Opcode(name, bits) => match value {
            Value::Num(n) => (*bits as f64).partial_cmp(n).is_some_and(|o| order(op, o)),
            Value::Regex(re) => op == Op::Matches && re.is_match(name),
            Value::Str(v) | Value::Word(v) if matches!(op, Op::Eq | Op::Ne) => {
                order(op, (*name).cmp(v.as_str()))
            }
            _ => false,
        },
        Got::Bytes(bytes) => match (op, value) {
            (Op::Contains, Value::Str(v) | Value::Word(v)) => {
                let needle = v.as_bytes();
                needle.is_empty() || bytes.windows(needle.len()).any(|w| w == needle)
            }
            (Op::Matches, Value::Regex(re)) => {
                std::str::from_utf8(bytes).is_ok_and(|s| re.is_match(s))
            }
            (Op::Eq | Op::Ne, Value::Str(v) | Value::Word(v)) => {
                order(op, bytes.as_ref().cmp(v.as_bytes()))
            }
            _ => false,
        },
        Got::Json(node) => match (node, value) {
            (Json::Number(g), Value::Num(n)) => g
                .as_f64()
                .and_then(|g| g.partial_cmp(n))
                .is_some_and(|o| order(op, o)),
            (Json::String(s), _) => compare_str(s, op, value),
            (Json::Bool(b), Value::Bool(v)) => order(op, b.cmp(v)),
            (Json::Null, Value::Word(w)) if w == "null" => op == Op::Eq,
            (other, Value::Str(v)) if op == Op::Contains => other.to_string().contains(v.as_str()),
            _ => false,
        },
        Got::Any(items) => items.iter().any(|item| compare_str(item, op, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use crate::event::{Close, Direction, Event, EventKind, Frame, Message};
    use wscope_proto::{CloseCode, FrameHeader, OpCode};

    fn message(dir: Direction, text: &str) -> Event {
        let mut event = Event::now(
            "c1",
            Some(dir),
            EventKind::Message(Message::new(OpCode::Text, text.as_bytes(), usize::MAX)),
        );
        event.ts = 1_764_000_000_000_000;
        event
    }

    fn matches(filter: &str, event: &Event) -> bool {
        parse(filter)
            .unwrap_or_else(|e| panic!("{}", e.render(filter)))
            .matches(event)
    }

    #[test]
    fn fields_of_a_message() {
        let m = message(
            Direction::ClientToServer,
            r#"{"type":"subscribe","ids":[3,4],"user":{"name":"ada"}}"#,
        );
        assert!(matches("dir == c2s", &m));
        assert!(matches("dir == client", &m));
        assert!(!matches("dir == server", &m));
        assert!(matches("dir != s2c", &m));
        assert!(matches("opcode == text && opcode == 1 && fin", &m));
        assert!(matches("len > 10 && len <= 1000", &m));
        assert!(matches(r#"json.type == "subscribe""#, &m));
        assert!(matches("json.type == subscribe", &m));
        assert!(matches("json.ids[1] == 4 && json.ids[0] < 4", &m));
        assert!(matches(r#"json.user.name matches "^a.a$""#, &m));
        assert!(matches("json.user exists && !(json.missing exists)", &m));
        assert!(matches(r#""subscribe""#, &m));
        assert!(matches(r#"text contains "ids""#, &m));
        assert!(matches("event == message && conn == c1", &m));
        assert!(matches(r#"time > "2025-01-01T00:00:00Z""#, &m));
        assert!(matches("opcode in {binary, text}", &m));
        // Absent fields match nothing, != included.
        assert!(!matches("close.code == 1000", &m));
        assert!(!matches("close.code != 1000", &m));
        assert!(!matches("masked", &m));
    }

    #[test]
    fn fields_of_frames_and_closes() {
        let mut header = FrameHeader::new(OpCode::Ping, 4);
        header.mask = Some([1, 2, 3, 4]);
        let mut frame = Frame::new(&header, b"ping", true);
        frame.violations = vec![wscope_proto::Violation::FragmentedControlFrame.into()];
        let event = Event::now(
            "c2",
            Some(Direction::ServerToClient),
            EventKind::Frame(frame),
        );
        assert!(matches("opcode == ping && masked && !rsv1", &event));
        assert!(matches("violation exists", &event));
        assert!(matches(r#"violation contains "FIN""#, &event));
        assert!(matches(r#"payload == "ping""#, &event));
        let close = Event::now(
            "c2",
            Some(Direction::ServerToClient),
            EventKind::Close(Close::new(Some(CloseCode(1011)), "overloaded")),
        );
        assert!(matches("close.code in {1006, 1011}", &close));
        assert!(matches(r#"close.reason contains "load""#, &close));
        assert!(!matches("violation exists", &close));
    }

    #[test]
    fn which_filters_read_payloads() {
        let reads = |filter: &str| {
            parse(filter)
                .unwrap_or_else(|e| panic!("{}", e.render(filter)))
                .reads_payload()
        };
        assert!(reads(r#"dir == s2c && text contains "x""#));
        assert!(reads(r#""error""#));
        assert!(reads("!(json.type exists) || event == open"));
        assert!(reads("payload == 'ab'"));
        assert!(!reads("dir == c2s && len > 10 && opcode in {text, binary}"));
        assert!(!reads(
            "close.code != 1000 || event == closed || violation exists"
        ));
    }

    #[test]
    fn which_filters_read_binary_payloads() {
        let reads = |filter: &str| parse(filter).unwrap().reads_binary();
        assert!(reads(r#""error""#));
        assert!(reads("dir == c2s && !(payload contains 'ab')"));
        assert!(!reads(r#"json.type == "never" || text contains "x""#));
        assert!(!reads("len > 10"));
    }

    #[test]
    fn binary_payloads_are_searched_as_bytes() {
        let event = Event::now(
            "c3",
            Some(Direction::ServerToClient),
            EventKind::Message(Message::new(OpCode::Binary, b"\x00\xffneedle\x01", 1024)),
        );
        assert!(matches(r#""needle""#, &event));
        assert!(!matches(r#""haystack""#, &event));
        assert!(!matches("text exists", &event));
    }
}
