//! Lifecycle logs for servers (`--log-format text|json`): one line on
//! stderr per connect, message, control frame, close, error and refusal,
//! each with the connection id, the client's address, Origin and
//! User-Agent, so a line can be read (or grepped, or shipped to a log
//! store) on its own. Payloads are not logged: sizes only.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use wscope_events::{Event, EventKind, Head};
use wscope_proto::CloseCode;

use crate::sinks::sink::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
    /// No lifecycle logs.
    Off,
}

impl LogFormat {
    /// As written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
            LogFormat::Off => "off",
        }
    }
}

/// What is known of a connection's client, from its upgrade request.
#[derive(Default, Clone)]
struct Peer {
    client: String,
    origin: Option<String>,
    user_agent: Option<String>,
}

pub struct LifecycleLog {
    format: LogFormat,
    peers: HashMap<String, Peer>,
    out: io::BufWriter<io::Stderr>,
}

impl LifecycleLog {
    pub fn new(format: LogFormat) -> Self {
        LifecycleLog {
            format,
            peers: HashMap::new(),
            out: io::BufWriter::new(io::stderr()),
        }
    }
}

fn header(head: &Head, name: &str) -> Option<String> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// The path from a request line (`GET /chat?x=1 HTTP/1.1`).
fn target(head: &Head) -> String {
    head.line.split(' ').nth(1).unwrap_or_default().to_owned()
}

impl LifecycleLog {
    /// The client of `event`'s connection, learnt from its `open` (or its
    /// failed handshake) and forgotten when it ends. Called for every event,
    /// shown or filtered out, so lines keep their client and the map does
    /// not grow with connections whose end was not shown.
    fn peer(&mut self, event: &Event) -> Peer {
        match &event.kind {
            EventKind::Open(open) => {
                let peer = Peer {
                    client: open.client.clone(),
                    origin: header(&open.request, "origin"),
                    user_agent: header(&open.request, "user-agent"),
                };
                self.peers.insert(event.conn.clone(), peer.clone());
                peer
            }
            EventKind::HandshakeFailed(failed) => {
                let mut peer = self.peers.remove(&event.conn).unwrap_or_default();
                if let Some(client) = &failed.client {
                    peer.client = client.clone();
                }
                if let Some(request) = &failed.request {
                    peer.origin = header(request, "origin");
                    peer.user_agent = header(request, "user-agent");
                }
                peer
            }
            EventKind::Closed(_) => self.peers.remove(&event.conn).unwrap_or_default(),
            _ => self.peers.get(&event.conn).cloned().unwrap_or_default(),
        }
    }
}

impl Sink for LifecycleLog {
    fn wants_payloads(&self) -> bool {
        false
    }

