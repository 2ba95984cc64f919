//! Stored inputs as one stream of events: `open_inputs` is the one place
//! that knows input formats — record files (and the files of a rotated
//! set, put back in order), HAR (Chrome's `_webSocketMessages`;
//! docs/FORMAT.md) and packet captures (pcap, pcapng; docs/CAPTURE.md),
//! each maybe gzip or zstd compressed, recognised by content. `read`,
//! `ui FILE...`, `replay`, `diff` and `serve --replay` all read through it.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use wscope_capture::{CaptureReader, Format};
use wscope_events::har::{self, HarError};
use wscope_events::{Event, RecordReader};

use crate::sinks::progress::Progress;
use crate::sources::captures;

/// The events of several inputs, one after the other in the order given.
/// Every input is opened at once (a missing file fails before anything is
/// printed) and read when its turn comes.
pub struct Inputs {
    waiting: VecDeque<Opened>,
    current: Option<Current>,
    /// The inputs are captures: all of them, read as one.
    capture: Option<Box<CaptureReader>>,
    capture_options: wscope_capture::Options,
    /// Key log files' text, by file name, for the captures' TLS.
    keylogs: Vec<(String, Vec<u8>)>,
    /// `--write`: where the packets of the captures go.
    write: Option<PathBuf>,
    /// The total size of the inputs, when every one has a size.
    len: Option<u64>,
    progress: Option<Progress>,
    warnings: Vec<String>,
    /// Set after an error: nothing more is read.
    failed: bool,
    /// The rotated set and part of the record file read last.
    previous_part: Option<(String, u32)>,
    /// Events still to skip at the start of the current record file: the
    /// `open`s it repeats from the part read just before it.
    repeats: u32,
}

/// The input being read (captures aside: they are read together).
enum Current {
    /// A record file, streamed one line at a time.
    /// (Boxed: its header, with the redaction rules, is much larger than
    /// the other variant.)
    Record(String, Box<RecordReader<Box<dyn BufRead>>>),
    /// A HAR: one JSON document, read whole; its events handed out.
    Har(std::vec::IntoIter<Event>),
}

/// An input, open and not yet read.
struct Opened {
    name: String,
    read: Box<dyn Read + Send>,
    /// Device and inode of a regular file (to refuse writing over it).
    id: Option<(u64, u64)>,
}

/// Opens every input (`-` is standard input) for reading in order: the
/// one place that turns paths into events. Each input is a record file, a
/// HAR or a packet capture, recognised here by its content, so that
/// `read` and `ui` read every format without a change of their own.
pub fn open_inputs(paths: &[PathBuf]) -> anyhow::Result<Inputs> {
    use std::os::unix::fs::MetadataExt;
    let mut waiting = VecDeque::new();
    let mut len = Some(0u64);
    for path in &in_rotation_order(paths) {
        if path == Path::new("-") {
            len = None;
            waiting.push_back(Opened {
                name: "stdin".to_owned(),
                read: Box::new(std::io::stdin()),
                id: None,
            });
            continue;
        }
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        let meta = file.metadata().ok().filter(|m| m.is_file());
        // Not a regular file (a pipe, /dev/stdin): no size, no bar.
        len = len.zip(meta.as_ref().map(|m| m.len())).map(|(a, b)| a + b);
        waiting.push_back(Opened {
            name,
            read: Box::new(file),
            id: meta.map(|m| (m.dev(), m.ino())),
        });
    }
    Ok(Inputs {
        waiting,
        current: None,
        capture: None,
        capture_options: wscope_capture::Options::default(),
        keylogs: Vec::new(),
        write: None,
        len,
        progress: None,
        warnings: Vec::new(),
        failed: false,
        previous_part: None,
        repeats: 0,
    })
}

/// `paths` with the files of each rotated record set (`--record-max-size`)
/// in the order they were written, at the places the set's files had: a
/// shell glob gives `session.1.jsonl` ... `session.10.jsonl` before
/// `session.2.jsonl`, and `session.jsonl` last. Other inputs keep their
/// places.
fn in_rotation_order(paths: &[PathBuf]) -> Vec<PathBuf> {
    let parts: Vec<Option<(String, u32)>> = paths.iter().map(|p| rotation_part(p)).collect();
    let mut ordered = paths.to_vec();
    let mut sets: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some((set, _)) = part {
            sets.entry(set).or_default().push(i);
        }
    }
    for places in sets.values() {
        let mut members = places.clone();
        members.sort_by_key(|&i| parts[i].as_ref().map(|(_, part)| *part));
        for (&place, &member) in places.iter().zip(&members) {
            ordered[place] = paths[member].clone();
        }
    }
    ordered
}

