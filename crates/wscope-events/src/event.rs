//! The event types and their JSON shape.
//!
//! Field names are the contract with docs/FORMAT.md and every reader of a
//! record file, so they are spelled out with serde attributes rather than
//! left to Rust's names. Optional fields are omitted when empty.

use serde::{Deserialize, Serialize};
use wscope_proto::{CloseCode, OpCode, Violation};

/// One thing that happened on one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Microseconds since the Unix epoch.
    pub ts: u64,
    /// The connection's id, short and stable within a recording (`c1`, ...).
    pub conn: String,
    /// Which way the bytes went, where that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<Direction>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event stamped with the current time.
    pub fn now(conn: &str, dir: Option<Direction>, kind: EventKind) -> Event {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Event {
            ts,
            conn: conn.to_owned(),
            dir,
            kind,
        }
    }

    /// The payload this event carries, if any.
    pub fn payload(&self) -> Option<&Payload> {
        match &self.kind {
            EventKind::Frame(frame) => Some(&frame.payload),
            EventKind::Message(message) => Some(&message.payload),
            _ => None,
        }
    }

    /// Whether [`Event::truncate_payload`] would cut anything (so a sink
    /// need not copy the event to cut it).
    pub fn payload_over(&self, limit: usize) -> bool {
        self.payload().is_some_and(|p| p.kept_len() > limit)
    }

    /// Cuts a frame's or message's payload to `limit` kept bytes.
    pub fn truncate_payload(&mut self, limit: usize) {
        match &mut self.kind {
            EventKind::Frame(frame) => frame.payload.truncate(limit),
            EventKind::Message(message) => message.payload.truncate(limit),
            _ => {}
        }
    }
}

/// Which way a frame or message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    #[serde(rename = "c2s")]
    ClientToServer,
    #[serde(rename = "s2c")]
    ServerToClient,
}

impl Direction {
    /// `c2s` or `s2c`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The handshake completed.
    Open(Open),
    /// The upgrade was refused or went wrong.
    HandshakeFailed(HandshakeFailed),
    /// One frame, as it was on the wire.
    Frame(Frame),
    /// A whole (reassembled, decompressed) data message.
    Message(Message),
    /// A close frame.
    Close(Close),
    /// The end of the connection.
    Closed(Closed),
    /// An I/O or protocol error.
    Error { message: String },
    /// Something wscope did or noticed (a rule fired, a reconnect).
    Note { text: String },
    /// What a replay (or `wscope diff`) found different from the recording.
    Diff(Diff),
}

/// An HTTP request or response head, headers in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// `GET /chat HTTP/1.1` or `HTTP/1.1 101 Switching Protocols`.
    pub line: String,
    pub headers: Vec<(String, String)>,
}

/// How long each step of opening took, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_us: Option<u64>,
}

/// The `open` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Open {
    pub url: String,
    pub client: String,
    pub server: String,
    pub request: Head,
    pub response: Head,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subprotocol: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    #[serde(default)]
    pub timings: Timings,
    /// Set when the handshake was not seen (a capture that starts after
    /// it): the addresses are known, the heads are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeSeen>,
    /// `connect --reconnect`: which attempt this is since the last
    /// connection that stayed up for `--stable-after` (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// What was seen of an opening handshake, when not all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeSeen {
    /// Not in the capture: the connection was found from its frames.
    Missing,
}

/// The `handshake_failed` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeFailed {
    pub url: String,
    /// The client's address, when a server refused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Head>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Head>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The first bytes of the response body, as text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// What it most likely means.
    pub diagnosis: String,
    /// A proxy answered the client itself because it could not reach the
    /// upstream (no connection, TLS failed, or the CONNECT target refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upstream_unreachable: bool,
}

