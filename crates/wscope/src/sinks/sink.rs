//! Event sinks: where the event stream goes. A source (the client, the
//! server) hands every [`Event`] to [`Sinks::emit`]; each sink decides what
//! it shows. A new output format is a new sink, never a branch in a source.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use std::borrow::Cow;
use std::sync::Arc;
use wscope_events::filter::Expr;

use wscope_events::redact::{Redactor, Rules};
use wscope_events::{
    ClosedBy, Direction, Ending, Event, EventKind, Files, Header, Message, Payload, RecordWriter,
    RotatingWriter,
};
use wscope_proto::CloseCode;

use crate::sinks::preview::{self, Preview};

/// One consumer of the event stream.
pub trait Sink: Send {
    /// Takes one event. Payloads arrive whole; a sink applies its own limit.
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Takes an event that a [`Filtered`] in front of this sink held back:
    /// nothing is shown, but a sink that keeps something per connection
    /// (the lifecycle log remembers each client from its `open`) keeps it
    /// up to date here.
    fn skipped(&mut self, _event: &Event) -> io::Result<()> {
        Ok(())
    }
    /// Ends a batch of events.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Whether this sink looks at message and frame payloads at all; when
    /// no sink does, sources skip building those events.
    fn wants_payloads(&self) -> bool {
        true
    }
}

/// Every sink of one run, and the redaction every event passes first.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<(&'static str, Box<dyn Sink>)>,
    redactor: Option<Arc<Redactor>>,
}

impl Sinks {
    /// No sinks yet; every event will be redacted by `redactor` once,
    /// before any sink sees it (the one place where secrets leave the
    /// event stream: nothing downstream redacts again).
    pub fn redacting(redactor: Option<Arc<Redactor>>) -> Sinks {
        Sinks {
            sinks: Vec::new(),
            redactor,
        }
    }

    pub fn add(&mut self, name: &'static str, sink: Box<dyn Sink>) {
        self.sinks.push((name, sink));
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Whether any sink wants message and frame events.
    pub fn wants_payloads(&self) -> bool {
        self.sinks.iter().any(|(_, sink)| sink.wants_payloads())
    }

    /// Hands `event` to every sink and flushes them. A sink that fails is
    /// reported once and dropped; the connection goes on (a full disk must
    /// not cut a session).
    pub fn emit(&mut self, event: &Event) {
        let event = self.redacted(event);
        let event = event.as_ref();
        Self::each(&mut self.sinks, |sink| {
            sink.event(event).and_then(|()| sink.flush())
        });
    }

    /// Hands `event` to every sink without flushing: for batches, ended by
    /// [`Sinks::flush`].
    pub fn push(&mut self, event: &Event) {
        let event = self.redacted(event);
        let event = event.as_ref();
        Self::each(&mut self.sinks, |sink| sink.event(event));
    }

    /// The redaction every event passes, for output made beside the sinks
    /// (`read --stats`).
    pub fn redactor(&self) -> Option<Arc<Redactor>> {
        self.redactor.clone()
    }

    /// `event` as the sinks may see it. Only a redactor shared out of
    /// `self` is borrowed, so the event can borrow from the caller.
    fn redacted<'e>(&self, event: &'e Event) -> Cow<'e, Event> {
        match &self.redactor {
            Some(redactor) if !self.sinks.is_empty() => redactor.redact(event),
            _ => Cow::Borrowed(event),
        }
    }

    /// Ends a batch.
    pub fn flush(&mut self) {
        Self::each(&mut self.sinks, |sink| sink.flush());
    }

    fn each(
        sinks: &mut Vec<(&'static str, Box<dyn Sink>)>,
        mut f: impl FnMut(&mut dyn Sink) -> io::Result<()>,
    ) {
        sinks.retain_mut(|(name, sink)| match f(sink.as_mut()) {
            Ok(()) => true,
            Err(err) => {
                eprintln!("wscope: {name} output stopped: {err}");
                false
            }
        });
    }
}

/// Sinks behind their redaction, for code that writes to one sink.
impl Sink for Sinks {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.push(event);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Sinks::flush(self);
        Ok(())
    }

    fn wants_payloads(&self) -> bool {
        Sinks::wants_payloads(self)
    }
}

