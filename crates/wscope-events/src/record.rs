//! The record file: JSON Lines. A header line names the format and version,
//! then one [`Event`] per line (docs/FORMAT.md).
//!
//! Writing appends and flushes after every batch, so a crash loses at most
//! the batch in flight. Reading is tolerant where a crash leaves marks: a
//! cut-off last line is reported (with its line number) and reading stops
//! there, keeping everything before it. A bad line anywhere else is an
//! error with its line number, because that file was damaged, not cut.

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::Event;
use crate::redact::Rules;

/// The `format` value of the header line.
pub const FORMAT: &str = "wscope-record";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;

/// The first line of a record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The program that wrote it, e.g. `wscope 0.1.0`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub writer: String,
    /// Whether secrets were redacted.
    #[serde(default)]
    pub redacted: bool,
    /// The redaction rules the events were written with (absent in files
    /// written before there were rules to list, and when nothing was
    /// redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<Rules>,
    /// Where this file stands in a rotated set (`--record-max-size`);
    /// absent in a file that is not rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Part>,
}

/// One file of a rotated set (docs/FORMAT.md, "Rotation").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The same random id in every file of one set.
    pub set: String,
    /// 0 for the first file written, then 1, 2, ... in the order written.
    pub part: u32,
    /// How many events after the header repeat the `open` of a connection
    /// still running when the previous part ended; a reader going on from
    /// that part skips them.
    pub repeated: u32,
}

impl Header {
    /// The header of a file this build writes. `redaction`: the rules the
    /// events to come were redacted with, `None` when they were not.
    pub fn new(writer: &str, redaction: Option<&Rules>) -> Header {
        Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            writer: writer.to_owned(),
            redacted: redaction.is_some(),
            redaction: redaction.cloned(),
            rotation: None,
        }
    }
}

/// Appends events to a record file. It writes events as they are given:
/// secrets are taken out before, by the [`crate::redact::Redactor`] every
/// event passes on its way to any output, and the writer only lists its
/// rules in the header.
pub struct RecordWriter<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the header line. `redaction`: the rules the events to come
    /// were redacted with, `None` when they were not.
    pub fn new(out: W, writer: &str, redaction: Option<&Rules>) -> io::Result<Self> {
        Self::with_header(out, &Header::new(writer, redaction))
    }

    /// Writes `header` as the first line.
    pub fn with_header(mut out: W, header: &Header) -> io::Result<Self> {
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(RecordWriter {
            out,
            line: Vec::with_capacity(512),
        })
    }

    /// Appends one event (buffered until [`RecordWriter::flush`]).
    pub fn write(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        crate::line::write_line(event, &mut self.line)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    /// Appends one event already serialised, newline included.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)
    }

    /// Ends a batch: everything written so far reaches the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.out
    }
}

/// Why a record file could not be read (further).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the record file: {0}")]
    Io(#[from] io::Error),
    #[error("not a wscope record file: the first line is not a {FORMAT} header ({0})")]
    NotARecord(String),
    #[error("record file version {0} is newer than this wscope reads ({VERSION}); upgrade wscope")]
    Version(u32),
    #[error("line {line}: not a valid event: {reason}")]
    BadLine { line: u64, reason: String },
}

/// Reads events from a record file, one at a time.
pub struct RecordReader<R: BufRead> {
    input: R,
    header: Header,
    line_no: u64,
    buf: Vec<u8>,
    /// Set when the last line was cut off (a crash while writing).
    truncated_at: Option<u64>,
}

impl<R: BufRead> RecordReader<R> {
    /// Reads and checks the header line.
    pub fn new(mut input: R) -> Result<Self, ReadError> {
        let mut first = String::new();
        input.read_line(&mut first)?;
        let header: Header = serde_json::from_str(first.trim_end())
            .map_err(|e| ReadError::NotARecord(e.to_string()))?;
        if header.format != FORMAT {
            return Err(ReadError::NotARecord(format!(
                "format is {:?}",
                header.format
            )));
        }
        if header.version > VERSION {
            return Err(ReadError::Version(header.version));
        }
        Ok(RecordReader {
            input,
            header,
            line_no: 1,
            buf: Vec::new(),
            truncated_at: None,
        })
    }

