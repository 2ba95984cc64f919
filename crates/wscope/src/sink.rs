//! Event sinks: where the event stream goes. A source (the client, the
//! server) hands every [`Event`] to [`Sinks::emit`]; each sink decides what
//! it shows. A new output format is a new sink, never a branch in a source.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use wscope_events::{ClosedBy, Direction, Event, EventKind, RecordWriter, redact};
use wscope_proto::CloseCode;

/// One consumer of the event stream.
pub trait Sink: Send {
    /// Takes one event. Payloads arrive whole; a sink applies its own limit.
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Ends a batch of events.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every sink of one run.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<(&'static str, Box<dyn Sink>)>,
}

impl Sinks {
    pub fn add(&mut self, name: &'static str, sink: Box<dyn Sink>) {
        self.sinks.push((name, sink));
    }

    /// Hands `event` to every sink. A sink that fails is reported once and
    /// dropped; the connection goes on (a full disk must not cut a session).
    pub fn emit(&mut self, event: &Event) {
        self.sinks.retain_mut(
            |(name, sink)| match sink.event(event).and_then(|()| sink.flush()) {
                Ok(()) => true,
                Err(err) => {
                    eprintln!("wscope: {name} output stopped: {err}");
                    false
                }
            },
        );
    }
}

/// Events as JSON Lines on stdout (`--json`), payloads cut and secrets
/// redacted as in a record file.
pub struct JsonLines {
    out: io::Stdout,
    max_payload: usize,
    redact: bool,
    line: Vec<u8>,
}

impl JsonLines {
    pub fn new(max_payload: usize, redact: bool) -> Self {
        JsonLines {
            out: io::stdout(),
            max_payload,
            redact,
            line: Vec::new(),
        }
    }
}

impl Sink for JsonLines {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        let over = event
            .payload()
            .is_some_and(|p| p.len as usize > self.max_payload);
        let secret = self.redact && redact::carries_headers(event);
        if over || secret {
            let mut event = event.clone();
            event.truncate_payload(self.max_payload);
            if secret {
                redact::redact_event(&mut event);
            }
            serde_json::to_writer(&mut self.line, &event)?;
        } else {
            serde_json::to_writer(&mut self.line, event)?;
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The record file (`--record FILE`).
pub struct Record {
    writer: RecordWriter<BufWriter<File>>,
    max_payload: usize,
}

impl Record {
    pub fn create(path: &Path, redact: bool, max_payload: usize) -> io::Result<Self> {
        let file = File::create(path)?;
        let writer = RecordWriter::new(
            BufWriter::new(file),
            concat!("wscope ", env!("CARGO_PKG_VERSION")),
            redact,
        )?;
        Ok(Record {
            writer,
            max_payload,
        })
    }
}

impl Sink for Record {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if event
            .payload()
            .is_some_and(|p| p.len as usize > self.max_payload)
        {
            let mut event = event.clone();
            event.truncate_payload(self.max_payload);
            self.writer.write(&event)
        } else {
            self.writer.write(event)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// What a person reads: received messages on stdout, one per line (text as
/// is, binary as hex), sent ones marked `>` when asked, and how things ended
/// on stderr.
pub struct Human {
    /// Mark sent (`>`) and received (`<`) messages.
    pub arrows: bool,
    /// Print no messages (only how the connection ended).
    pub quiet: bool,
}

impl Sink for Human {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::Message(message) if !self.quiet => {
                let sent = event.dir == Some(Direction::ClientToServer);
                if sent && !self.arrows {
                    return Ok(());
                }
                let mut line = Vec::with_capacity(message.payload.len as usize + 3);
                if self.arrows {
                    line.extend_from_slice(if sent { b"> " } else { b"< " });
                }
                match (&message.payload.text, message.payload.bytes()) {
                    (Some(text), _) => line.extend_from_slice(text.as_bytes()),
                    (None, Ok(bytes)) => {
                        line.extend_from_slice(b"<binary> ");
                        for byte in bytes {
                            let _ = write!(line, "{byte:02x}");
                        }
                    }
                    (None, Err(_)) => line.extend_from_slice(b"<binary: undecodable payload>"),
                }
                line.push(b'\n');
                let mut stdout = io::stdout().lock();
                stdout.write_all(&line)?;
                stdout.flush()
            }
            EventKind::HandshakeFailed(failed) => {
                eprintln!("wscope: handshake failed: {}", failed.diagnosis);
                if !failed.body.is_empty() {
                    eprintln!("{}", failed.body.trim_end());
                }
                Ok(())
            }
            EventKind::Error { message } => {
                eprintln!("wscope: {message}");
                Ok(())
            }
            EventKind::Note { text } => {
                eprintln!("wscope: {text}");
                Ok(())
            }
            EventKind::Closed(closed) => {
                let by = match closed.by {
                    ClosedBy::Client => "closed by client",
                    ClosedBy::Server => "closed by server",
                    ClosedBy::Unknown => "connection ended",
                };
                let code = CloseCode(closed.code);
                let reason = if closed.reason.is_empty() {
                    String::new()
                } else {
                    format!(", reason {:?}", closed.reason)
                };
                let how = if closed.clean { "clean" } else { "not clean" };
                eprintln!(
                    "wscope: {by}: {code}{reason}, {how}, after {:.1?} ({} messages / {} bytes sent, {} messages / {} bytes received): {}",
                    std::time::Duration::from_micros(closed.duration_us),
                    closed.messages_c2s,
                    closed.bytes_c2s,
                    closed.messages_s2c,
                    closed.bytes_s2c,
                    code.meaning()
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