/// What is printed, narrowed by `--filter`: `inner` is shown only the
/// events that pass `expr`. Only the printing sinks are wrapped, so the
/// record file and the metrics still see every event.
pub struct Filtered {
    expr: Expr,
    inner: Box<dyn Sink>,
}

/// `sink`, behind `filter` when there is one.
pub fn filtered(filter: Option<&Expr>, sink: Box<dyn Sink>) -> Box<dyn Sink> {
    match filter {
        Some(expr) => Box::new(Filtered {
            expr: expr.clone(),
            inner: sink,
        }),
        None => sink,
    }
}

impl Sink for Filtered {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.expr.matches(event) {
            self.inner.event(event)
        } else {
            self.inner.skipped(event)
        }
    }

    fn skipped(&mut self, event: &Event) -> io::Result<()> {
        self.inner.skipped(event)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// A filter on `text contains "x"` needs the payload to decide, even in
    /// front of a sink that shows only sizes (the lifecycle log).
    fn wants_payloads(&self) -> bool {
        self.inner.wants_payloads() || self.expr.reads_payload()
    }
}

/// Events as JSON Lines on stdout (`--json`), payloads cut as in a record
/// file (secrets were taken out before, by [`Sinks`]).
pub struct JsonLines {
    out: io::Stdout,
    max_payload: usize,
    line: Vec<u8>,
}

impl JsonLines {
    pub fn new(max_payload: usize) -> Self {
        JsonLines {
            out: io::stdout(),
            max_payload,
            line: Vec::new(),
        }
    }
}

impl Sink for JsonLines {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        if event.payload_over(self.max_payload) {
            let mut event = event.clone();
            event.truncate_payload(self.max_payload);
            wscope_events::line::write_line(&event, &mut self.line)?;
        } else {
            wscope_events::line::write_line(event, &mut self.line)?;
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What the record file gathers before a write: a batch of message events
/// (up to some 22 KB each with the default capture) in a few writes.
const RECORD_BUFFER: usize = 256 * 1024;

/// The record file (`--record FILE`). Created readable and writable by
/// its owner only (0600): it holds every payload, and with `--no-redact`
/// the secrets too. Its header lists the redaction rules. With a
/// [`Rotation`], a set of such files of bounded size.
pub struct Record {
    writer: RecordOut,
    max_payload: usize,
}

enum RecordOut {
    One(RecordWriter<BufWriter<File>>),
    Rotating(Box<RotatingWriter<RecordFiles>>),
}

/// `--record-max-size` and `--record-keep`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub max_size: u64,
    pub keep: Option<usize>,
}

impl Record {
    /// `redaction`: the rules the [`Sinks`] in front apply, for the header.
    pub fn create(
        path: &Path,
        redaction: Option<&Rules>,
        max_payload: usize,
        rotation: Option<Rotation>,
    ) -> io::Result<Self> {
        let writer_name = concat!("wscope ", env!("CARGO_PKG_VERSION"));
        let writer = match rotation {
            None => {
                let file = crate::files::create_private(path)?;
                RecordOut::One(RecordWriter::new(
                    BufWriter::with_capacity(RECORD_BUFFER, file),
                    writer_name,
                    redaction,
                )?)
            }
            Some(rotation) => RecordOut::Rotating(Box::new(RotatingWriter::new(
                RecordFiles {
                    base: path.to_owned(),
                },
                Header::new(writer_name, redaction),
                format!("{:016x}", rand::random::<u64>()),
                rotation.max_size,
                rotation.keep,
            )?)),
        };
        Ok(Record {
            writer,
            max_payload,
        })
    }

    fn write(&mut self, event: &Event) -> io::Result<()> {
        match &mut self.writer {
            RecordOut::One(writer) => writer.write(event),
            RecordOut::Rotating(writer) => writer.write(event),
        }
    }
}

/// The files of a rotated record on disk: part 0 is the path given, part
/// N the same name with `.N` before its extension.
pub struct RecordFiles {
    base: PathBuf,
}

impl RecordFiles {
    pub fn path(&self, part: u32) -> PathBuf {
        part_path(&self.base, part)
    }
}

/// `session.jsonl` → `session.3.jsonl`; `session` → `session.3`.
pub fn part_path(base: &Path, part: u32) -> PathBuf {
    if part == 0 {
        return base.to_owned();
    }
    let name = match (base.file_stem(), base.extension()) {
        (Some(stem), Some(ext)) => format!(
            "{}.{part}.{}",
            stem.to_string_lossy(),
            ext.to_string_lossy()
        ),
        _ => format!(
            "{}.{part}",
            base.file_name().unwrap_or_default().to_string_lossy()
        ),
    };
    base.with_file_name(name)
}

impl Files for RecordFiles {
    type File = BufWriter<File>;

