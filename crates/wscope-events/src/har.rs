//! HAR 1.2 (HTTP Archive) as an input and an output of the event stream:
//! the WebSocket connections a browser recorded, in Chrome's
//! `_webSocketMessages` extension, become `open` and `message` events, and
//! events become such a HAR again (docs/FORMAT.md, "HAR").
//!
//! A HAR is one JSON document, so it is read whole from memory
//! ([`read_har`], at most [`MAX_LEN`] bytes). The document is walked
//! lazily: each entry is kept as its raw JSON text until it proves to be a
//! WebSocket (`_resourceType` `websocket`, a `_webSocketMessages` list, a
//! ws:// or wss:// URL, or a 101 answer), so the page loads, scripts and
//! images around it cost no allocation, and an odd field in an entry that
//! is not a WebSocket cannot stop the import.
//!
//! What a HAR holds is less than an event stream: messages, not frames; no
//! close frames and no end of the connection; no client address; message
//! times only. Reading does not make up what is missing: no `frame`,
//! `close` or `closed` events come out, and a message that cannot be read
//! (an unknown opcode, binary data that is not base64) is left out with a
//! `note` that says so, where it was.
//!
//! Times. Chrome's DevTools write a message's `time` as seconds since the
//! Unix epoch; chrome-har-capturer writes the DevTools protocol's
//! monotonic clock (seconds since an arbitrary point, usually boot) and
//! the entry's `time` as milliseconds from the request to the last
//! message. Times from 10^9 s (2001) on are taken as epoch seconds; smaller
//! ones as monotonic, placed after `startedDateTime` by their distance from
//! the request (the last message's time less the entry's `time`). Event
//! times are microseconds, and numbers are read from their digits, not
//! through a double: what this module writes (`startedDateTime` with
//! microseconds, message times as epoch seconds with six decimals) reads
//! back to the same microsecond.

use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use wscope_proto::OpCode;
use wscope_proto::handshake::status;

use crate::event::{
    Direction, Event, EventKind, HandshakeFailed, HandshakeSeen, Head, Message, Open, Payload,
};

/// The largest HAR read: 1 GiB. A HAR is one JSON document and is held
/// whole while it is read.
pub const MAX_LEN: usize = 1 << 30;

/// The most bytes of a refused upgrade's body kept in `handshake_failed`.
const BODY_CHARS: usize = 4096;

/// Message times from 10^9 s (2001-09-09) on are seconds since the
/// epoch; earlier ones, a monotonic clock's.
const EPOCH_MICROS_FROM: i128 = 1_000_000_000_000_000;

/// The events of a HAR's WebSocket connections.
#[derive(Debug, Clone, PartialEq)]
pub struct HarEvents {
    /// `open` (or `handshake_failed`), `message`, `note` and `error`
    /// events; connections numbered `c1`, `c2`, ... in the order their
    /// entries started, their events merged in time order.
    pub events: Vec<Event>,
    /// How many entries the HAR has (WebSocket or not).
    pub entries: usize,
    /// How many of them are WebSocket connections.
    pub connections: usize,
}

/// Why a HAR could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HarError {
    #[error(
        "the HAR is {len} bytes, over the {} MiB wscope reads (a HAR is one JSON document, read whole); export fewer requests",
        MAX_LEN >> 20
    )]
    TooLarge { len: usize },
    #[error("not a HAR: not UTF-8 text (byte {at}); a HAR is a JSON document")]
    NotUtf8 { at: usize },
    #[error("not a HAR: {reason} (line {line}, column {column})")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("not a HAR: the JSON document is not an object with a \"log\" object in it")]
    NoLog,
    #[error("not a HAR: \"log\" has no \"entries\" list")]
    NoEntries,
    #[error(
        "no WebSocket connections in this HAR ({entries} entries): was it saved with the WS messages? In Chrome, open DevTools before the page connects, choose All (or WS) in the Network panel's filter (an export holds only the requests shown), and export the HAR again"
    )]
    NoWebSocket { entries: usize },
}

fn json_error(err: serde_json::Error) -> HarError {
    // serde_json's text ends with its own "at line L column C": keep the
    // reason alone and say where once.
    let text = err.to_string();
    let reason = match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    HarError::Json {
        line: err.line(),
        column: err.column(),
        reason,
    }
}

// The parts of a HAR that are read. Anything else is skipped by serde
// without being kept; single values are `Value`s, so a field of an
// unexpected type is treated as absent instead of failing the document.

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    log: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Log<'a> {
    #[serde(borrow)]
    entries: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EntryFields<'a> {
    #[serde(rename = "startedDateTime")]
    started: Option<Value>,
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(borrow)]
    request: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(rename = "serverIPAddress")]
    server_ip: Option<Value>,
    #[serde(rename = "_resourceType")]
    resource_type: Option<Value>,
    /// wscope's own: `missing` for a connection whose handshake it did
    /// not see (docs/FORMAT.md, `open`).
    #[serde(rename = "_handshake")]
    handshake: Option<Value>,
    #[serde(rename = "_webSocketMessages", borrow)]
    messages: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct RequestFields<'a> {
    /// wscope's own: the request line as it was.
    #[serde(rename = "_line")]
    line: Option<Value>,
    method: Option<Value>,
    url: Option<Value>,
    #[serde(rename = "httpVersion")]
    http_version: Option<Value>,
    #[serde(borrow)]
    headers: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ResponseFields<'a> {
    /// wscope's own: the status line as it was.
    #[serde(rename = "_line")]
    line: Option<Value>,
    status: Option<Value>,
    #[serde(rename = "statusText")]
    status_text: Option<Value>,
    #[serde(rename = "httpVersion")]
    http_version: Option<Value>,
    #[serde(borrow)]
    headers: Option<&'a RawValue>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    /// Chrome's reason for a request that got no answer.
    #[serde(rename = "_error")]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ContentFields {
    text: Option<Value>,
    encoding: Option<Value>,
}

#[derive(Deserialize)]
struct HeaderFields {
    name: Option<Value>,
    value: Option<Value>,
}

#[derive(Deserialize)]
struct MessageFields<'a> {
    #[serde(rename = "type")]
    kind: Option<Value>,
    /// Kept as written: a double cannot hold every microsecond of a
    /// date, the decimal text can.
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    opcode: Option<Value>,
    data: Option<Value>,
    /// wscope's own: the true length of a payload written cut.
    #[serde(rename = "_length")]
    length: Option<Value>,
    /// wscope's own: 1 on a text message whose bytes are not UTF-8
    /// (written as binary, in base64).
    #[serde(rename = "_opcode")]
    wire_opcode: Option<Value>,
}

/// `raw`, a JSON object, as a `T`; `None` when it does not have that
/// shape. (serde would also fill a struct from a list, by position: a
/// HAR never means that.)
fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    is_object(raw.get())
        .then(|| serde_json::from_str(raw.get()).ok())
        .flatten()
}

fn is_object(json: &str) -> bool {
    json.trim_start().starts_with('{')
}

/// `raw` as a JSON list of raw items, or `None` when it is not a list.
fn list(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

fn text(value: &Option<Value>) -> Option<&str> {
    value.as_ref().and_then(Value::as_str)
}

fn number(value: &Option<Value>) -> Option<f64> {
    value
        .as_ref()
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite())
}