/// A payload as recorded: text as a string, anything else as base64, cut to
/// the capture limit with the true length kept.
///
/// Binary payloads are held as bytes and turned into base64 only when the
/// event is written: the connection that captured them pays a copy, not an
/// encoding (the record writer's thread does that, see `line.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The payload's true length in bytes.
    pub len: u64,
    /// The (possibly cut) payload, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The (possibly cut) payload, when it is not text: `base64` in JSON.
    #[serde(
        rename = "base64",
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_field"
    )]
    pub binary: Option<Vec<u8>>,
    /// Set when fewer than `len` bytes were kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl Payload {
    /// Records `data`, keeping at most `limit` bytes. Text stays text when
    /// the kept part is valid UTF-8 (a cut inside a character backs off to
    /// the character boundary).
    pub fn capture(data: &[u8], as_text: bool, limit: usize) -> Payload {
        let mut keep = data.len().min(limit);
        if as_text {
            if let Ok(text) = std::str::from_utf8(data) {
                while !text.is_char_boundary(keep) {
                    keep -= 1;
                }
                return Payload {
                    len: data.len() as u64,
                    text: Some(text[..keep].to_owned()),
                    binary: None,
                    truncated: keep < data.len(),
                };
            }
            keep = data.len().min(limit);
        }
        Payload {
            len: data.len() as u64,
            text: None,
            binary: Some(data[..keep].to_vec()),
            truncated: keep < data.len(),
        }
    }

    /// Cuts the payload to at most `limit` kept bytes (at a character
    /// boundary for text), keeping the true length.
    pub fn truncate(&mut self, limit: usize) {
        if let Some(text) = &mut self.text {
            if text.len() > limit {
                let mut keep = limit;
                while !text.is_char_boundary(keep) {
                    keep -= 1;
                }
                text.truncate(keep);
                self.truncated = true;
            }
        } else if let Some(binary) = &mut self.binary
            && binary.len() > limit
        {
            binary.truncate(limit);
            self.truncated = true;
        }
    }

    /// How many bytes were kept (what [`Payload::truncate`] cuts).
    pub fn kept_len(&self) -> usize {
        self.bytes().len()
    }

    /// The kept bytes.
    pub fn bytes(&self) -> &[u8] {
        match (&self.text, &self.binary) {
            (Some(text), _) => text.as_bytes(),
            (None, Some(binary)) => binary,
            (None, None) => &[],
        }
    }
}

/// A binary payload's JSON form: standard base64 with padding. A record
/// whose field does not decode is a damaged line, reported as such.
mod base64_field {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(binary: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match binary {
            Some(bytes) => s.serialize_str(&base64_simd::STANDARD.encode_to_string(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(text) = Option::<std::borrow::Cow<'de, str>>::deserialize(d)? else {
            return Ok(None);
        };
        STANDARD
            .decode(text.as_bytes())
            .map(Some)
            .map_err(|e| D::Error::custom(format!("payload.base64 is not base64: {e}")))
    }
}

/// A protocol violation as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationInfo {
    /// `RFC 6455 §5.1`.
    pub section: String,
    pub text: String,
}

impl From<Violation> for ViolationInfo {
    fn from(violation: Violation) -> Self {
        ViolationInfo {
            section: violation.section().to_owned(),
            text: violation.to_string(),
        }
    }
}

/// The `frame` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub fin: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rsv1: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rsv2: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rsv3: bool,
    /// `text`, `binary`, `cont`, `close`, `ping`, `pong` or `reserved`.
    pub opcode: String,
    /// The 4-bit opcode value.
    pub opcode_bits: u8,
    /// The masking key in hex, when the frame was masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    pub payload: Payload,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ViolationInfo>,
}

impl Frame {
    /// A frame as an event: the header as it was on the wire, and the part
    /// of its (unmasked) payload that was kept; `text` when it carries text.
    pub fn new(header: &wscope_proto::FrameHeader, kept: &[u8], text: bool) -> Frame {
        let mut payload = Payload::capture(kept, text, usize::MAX);
        payload.len = header.payload_len;
        payload.truncated = (kept.len() as u64) < header.payload_len;
        Frame {
            fin: header.fin,
            rsv1: header.rsv1,
            rsv2: header.rsv2,
            rsv3: header.rsv3,
            opcode: header.opcode.name().to_owned(),
            opcode_bits: header.opcode.bits(),
            mask: header
                .mask
                .map(|key| key.iter().map(|b| format!("{b:02x}")).collect()),
            payload,
            violations: Vec::new(),
        }
    }

    /// A whole, unmasked control frame (ping, pong).
    pub fn control(opcode: OpCode, payload: &[u8]) -> Frame {
        let header = wscope_proto::FrameHeader::new(opcode, payload.len() as u64);
        Frame::new(&header, payload, true)
    }
}

/// The `message` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `text` or `binary`.
    pub opcode: String,
    pub payload: Payload,
    /// It arrived compressed (permessage-deflate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compressed: bool,
    /// How many frames carried it.
    pub frames: u32,
}

impl Message {
    /// Records a message from the protocol core.
    pub fn capture(message: &wscope_proto::message::Message, limit: usize) -> Message {
        let mut event = Message::new(message.opcode, &message.data, limit);
        event.compressed = message.compressed;
        event.frames = message.frames;
        event
    }