    fn skipped(&mut self, event: &Event) -> io::Result<()> {
        // Only beginnings and ends change what is known of a client.
        if matches!(
            event.kind,
            EventKind::Open(_) | EventKind::HandshakeFailed(_) | EventKind::Closed(_)
        ) {
            self.peer(event);
        }
        Ok(())
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        let peer = self.peer(event);
        let mut fields = Map::new();
        let name = match &event.kind {
            EventKind::Open(open) => {
                fields.insert("path".into(), json!(target(&open.request)));
                if let Some(protocol) = &open.subprotocol {
                    fields.insert("subprotocol".into(), json!(protocol));
                }
                if !open.extensions.is_empty() {
                    fields.insert("extensions".into(), json!(open.extensions.join(", ")));
                }
                "open"
            }
            EventKind::HandshakeFailed(failed) => {
                if let Some(request) = &failed.request {
                    fields.insert("path".into(), json!(target(request)));
                }
                if let Some(status) = failed.status {
                    fields.insert("status".into(), json!(status));
                }
                fields.insert("reason".into(), json!(failed.diagnosis));
                "rejected"
            }
            EventKind::Message(message) => {
                fields.insert("opcode".into(), json!(message.opcode));
                fields.insert("size".into(), json!(message.payload.len));
                if message.frames > 1 {
                    fields.insert("frames".into(), json!(message.frames));
                }
                if message.compressed {
                    fields.insert("compressed".into(), json!(true));
                }
                "message"
            }
            EventKind::Frame(frame) => {
                fields.insert("opcode".into(), json!(frame.opcode));
                fields.insert("size".into(), json!(frame.payload.len));
                if !frame.violations.is_empty() {
                    let texts: Vec<_> = frame.violations.iter().map(|v| &v.text).collect();
                    fields.insert("violations".into(), json!(texts));
                }
                "frame"
            }
            EventKind::Close(close) => {
                if let Some(code) = close.code {
                    fields.insert("code".into(), json!(code));
                }
                if !close.reason.is_empty() {
                    fields.insert("reason".into(), json!(close.reason));
                }
                "close"
            }
            EventKind::Closed(closed) => {
                fields.insert("by".into(), serde_json::to_value(closed.by)?);
                fields.insert("code".into(), json!(closed.code));
                fields.insert("meaning".into(), json!(CloseCode(closed.code).name()));
                if !closed.reason.is_empty() {
                    fields.insert("reason".into(), json!(closed.reason));
                }
                fields.insert("clean".into(), json!(closed.clean));
                fields.insert("duration_s".into(), json!(closed.duration_us as f64 / 1e6));
                fields.insert("messages_c2s".into(), json!(closed.messages_c2s));
                fields.insert("messages_s2c".into(), json!(closed.messages_s2c));
                fields.insert("bytes_c2s".into(), json!(closed.bytes_c2s));
                fields.insert("bytes_s2c".into(), json!(closed.bytes_s2c));
                "closed"
            }
            EventKind::Error { message } => {
                fields.insert("message".into(), json!(message));
                "error"
            }
            EventKind::Note { text } => {
                fields.insert("message".into(), json!(text));
                "note"
            }
            EventKind::Diff(diff) => {
                fields.insert("change".into(), json!(diff.change.as_str()));
                "diff"
            }
        };
        let time = humantime::format_rfc3339_millis(
            SystemTime::UNIX_EPOCH + Duration::from_micros(event.ts),
        );
        match self.format {
            LogFormat::Off => Ok(()),
            LogFormat::Json => {
                let mut line = Map::new();
                line.insert("ts".into(), json!(time.to_string()));
                line.insert("event".into(), json!(name));
                line.insert("conn".into(), json!(event.conn));
                if !peer.client.is_empty() {
                    line.insert("client".into(), json!(peer.client));
                }
                if let Some(dir) = event.dir {
                    line.insert("dir".into(), json!(dir.as_str()));
                }
                line.extend(fields);
                if let Some(origin) = peer.origin {
                    line.insert("origin".into(), json!(origin));
                }
                if let Some(agent) = peer.user_agent {
                    line.insert("user_agent".into(), json!(agent));
                }
                serde_json::to_writer(&mut self.out, &Value::Object(line))?;
                self.out.write_all(b"\n")
            }
            LogFormat::Text => {
                write!(self.out, "{time} {} {name}", event.conn)?;
                if !peer.client.is_empty() {
                    write!(self.out, " client={}", peer.client)?;
                }
                if let Some(dir) = event.dir {
                    write!(self.out, " dir={}", dir.as_str())?;
                }
                for (key, value) in fields {
                    match value {
                        Value::String(text) if !needs_quotes(&text) => {
                            write!(self.out, " {key}={text}")?
                        }
                        other => write!(self.out, " {key}={other}")?,
                    }
                }
                if name == "open" || name == "rejected" {
                    if let Some(origin) = peer.origin {
                        write!(self.out, " origin={}", quoted(&origin))?;
                    }
                    if let Some(agent) = peer.user_agent {
                        write!(self.out, " user_agent={}", quoted(&agent))?;
                    }
                }
                self.out.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c.is_control())
}

fn quoted(text: &str) -> String {
    if needs_quotes(text) {
        Value::String(text.to_owned()).to_string()
    } else {
        text.to_owned()
    }
}
