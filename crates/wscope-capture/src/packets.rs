//! Packets out of a pcap or pcapng stream, one at a time, with their
//! capture timestamps in microseconds and their link type.
//!
//! Block parsing is pcap-parser's; this module keeps what a pcapng section
//! says about its interfaces (link type, timestamp resolution and offset),
//! counts packets the way Wireshark numbers them (from 1, across every file
//! of a run), and turns damage into [`Problem`]s instead of stopping: a
//! corrupt pcapng block whose length can be trusted is stepped over; a
//! truncated file ends that file with a message naming the packet.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Packet<'a> {
    /// 1-based, counted across every input of a run.
    pub number: u64,
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    /// The LINKTYPE_ value of the interface it was captured on.
    pub linktype: i32,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// How long the packet was on the wire.
    pub orig_len: u32,
}

/// Something wrong with the file itself, not with a connection in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The packet it concerns, or the last good one before it.
    pub packet: u64,
    pub text: String,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

/// Why a block could not be had.
enum Stop {
    Eof,
    Incomplete,
    TooSmall,
    Truncated,
    Corrupt(String),
}

/// The largest block accepted; bigger ones are treated as corruption.
const MAX_BLOCK: usize = 64 << 20;

/// Reads packets from one input.
pub struct PacketReader {
    reader: Box<dyn PcapReaderIterator + Send>,
    interfaces: Vec<Interface>,
    /// The classic format's single link type and resolution.
    legacy: Option<Interface>,
    big_endian: bool,
    done: bool,
}