fn status_code(value: &Option<Value>) -> Option<u16> {
    match value.as_ref()? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads the WebSocket connections of a HAR (`bytes`: the whole document,
/// UTF-8, a byte order mark allowed). Never panics; a document that is not
/// a HAR, or has no WebSocket entry, is an error that says so.
pub fn read_har(bytes: &[u8]) -> Result<HarEvents, HarError> {
    if bytes.len() > MAX_LEN {
        return Err(HarError::TooLarge { len: bytes.len() });
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| HarError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    let document: Document = serde_json::from_str(text).map_err(json_error)?;
    if !is_object(text) {
        return Err(HarError::NoLog);
    }
    let log = document
        .log
        .filter(|log| is_object(log.get()))
        .ok_or(HarError::NoLog)?;
    let entries = parse::<Log>(log)
        .and_then(|log| log.entries)
        .and_then(list)
        .ok_or(HarError::NoEntries)?;
    let mut sockets: Vec<Entry> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| Entry::websocket(index, raw))
        .collect();
    if sockets.is_empty() {
        return Err(HarError::NoWebSocket {
            entries: entries.len(),
        });
    }
    // Connection ids in the order the connections started (a stable sort:
    // entries without a start keep their place among themselves).
    sockets.sort_by_key(|entry| entry.started);
    let connections = sockets.len();
    let mut keyed = Vec::new();
    for (n, entry) in sockets.into_iter().enumerate() {
        let conn = format!("c{}", n + 1);
        // Sorted by the latest time so far in its connection, a
        // connection's events keep their order even if the HAR's times go
        // back, and connections interleave by time.
        let mut latest = 0;
        for (seq, event) in entry.events(&conn).into_iter().enumerate() {
            latest = latest.max(event.ts);
            keyed.push(((latest, n, seq), event));
        }
    }
    keyed.sort_by_key(|(key, _)| *key);
    Ok(HarEvents {
        events: keyed.into_iter().map(|(_, event)| event).collect(),
        entries: entries.len(),
        connections,
    })
}

/// One WebSocket entry, its parts parsed.
struct Entry<'a> {
    index: usize,
    started: Option<u64>,
    fields: EntryFields<'a>,
    request: RequestFields<'a>,
    response: Option<ResponseFields<'a>>,
    messages: Option<Vec<&'a RawValue>>,
}

impl<'a> Entry<'a> {
    /// The entry at `index` when it is a WebSocket connection.
    fn websocket(index: usize, raw: &'a RawValue) -> Option<Entry<'a>> {
        let fields: EntryFields = parse(raw)?;
        let request: RequestFields = fields.request.and_then(parse).unwrap_or_default();
        let response: Option<ResponseFields> = fields.response.and_then(parse);
        let messages = fields.messages.and_then(list);
        let url = text(&request.url).unwrap_or("");
        let is_websocket = text(&fields.resource_type)
            .is_some_and(|t| t.eq_ignore_ascii_case("websocket"))
            || messages.is_some()
            || starts_with_ignore_case(url, "ws://")
            || starts_with_ignore_case(url, "wss://")
            || response
                .as_ref()
                .is_some_and(|r| status_code(&r.status) == Some(101));
        if !is_websocket {
            return None;
        }
        Some(Entry {
            index,
            started: text(&fields.started).and_then(parse_rfc3339),
            fields,
            request,
            response,
            messages,
        })
    }

    /// The connection's events, in the HAR's order.
    fn events(&self, conn: &str) -> Vec<Event> {
        let mut notes = Vec::new();
        let messages = self.messages(&mut notes);
        let start = self
            .started
            .or_else(|| messages.iter().find_map(|m| m.ts))
            .unwrap_or(0);
        let url = text(&self.request.url).unwrap_or("").to_owned();
        let request = Head {
            line: match text(&self.request.line) {
                Some(line) => line.to_owned(),
                None => self.request_line(&url),
            },
            headers: headers(self.request.headers, "request", self.index, &mut notes),
        };
        let status = self.response.as_ref().and_then(|r| status_code(&r.status));
        let response = self.response.as_ref().map(|r| Head {
            line: match text(&r.line) {
                Some(line) => line.to_owned(),
                None => response_line(r, &self.request),
            },
            headers: headers(r.headers, "response", self.index, &mut notes),
        });
        // No answer in the HAR, but messages went both ways: it opened.
        let any_message = messages
            .iter()
            .any(|m| matches!(m.kind, EventKind::Message(_)));
        let opened = status == Some(101) || (any_message && matches!(status, None | Some(0)));
        let event = |ts: u64, dir: Option<Direction>, kind: EventKind| Event {
            ts,
            conn: conn.to_owned(),
            dir,
            kind,
        };
        let mut events = Vec::with_capacity(messages.len() + notes.len() + 1);
        if opened {
            let response = response.unwrap_or_default();
            let subprotocol =
                wscope_proto::handshake::header(&response.headers, "sec-websocket-protocol")
                    .map(|p| p.trim().to_owned());
            let extensions = response
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
                .map(|(_, value)| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .collect();
            let open = Open {
                server: self.server(&url),
                url,
                client: String::new(),
                request,
                response,
                subprotocol,
                extensions,
                timings: Default::default(),
                handshake: text(&self.fields.handshake)
                    .filter(|seen| *seen == "missing")
                    .map(|_| HandshakeSeen::Missing),
                attempt: None,
            };
            events.push(event(start, None, EventKind::Open(open)));
        } else {
            events.push(event(
                start,
                None,
                EventKind::HandshakeFailed(self.failed(url, request, response, status)),
            ));
        }
        for text in notes {
            events.push(event(start, None, EventKind::Note { text }));
        }
        let mut last = start;
        for message in messages {
            let ts = message.ts.unwrap_or(last);
            last = ts;
            events.push(event(ts, message.dir, message.kind));
        }
        events
    }

    /// `GET /path?query HTTP/1.1`: the method and version the HAR gives
    /// (GET and HTTP/1.1 where it gives none), the target from the URL.
    fn request_line(&self, url: &str) -> String {
        let method = text(&self.request.method)
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or("GET");
        let version = known_version(&self.request.http_version).unwrap_or("HTTP/1.1");
        format!("{method} {} {version}", target(url))
    }

    /// The server's address: `serverIPAddress` with the URL's port.
    fn server(&self, url: &str) -> String {
        let Some(ip) = text(&self.fields.server_ip).map(str::trim) else {
            return String::new();
        };
        if let Ok(addr) = ip.parse::<SocketAddr>() {
            return addr.to_string();
        }
        let bare = ip.trim_start_matches('[').trim_end_matches(']');
        match (bare.parse::<IpAddr>(), port(url)) {
            (Ok(ip), Some(port)) => SocketAddr::new(ip, port).to_string(),
            (Ok(ip), None) => ip.to_string(),
            (Err(_), _) => ip.to_owned(),
        }
    }

    /// A WebSocket entry that did not open: refused with a status, or
    /// never answered.
    fn failed(
        &self,
        url: String,
        request: Head,
        response: Option<Head>,
        status: Option<u16>,
    ) -> HandshakeFailed {
        let answered = status.filter(|s| *s != 0);
        let body = self
            .response
            .as_ref()
            .and_then(|r| r.content)
            .and_then(parse::<ContentFields>)
            .filter(|c| text(&c.encoding).is_none_or(|e| !e.eq_ignore_ascii_case("base64")))
            .and_then(|c| text(&c.text).map(|t| t.chars().take(BODY_CHARS).collect()))
            .unwrap_or_default();
        let diagnosis = match answered {
            Some(status) => status::diagnose(status).to_owned(),
            None => {
                let error = self
                    .response
                    .as_ref()
                    .and_then(|r| text(&r.error))
                    .filter(|e| !e.is_empty())
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                format!(
                    "no answer to the upgrade in the HAR{error}: the connection failed, or the browser blocked it"
                )
            }
        };
        HandshakeFailed {
            url,
            client: None,
            request: Some(request),
            response: answered.and(response),
            status: answered,
            body,
            upstream_unreachable: false,
            diagnosis,
        }
    }

    /// The `_webSocketMessages`, as events (with their times, where known);
    /// what cannot be read becomes a note in `notes` or in place.
    fn messages(&self, notes: &mut Vec<String>) -> Vec<Item> {
        if self.fields.messages.is_none() {
            return Vec::new();
        }
        let index = self.index;
        let Some(items) = &self.messages else {
            notes.push(format!(
                "log.entries[{index}]._webSocketMessages is not a list; no messages were read"
            ));
            return Vec::new();
        };
        let parsed: Vec<Option<MessageFields>> = items.iter().map(|raw| parse(raw)).collect();
        let clock = Clock::new(self, &parsed);
        let mut untimed = 0;
        let mut out = Vec::with_capacity(parsed.len());
        for (i, fields) in parsed.iter().enumerate() {
            let place = format!("log.entries[{index}]._webSocketMessages[{i}]");
            let note = |text: String| Item {
                ts: None,
                dir: None,
                kind: EventKind::Note { text },
            };
            let Some(fields) = fields else {
                out.push(note(format!("{place} is not an object; left out")));
                continue;
            };
            let ts = fields
                .time
                .and_then(|t| scaled(t.get(), 6))
                .and_then(|t| clock.micros(t));
            if ts.is_none() {
                untimed += 1;
            }
            let read = match message(fields, &place) {
                Ok((dir, kind)) => Item { ts, dir, kind },
                Err(text) => Item { ts, ..note(text) },
            };
            out.push(read);
        }
        if untimed > 0 {
            notes.push(format!(
                "log.entries[{index}]: {untimed} of the {} WebSocket messages have no time; each is stamped with the time before it",
                parsed.len()
            ));
        }
        out
    }
}

/// A message (or what stands in its place) read from the HAR.
struct Item {
    ts: Option<u64>,
    dir: Option<Direction>,
    kind: EventKind,
}

/// One `_webSocketMessages` item as an event, or why it cannot be one.
fn message(
    fields: &MessageFields<'_>,
    place: &str,
) -> Result<(Option<Direction>, EventKind), String> {
    let data = text(&fields.data).unwrap_or("");
    let dir = match text(&fields.kind) {
        Some("send") => Direction::ClientToServer,
        Some("receive") => Direction::ServerToClient,
        // DevTools' frame errors ("error", opcode -1): the text is the
        // browser's own message.
        Some("error") => {
            return Ok((
                None,
                EventKind::Error {
                    message: format!("the browser reported a WebSocket error: {data}"),
                },
            ));
        }
        Some(other) => {
            return Err(format!(
                "{place} has type {other:?}, not send or receive; left out"
            ));
        }
        None => return Err(format!("{place} has no type (send or receive); left out")),
    };
    let mut opcode = match number(&fields.opcode) {
        Some(1.0) => OpCode::Text,
        Some(2.0) => OpCode::Binary,
        Some(n) => {
            let name = if n.fract() == 0.0 && (0.0..16.0).contains(&n) {
                format!(" ({})", OpCode::from_bits(n as u8).name())
            } else {
                String::new()
            };
            return Err(format!(
                "{place} ({}) has opcode {n}{name}; only text (1) and binary (2) messages are read; left out",
                dir.as_str()
            ));
        }
        None => return Err(format!("{place} has no opcode; left out")),
    };
    let mut payload = if opcode == OpCode::Text {
        Payload::capture(data.as_bytes(), true, usize::MAX)
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|err| {
                format!(
                    "{place} ({}): binary data that is not base64 ({err}); left out",
                    dir.as_str()
                )
            })?;
        let text = number(&fields.wire_opcode) == Some(1.0);
        if text {
            opcode = OpCode::Text;
        }
        Payload::capture(&bytes, text, usize::MAX)
    };
    // wscope writes `_length` when it wrote a payload cut to a limit.
    if let Some(length) = number(&fields.length).filter(|l| *l > payload.len as f64) {
        payload.len = length as u64;
        payload.truncated = true;
    }
    Ok((
        Some(dir),
        EventKind::Message(Message {
            opcode: opcode.name().to_owned(),
            payload,
            compressed: false,
            frames: 1,
        }),
    ))
}

/// Turns an entry's message times into microseconds since the epoch.
enum Clock {
    /// Seconds since the epoch (Chrome's DevTools).
    Epoch,
    /// A monotonic clock's: `started` (µs since the epoch) is at
    /// `anchor` (µs on that clock).
    Monotonic { started: u64, anchor: i128 },
}

impl Clock {
    fn new(entry: &Entry, messages: &[Option<MessageFields>]) -> Clock {
        let times: Vec<i128> = messages
            .iter()
            .flatten()
            .filter_map(|m| m.time.and_then(|t| scaled(t.get(), 6)))
            .collect();
        let Some(&first) = times.first() else {
            return Clock::Epoch;
        };
        if first >= EPOCH_MICROS_FROM {
            return Clock::Epoch;
        }
        let last = times.last().copied().unwrap_or(first);
        let earliest = times.iter().copied().min().unwrap_or(first);
        // chrome-har-capturer: the entry's time (ms) runs from the request
        // to the last message. Where that would put the request after a
        // message, the earliest message is taken to be the start.
        let anchor = entry
            .fields
            .time
            .and_then(|ms| scaled(ms.get(), 3))
            .filter(|us| *us >= 0)
            .map(|us| last.saturating_sub(us))
            .filter(|anchor| *anchor <= earliest)
            .unwrap_or(earliest);
        Clock::Monotonic {
            started: entry.started.unwrap_or(0),
            anchor,
        }
    }

    /// A message's time (µs on the HAR's clock) as µs since the epoch.
    fn micros(&self, time: i128) -> Option<u64> {
        match *self {
            Clock::Epoch => u64::try_from(time).ok(),
            Clock::Monotonic { started, anchor } => {
                let at = i128::from(started) + (time - anchor).max(0);
                Some(u64::try_from(at).unwrap_or(u64::MAX))
            }
        }
    }
}

/// A JSON number's text times 10^`decimals`, rounded to the nearest
/// integer (halves away from zero), computed on the digits rather than
/// through a double so that `1764484056.548548` is exactly
/// 1764484056548548 µs. `None` for what is not a number, or is 10^30 or
/// more (no time is).
fn scaled(number: &str, decimals: i32) -> Option<i128> {
    let number = number.trim();
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    if whole.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // The number is `digits` × 10^(exponent − fraction digits); scaled,
    // the point moves `shift` places right.
    let shift = i64::from(exponent) + i64::from(decimals) - fraction.len() as i64;
    // How many of the digits end up left of the point.
    let left = digits.len() as i64 + shift.min(0);
    const LIMIT: i128 = 10i128.pow(30);
    let mut value: i128 = 0;
    for digit in digits.iter().take(usize::try_from(left).unwrap_or(0)) {
        value = value * 10 + i128::from(digit - b'0');
        if value >= LIMIT {
            return None;
        }
    }
    if shift > 0 && value != 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?;
        if value >= LIMIT {
            return None;
        }
    }
    // The first digit right of the point rounds.
    let next = usize::try_from(left).ok().and_then(|at| digits.get(at));
    if next.is_some_and(|digit| *digit >= b'5') {
        value += 1;
    }
    Some(if negative { -value } else { value })
}

/// A headers list as `[name, value]` pairs; items that are not a pair of
/// strings are left out with a note.
fn headers(
    raw: Option<&RawValue>,
    which: &str,
    index: usize,
    notes: &mut Vec<String>,
) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let Some(items) = list(raw) else {
        notes.push(format!(
            "log.entries[{index}].{which}.headers is not a list; no {which} headers were read"
        ));
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match parse::<HeaderFields>(item) {
            Some(HeaderFields {
                name: Some(Value::String(name)),
                value: Some(Value::String(value)),
            }) => out.push((name, value)),
            _ => notes.push(format!(
                "log.entries[{index}].{which}.headers[{i}] is not a name and value; left out"
            )),
        }
    }
    out
}