/// The set and part in a record file's header, when it is a plain file of
/// a rotated set. Anything else (compressed, a pipe, no rotation) is
/// `None` and read where it was given.
fn rotation_part(path: &Path) -> Option<(String, u32)> {
    // Looked at before opening: opening a FIFO would wait for its writer,
    // and what was peeked from it would be lost to the real read.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let file = File::open(path).ok()?;
    // A header is a few hundred bytes; the limit keeps a huge first line
    // of some other file from being read whole.
    let mut first = String::new();
    io::BufReader::new(file.take(64 * 1024))
        .read_line(&mut first)
        .ok()?;
    let header: wscope_events::Header = serde_json::from_str(first.trim_end()).ok()?;
    (header.format == wscope_events::record::FORMAT)
        .then_some(header.rotation)
        .flatten()
        .map(|r| (r.set, r.part))
}

impl Inputs {
    /// What the inputs are called, for the progress bar.
    pub fn name(&self) -> String {
        match self.waiting.len() {
            0 => String::new(),
            1 => self.waiting[0].name.clone(),
            n => format!("{} (+{} more)", self.waiting[0].name, n - 1),
        }
    }

    /// All inputs' bytes together (0 when one has no size, as stdin).
    pub fn size(&self) -> u64 {
        self.len.unwrap_or(0)
    }

    /// How captures become events (payload limit, frames).
    pub fn capture_options(&mut self, options: wscope_capture::Options) {
        self.capture_options = options;
    }

    /// Reads TLS key logs for the captures among the inputs.
    pub fn keylogs(&mut self, paths: &[PathBuf]) -> anyhow::Result<()> {
        for path in paths {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read the key log {}", path.display()))?;
            self.keylogs.push((path.display().to_string(), text));
        }
        Ok(())
    }

    /// Writes the packets of the captures read to a pcapng file at
    /// `path` (`--write`), created when the inputs turn out to be
    /// captures; record files hold no packets, and are refused.
    pub fn write_packets(&mut self, path: &Path) {
        self.write = Some(path.to_owned());
    }

    /// Counts what is read on `progress`.
    pub fn show_progress(&mut self, progress: &Progress) {
        self.progress = Some(progress.clone());
    }

    /// Fails when `path` is one of the inputs: writing it (as `flag` asks)
    /// would empty it before it is read.
    pub fn refuse_as_output(&self, flag: &str, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let id = Some((meta.dev(), meta.ino()));
        if let Some(input) = self.waiting.iter().find(|input| input.id == id) {
            bail!(
                "{flag} {} is also an input ({}); write to another file",
                path.display(),
                input.name
            );
        }
        Ok(())
    }

    /// What was wrong but not fatal (a cut-off last line, damage in a
    /// capture), and a capture's summary, once reading has ended.
    pub fn warnings(&mut self) -> Vec<String> {
        if let Some(capture) = &mut self.capture {
            self.warnings
                .extend(capture.take_problems().iter().map(|p| p.to_string()));
            self.warnings
                .push(captures::summary_line(capture.summary(), "the file"));
            let given = !self.keylogs.is_empty();
            if let Some(line) = captures::keylog_line(capture.capture_mut().keys_mut(), given) {
                self.warnings.push(line);
            }
        } else if !self.keylogs.is_empty() {
            self.warnings
                .push("--keylog is for packet captures; these inputs are not captures".into());
        }
        std::mem::take(&mut self.warnings)
    }

    /// An input opened for reading: counted on the progress bar,
    /// decompressed, its format recognised.
    fn unwrap_input(&self, opened: Opened) -> anyhow::Result<(String, wscope_capture::Input)> {
        let Opened { name, read, .. } = opened;
        let read: Box<dyn Read + Send> = match &self.progress {
            Some(progress) => Box::new(progress.wrap(read)),
            None => read,
        };
        let input = wscope_capture::input::from_reader(read).map_err(|e| anyhow!("{name}: {e}"))?;
        Ok((name, input))
    }

    /// The next input's reader, its header read. A capture takes every
    /// input after it along: they are one capture in pieces.
    fn open_next(&mut self) -> Option<anyhow::Result<()>> {
        let opened = self.waiting.pop_front()?;
        Some(self.open(opened))
    }