impl PacketReader {
    /// Starts reading `input`, which must begin with a pcap or pcapng header.
    pub fn new(mut input: Box<dyn Read + Send>) -> Result<PacketReader, String> {
        // pcap-parser recognises the format from its first read alone, and
        // a pipe or a decompressor may hand out only a few bytes at first.
        let mut first = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < first.len() {
            match input.read(&mut first[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read the capture: {e}")),
            }
        }
        first.truncate(got);
        let input = std::io::Cursor::new(first).chain(input);
        let reader = pcap_parser::create_reader(1 << 20, input).map_err(|e| match e {
            PcapError::Eof => "the file is empty".to_owned(),
            PcapError::HeaderNotRecognized => "not a pcap or pcapng file".to_owned(),
            other => format!("cannot read the capture's header: {other:?}"),
        })?;
        Ok(PacketReader {
            reader,
            interfaces: Vec::new(),
            legacy: None,
            big_endian: false,
            done: false,
        })
    }

    /// Calls `on_packet` for every packet up to the end of the input and
    /// `on_problem` for every problem; `number` is the running count.
    pub fn for_each(
        &mut self,
        number: &mut u64,
        on_packet: &mut dyn FnMut(&Packet<'_>),
        on_problem: &mut dyn FnMut(Problem),
    ) {
        while !self.done {
            self.step(number, on_packet, on_problem);
        }
    }

    /// Whether the input is used up (or given up on).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handles one block (or one refill of the buffer).
    pub fn step(
        &mut self,
        number: &mut u64,
        on_packet: &mut dyn FnMut(&Packet<'_>),
        on_problem: &mut dyn FnMut(Problem),
    ) {
        let mut packet = None;
        let next = match self.reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        self.legacy = Some(Interface {
                            linktype: header.network.0,
                            resolution: if header.is_nanosecond_precision() {
                                1_000_000_000
                            } else {
                                1_000_000
                            },
                            offset: i64::from(header.thiszone),
                        });
                    }
                    PcapBlockOwned::Legacy(block) => {
                        let iface = self.legacy.unwrap_or(Interface {
                            linktype: 1,
                            resolution: 1_000_000,
                            offset: 0,
                        });
                        *number += 1;
                        let frac_us = u64::from(block.ts_usec) * 1_000_000 / iface.resolution;
                        let secs = (i64::from(block.ts_sec) + iface.offset).max(0) as u64;
                        packet = Some((
                            secs * 1_000_000 + frac_us,
                            iface.linktype,
                            block.data,
                            block.origlen,
                        ));
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        // A new section starts its own list of interfaces.
                        self.interfaces.clear();
                        self.big_endian = shb.big_endian();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        self.interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        *number += 1;
                        match self.interfaces.get(epb.if_id as usize) {
                            Some(iface) => {
                                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let us = scale(units, iface.resolution);
                                let us = (us as i64 + iface.offset * 1_000_000).max(0) as u64;
                                packet = Some((us, iface.linktype, epb.data, epb.origlen));
                            }
                            None => on_problem(Problem {
                                packet: *number,
                                text: format!(
                                    "names interface {} but its section describes {}; skipped",
                                    epb.if_id,
                                    self.interfaces.len()
                                ),
                            }),
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        *number += 1;
                        // Simple packets belong to interface 0 and have no time.
                        match self.interfaces.first() {
                            Some(iface) => {
                                packet = Some((0, iface.linktype, spb.data, spb.origlen))
                            }
                            None => on_problem(Problem {
                                packet: *number,
                                text: "a simple packet block before any interface; skipped".into(),
                            }),
                        }
                    }
                    // Statistics, name resolution, secrets (next version),
                    // custom and unknown blocks carry no packets.
                    PcapBlockOwned::NG(_) => {}
                }
                if let Some((ts_us, linktype, data, orig_len)) = packet {
                    on_packet(&Packet {
                        number: *number,
                        ts_us,
                        linktype,
                        data,
                        orig_len,
                    });
                }
                Ok(offset)
            }
            Err(PcapError::Eof) => Err(Stop::Eof),
            Err(PcapError::Incomplete(_)) => Err(Stop::Incomplete),
            Err(PcapError::BufferTooSmall) => Err(Stop::TooSmall),
            Err(PcapError::UnexpectedEof) => Err(Stop::Truncated),
            Err(err) => Err(Stop::Corrupt(format!("{err:?}"))),
        };
        let consumed = match next {
            Ok(offset) => Some(offset),
            Err(Stop::Eof) => {
                self.done = true;
                None
            }
            Err(Stop::Incomplete) => {
                if let Err(err) = self.reader.refill() {
                    on_problem(Problem {
                        packet: *number,
                        text: format!("reading failed after packet {number}: {err:?}"),
                    });
                    self.done = true;
                }
                None
            }
            Err(Stop::TooSmall) => {
                let size = self.reader.data().len().max(1 << 20) * 2;
                if size > MAX_BLOCK || !self.reader.grow(size) {
                    on_problem(Problem {
                        packet: *number + 1,
                        text: format!(
                            "a block larger than {} MiB after packet {number}: the rest of this file is skipped",
                            MAX_BLOCK >> 20
                        ),
                    });
                    self.done = true;
                }
                None
            }
            Err(Stop::Truncated) => {
                on_problem(Problem {
                    packet: *number + 1,
                    text: format!(
                        "the file ends in the middle of packet {} (truncated capture); everything before it was read",
                        *number + 1
                    ),
                });
                self.done = true;
                None
            }
            Err(Stop::Corrupt(text)) => match self.skippable_block_len() {
                // A pcapng block carries its own length: step over a bad one.
                Some(len) => {
                    on_problem(Problem {
                        packet: *number + 1,
                        text: format!(
                            "a corrupt block after packet {number} ({}); skipped {len} bytes",
                            short(&text)
                        ),
                    });
                    Some(len)
                }
                None => {
                    on_problem(Problem {
                        packet: *number + 1,
                        text: format!(
                            "corrupt data after packet {number} ({}); the rest of this file is skipped",
                            short(&text)
                        ),
                    });
                    self.done = true;
                    None
                }
            },
        };
        if let Some(offset) = consumed {
            self.reader.consume(offset);
        }
    }

    /// The length of the pcapng block at the reader's position, when it
    /// looks like one (in a pcapng file, at least 12 bytes, a multiple of
    /// 4, and all there).
    fn skippable_block_len(&self) -> Option<usize> {
        if self.legacy.is_some() {
            return None;
        }
        let data = self.reader.data();
        let raw: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        let len = if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        } as usize;
        (len >= 12 && len.is_multiple_of(4) && len <= data.len()).then_some(len)
    }
}

/// `units` at `resolution` per second, in microseconds.
fn scale(units: u64, resolution: u64) -> u64 {
    if resolution == 1_000_000 {
        units
    } else {
        (u128::from(units) * 1_000_000 / u128::from(resolution)) as u64
    }
}

/// The first line of a parser's error, kept short.
fn short(text: &str) -> String {
    let mut text: String = text.chars().take(80).collect();
    if text.len() == 80 {
        text.push('…');
    }
    text
}
