//! Where `read` and `ui` get their events: record files or packet
//! captures, recognised by their content (never by their name), gzip or
//! zstd compressed or not, one or several in order, `-` for stdin.
//!
//! Several record files are read one after the other. Several captures
//! are one capture in pieces (a ring buffer): TCP connections carry on
//! across them. A list that mixes the two is refused.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use wscope_capture::{CaptureReader, Format};
use wscope_events::{Event, RecordReader};

type BoxedRecord = RecordReader<Box<dyn BufRead + Send>>;

/// Events from the inputs of one run.
pub enum Events {
    Records {
        /// The file being read, and those after it.
        current: Option<(String, BoxedRecord)>,
        rest: VecDeque<(String, Box<dyn BufRead + Send>)>,
    },
    Capture(Box<CaptureReader>),
}

/// A damaged input: which one, and what is wrong.
#[derive(Debug)]
pub struct Damaged {
    pub file: String,
    pub error: String,
}

fn name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

/// Opens every input; `wrap` sees each raw file before decompression
/// (for a progress bar).
pub fn open(
    paths: &[PathBuf],
    capture: wscope_capture::Options,
    wrap: &dyn Fn(Box<dyn Read + Send>) -> Box<dyn Read + Send>,
) -> anyhow::Result<Events> {
    if paths.is_empty() {
        bail!("no input given");
    }
    if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        bail!("stdin (-) can be read only once");
    }
    let mut opened = Vec::new();
    for path in paths {
        let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(
                std::fs::File::open(path)
                    .map_err(|e| anyhow!("cannot open {}: {e}", path.display()))?,
            )
        };
        let input = wscope_capture::input::from_reader(wrap(raw))
            .map_err(|e| anyhow!("{}: {e}", name(path)))?;
        opened.push((name(path), input));
    }
    let captures = opened
        .iter()
        .filter(|(_, i)| i.format != Format::Other)
        .count();
    if captures == 0 {
        let mut rest: VecDeque<_> = opened.into_iter().map(|(n, i)| (n, i.reader)).collect();
        let current = next_record(&mut rest)?;
        return Ok(Events::Records { current, rest });
    }
    if captures != opened.len() {
        let records: Vec<_> = opened
            .iter()
            .filter(|(_, i)| i.format == Format::Other)
            .map(|(n, _)| n.as_str())
            .collect();
        bail!(
            "{} not a pcap or pcapng capture, but other inputs are: read record files and captures separately",
            records.join(", ")
        );
    }
    let mut reader = CaptureReader::new(capture);
    for (name, input) in opened {
        reader.push_input(name, Box::new(input.reader));
    }
    Ok(Events::Capture(Box::new(reader)))
}

fn next_record(
    rest: &mut VecDeque<(String, Box<dyn BufRead + Send>)>,
) -> anyhow::Result<Option<(String, BoxedRecord)>> {
    match rest.pop_front() {
        Some((name, reader)) => {
            let record = RecordReader::new(reader).map_err(|e| {
                anyhow!("{name}: {e} (wscope reads its own record files and pcap/pcapng captures)")
            })?;
            Ok(Some((name, record)))
        }
        None => Ok(None),
    }
}

impl Events {
    /// The next event. A damaged record line ends the run; problems in a
    /// capture are reported on stderr and reading goes on.
    pub fn next_event(&mut self) -> Result<Option<Event>, Damaged> {
        match self {
            Events::Records { current, rest } => loop {
                let Some((name, reader)) = current else {
                    return Ok(None);
                };
                match reader.next_event() {
                    Ok(Some(event)) => return Ok(Some(event)),
                    Ok(None) => {
                        if let Some(line) = reader.truncated_at() {
                            eprintln!(
                                "wscope: line {line} of {name} is cut off (the writer stopped mid-line); everything before it was read"
                            );
                        }
                        *current = next_record(rest).map_err(|e| Damaged {
                            file: String::new(),
                            error: e.to_string(),
                        })?;
                    }
                    Err(err) => {
                        return Err(Damaged {
                            file: name.clone(),
                            error: err.to_string(),
                        });
                    }
                }
            },
            Events::Capture(reader) => {
                let event = reader.next_event();
                for problem in reader.take_problems() {
                    eprintln!("wscope: {problem}");
                }
                Ok(event)
            }
        }
    }

    /// What a capture held, for a line on stderr at the end.
    pub fn summary(&self) -> Option<String> {
        let Events::Capture(reader) = self else {
            return None;
        };
        let s = reader.summary();
        let mut line = format!(
            "capture: {} packets, {} TCP connections, {} WebSocket ({} frames, {} messages)",
            s.packets, s.tcp_connections, s.websocket, s.frames, s.messages
        );
        if s.handshake_missing > 0 {
            line.push_str(&format!(
                ", {} joined without their handshake",
                s.handshake_missing
            ));
        }
        if s.handshake_failed > 0 {
            line.push_str(&format!(", {} upgrades refused", s.handshake_failed));
        }
        if s.tls > 0 {
            line.push_str(&format!(
                ", {} TLS not decrypted{}",
                s.tls,
                if s.tls_names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.tls_names.join(", "))
                }
            ));
        }
        if s.http2 > 0 {
            line.push_str(&format!(", {} HTTP/2", s.http2));
        }
        if s.gaps > 0 {
            line.push_str(&format!(", {} gaps in TCP streams", s.gaps));
        }
        if s.problems > 0 {
            line.push_str(&format!(", {} problems with the file", s.problems));
        }
        Some(line)
    }
}
