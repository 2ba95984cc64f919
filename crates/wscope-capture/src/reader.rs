//! A whole capture, one file or several in order, as a stream of events.
//!
//! Several files are one capture cut in pieces (a dumpcap ring buffer,
//! `tcpdump -C`): TCP connections carry on from one file to the next, and
//! packet numbers count across them. The packets go through one
//! [`Capture`], which puts the events in time order (and writes the
//! packets out with `--write`). Memory does not grow with the capture.

use std::collections::VecDeque;
use std::io::{self, Read};

use wscope_events::Event;

use crate::capture::{Capture, PacketWriter};
use crate::decoder::{Options, Summary};
use crate::packets::{PacketReader, Problem};

/// A problem with one of the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: String,
    pub problem: Problem,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: packet {}: {}",
            self.file, self.problem.packet, self.problem.text
        )
    }
}

/// Events out of capture files.
pub struct CaptureReader {
    pending: VecDeque<(String, Box<dyn Read + Send>)>,
    /// The file being read and its place among the inputs.
    current: Option<(String, u32, PacketReader)>,
    /// How many files were opened so far.
    opened: u32,
    capture: Capture,
    problems: Vec<FileProblem>,
    number: u64,
}

impl CaptureReader {
    pub fn new(options: Options) -> CaptureReader {
        CaptureReader {
            pending: VecDeque::new(),
            current: None,
            opened: 0,
            capture: Capture::new(options),
            problems: Vec::new(),
            number: 0,
        }
    }

    /// Adds the next file (already opened and decompressed) to read.
    pub fn push_input(&mut self, name: String, input: Box<dyn Read + Send>) {
        self.pending.push_back((name, input));
    }

    /// Writes every packet read to `writer` as well (`--write`).
    pub fn write_packets(&mut self, writer: PacketWriter) {
        self.capture.write_packets(writer);
    }

    /// The next event, or `None` at the end of the last file.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.capture.next_event() {
                return Some(event);
            }
            if self.capture.is_finished() {
                return None;
            }
            self.advance();
        }
    }

    /// Problems met so far (taken: each is handed out once).
    pub fn take_problems(&mut self) -> Vec<FileProblem> {
        std::mem::take(&mut self.problems)
    }

    /// Why writing the packets (`--write`) failed, once.
    pub fn take_write_error(&mut self) -> Option<io::Error> {
        self.capture.take_write_error()
    }

    pub fn summary(&self) -> &Summary {
        self.capture.summary()
    }

    /// The capture the files go into, to give it key log text
    /// (`Capture::add_keylog`).
    pub fn capture_mut(&mut self) -> &mut Capture {
        &mut self.capture
    }

    /// Reads one block (or opens the next file, or ends).
    fn advance(&mut self) {
        let Some((name, input, reader)) = &mut self.current else {
            match self.pending.pop_front() {
                Some((name, input)) => {
                    let index = self.opened;
                    self.opened += 1;
                    match PacketReader::new(input) {
                        Ok(reader) => self.current = Some((name, index, reader)),
                        Err(text) => self.problems.push(FileProblem {
                            file: name,
                            problem: Problem {
                                packet: self.number,
                                text,
                            },
                        }),
                    }
                }
                None => {
                    self.capture.finish();
                    self.take_decoder_problems(None);
                }
            }
            return;
        };
        let capture = &mut self.capture;
        let problems = &mut self.problems;
        let input = *input;
        reader.step(
            &mut self.number,
            &mut |packet| capture.packet(input, packet),
            &mut |problem| {
                problems.push(FileProblem {
                    file: name.clone(),
                    problem,
                })
            },
        );
        let name = name.clone();
        let secrets = reader.take_secrets();
        if !secrets.is_empty() {
            for error in self.capture.add_keylog(&secrets) {
                self.problems.push(FileProblem {
                    file: name.clone(),
                    problem: Problem {
                        packet: self.number,
                        text: format!(
                            "its Decryption Secrets Block, line {}: {}; the other lines are used",
                            error.line, error.message
                        ),
                    },
                });
            }
        }
        if reader.is_done() {
            self.current = None;
        }
        self.take_decoder_problems(Some(name));
    }

    fn take_decoder_problems(&mut self, file: Option<String>) {
        for problem in self.capture.take_problems() {
            self.problems.push(FileProblem {
                file: file.clone().unwrap_or_else(|| "capture".into()),
                problem,
            });
        }
    }
}