    fn open(&mut self, opened: Opened) -> anyhow::Result<()> {
        let (name, input) = self.unwrap_input(opened)?;
        if input.format == Format::Other {
            if let Some(path) = &self.write {
                bail!(
                    "--write {} writes the packets of a capture, and {name} is not a pcap or pcapng capture",
                    path.display()
                );
            }
            let (json, reader) =
                sniff_json(input.reader).with_context(|| format!("cannot read {name}"))?;
            if json == Json::Other {
                self.previous_part = None;
                self.current = Some(Current::Har(read_har(&name, reader)?));
                return Ok(());
            }
            let reader: Box<dyn BufRead> = Box::new(reader);
            let record = RecordReader::new(reader).map_err(|err| {
                anyhow!(
                    "{name}: {err} (wscope reads its record files, HAR and pcap/pcapng captures)"
                )
            })?;
            let part = record.header().rotation.clone();
            self.repeats = match (&part, &self.previous_part) {
                (Some(part), Some((set, previous)))
                    if *set == part.set && previous + 1 == part.part =>
                {
                    part.repeated
                }
                _ => 0,
            };
            self.previous_part = part.map(|p| (p.set, p.part));
            self.current = Some(Current::Record(name, Box::new(record)));
            return Ok(());
        }
        let mut capture = Box::new(CaptureReader::new(self.capture_options));
        for (file, text) in &self.keylogs {
            for error in capture.capture_mut().add_keylog(text) {
                self.warnings.push(format!(
                    "key log {file}, line {}: {}; the other lines are used",
                    error.line, error.message
                ));
            }
        }
        capture.push_input(name, Box::new(input.reader));
        while let Some(opened) = self.waiting.pop_front() {
            let (name, input) = self.unwrap_input(opened)?;
            if input.format == Format::Other {
                bail!(
                    "{name} is not a pcap or pcapng capture, but the inputs before it are: read captures apart from record files and HARs"
                );
            }
            capture.push_input(name, Box::new(input.reader));
        }
        if let Some(path) = &self.write {
            capture.write_packets(captures::create_pcapng(path)?);
        }
        self.capture = Some(capture);
        Ok(())
    }
}

impl Iterator for Inputs {
    type Item = anyhow::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(capture) = &mut self.capture {
                let event = capture.next_event();
                if let Some(err) = capture.take_write_error() {
                    self.failed = true;
                    let path = self.write.as_deref().unwrap_or(Path::new("-"));
                    return Some(Err(anyhow!(
                        "cannot write --write {}: {err}",
                        path.display()
                    )));
                }
                return event.map(Ok);
            }
            let (name, reader) = match &mut self.current {
                None => {
                    if let Err(err) = self.open_next()? {
                        self.failed = true;
                        return Some(Err(err));
                    }
                    continue;
                }
                Some(Current::Har(events)) => match events.next() {
                    Some(event) => return Some(Ok(event)),
                    None => {
                        self.current = None;
                        continue;
                    }
                },
                Some(Current::Record(name, reader)) => (name, reader),
            };
            match reader.next_event() {
                // Read already, at the end of the part before.
                Ok(Some(_)) if self.repeats > 0 => self.repeats -= 1,
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => {
                    if let Some(line) = reader.truncated_at() {
                        self.warnings.push(format!(
                            "line {line} of {name} is cut off (the writer stopped mid-line); everything before it was read"
                        ));
                    }
                    self.current = None;
                }
                Err(err) => {
                    self.failed = true;
                    return Some(Err(anyhow!("{name}: {err}")));
                }
            }
        }
    }
}

/// What a document that starts with `{` is, from its first key: a record
/// file's header (`{"format":"wscope-record",...}`, any of its keys
/// first), or another JSON object, which may be a HAR (`{"log": ...}`;
/// HAR has no other top-level key, but a writer may add one first).
#[derive(Debug, PartialEq, Eq)]
enum Json {
    Record,
    Other,
}

/// An input read again from its start: the bytes already looked at, then
/// the rest.
type Replayed = io::Chain<io::Cursor<Vec<u8>>, Box<dyn BufRead + Send>>;