/// `HTTP/1.1 101 Switching Protocols`, from the response's version (the
/// request's, or HTTP/1.1, when it has none), status and status text.
fn response_line(response: &ResponseFields, request: &RequestFields) -> String {
    let version = known_version(&response.http_version)
        .or_else(|| known_version(&request.http_version))
        .unwrap_or("HTTP/1.1");
    let status = status_code(&response.status).unwrap_or(0);
    match text(&response.status_text)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(reason) => format!("{version} {status} {reason}"),
        None => format!("{version} {status}"),
    }
}

/// An `httpVersion` that says something (chrome-har-capturer writes
/// `unknown` when Chrome did not say).
fn known_version(value: &Option<Value>) -> Option<&str> {
    text(value)
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("unknown") && !v.contains(' '))
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// The request target of a URL: its path and query (`/` when it has no
/// path), without the fragment. A URL that is only a path is its own.
fn target(url: &str) -> String {
    let url = url.split('#').next().unwrap_or("");
    let Some(at) = url.find("://") else {
        return if url.is_empty() {
            "/".to_owned()
        } else {
            url.to_owned()
        };
    };
    let rest = &url[at + 3..];
    match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => rest[at..].to_owned(),
        Some(at) => format!("/{}", &rest[at..]),
        None => "/".to_owned(),
    }
}