    /// Records a message sent whole, in one uncompressed frame.
    pub fn new(opcode: OpCode, data: &[u8], limit: usize) -> Message {
        Message {
            opcode: opcode.name().to_owned(),
            payload: Payload::capture(data, opcode == OpCode::Text, limit),
            compressed: false,
            frames: 1,
        }
    }
}

/// The `close` event: a close frame's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Close {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The code's registered name and plain meaning.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub meaning: String,
}

impl Close {
    /// A close frame with `code` and `reason`, its meaning filled in.
    pub fn new(code: Option<CloseCode>, reason: &str) -> Close {
        Close {
            code: code.map(|c| c.0),
            reason: reason.to_owned(),
            meaning: code
                .map(|c| format!("{}: {}", c.name(), c.meaning()))
                .unwrap_or_default(),
        }
    }
}

/// The `diff` event: one difference between what was recorded and what
/// happened (a replay's live server, or the second file of `wscope diff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub change: Change,
    /// The message's number among the compared messages of its direction
    /// in the recording (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    /// The number of the message that arrived instead (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    /// The recorded message (`differs`, `missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Payload>,
    /// The message that arrived (`differs`, `extra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Payload>,
    /// For JSON messages: each path whose value differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathChange>,
    /// For `close`: the recorded and the live close code (1006 for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_code: Option<u16>,
    /// In words, where the fields above do not say it all (who closed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Diff {
    /// A connection that ended differently: the close codes either side,
    /// and in words who closed.
    pub fn close(old_code: Option<u16>, new_code: Option<u16>, note: String) -> Diff {
        Diff {
            change: Change::Close,
            expected: None,
            actual: None,
            old: None,
            new: None,
            paths: Vec::new(),
            old_code,
            new_code,
            note,
        }
    }
}

/// What kind of difference a [`Diff`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A message arrived where the recorded one was, with other contents.
    Differs,
    /// A recorded message did not arrive.
    Missing,
    /// A message arrived that the recording does not have.
    Extra,
    /// The connection ended with another close code.
    Close,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Differs => "differs",
            Change::Missing => "missing",
            Change::Extra => "extra",
            Change::Close => "close",
        }
    }
}

/// One JSON value that differs: `path` in the filter language's `json.`
/// syntax; `old` absent when the key is new, `new` absent when it is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathChange {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    Client,
    Server,
    /// Neither sent a close frame first (a drop, or a local error).
    Unknown,
    /// The proxy in between ended it (a rule, or its own shutdown).
    Proxy,
}

/// The `closed` event: the end of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub by: ClosedBy,
    /// Both close frames were exchanged.
    pub clean: bool,
    /// The close code, 1006 when the connection dropped without one.
    pub code: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub meaning: String,
    pub duration_us: u64,
    pub messages_c2s: u64,
    pub messages_s2c: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    /// How the TCP connection ended, where it was watched from outside
    /// (a capture): absent from a live connection's own report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ending>,
}

/// How a connection seen in a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Both close frames, then TCP closed.
    CloseHandshake,
    /// TCP closed (FIN) without the close handshake.
    Fin,
    /// A TCP reset.
    Rst,
    /// Still open when the capture ended.
    CaptureEnd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_capture_keeps_text_as_text_and_cuts_at_char_boundaries() {
        let p = Payload::capture("κόσμε".as_bytes(), true, 3);
        assert_eq!(p.text.as_deref(), Some("κ"));
        assert!(p.truncated);
        assert_eq!(p.len, 10);
        let p = Payload::capture(&[0xff, 0x00, 0x01], true, 100);
        assert_eq!(p.binary.as_deref(), Some(&[0xff, 0, 1][..]));
        assert_eq!(p.bytes(), [0xff, 0, 1]);
        assert!(!p.truncated);
    }

    #[test]
    fn truncate_later_equals_capture_with_limit() {
        for (data, text) in [
            ("κόσμε".as_bytes().to_vec(), true),
            (vec![0xffu8; 100], false),
        ] {
            for limit in [0, 1, 3, 4, 10, 1000] {
                let mut full = Payload::capture(&data, text, usize::MAX);
                full.truncate(limit);
                let direct = Payload::capture(&data, text, limit);
                assert_eq!(full.bytes(), direct.bytes(), "limit {limit}");
                assert_eq!(full.truncated, direct.truncated);
            }
        }
    }

    #[test]
    fn json_shape() {
        let event = Event {
            ts: 1,
            conn: "c1".into(),
            dir: Some(Direction::ServerToClient),
            kind: EventKind::Close(Close::new(Some(CloseCode::NORMAL), "bye")),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""event":"close""#), "{json}");
        assert!(json.contains(r#""dir":"s2c""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }
}