/// Reads as far as the first key of the input (a few bytes, so that a
/// record file arriving through a pipe is shown as it comes) and gives
/// back a reader that starts from the beginning again. What does not
/// start with `{` goes to the record reader, which says what it is not.
fn sniff_json(mut reader: Box<dyn BufRead + Send>) -> io::Result<(Json, Replayed)> {
    const RECORD_KEYS: [&str; 4] = ["format", "version", "writer", "redacted"];
    let mut seen = Vec::new();
    let mut next = |seen: &mut Vec<u8>| -> io::Result<Option<u8>> {
        let byte = match reader.fill_buf()?.first() {
            Some(&byte) => byte,
            None => return Ok(None),
        };
        reader.consume(1);
        seen.push(byte);
        Ok(Some(byte))
    };
    let mut kind = Json::Record;
    let mut state = 0;
    let mut key = Vec::new();
    while let Some(byte) = next(&mut seen)? {
        match (state, byte) {
            // A byte order mark, whitespace, then `{`.
            (0, 0xef | 0xbb | 0xbf) if seen.len() <= 3 => {}
            (0 | 1, b' ' | b'\t' | b'\r' | b'\n') => {}
            (0, b'{') => state = 1,
            (0, _) => break,
            (1, b'"') => state = 2,
            (1, _) => {
                kind = Json::Other;
                break;
            }
            // The first key (short, unescaped: a record's keys are).
            (2, b'"') => {
                let record = RECORD_KEYS.iter().any(|k| k.as_bytes() == key);
                kind = if record { Json::Record } else { Json::Other };
                break;
            }
            (2, b'\\') => {
                kind = Json::Other;
                break;
            }
            (2, _) if key.len() < 16 => key.push(byte),
            (2, _) => {
                kind = Json::Other;
                break;
            }
            _ => break,
        }
    }
    if state == 0 {
        kind = Json::Record;
    }
    Ok((kind, io::Cursor::new(seen).chain(reader)))
}

/// A HAR's events, the whole document read (up to `har::MAX_LEN`).
fn read_har(name: &str, reader: impl Read) -> anyhow::Result<std::vec::IntoIter<Event>> {
    let mut bytes = Vec::new();
    reader
        .take(har::MAX_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    match har::read_har(&bytes) {
        Ok(read) => Ok(read.events.into_iter()),
        Err(HarError::TooLarge { .. }) => Err(anyhow!(
            "{name}: over {} MiB, the most wscope reads of a HAR (one JSON document, read whole); export fewer requests, or capture the traffic with wscope capture or --record",
            har::MAX_LEN >> 20
        )),
        Err(err @ (HarError::NoLog | HarError::Json { .. } | HarError::NotUtf8 { .. })) => {
            Err(anyhow!(
                "{name}: {err}; nor is it a wscope record file (its first line is {{\"format\":\"wscope-record\",...}}) or a pcap/pcapng capture"
            ))
        }
        Err(err) => Err(anyhow!("{name}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(bytes: &[u8]) -> (Json, Vec<u8>) {
        let reader: Box<dyn BufRead + Send> = Box::new(io::BufReader::with_capacity(
            2,
            io::Cursor::new(bytes.to_vec()),
        ));
        let (json, mut again) = sniff_json(reader).unwrap();
        let mut all = Vec::new();
        again.read_to_end(&mut all).unwrap();
        (json, all)
    }

    #[test]
    fn a_record_header_and_a_har_are_told_apart_by_the_first_key() {
        for (input, expected) in [
            (
                &br#"{"format":"wscope-record","version":1}"#[..],
                Json::Record,
            ),
            (br#"  {"version":1,"format":"wscope-record"}"#, Json::Record),
            (br#"{"log":{"entries":[]}}"#, Json::Other),
            (b"\xef\xbb\xbf{\n  \"log\": {\n", Json::Other),
            (br#"{ "comment": "x", "log": {} }"#, Json::Other),
            (br#"{}"#, Json::Other),
            (br#"{"a\"b": 1}"#, Json::Other),
            (br#"{"a_very_long_key_indeed": 1}"#, Json::Other),
            // Not an object: the record reader says what it is not.
            (b"", Json::Record),
            (b"hello", Json::Record),
            (b"[1]", Json::Record),
        ] {
            let (json, again) = sniffed(input);
            assert_eq!(json, expected, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(again, input, "read again from the start");
        }
    }

    #[test]
    fn only_the_first_key_is_read_before_deciding() {
        // A record arriving through a pipe must not wait for more bytes:
        // the reader given here would fail past the header's first key.
        struct Then(io::Cursor<Vec<u8>>);
        impl Read for Then {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(io::Error::other("read past the first key")),
                    n => Ok(n),
                }
            }
        }
        let reader: Box<dyn BufRead + Send> = Box::new(io::BufReader::with_capacity(
            1,
            Then(io::Cursor::new(br#"{"format""#.to_vec())),
        ));
        let (json, _) = sniff_json(reader).unwrap();
        assert_eq!(json, Json::Record);
    }
}