    /// The header line.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// When reading stopped at a cut-off last line: its line number.
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }

    /// The next event, `None` at the end (or at a cut-off last line).
    pub fn next_event(&mut self) -> Result<Option<Event>, ReadError> {
        loop {
            self.buf.clear();
            // Bytes, not a String: a writer killed mid-line may have cut
            // a UTF-8 character in two, and that is a cut line too, not
            // an I/O error that would lose the events before it.
            let n = self.input.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let complete = self.buf.ends_with(b"\n");
            let text = self.buf.trim_ascii_end();
            if text.is_empty() {
                continue;
            }
            return match serde_json::from_slice::<Event>(text) {
                Ok(event) => Ok(Some(event)),
                // No newline: the writer died mid-line. Keep what came before.
                Err(_) if !complete => {
                    self.truncated_at = Some(self.line_no);
                    Ok(None)
                }
                Err(e) => Err(ReadError::BadLine {
                    line: self.line_no,
                    reason: e.to_string(),
                }),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Head, Open, Timings};

    fn open_event() -> Event {
        Event {
            ts: 1_700_000_000_000_000,
            conn: "c1".into(),
            dir: None,
            kind: EventKind::Open(Open {
                url: "ws://127.0.0.1:9001/".into(),
                client: "127.0.0.1:50000".into(),
                server: "127.0.0.1:9001".into(),
                request: Head {
                    line: "GET / HTTP/1.1".into(),
                    headers: vec![("Authorization".into(), "Bearer secret".into())],
                },
                response: Head {
                    line: "HTTP/1.1 101 Switching Protocols".into(),
                    headers: vec![],
                },
                subprotocol: None,
                extensions: vec![],
                timings: Timings::default(),
                handshake: None,
                attempt: None,
            }),
        }
    }

    fn note(n: u64) -> Event {
        Event {
            ts: n,
            conn: "c1".into(),
            dir: None,
            kind: EventKind::Note {
                text: format!("note {n}"),
            },
        }
    }

    #[test]
    fn round_trip_with_the_redaction_rules() {
        let mut file = Vec::new();
        let rules = crate::redact::Rules::default();
        let mut writer = RecordWriter::new(&mut file, "wscope test", Some(&rules)).unwrap();
        let mut open = open_event();
        crate::redact::redact_event(&mut open);
        writer.write(&open).unwrap();
        writer.write(&note(2)).unwrap();
        writer.flush().unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(!text.contains("Bearer secret"), "{text}");
        let mut reader = RecordReader::new(&file[..]).unwrap();
        assert!(reader.header().redacted);
        assert_eq!(reader.header().redaction.as_ref(), Some(&rules));
        let EventKind::Open(open) = reader.next_event().unwrap().unwrap().kind else {
            panic!("open first");
        };
        assert!(crate::redact::is_redacted(&open.request.headers[0].1));
        assert_eq!(reader.next_event().unwrap().unwrap(), note(2));
        assert_eq!(reader.next_event().unwrap(), None);
        assert_eq!(reader.truncated_at(), None);
    }

    #[test]
    fn cut_off_last_line_keeps_the_rest() {
        let mut file = Vec::new();
        let mut writer = RecordWriter::new(&mut file, "wscope test", None).unwrap();
        writer.write(&note(1)).unwrap();
        writer.write(&note(2)).unwrap();
        writer.flush().unwrap();
        file.truncate(file.len() - 7);
        let mut reader = RecordReader::new(&file[..]).unwrap();
        assert_eq!(reader.next_event().unwrap(), Some(note(1)));
        assert_eq!(reader.next_event().unwrap(), None);
        assert_eq!(reader.truncated_at(), Some(3));
    }

    #[test]
    fn a_line_cut_anywhere_even_inside_a_character_keeps_the_rest() {
        // What `kill -9` leaves: the last line cut at any byte, here
        // inside two-, three- and four-byte characters too.
        let mut file = Vec::new();
        let mut writer = RecordWriter::new(&mut file, "wscope test", None).unwrap();
        writer.write(&note(1)).unwrap();
        let wide = Event {
            kind: EventKind::Note {
                text: "é€😀 cut".into(),
            },
            ..note(2)
        };
        writer.write(&wide).unwrap();
        writer.flush().unwrap();
        let last_start = file[..file.len() - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .unwrap()
            + 1;
        for end in last_start + 1..file.len() - 1 {
            let mut reader = RecordReader::new(&file[..end]).unwrap();
            assert_eq!(reader.next_event().unwrap(), Some(note(1)), "cut at {end}");
            assert_eq!(reader.next_event().unwrap(), None, "cut at {end}");
            assert_eq!(reader.truncated_at(), Some(3), "cut at {end}");
        }
        // Only the newline missing: the event is whole.
        let mut reader = RecordReader::new(&file[..file.len() - 1]).unwrap();
        reader.next_event().unwrap();
        assert_eq!(reader.next_event().unwrap(), Some(wide));
        assert_eq!(reader.truncated_at(), None);
    }

    #[test]
    fn damage_in_the_middle_is_an_error_with_a_line_number() {
        let mut file = Vec::new();
        let mut writer = RecordWriter::new(&mut file, "wscope test", None).unwrap();
        writer.write(&note(1)).unwrap();
        file.extend_from_slice(b"{not json}\n");
        writer = RecordWriter {
            out: &mut file,
            line: Vec::new(),
        };
        writer.write(&note(3)).unwrap();
        let mut reader = RecordReader::new(&file[..]).unwrap();
        reader.next_event().unwrap();
        let err = reader.next_event().unwrap_err();
        assert!(matches!(err, ReadError::BadLine { line: 3, .. }), "{err}");
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(
            RecordReader::new(&b"hello\n"[..]),
            Err(ReadError::NotARecord(_))
        ));
        let newer = format!("{{\"format\":\"{FORMAT}\",\"version\":99}}\n");
        assert!(matches!(
            RecordReader::new(newer.as_bytes()),
            Err(ReadError::Version(99))
        ));
    }
}