    fn create(&mut self, part: u32) -> io::Result<Self::File> {
        let path = self.path(part);
        let file = crate::files::create_private(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(BufWriter::with_capacity(RECORD_BUFFER, file))
    }

    fn remove(&mut self, part: u32) -> io::Result<()> {
        match std::fs::remove_file(self.path(part)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Sink for Record {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        // Events usually come cut to this limit already: copied only
        // when there is something left to cut.
        if event.payload_over(self.max_payload) {
            let mut event = event.clone();
            event.truncate_payload(self.max_payload);
            self.write(&event)
        } else {
            self.write(event)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            RecordOut::One(writer) => writer.flush(),
            RecordOut::Rotating(writer) => writer.flush(),
        }
    }
}

/// What a person reads: received messages on stdout, one line each (see
/// [`crate::sinks::preview`]), sent ones marked `>` when asked, control frames with
/// `--show-control`, and how things ended on stderr.
pub struct Human {
    /// Mark sent (`>`) and received (`<`) messages.
    pub arrows: bool,
    /// Print no messages (only how the connection ended).
    pub quiet: bool,
    /// Print pings, pongs and close frames.
    pub show_control: bool,
    /// Prefix lines with the time of day (UTC).
    pub timestamps: bool,
    /// Pretty-print JSON; hex-dump binary.
    pub pretty: bool,
    /// Color the direction markers and errors (ANSI).
    pub color: bool,
    /// Print through the line editor instead of to stdout and stderr.
    pub printer: Option<crate::sinks::interactive::Printer>,
    /// Many connections (the proxy): start lines with the connection id,
    /// report opens, and say client/server rather than sent/received.
    pub show_conn: bool,
    /// Where a message's line ends: whole text in a pipe, the
    /// terminal's width on one (binary is always its first bytes, unless
    /// `--full`). `--pretty` shows every message whole, over many lines.
    pub preview: Preview,
}

impl Human {
    fn prefix(&self, event: &Event, line: &mut Vec<u8>, marked: bool) {
        if self.show_conn {
            line.extend_from_slice(event.conn.as_bytes());
            line.push(b' ');
        }
        if self.timestamps {
            let micros = event.ts % 86_400_000_000;
            let (h, m) = (micros / 3_600_000_000, micros / 60_000_000 % 60);
            let (sec, ms) = (micros / 1_000_000 % 60, micros / 1000 % 1000);
            let _ = write!(line, "{h:02}:{m:02}:{sec:02}.{ms:03}Z ");
        }
        if marked {
            let sent = event.dir == Some(Direction::ClientToServer);
            let marker: &[u8] = match (sent, self.color) {
                (true, true) => b"\x1b[34m>\x1b[0m ",
                (false, true) => b"\x1b[32m<\x1b[0m ",
                (true, false) => b"> ",
                (false, false) => b"< ",
            };
            line.extend_from_slice(marker);
        }
    }

    /// Writes one finished line: data to stdout, diagnostics to stderr, or
    /// everything above the prompt in interactive mode.
    fn put(&mut self, text: &[u8], diagnostic: bool) -> io::Result<()> {
        if let Some(printer) = &mut self.printer {
            printer(String::from_utf8_lossy(text).trim_end().to_owned());
            return Ok(());
        }
        if diagnostic {
            let mut stderr = io::stderr().lock();
            stderr.write_all(text)?;
            stderr.flush()
        } else {
            let mut stdout = io::stdout().lock();
            stdout.write_all(text)?;
            stdout.flush()
        }
    }

    fn diagnostic(&mut self, text: &str, error: bool) -> io::Result<()> {
        let line = if error && self.color {
            format!("\x1b[31mwscope: {text}\x1b[0m\n")
        } else {
            format!("wscope: {text}\n")
        };
        self.put(line.as_bytes(), true)
    }

    /// A message on its one line. Text: whole (a pipe, `--full`); on a
    /// terminal or with `--preview-width` as it is when it fits, else its
    /// kind, size and as much as fits. Binary: its kind, size and first
    /// bytes (`--full`: every byte).
    fn message_payload(&self, message: &Message, line: &mut Vec<u8>) {
        let payload = &message.payload;
        if self.pretty {
            return self.payload(payload, line);
        }
        let columns = self.preview.columns();
        let room = |line: &[u8]| {
            columns.map(|columns| {
                columns
                    .saturating_sub(preview::visible_width(line))
                    .max(preview::MIN_COLUMNS)
            })
        };
        if let Some(text) = &payload.text {
            let Some(fits) = room(line) else {
                line.extend_from_slice(text.as_bytes());
                return;
            };
            let start = line.len();
            if !preview::fit_text(text, fits, line) && !payload.truncated {
                return;
            }
            // Cut: say what it was before showing how it starts.
            line.truncate(start);
            let _ = write!(line, "{} {} B ", message.opcode, payload.len);
            let fits = room(line).unwrap_or(usize::MAX);
            if !preview::fit_text(text, fits, line) {
                // Only the start was kept (--max-payload), and all of it fits.
                line.extend_from_slice("…".as_bytes());
            }
            return;
        }
        let _ = write!(line, "{} {} B ", message.opcode, payload.len);
        if self.preview == Preview::Full {
            preview::hex_spaced(payload.bytes(), line);
            if payload.truncated {
                line.extend_from_slice(" …".as_bytes());
            }
            return;
        }
        preview::hex_preview(payload.bytes(), payload.len, room(line), line);
    }

    fn payload(&self, payload: &Payload, line: &mut Vec<u8>) {
        match &payload.text {
            Some(text) if self.pretty => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(json) if json.is_object() || json.is_array() => {
                    let pretty =
                        serde_json::to_string_pretty(&json).unwrap_or_else(|_| text.clone());
                    line.extend_from_slice(pretty.as_bytes());
                }
                _ => line.extend_from_slice(text.as_bytes()),
            },
            Some(text) => line.extend_from_slice(text.as_bytes()),
            None if self.pretty => hex_dump(payload.bytes(), line),
            None => {
                let _ = write!(line, "binary {} B ", payload.len);
                preview::hex_spaced(payload.bytes(), line);
            }
        }
    }
}

impl Human {
    /// A difference a replay or diff found: what changed, where, from what
    /// to what (red for the recorded side, green for the new one).
    fn diff(&self, event: &Event, diff: &wscope_events::Diff, line: &mut Vec<u8>) {
        use wscope_events::Change;
        let (red, green, bold, off) = if self.color {
            ("\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let side = match event.dir {
            Some(Direction::ClientToServer) => "client message",
            _ => "server message",
        };
        let _ = write!(line, "{bold}{} {}{off}", event.conn, diff.change.as_str());
        let number = |n: Option<u64>| n.map_or_else(String::new, |n| n.to_string());
        match diff.change {
            Change::Differs => {
                let _ = write!(line, ": {side} {}", number(diff.expected));
                if diff.actual != diff.expected {
                    let _ = write!(line, " (arrived as {})", number(diff.actual));
                }
                if diff.paths.is_empty() {
                    for (mark, colour, payload) in [("-", red, &diff.old), ("+", green, &diff.new)]
                    {
                        if let Some(payload) = payload {
                            let _ = write!(line, "\n  {colour}{mark} ");
                            self.payload(payload, line);
                            line.extend_from_slice(off.as_bytes());
                        }
                    }
                }
                for change in &diff.paths {
                    let value = |v: &Option<serde_json::Value>| {
                        v.as_ref()
                            .map_or_else(|| "(absent)".to_owned(), ToString::to_string)
                    };
                    let _ = write!(
                        line,
                        "\n  {}: {red}{}{off} -> {green}{}{off}",
                        change.path,
                        value(&change.old),
                        value(&change.new)
                    );
                }
            }
            Change::Missing | Change::Extra => {
                let (n, colour, payload) = if diff.change == Change::Missing {
                    (diff.expected, red, &diff.old)
                } else {
                    (diff.actual, green, &diff.new)
                };
                let _ = write!(line, ": {side} {}: {colour}", number(n));
                if let Some(payload) = payload {
                    self.payload(payload, line);
                }
                line.extend_from_slice(off.as_bytes());
            }
            Change::Close => {
                let code = |c: Option<u16>| {
                    c.map_or_else(|| "none".to_owned(), |c| CloseCode(c).to_string())
                };
                let _ = write!(
                    line,
                    ": {red}{}{off} -> {green}{}{off}",
                    code(diff.old_code),
                    code(diff.new_code)
                );
                if !diff.note.is_empty() {
                    let _ = write!(line, " ({})", diff.note);
                }
            }
        }
    }
}

/// `offset  hex bytes  |ascii|`, 16 bytes a row.
fn hex_dump(bytes: &[u8], line: &mut Vec<u8>) {
    let _ = write!(line, "binary {} B", bytes.len());
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(line, "\n  {:08x}  ", row * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(byte) => {
                    let _ = write!(line, "{byte:02x} ");
                }
                None => line.extend_from_slice(b"   "),
            }
            if i == 7 {
                line.push(b' ');
            }
        }
        line.extend_from_slice(b" |");
        for &byte in chunk {
            line.push(if byte.is_ascii_graphic() || byte == b' ' {
                byte
            } else {
                b'.'
            });
        }
        line.push(b'|');
    }
}

impl Sink for Human {
    fn wants_payloads(&self) -> bool {
        !self.quiet || self.show_control
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        let mut line = Vec::new();
        match &event.kind {
            EventKind::Message(message) if !self.quiet => {
                let sent = event.dir == Some(Direction::ClientToServer);
                if sent && !self.arrows {
                    return Ok(());
                }
                self.prefix(event, &mut line, self.arrows);
                self.message_payload(message, &mut line);
            }
            EventKind::Frame(frame)
                if self.show_control
                    && frame.opcode != "text"
                    && frame.opcode != "binary"
                    && frame.opcode != "cont"
                    // The `close` event that follows says it better.
                    && frame.opcode != "close" =>
            {
                self.prefix(event, &mut line, true);
                let _ = write!(line, "{} ", frame.opcode);
                self.payload(&frame.payload, &mut line);
            }
            EventKind::Close(close) if self.show_control => {
                self.prefix(event, &mut line, true);
                match close.code {
                    Some(code) => {
                        let _ = write!(line, "close {}", CloseCode(code));
                    }
                    None => line.extend_from_slice(b"close (no status code)"),
                }
                if !close.reason.is_empty() {
                    let _ = write!(line, " {:?}", close.reason);
                }
                if let Some(code) = close.code {
                    let _ = write!(line, ": {}", CloseCode(code).meaning());
                }
            }
            EventKind::Open(open) if self.show_conn => {
                let mut text = format!("{} open {} -> {}", event.conn, open.client, open.url);
                if let Some(protocol) = &open.subprotocol {
                    text.push_str(&format!(" (subprotocol {protocol})"));
                }
                for extension in &open.extensions {
                    text.push_str(&format!(" ({extension})"));
                }
                return self.diagnostic(&text, false);
            }
            EventKind::HandshakeFailed(failed) => {
                let who = if self.show_conn {
                    format!("{} ", event.conn)
                } else {
                    String::new()
                };
                let mut text = format!("{who}handshake failed: {}", failed.diagnosis);
                if !failed.body.is_empty() {
                    text.push('\n');
                    text.push_str(failed.body.trim_end());
                }
                return self.diagnostic(&text, true);
            }
            // Where many connections share the view, say whose it is.
            EventKind::Error { message } if self.show_conn && event.conn != "-" => {
                return self.diagnostic(&format!("{} {message}", event.conn), true);
            }
            EventKind::Note { text } if self.show_conn && event.conn != "-" => {
                return self.diagnostic(&format!("{} {text}", event.conn), false);
            }
            EventKind::Error { message } => return self.diagnostic(message, true),
            EventKind::Note { text } => return self.diagnostic(text, false),
            EventKind::Diff(diff) => {
                self.diff(event, diff, &mut line);
                line.push(b'\n');
                return self.put(&line, false);
            }
            EventKind::Closed(closed) if self.show_conn => {
                let code = CloseCode(closed.code);
                let by = match closed.by {
                    ClosedBy::Client => "by the client",
                    ClosedBy::Server => "by the server",
                    ClosedBy::Unknown => "",
                    ClosedBy::Proxy => "by the proxy",
                };
                let tcp = match closed.ended {
                    Some(Ending::CloseHandshake) | None => "",
                    Some(Ending::Fin) => ", TCP closed without the close handshake",
                    Some(Ending::Rst) => ", TCP reset",
                    Some(Ending::CaptureEnd) => ", still open when the capture ended",
                };
                let text = format!(
                    "{} closed {by}: {code}{}, {}{tcp}, after {:.1?} (client->server {} messages / {} bytes, server->client {} / {})",
                    event.conn,
                    if closed.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" {:?}", closed.reason)
                    },
                    if closed.clean { "clean" } else { "not clean" },
                    std::time::Duration::from_micros(closed.duration_us),
                    closed.messages_c2s,
                    closed.bytes_c2s,
                    closed.messages_s2c,
                    closed.bytes_s2c,
                );
                return self.diagnostic(&text, false);
            }
            EventKind::Closed(closed) => {
                let by = match closed.by {
                    ClosedBy::Client => "closed by client",
                    ClosedBy::Server => "closed by server",
                    ClosedBy::Unknown => "connection ended",
                    ClosedBy::Proxy => "closed by proxy",
                };
                let code = CloseCode(closed.code);
                let reason = if closed.reason.is_empty() {
                    String::new()
                } else {
                    format!(", reason {:?}", closed.reason)
                };
                let how = if closed.clean { "clean" } else { "not clean" };
                let text = format!(
                    "{by}: {code}{reason}, {how}, after {:.1?} ({} messages / {} bytes sent, {} messages / {} bytes received): {}",
                    std::time::Duration::from_micros(closed.duration_us),
                    closed.messages_c2s,
                    closed.bytes_c2s,
                    closed.messages_s2c,
                    closed.bytes_s2c,
                    code.meaning()
                );
                return self.diagnostic(&text, !closed.clean || closed.code != 1000);
            }
            _ => return Ok(()),
        }
        line.push(b'\n');
        self.put(&line, false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use wscope_events::Message;
    use wscope_proto::OpCode;

    #[test]
    fn rotated_parts_are_numbered_before_the_extension() {
        let part = |base: &str, n| part_path(Path::new(base), n);
        assert_eq!(part("/t/session.jsonl", 0), Path::new("/t/session.jsonl"));
        assert_eq!(
            part("/t/session.jsonl", 12),
            Path::new("/t/session.12.jsonl")
        );
        assert_eq!(part("session", 3), Path::new("session.3"));
        assert_eq!(part("a.b.jsonl", 1), Path::new("a.b.1.jsonl"));
    }

    use super::*;

    /// Notes what it was shown and what it was told about.
    struct Seen(Arc<Mutex<Vec<String>>>, bool);

    impl Sink for Seen {
        fn event(&mut self, event: &Event) -> io::Result<()> {
            self.0.lock().unwrap().push(format!("shown {}", event.conn));
            Ok(())
        }
        fn skipped(&mut self, event: &Event) -> io::Result<()> {
            self.0
                .lock()
                .unwrap()
                .push(format!("skipped {}", event.conn));
            Ok(())
        }
        fn wants_payloads(&self) -> bool {
            self.1
        }
    }

    fn message(conn: &str, dir: Direction, text: &str) -> Event {
        let message = Message::new(OpCode::Text, text.as_bytes(), usize::MAX);
        Event::now(conn, Some(dir), EventKind::Message(message))
    }

    #[test]
    fn filtered_shows_what_passes_and_tells_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let expr = wscope_events::filter::parse(r#"dir == s2c && text contains "x""#).unwrap();
        let mut sink = filtered(Some(&expr), Box::new(Seen(seen.clone(), false)));
        assert!(sink.wants_payloads(), "the filter reads payloads");
        sink.event(&message("c1", Direction::ServerToClient, "xy"))
            .unwrap();
        sink.event(&message("c2", Direction::ClientToServer, "xy"))
            .unwrap();
        sink.event(&message("c3", Direction::ServerToClient, "yz"))
            .unwrap();
        let note = EventKind::Note { text: "x".into() };
        sink.event(&Event::now("c4", None, note)).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["shown c1", "skipped c2", "skipped c3", "skipped c4"]
        );

        let expr = wscope_events::filter::parse("event == open").unwrap();
        let sink = filtered(Some(&expr), Box::new(Seen(seen.clone(), false)));
        assert!(!sink.wants_payloads());
        let sink = filtered(None, Box::new(Seen(seen, true)));
        assert!(sink.wants_payloads());
    }
}
