//! A whole capture, one file or several in order, as a stream of events.
//!
//! Several files are one capture cut in pieces (a dumpcap ring buffer,
//! `tcpdump -C`): TCP connections carry on from one file to the next, and
//! packet numbers count across them. Events come out in time order: an
//! event made late (bytes held behind a hole, a stream joined mid-way and
//! proven later) carries the time its bytes were captured and waits in a
//! small reorder queue until nothing older can still come. Memory does not
//! grow with the capture.

use std::collections::VecDeque;
use std::io::Read;

use wscope_events::Event;

use crate::decoder::{Decoder, Options, Summary};
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
    current: Option<(String, PacketReader)>,
    decoder: Decoder,
    /// Events ready to hand out.
    events: VecDeque<Event>,
    /// Events waiting for the decoder's watermark, in time order.
    waiting: VecDeque<Event>,
    batch: Vec<Event>,
    problems: Vec<FileProblem>,
    number: u64,
    finished: bool,
}

impl CaptureReader {
    pub fn new(options: Options) -> CaptureReader {
        CaptureReader {
            pending: VecDeque::new(),
            current: None,
            decoder: Decoder::new(options),
            events: VecDeque::new(),
            waiting: VecDeque::new(),
            batch: Vec::new(),
            problems: Vec::new(),
            number: 0,
            finished: false,
        }
    }

    /// Adds the next file (already opened and decompressed) to read.
    pub fn push_input(&mut self, name: String, input: Box<dyn Read + Send>) {
        self.pending.push_back((name, input));
    }

    /// The next event, or `None` at the end of the last file.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.finished {
                return None;
            }
            self.advance();
        }
    }

    /// Problems met so far (taken: each is handed out once).
    pub fn take_problems(&mut self) -> Vec<FileProblem> {
        std::mem::take(&mut self.problems)
    }

    pub fn summary(&self) -> &Summary {
        self.decoder.summary()
    }

    /// The decoder, to give it key log text (`Decoder::add_keylog`).
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// Reads one block (or opens the next file, or ends).
    fn advance(&mut self) {
        let Some((name, reader)) = &mut self.current else {
            match self.pending.pop_front() {
                Some((name, input)) => match PacketReader::new(input) {
                    Ok(reader) => self.current = Some((name, reader)),
                    Err(text) => self.problems.push(FileProblem {
                        file: name,
                        problem: Problem {
                            packet: self.number,
                            text,
                        },
                    }),
                },
                None => {
                    self.decoder.finish(&mut self.batch);
                    self.order_batch(u64::MAX);
                    self.take_decoder_problems(None);
                    self.finished = true;
                }
            }
            return;
        };
        let decoder = &mut self.decoder;
        let batch = &mut self.batch;
        let problems = &mut self.problems;
        reader.step(
            &mut self.number,
            &mut |packet| decoder.packet(packet, batch),
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
            for error in self.decoder.add_keylog(&secrets, &mut self.batch) {
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
        let watermark = self.decoder.watermark();
        self.order_batch(watermark);
        self.take_decoder_problems(Some(name));
    }

    /// Puts the batch in time order behind what waits, and hands out what
    /// is not newer than `watermark`.
    fn order_batch(&mut self, watermark: u64) {
        let in_order = self.waiting.is_empty()
            && self.batch.windows(2).all(|w| w[0].ts <= w[1].ts)
            && self.batch.last().is_none_or(|e| e.ts <= watermark);
        if in_order {
            // Nearly always: nothing waits, and the batch can go as it is.
            self.events.extend(self.batch.drain(..));
            return;
        }
        for event in self.batch.drain(..) {
            // Nearly always in order already: look from the back.
            let at = self
                .waiting
                .iter()
                .rposition(|e| e.ts <= event.ts)
                .map_or(0, |i| i + 1);
            self.waiting.insert(at, event);
        }
        while self.waiting.front().is_some_and(|e| e.ts <= watermark) {
            let event = self.waiting.pop_front().expect("checked");
            self.events.push_back(event);
        }
    }

    fn take_decoder_problems(&mut self, file: Option<String>) {
        for problem in self.decoder.take_problems() {
            self.problems.push(FileProblem {
                file: file.clone().unwrap_or_else(|| "capture".into()),
                problem,
            });
        }
    }
}