/// The port a URL names, or its scheme's default.
fn port(url: &str) -> Option<u16> {
    let at = url.find("://")?;
    let scheme = &url[..at];
    let rest = &url[at + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let explicit = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => host[colon + 1..].parse().ok(),
        _ => None,
    };
    explicit.or(match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => Some(80),
        "wss" | "https" => Some(443),
        _ => None,
    })
}

/// An RFC 3339 date (`2026-11-30T06:27:36.527Z`, or with an offset such as
/// `+01:00`) as microseconds since the epoch; `None` before 1970 or when
/// it is not such a date.
pub(crate) fn parse_rfc3339(date: &str) -> Option<u64> {
    let b = date.trim().as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = b.get(from..from + n)?;
        part.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    let second = digits(17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let mut scale = 100_000i64;
        let from = at;
        while let Some(c) = b.get(at).filter(|c| c.is_ascii_digit()) {
            micros += i64::from(c - b'0') * scale;
            scale /= 10;
            at += 1;
        }
        if at == from {
            return None;
        }
    }
    let offset = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && b[at + 3] == b':' => {
            let hours = digits(at + 1, 2)?;
            let minutes = digits(at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(seconds * 1_000_000 + micros).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Years counted from March, so the leap day ends a year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Writes events as HAR 1.2: one entry per connection that opened (in the
/// order they opened), with its handshake and, in Chrome's
/// `_webSocketMessages`, its messages (text as text, binary in base64).
/// What HAR has no place for is not written: frames, close frames, the
/// end of the connection, notes, the client's address. wscope's own
/// fields (underscored, as HAR asks) keep what [`read_har`] needs to give
/// the same `open` and `message` events back: the request and status
/// lines as they were (`_line`: one not seen, or not the one a URL
/// gives), `_handshake` `missing`, the true length of a payload written
/// cut (`_length`), and `_opcode` 1 on text that is not UTF-8 (written as
/// binary).
pub fn write_har<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<u8> {
    let mut entries: Vec<(u64, WrittenEntry)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for event in events {
        match &event.kind {
            EventKind::Open(open) => {
                index.insert(event.conn.as_str(), entries.len());
                let entry = WrittenEntry {
                    fields: entry(event.ts, open),
                    messages: Vec::new(),
                };
                entries.push((event.ts, entry));
            }
            EventKind::Message(message) => {
                if let Some(&at) = index.get(event.conn.as_str()) {
                    entries[at].1.messages.push(har_message(event, message));
                }
            }
            _ => {}
        }
    }
    // In the order they opened; a connection id opened twice (two inputs)
    // keeps both entries.
    entries.sort_by_key(|(ts, _)| *ts);
    let har = WrittenHar {
        log: WrittenLog {
            version: "1.2",
            creator: json!({"name": "wscope", "version": env!("CARGO_PKG_VERSION")}),
            pages: Vec::new(),
            entries: entries.into_iter().map(|(_, entry)| entry).collect(),
        },
    };
    // Values, strings and numbers always serialize.
    serde_json::to_vec_pretty(&har).unwrap_or_default()
}

// What is written, as serde types rather than one `Value`, so that message
// times go out as the exact decimals they are (a `Value` would hold them
// as doubles).

#[derive(Serialize)]
struct WrittenHar {
    log: WrittenLog,
}

#[derive(Serialize)]
struct WrittenLog {
    version: &'static str,
    creator: Value,
    pages: Vec<Value>,
    entries: Vec<WrittenEntry>,
}

#[derive(Serialize)]
struct WrittenEntry {
    #[serde(flatten)]
    fields: Value,
    #[serde(rename = "_webSocketMessages")]
    messages: Vec<WrittenMessage>,
}

#[derive(Serialize)]
struct WrittenMessage {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Seconds since the epoch, with six decimals.
    time: Box<RawValue>,
    opcode: u8,
    data: String,
    #[serde(rename = "_length", skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    #[serde(rename = "_opcode", skip_serializing_if = "Option::is_none")]
    wire_opcode: Option<u8>,
}

fn entry(ts: u64, open: &Open) -> Value {
    let pairs = |list: &[(String, String)]| -> Vec<Value> {
        list.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let mut request_line = open.request.line.split_whitespace();
    let method = request_line.next().unwrap_or("GET");
    let request_version = request_line.nth(1).unwrap_or("HTTP/1.1");
    let mut response_line = open.response.line.splitn(3, ' ');
    let response_version = response_line
        .next()
        .filter(|v| !v.is_empty())
        .unwrap_or(request_version);
    let status: u16 = response_line
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(101);
    let status_text = response_line.next().unwrap_or("").trim();
    let ms = |us: Option<u64>| us.map_or(-1.0, |us| us as f64 / 1000.0);
    let timings = open.timings;
    // HAR's connect includes the TLS handshake (its ssl).
    let connect = timings
        .tcp_us
        .map(|tcp| tcp.saturating_add(timings.tls_us.unwrap_or(0)));
    let wait = ms(Some(timings.upgrade_us.unwrap_or(0)));
    let time = [ms(timings.dns_us), ms(connect), wait]
        .into_iter()
        .filter(|t| *t > 0.0)
        .sum::<f64>();
    let mut entry = json!({
        "startedDateTime": rfc3339_micros(ts),
        "time": time,
        "request": {
            "_line": open.request.line,
            "method": method,
            "url": open.url,
            "httpVersion": request_version,
            "headers": pairs(&open.request.headers),
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "_line": open.response.line,
            "status": status,
            "statusText": status_text,
            "httpVersion": response_version,
            "headers": pairs(&open.response.headers),
            "cookies": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0,
        },
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": ms(timings.dns_us),
            "connect": ms(connect),
            "ssl": ms(timings.tls_us),
            "send": 0,
            "wait": wait,
            "receive": 0,
        },
        "_resourceType": "websocket",
    });
    if let Ok(server) = open.server.parse::<SocketAddr>() {
        entry["serverIPAddress"] = json!(server.ip().to_string());
    }
    if open.handshake == Some(HandshakeSeen::Missing) {
        entry["_handshake"] = json!("missing");
    }
    entry
}

fn har_message(event: &Event, message: &Message) -> WrittenMessage {
    let kind = match event.dir {
        Some(Direction::ClientToServer) => "send",
        _ => "receive",
    };
    let payload = &message.payload;
    let (opcode, data) = match (&payload.text, &payload.binary) {
        (Some(text), _) => (1, text.clone()),
        (None, Some(binary)) => (2, base64::engine::general_purpose::STANDARD.encode(binary)),
        (None, None) => (if message.opcode == "text" { 1 } else { 2 }, String::new()),
    };
    let seconds = format!("{}.{:06}", event.ts / 1_000_000, event.ts % 1_000_000);
    WrittenMessage {
        kind,
        // Digits, a point and digits: a JSON number.
        time: RawValue::from_string(seconds).unwrap_or_else(|_| zero()),
        opcode,
        data,
        length: payload.truncated.then_some(payload.len),
        // Text whose bytes are not UTF-8 (a peer broke the protocol, and
        // wscope kept what it sent): binary in base64, marked as text.
        wire_opcode: (opcode == 2 && message.opcode == "text").then_some(1),
    }
}

fn zero() -> Box<RawValue> {
    RawValue::from_string("0".to_owned()).expect("0 is JSON")
}

/// `2026-11-30T06:27:36.527123Z`; a time past the year 9999 (which RFC
/// 3339 cannot write) as the last microsecond of it.
fn rfc3339_micros(ts_us: u64) -> String {
    const LAST: u64 = 253_402_300_800_000_000 - 1;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(ts_us.min(LAST));
    humantime::format_rfc3339_micros(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Close, Closed, ClosedBy, Timings};
    use proptest::prelude::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// A message as the tests compare it: conn, dir, opcode, bytes, ts.
    type Seen<'a> = (&'a str, Option<Direction>, &'a str, Vec<u8>, u64);

    fn messages(events: &[Event]) -> Vec<Seen<'_>> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Message(m) => Some((
                    e.conn.as_str(),
                    e.dir,
                    m.opcode.as_str(),
                    m.payload.bytes().to_vec(),
                    e.ts,
                )),
                _ => None,
            })
            .collect()
    }

    fn opens(events: &[Event]) -> Vec<(&str, u64, &Open)> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Open(open) => Some((e.conn.as_str(), e.ts, open)),
                _ => None,
            })
            .collect()
    }

    fn notes(events: &[Event]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Note { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// What Chrome's DevTools export (Network panel, "Export HAR") writes
    /// for a page and the WebSocket it opened: epoch seconds for message
    /// times, the page's own request around it, no Cookie header.
    const DEVTOOLS: &str = r#"{
      "log": {
        "version": "1.2",
        "creator": {"name": "WebInspector", "version": "537.36"},
        "pages": [{"startedDateTime": "2025-11-30T06:27:36.400Z", "id": "page_1", "title": "http://127.0.0.1:8080/", "pageTimings": {}}],
        "entries": [
          {
            "_initiator": {"type": "other"},
            "_resourceType": "document",
            "cache": {},
            "connection": "1201",
            "pageref": "page_1",
            "request": {"method": "GET", "url": "http://127.0.0.1:8080/", "httpVersion": "HTTP/1.1",
              "headers": [{"name": "Host", "value": "127.0.0.1:8080"}], "queryString": [], "cookies": [],
              "headersSize": 300, "bodySize": 0},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
              "headers": [{"name": "Content-Type", "value": "text/html"}], "cookies": [],
              "content": {"size": 12, "mimeType": "text/html", "text": "<p>hello</p>"},
              "redirectURL": "", "headersSize": 80, "bodySize": 12},
            "serverIPAddress": "127.0.0.1",
            "startedDateTime": "2025-11-30T06:27:36.400Z",
            "time": 3.2,
            "timings": {"blocked": 1, "dns": -1, "ssl": -1, "connect": -1, "send": 0.1, "wait": 2, "receive": 0.1}
          },
          {
            "_initiator": {"type": "script"},
            "_resourceType": "websocket",
            "_webSocketMessages": [
              {"type": "send", "time": 1764484056.548548, "opcode": 1, "data": "hello from chromium"},
              {"type": "receive", "time": 1764484056.565091, "opcode": 1, "data": "Grüße, 世界 🌍"},
              {"type": "send", "time": 1764484056.569055, "opcode": 2, "data": "AAEC+vv/"},
              {"type": "receive", "time": 1764484056.570583, "opcode": 2, "data": "AAEC+vv/"}
            ],
            "cache": {},
            "connection": "1234",
            "pageref": "page_1",
            "request": {
              "method": "GET",
              "url": "ws://127.0.0.1:9001/chat?room=7&who=har",
              "httpVersion": "HTTP/1.1",
              "headers": [
                {"name": "Host", "value": "127.0.0.1:9001"},
                {"name": "Connection", "value": "Upgrade"},
                {"name": "Upgrade", "value": "websocket"},
                {"name": "Origin", "value": "http://127.0.0.1:8080"},
                {"name": "Sec-WebSocket-Version", "value": "13"},
                {"name": "Sec-WebSocket-Key", "value": "+YeRFZt+N8cxxcYnPYSJOA=="},
                {"name": "Sec-WebSocket-Extensions", "value": "permessage-deflate; client_max_window_bits"},
                {"name": "Sec-WebSocket-Protocol", "value": "chat.v1, chat.v0"}
              ],
              "queryString": [{"name": "room", "value": "7"}, {"name": "who", "value": "har"}],
              "cookies": [], "headersSize": -1, "bodySize": 0
            },
            "response": {
              "status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1",
              "headers": [
                {"name": "Upgrade", "value": "websocket"},
                {"name": "Connection", "value": "Upgrade"},
                {"name": "Sec-WebSocket-Accept", "value": "7XRfB6r4lUb+V8HWZjYET08iuYo="},
                {"name": "Sec-WebSocket-Protocol", "value": "chat.v1"},
                {"name": "Sec-WebSocket-Extensions", "value": "permessage-deflate"}
              ],
              "cookies": [], "content": {"size": 0, "mimeType": "x-unknown"},
              "redirectURL": "", "headersSize": -1, "bodySize": 0, "_transferSize": 0, "_error": null
            },
            "serverIPAddress": "127.0.0.1",
            "startedDateTime": "2025-11-30T06:27:36.527Z",
            "time": 0.4,
            "timings": {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0, "wait": 0.4, "receive": 0}
          }
        ]
      }
    }"#;

    #[test]
    fn a_chrome_devtools_har_becomes_an_open_and_its_messages() {
        let har = read_har(DEVTOOLS.as_bytes()).unwrap();
        assert_eq!((har.entries, har.connections), (2, 1));
        let opens = opens(&har.events);
        assert_eq!(opens.len(), 1, "{:#?}", har.events);
        let (conn, ts, open) = opens[0];
        assert_eq!(conn, "c1");
        assert_eq!(ts, 1_764_484_056_527_000);
        assert_eq!(open.url, "ws://127.0.0.1:9001/chat?room=7&who=har");
        assert_eq!(open.server, "127.0.0.1:9001");
        assert_eq!(open.client, "", "a HAR has no client address");
        assert_eq!(open.request.line, "GET /chat?room=7&who=har HTTP/1.1");
        assert_eq!(open.request.headers.len(), 8);
        assert_eq!(
            open.request.headers[7],
            ("Sec-WebSocket-Protocol".into(), "chat.v1, chat.v0".into())
        );
        assert!(
            !open
                .request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("cookie")),
            "nothing invented"
        );
        assert_eq!(open.response.line, "HTTP/1.1 101 Switching Protocols");
        assert_eq!(open.response.headers[2].0, "Sec-WebSocket-Accept");
        assert_eq!(open.subprotocol.as_deref(), Some("chat.v1"));
        assert_eq!(open.extensions, vec!["permessage-deflate".to_owned()]);
        assert_eq!(open.timings, Timings::default());
        let c2s = Some(Direction::ClientToServer);
        let s2c = Some(Direction::ServerToClient);
        assert_eq!(
            messages(&har.events),
            vec![
                (
                    "c1",
                    c2s,
                    "text",
                    b"hello from chromium".to_vec(),
                    1_764_484_056_548_548
                ),
                (
                    "c1",
                    s2c,
                    "text",
                    "Grüße, 世界 🌍".as_bytes().to_vec(),
                    1_764_484_056_565_091
                ),
                (
                    "c1",
                    c2s,
                    "binary",
                    vec![0, 1, 2, 250, 251, 255],
                    1_764_484_056_569_055
                ),
                (
                    "c1",
                    s2c,
                    "binary",
                    vec![0, 1, 2, 250, 251, 255],
                    1_764_484_056_570_583
                ),
            ]
        );
        // The open first; nothing HAR does not hold (no close, no closed).
        assert!(matches!(har.events[0].kind, EventKind::Open(_)));
        assert_eq!(har.events.len(), 5, "{:#?}", har.events);
        let binary = har.events.iter().find_map(|e| match &e.kind {
            EventKind::Message(m) if m.opcode == "binary" => Some(m),
            _ => None,
        });
        assert_eq!(
            binary.unwrap().payload.binary.as_deref(),
            Some(&[0, 1, 2, 0xfa, 0xfb, 0xff][..]),
            "binary stays base64"
        );
    }

    /// chrome-har-capturer's shape: message times on the DevTools
    /// protocol's monotonic clock, the entry's `time` from the request to
    /// the last message, `httpVersion` from Chrome, no `serverIPAddress`.
    /// Two connections, listed out of order, the second opened first.
    fn capturer_har() -> String {
        let entry = |started: &str, time: f64, path: &str, frames: &str| {
            format!(
                r#"{{"pageref": "page_1_1", "startedDateTime": "{started}", "time": {time},
                   "request": {{"method": "GET", "url": "ws://127.0.0.1:36689{path}", "httpVersion": "HTTP/1.1", "cookies": [],
                     "headers": [{{"name": "Upgrade", "value": "websocket"}}, {{"name": "Host", "value": "127.0.0.1:36689"}}],
                     "queryString": [], "headersSize": -1, "bodySize": -1}},
                   "response": {{"status": 101, "statusText": "Switching Protocols", "httpVersion": "HTTP/1.1", "cookies": [],
                     "headers": [{{"name": "Upgrade", "value": "websocket"}}],
                     "redirectURL": "", "headersSize": -1, "bodySize": -1, "content": {{"size": 0, "mimeType": "x-unknown"}}}},
                   "cache": {{}}, "timings": {{"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": {time}, "receive": -1, "ssl": -1}},
                   "connection": "undefined", "_webSocketMessages": [{frames}], "_resourceType": "websocket"}}"#
            )
        };
        let late = entry(
            "2025-11-30T06:27:36.600Z",
            20.0,
            "/b",
            r#"{"type": "send", "time": 23159.110, "opcode": 1, "data": "b1"},
               {"type": "receive", "time": 23159.120, "opcode": 1, "data": "b2"}"#,
        );
        let early = entry(
            "2025-11-30T06:27:36.527Z",
            64.676,
            "/a",
            r#"{"type": "send", "time": 23159.048548, "opcode": 1, "data": "a1"},
               {"type": "receive", "time": 23159.065091, "opcode": 1, "data": "a2"},
               {"type": "receive", "time": 23159.070583, "opcode": 2, "data": "AAEC+vv/"}"#,
        );
        format!(
            r#"{{"log": {{"version": "1.2", "creator": {{"name": "Chrome HAR Capturer", "version": "0.14.4"}},
                "pages": [], "entries": [{late}, {early}]}}}}"#
        )
    }

    #[test]
    fn chrome_har_capturer_times_are_placed_after_the_entry_start() {
        let har = read_har(capturer_har().as_bytes()).unwrap();
        let opens = opens(&har.events);
        assert_eq!(opens.len(), 2);
        // Numbered in the order they started, not the order listed.
        assert_eq!(opens[0].0, "c1");
        assert!(opens[0].2.url.ends_with("/a"));
        assert_eq!(opens[0].1, 1_764_484_056_527_000);
        assert!(opens[1].2.url.ends_with("/b"));
        assert_eq!(opens[0].2.server, "", "no serverIPAddress, no address");
        // c1's request was at 23159.070583 - 0.064676 = 23159.005907: its
        // first message 42.641 ms after the entry started.
        let c1: Vec<u64> = messages(&har.events)
            .iter()
            .filter(|m| m.0 == "c1")
            .map(|m| m.4)
            .collect();
        assert_eq!(
            c1,
            vec![
                1_764_484_056_569_641,
                1_764_484_056_586_184,
                1_764_484_056_591_676
            ]
        );
        // c2's request at 23159.100: its messages 10 and 20 ms after
        // 36.600.
        let c2: Vec<u64> = messages(&har.events)
            .iter()
            .filter(|m| m.0 == "c2")
            .map(|m| m.4)
            .collect();
        assert_eq!(c2, vec![1_764_484_056_610_000, 1_764_484_056_620_000]);
        // Merged in time order, each connection's open before its messages.
        let order: Vec<(&str, &str)> = har
            .events
            .iter()
            .map(|e| {
                (
                    e.conn.as_str(),
                    match &e.kind {
                        EventKind::Open(_) => "open",
                        EventKind::Message(_) => "message",
                        _ => "other",
                    },
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                ("c1", "open"),
                ("c1", "message"),
                ("c1", "message"),
                ("c1", "message"),
                ("c2", "open"),
                ("c2", "message"),
                ("c2", "message"),
            ]
        );
        assert!(har.events.windows(2).all(|w| w[0].ts <= w[1].ts));
    }

    #[test]
    fn messages_that_cannot_be_read_are_left_out_with_a_note() {
        let har = r#"{"log": {"entries": [{"startedDateTime": "2025-11-30T06:27:36Z",
            "request": {"url": "wss://example.test/x", "headers": [{"name": "Host"}, 7, {"name": "A", "value": "b"}]},
            "response": {"status": "101", "headers": {"not": "a list"}},
            "_webSocketMessages": [
              {"type": "send", "time": 1764484056.5, "opcode": 1, "data": "ok"},
              {"type": "receive", "time": 1764484056.6, "opcode": 8, "data": ""},
              {"type": "receive", "time": 1764484056.7, "opcode": 2, "data": "not base64!"},
              {"type": "sideways", "time": 1764484056.8, "opcode": 1, "data": "?"},
              {"time": 1764484056.9, "opcode": 1, "data": "?"},
              {"type": "send", "opcode": 1, "data": "untimed"},
              "not an object",
              {"type": "error", "time": 1764484057.0, "opcode": -1, "data": "Invalid frame header"}
            ]}]}}"#;
        let read = read_har(har.as_bytes()).unwrap();
        let (_, _, open) = opens(&read.events)[0];
        assert_eq!(open.request.line, "GET /x HTTP/1.1");
        assert_eq!(open.request.headers, pairs(&[("A", "b")]));
        assert_eq!(open.response.line, "HTTP/1.1 101");
        assert_eq!(open.server, "");
        let texts = notes(&read.events);
        for expected in [
            "request.headers[0] is not a name and value",
            "request.headers[1] is not a name and value",
            "response.headers is not a list",
            "_webSocketMessages[1] (s2c) has opcode 8 (close)",
            "_webSocketMessages[2] (s2c): binary data that is not base64",
            "_webSocketMessages[3] has type \"sideways\"",
            "_webSocketMessages[4] has no type",
            "_webSocketMessages[6] is not an object",
            "1 of the 8 WebSocket messages have no time",
        ] {
            assert!(
                texts.iter().any(|t| t.contains(expected)),
                "{expected:?} in {texts:#?}"
            );
        }
        let got = messages(&read.events);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].3, b"untimed");
        assert_eq!(got[1].4, 1_764_484_056_900_000, "the time before it");
        assert!(read.events.iter().any(|e| matches!(&e.kind,
            EventKind::Error { message } if message.contains("Invalid frame header"))));
        // In place: the close frame's note between the two messages.
        let kinds: Vec<bool> = read
            .events
            .iter()
            .map(|e| matches!(e.kind, EventKind::Message(_)))
            .collect();
        let first = kinds.iter().position(|m| *m).unwrap();
        assert!(!kinds[first + 1], "a note follows the first message");
    }

    #[test]
    fn a_refused_or_unanswered_upgrade_is_a_handshake_failure() {
        let har = r#"{"log": {"entries": [
            {"startedDateTime": "2025-11-30T06:27:36.100Z", "_resourceType": "websocket",
             "request": {"method": "GET", "url": "ws://127.0.0.1:9001/origin", "httpVersion": "HTTP/1.1", "headers": []},
             "response": {"status": 403, "statusText": "Forbidden", "httpVersion": "HTTP/1.1", "headers": [],
                          "content": {"size": 19, "mimeType": "text/plain", "text": "origin not allowed"}}},
            {"startedDateTime": "2025-11-30T06:27:36.200Z", "_resourceType": "websocket",
             "request": {"method": "GET", "url": "ws://127.0.0.1:1/", "headers": []},
             "response": {"status": 0, "statusText": "", "headers": [], "_error": "net::ERR_CONNECTION_REFUSED"}}
        ]}}"#;
        let read = read_har(har.as_bytes()).unwrap();
        let failed: Vec<&HandshakeFailed> = read
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::HandshakeFailed(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), 2, "{:#?}", read.events);
        assert_eq!(failed[0].status, Some(403));
        assert_eq!(failed[0].body, "origin not allowed");
        assert_eq!(failed[0].diagnosis, status::diagnose(403));
        assert_eq!(
            failed[0].response.as_ref().unwrap().line,
            "HTTP/1.1 403 Forbidden"
        );
        assert_eq!(failed[1].status, None);
        assert!(failed[1].response.is_none());
        assert!(
            failed[1].diagnosis.contains("ERR_CONNECTION_REFUSED"),
            "{}",
            failed[1].diagnosis
        );
    }

    /// Found by the fuzzer: an entry with no answer opened only if a
    /// message (not a note in place of one) says so; and a connection's
    /// events keep their order when the HAR's times go back.
    #[test]
    fn no_answer_and_times_that_go_back() {
        let entry = |started: &str, messages: &str| {
            format!(
                r#"{{"startedDateTime": "{started}", "_resourceType": "websocket",
                   "request": {{"url": "ws://h/"}}, "response": {{"status": 0}},
                   "_webSocketMessages": [{messages}]}}"#
            )
        };
        let har = format!(
            r#"{{"log": {{"entries": [{}, {}]}}}}"#,
            entry(
                "2025-11-30T06:27:36.400Z",
                r#"{"type": "send", "time": 1764484056.9, "opcode": 1, "data": "late"},
                   {"type": "send", "time": 1764484000.0, "opcode": 1, "data": "earlier than the open"}"#
            ),
            entry(
                "2025-11-30T06:27:36.500Z",
                r#"{"type": "send", "time": 1764484056.6, "opcode": 8, "data": ""}"#
            ),
        );
        let read = read_har(har.as_bytes()).unwrap();
        let kinds: Vec<(&str, &str)> = read
            .events
            .iter()
            .map(|e| {
                let kind = match &e.kind {
                    EventKind::Open(_) => "open",
                    EventKind::HandshakeFailed(_) => "handshake_failed",
                    EventKind::Message(_) => "message",
                    EventKind::Note { .. } => "note",
                    _ => "other",
                };
                (e.conn.as_str(), kind)
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("c1", "open"),
                ("c2", "handshake_failed"),
                ("c2", "note"),
                ("c1", "message"),
                ("c1", "message"),
            ]
        );
        assert_eq!(read.events[4].ts, 1_764_484_000_000_000);
    }

    #[test]
    fn what_is_not_a_har_is_an_error_that_says_why() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "not a HAR: EOF while parsing a value (line 1, column 0)"),
            (b"{\"log\": {\"entries\": [", "not a HAR: EOF while parsing"),
            (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
            (b"[{\"entries\": []}]", "not an object with a \"log\" object in it"),
            (b"{}", "not an object with a \"log\" object in it"),
            (b"{\"log\": null}", "not an object with a \"log\" object in it"),
            (b"{\"log\": \"x\"}", "not an object with a \"log\" object in it"),
            (b"{\"log\": [[]]}", "not an object with a \"log\" object in it"),
            (b"{\"log\": {}}", "\"log\" has no \"entries\" list"),
            (b"{\"log\": {\"entries\": {}}}", "\"log\" has no \"entries\" list"),
            (b"{\"log\": {\"entries\": [[\"2025-11-30T06:27:36Z\", 1, {\"url\": \"ws://x/\"}, null, null, null, null]]}}", "no WebSocket connections in this HAR (1 entries)"),
            (
                b"{\"log\": {\"entries\": []}}",
                "no WebSocket connections in this HAR (0 entries): was it saved with the WS messages?",
            ),
            (
                b"{\"log\": {\"entries\": [1, \"two\", {\"request\": {\"url\": \"https://example.test/\"}, \"response\": {\"status\": 200}}]}}",
                "no WebSocket connections in this HAR (3 entries)",
            ),
            (b"{\"log\": {}, \"log\": {}}", "duplicate field `log`"),
        ];
        for (input, expected) in cases {
            let err = read_har(input).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{:?}: {err:?} should say {expected:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Deep nesting is refused by the JSON parser, not the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(read_har(deep.as_bytes()).is_err());
        // Inside an entry, it is skipped over without recursion.
        let deep = format!(
            "{{\"log\": {{\"entries\": [{{\"_resourceType\": \"websocket\", \"x\": {}{}}}]}}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let read = read_har(deep.as_bytes()).unwrap();
        assert!(matches!(read.events[0].kind, EventKind::HandshakeFailed(_)));
        // A byte order mark is allowed.
        let with_bom = [b"\xef\xbb\xbf".as_slice(), DEVTOOLS.as_bytes()].concat();
        assert_eq!(read_har(&with_bom).unwrap().connections, 1);
    }

    #[test]
    fn too_large_is_refused_before_it_is_parsed() {
        // Not allocated: a slice of zeros that claims the size.
        let big = vec![b' '; MAX_LEN + 1];
        assert_eq!(read_har(&big), Err(HarError::TooLarge { len: MAX_LEN + 1 }));
    }

    fn open_event(conn: &str, ts: u64, path: &str) -> Event {
        Event {
            ts,
            conn: conn.into(),
            dir: None,
            kind: EventKind::Open(Open {
                url: format!("ws://127.0.0.1:9001{path}"),
                client: "127.0.0.1:50000".into(),
                server: "127.0.0.1:9001".into(),
                request: Head {
                    line: format!("GET {path} HTTP/1.1"),
                    headers: pairs(&[
                        ("Host", "127.0.0.1:9001"),
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                        ("Sec-WebSocket-Version", "13"),
                        ("Sec-WebSocket-Protocol", "chat.v1"),
                        ("Authorization", "<redacted>"),
                    ]),
                },
                response: Head {
                    line: "HTTP/1.1 101 Switching Protocols".into(),
                    headers: pairs(&[
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                        ("Sec-WebSocket-Protocol", "chat.v1"),
                        (
                            "Sec-WebSocket-Extensions",
                            "permessage-deflate; server_no_context_takeover",
                        ),
                    ]),
                },
                subprotocol: Some("chat.v1".into()),
                extensions: vec!["permessage-deflate; server_no_context_takeover".into()],
                timings: Timings {
                    dns_us: Some(120),
                    tcp_us: Some(180),
                    tls_us: None,
                    upgrade_us: Some(420),
                },
                handshake: None,
                attempt: None,
            }),
        }
    }

    fn message_event(conn: &str, ts: u64, dir: Direction, opcode: OpCode, data: &[u8]) -> Event {
        Event {
            ts,
            conn: conn.into(),
            dir: Some(dir),
            kind: EventKind::Message(Message::new(opcode, data, usize::MAX)),
        }
    }

    #[test]
    fn what_wscope_writes_reads_back_as_the_same_open_and_messages() {
        use Direction::*;
        let t0 = 1_764_484_056_527_123;
        let mut cut = message_event("c1", t0 + 900, ServerToClient, OpCode::Text, b"a long text");
        cut.truncate_payload(4);
        let events = vec![
            open_event("c1", t0, "/chat?room=7"),
            message_event(
                "c1",
                t0 + 1,
                ClientToServer,
                OpCode::Text,
                "Grüße 🌍".as_bytes(),
            ),
            open_event("c2", t0 + 2, "/"),
            message_event(
                "c1",
                t0 + 3,
                ServerToClient,
                OpCode::Binary,
                &[0, 1, 2, 250, 255],
            ),
            message_event("c2", t0 + 4, ClientToServer, OpCode::Binary, b""),
            message_event("c2", t0 + 5, ClientToServer, OpCode::Text, b""),
            message_event("c1", t0 + 6, ServerToClient, OpCode::Binary, &[0xff; 3]),
            // Text that is not UTF-8 is recorded in base64; HAR has no such
            // text, so it is written as binary, marked as text.
            message_event("c1", t0 + 7, ServerToClient, OpCode::Text, &[b'a', 0xff]),
            cut,
            Event {
                ts: t0 + 1000,
                conn: "c1".into(),
                dir: Some(ServerToClient),
                kind: EventKind::Close(Close::new(Some(wscope_proto::CloseCode::NORMAL), "bye")),
            },
            Event {
                ts: t0 + 1001,
                conn: "c1".into(),
                dir: None,
                kind: EventKind::Closed(Closed {
                    by: ClosedBy::Server,
                    clean: true,
                    code: 1000,
                    reason: "bye".into(),
                    meaning: String::new(),
                    duration_us: 1001,
                    messages_c2s: 1,
                    messages_s2c: 3,
                    bytes_c2s: 10,
                    bytes_s2c: 19,
                    ended: None,
                }),
            },
            // A connection that never opened has no entry.
            message_event("c9", t0 + 7, ClientToServer, OpCode::Text, b"orphan"),
            // A capture's connection whose handshake was not seen: empty
            // heads, the marker; and one whose request line is not built
            // from its URL (a proxy's absolute form).
            {
                let mut missing = open_event("c3", t0 + 2000, "/");
                if let EventKind::Open(open) = &mut missing.kind {
                    open.url = "ws://10.0.0.5:8080".into();
                    open.server = "10.0.0.5:8080".into();
                    open.request = Head::default();
                    open.response = Head::default();
                    open.subprotocol = None;
                    open.extensions.clear();
                    open.handshake = Some(HandshakeSeen::Missing);
                }
                missing
            },
            {
                let mut absolute = open_event("c4", t0 + 3000, "/a?b");
                if let EventKind::Open(open) = &mut absolute.kind {
                    open.request.line = "GET ws://127.0.0.1:9001/a?b HTTP/1.1".into();
                    open.response.line = "HTTP/1.1 101 Web Socket Protocol Handshake".into();
                }
                absolute
            },
            message_event("c3", t0 + 2001, ServerToClient, OpCode::Text, b"late"),
        ];
        let written = write_har(&events);
        let har: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(
            har["log"]["entries"][0]["startedDateTime"],
            "2025-11-30T06:27:36.527123Z"
        );
        assert_eq!(har["log"]["entries"][0]["serverIPAddress"], "127.0.0.1");
        let read = read_har(&written).unwrap();
        assert_eq!(read.connections, 4);

        // The opens: everything a HAR holds, to the microsecond.
        let before = opens(&events);
        let after = opens(&read.events);
        assert_eq!(after.len(), 4);
        for ((conn, ts, open), (conn_back, ts_back, back)) in before.iter().zip(&after) {
            assert_eq!((conn, ts), (conn_back, ts_back));
            assert_eq!(back.url, open.url);
            assert_eq!(back.request, open.request);
            assert_eq!(back.response, open.response);
            assert_eq!(back.subprotocol, open.subprotocol);
            assert_eq!(back.extensions, open.extensions);
            assert_eq!(back.server, open.server);
            assert_eq!(back.handshake, open.handshake);
            assert_eq!(back.client, "", "HAR has no client address");
        }
        // The messages: direction, opcode, payload (a cut one still cut,
        // with its length), time to the microsecond; the orphan, the close
        // and the closed are not in a HAR.
        let before: Vec<(&str, Option<Direction>, &Message, u64)> = events
            .iter()
            .filter(|e| e.conn != "c9")
            .filter_map(|e| match &e.kind {
                EventKind::Message(m) => Some((e.conn.as_str(), e.dir, m, e.ts)),
                _ => None,
            })
            .collect();
        let after: Vec<(&str, Option<Direction>, &Message, u64)> = read
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Message(m) => Some((e.conn.as_str(), e.dir, m, e.ts)),
                _ => None,
            })
            .collect();
        assert_eq!(after, before);
        assert!(
            read.events
                .iter()
                .all(|e| matches!(e.kind, EventKind::Open(_) | EventKind::Message(_))),
            "{:#?}",
            read.events
        );
    }

    proptest! {
        /// Any time from 2001 to 9999 and any payload come back exactly.
        #[test]
        fn message_times_and_payloads_round_trip(
            ts in 1_000_000_000_000_000u64..253_402_300_000_000_000,
            gaps in proptest::collection::vec(0u64..10_000_000, 1..8),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            text in "\\PC{0,20}",
        ) {
            let mut events = vec![open_event("c1", ts, "/")];
            let mut at = ts;
            for (i, gap) in gaps.iter().enumerate() {
                at += gap;
                let (opcode, payload) = if i % 2 == 0 {
                    (OpCode::Binary, data.as_slice())
                } else {
                    (OpCode::Text, text.as_bytes())
                };
                events.push(message_event("c1", at, Direction::ServerToClient, opcode, payload));
            }
            let read = read_har(&write_har(&events)).unwrap();
            // A HAR has no client address and wscope does not read its
            // timings back.
            if let EventKind::Open(open) = &mut events[0].kind {
                open.client.clear();
                open.timings = Timings::default();
            }
            prop_assert_eq!(read.events, events);
        }

        /// Arbitrary bytes, and arbitrary bytes inside a HAR's message
        /// list, give events or an error, never a panic.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_har(&bytes);
            let inside = format!(
                "{{\"log\":{{\"entries\":[{{\"_webSocketMessages\":[{}]}}]}}}}",
                String::from_utf8_lossy(&bytes)
            );
            let _ = read_har(inside.as_bytes());
        }
    }

    #[test]
    fn a_start_past_the_year_9999_is_written_as_its_last_microsecond() {
        // humantime refuses such a date; a HAR may still bring one.
        let mut open = open_event("c1", u64::MAX, "/");
        let written = write_har([&open]);
        let read = read_har(&written).unwrap();
        assert_eq!(read.events[0].ts, 253_402_300_799_999_999);
        open.ts = 253_402_300_799_999_999;
        assert_eq!(write_har([&open]), written);
        // A message's time has no such limit.
        let last = message_event(
            "c1",
            u64::MAX,
            Direction::ClientToServer,
            OpCode::Text,
            b"x",
        );
        let read = read_har(&write_har([&open, &last])).unwrap();
        assert_eq!(read.events[1], last);
    }

    #[test]
    fn numbers_are_scaled_on_their_digits() {
        assert_eq!(scaled("1764484056.548548", 6), Some(1_764_484_056_548_548));
        assert_eq!(scaled("4369402864.153132", 6), Some(4_369_402_864_153_132));
        assert_eq!(
            scaled("23159.0485485", 6),
            Some(23_159_048_549),
            "halves round up"
        );
        assert_eq!(scaled("23159.0485484999", 6), Some(23_159_048_548));
        assert_eq!(scaled("64.67600000178209", 3), Some(64_676));
        assert_eq!(scaled("1.7644840565e9", 6), Some(1_764_484_056_500_000));
        assert_eq!(scaled("17644840565E-1", 6), Some(1_764_484_056_500_000));
        assert_eq!(scaled("5e-7", 6), Some(1));
        assert_eq!(scaled("4e-7", 6), Some(0));
        assert_eq!(scaled("1e-300", 6), Some(0));
        assert_eq!(scaled("0e999999", 6), Some(0));
        assert_eq!(scaled("-1.5", 0), Some(-2));
        assert_eq!(scaled("3", 6), Some(3_000_000));
        assert_eq!(
            scaled("18446744073709.551615", 6),
            Some(u64::MAX.into()),
            "any time wscope writes"
        );
        for bad in [
            "1e30",
            "",
            "-",
            ".5",
            "1.2.3",
            "\"1\"",
            "1e",
            "1e99",
            "1e99999999999",
            "9999999999999999999999999",
            "null",
            "+1",
            "١",
        ] {
            assert_eq!(scaled(bad, 6), None, "{bad:?}");
        }
    }

    /// docs/FORMAT.md's HAR example reads as the events shown after it.
    #[test]
    fn the_format_doc_example_reads_as_documented() {
        let doc = include_str!("../../../docs/FORMAT.md");
        let section = &doc[doc.find("## HAR").expect("a HAR section")..];
        let block = |fence: &str| -> String {
            let start = section.find(fence).expect(fence) + fence.len();
            let end = start + section[start..].find("```").expect("the block ends");
            section[start..end].to_owned()
        };
        let har = block("```jsonc\n");
        let events: Vec<Event> = block("```json\n")
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(read_har(har.as_bytes()).unwrap().events, events);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2025-11-30T06:27:36.527Z"),
            Some(1_764_484_056_527_000)
        );
        assert_eq!(
            parse_rfc3339("2025-11-30T07:27:36.527123+01:00"),
            Some(1_764_484_056_527_123)
        );
        assert_eq!(
            parse_rfc3339("2025-11-29T20:27:36.5271239-10:00"),
            Some(1_764_484_056_527_123),
            "digits past the microsecond are dropped"
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000)
        );
        for bad in [
            "",
            "2026-11-30",
            "2025-11-30T06:27:36",
            "2025-11-30T06:27:36.Z",
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2025-11-30T24:00:00Z",
            "2025-11-30T06:27:36+0100",
            "1969-12-31T23:59:59Z",
            "２０２６-11-30T06:27:36Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
