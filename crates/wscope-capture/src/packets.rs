//! Packets out of a pcap or pcapng stream, one at a time, with their
//! capture timestamps in nanoseconds, their link type and the interface
//! they were captured on (what a pcapng writer needs to write them again).
//!
//! Block parsing is pcap-parser's; this module keeps what a pcapng section
//! says about its interfaces (link type, timestamp resolution and offset),
//! counts packets the way Wireshark numbers them (from 1, across every file
//! of a run), and turns damage into [`Problem`]s instead of stopping: a
//! corrupt pcapng block whose length can be trusted is stepped over; a
//! truncated file ends that file with a message naming the packet.

use std::io::Read;

use pcap_parser::pcapng::{Block, SecretsType};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

/// One captured packet, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Packet<'a> {
    /// 1-based, counted across every input of a run.
    pub number: u64,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The LINKTYPE_ value of the interface it was captured on.
    pub linktype: i32,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// How long the packet was on the wire.
    pub orig_len: u32,
    /// Which interface of its input it was captured on: a pcapng
    /// interface, numbered across the file's sections (each section
    /// describes its own); 0 in a classic pcap and on a live interface.
    pub interface: u32,
    /// The interface's snap length (0: not limited).
    pub snaplen: u32,
}

impl Packet<'_> {
    /// The capture time in microseconds, as events are stamped.
    pub fn ts_us(&self) -> u64 {
        self.ts_ns / 1000
    }
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
    snaplen: u32,
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
const MAX_BLOCK: usize = 16 << 20;

/// Reads packets from one input.
pub struct PacketReader {
    reader: Box<dyn PcapReaderIterator + Send>,
    interfaces: Vec<Interface>,
    /// Interfaces described by the sections before this one.
    earlier_interfaces: u32,
    /// The classic format's single link type and resolution.
    legacy: Option<Interface>,
    big_endian: bool,
    done: bool,
    /// Key log text from Decryption Secrets Blocks, not yet taken.
    secrets: Vec<u8>,
}

impl PacketReader {
    /// Starts reading `input`, which must begin with a pcap or pcapng header.
    pub fn new(mut input: Box<dyn Read + Send>) -> Result<PacketReader, String> {
        // pcap-parser recognises the format from its first read alone, and
        // a pipe or a decompressor may hand out only a few bytes at first:
        // read the whole file header (no more: on a live pipe, more may be
        // a long time coming).
        let mut first = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while first.len() < header_len(&first) {
            let want = (header_len(&first) - first.len()).min(chunk.len());
            match input.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(n) => first.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read the capture: {e}")),
            }
        }
        let input = std::io::Cursor::new(first).chain(input);
        let reader = pcap_parser::create_reader(256 * 1024, input).map_err(|e| match e {
            PcapError::Eof => "the file is empty".to_owned(),
            PcapError::HeaderNotRecognized => "not a pcap or pcapng file".to_owned(),
            other => format!("cannot read the capture's header: {other:?}"),
        })?;
        Ok(PacketReader {
            reader,
            interfaces: Vec::new(),
            earlier_interfaces: 0,
            legacy: None,
            big_endian: false,
            done: false,
            secrets: Vec::new(),
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

    /// TLS key log text from the Decryption Secrets Blocks read since the
    /// last call (a block comes before the packets its secrets decrypt).
    pub fn take_secrets(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.secrets)
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
        if let Some(len) = self.impossible_block_len() {
            // pcap-parser would subtract 12 from it (and panic where
            // arithmetic is checked): a length that small is corruption
            // no later block can be found after.
            on_problem(Problem {
                packet: *number + 1,
                text: format!(
                    "a corrupt block after packet {number} (it says it is {len} bytes long; a block has at least 12): the rest of this file is skipped"
                ),
            });
            self.done = true;
            return;
        }
        let next = match self.reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        self.legacy = Some(Interface {
                            linktype: header.network.0,
                            snaplen: header.snaplen,
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
                            snaplen: 0,
                            resolution: 1_000_000,
                            offset: 0,
                        });
                        *number += 1;
                        let frac_ns = u64::from(block.ts_usec) * 1_000_000_000 / iface.resolution;
                        let secs = (i64::from(block.ts_sec) + iface.offset).max(0) as u64;
                        packet = Some((
                            secs * 1_000_000_000 + frac_ns,
                            iface,
                            0,
                            block.data,
                            block.origlen,
                        ));
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        // A new section starts its own list of interfaces.
                        self.earlier_interfaces += self.interfaces.len() as u32;
                        self.interfaces.clear();
                        self.big_endian = shb.big_endian();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        self.interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            snaplen: idb.snaplen,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        *number += 1;
                        match self.interfaces.get(epb.if_id as usize) {
                            Some(iface) => {
                                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let ns = scale(units, iface.resolution);
                                let ns = (i128::from(ns) + i128::from(iface.offset) * 1_000_000_000)
                                    .clamp(0, i128::from(u64::MAX))
                                    as u64;
                                // `data` is padded to 32 bits; the
                                // captured length says where it ends.
                                let data = epb.data;
                                let captured = (epb.caplen as usize).min(data.len());
                                packet = Some((
                                    ns,
                                    *iface,
                                    self.earlier_interfaces + epb.if_id,
                                    &data[..captured],
                                    epb.origlen,
                                ));
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
                                {
                                    // No captured length: the snap length cuts it.
                                    let data = spb.data;
                                    let captured = (spb.origlen as usize).min(data.len());
                                    packet = Some((
                                        0,
                                        *iface,
                                        self.earlier_interfaces,
                                        &data[..captured],
                                        spb.origlen,
                                    ))
                                }
                            }
                            None => on_problem(Problem {
                                packet: *number,
                                text: "a simple packet block before any interface; skipped".into(),
                            }),
                        }
                    }
                    PcapBlockOwned::NG(Block::DecryptionSecrets(dsb))
                        if dsb.secrets_type == SecretsType::TlsKeyLog =>
                    {
                        let len = (dsb.secrets_len as usize).min(dsb.data.len());
                        self.secrets.extend_from_slice(&dsb.data[..len]);
                        if !self.secrets.ends_with(b"\n") {
                            self.secrets.push(b'\n');
                        }
                    }
                    // Statistics, name resolution, other secrets, custom
                    // and unknown blocks carry no packets.
                    PcapBlockOwned::NG(_) => {}
                }
                if let Some((ts_ns, iface, interface, data, orig_len)) = packet {
                    on_packet(&Packet {
                        number: *number,
                        ts_ns,
                        linktype: iface.linktype,
                        data,
                        orig_len,
                        interface,
                        snaplen: iface.snaplen,
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
            // The buffer is shifted once, when it is refilled, not after
            // every block (a third of the copying otherwise).
            self.reader.consume_noshift(offset);
        }
    }

    /// The length of the pcapng block at the reader's position, when it
    /// looks like one (in a pcapng file, at least 12 bytes, a multiple of
    /// 4, and all there).
    /// A pcapng block length shorter than a block's own header and
    /// trailer, at the start of what is buffered.
    fn impossible_block_len(&self) -> Option<u32> {
        if self.legacy.is_some() {
            return None;
        }
        let raw: [u8; 4] = self.reader.data().get(4..8)?.try_into().ok()?;
        let len = if self.big_endian {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        };
        (len < 12).then_some(len)
    }

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

/// How many bytes the file header in `start` takes, as far as `start`
/// tells: a classic pcap's 24, or a pcapng section header block's own
/// length (at least 28).
fn header_len(start: &[u8]) -> usize {
    const PCAPNG: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    if start.len() < 12 {
        return 12;
    }
    if start[..4] != PCAPNG {
        return 24;
    }
    let raw = [start[4], start[5], start[6], start[7]];
    let len = if start[8..12] == [0x1a, 0x2b, 0x3c, 0x4d] {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    } as usize;
    len.clamp(28, 1 << 20)
}

/// `units` at `resolution` per second, in nanoseconds.
fn scale(units: u64, resolution: u64) -> u64 {
    match resolution {
        1_000_000 => units.saturating_mul(1000),
        1_000_000_000 => units,
        _ => (u128::from(units) * 1_000_000_000 / u128::from(resolution)).min(u128::from(u64::MAX))
            as u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as the tests compare it: number, µs, link type, data.
    type Seen = (u64, u64, i32, Vec<u8>);

    /// Reads every packet of `bytes`.
    fn read_all(bytes: Vec<u8>) -> (Vec<Seen>, Vec<Problem>) {
        let mut reader = PacketReader::new(Box::new(std::io::Cursor::new(bytes))).unwrap();
        let (mut packets, mut problems, mut number) = (Vec::new(), Vec::new(), 0);
        reader.for_each(
            &mut number,
            &mut |p| packets.push((p.number, p.ts_us(), p.linktype, p.data.to_vec())),
            &mut |p| problems.push(p),
        );
        (packets, problems)
    }

    /// A classic pcap with one packet, in either byte order and
    /// resolution.
    fn classic(big_endian: bool, nanos: bool, linktype: u32) -> Vec<u8> {
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let magic = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut out = Vec::new();
        out.extend(u32b(magic));
        out.extend(u16b(2));
        out.extend(u16b(4));
        out.extend(u32b(0));
        out.extend(u32b(0));
        out.extend(u32b(65535));
        out.extend(u32b(linktype));
        out.extend(u32b(1_700_000_000));
        out.extend(u32b(if nanos { 123_456_789 } else { 123_456 }));
        out.extend(u32b(3));
        out.extend(u32b(3));
        out.extend_from_slice(b"abc");
        out
    }

    #[test]
    fn classic_pcap_in_both_byte_orders_and_resolutions() {
        for big_endian in [false, true] {
            for nanos in [false, true] {
                let (packets, problems) = read_all(classic(big_endian, nanos, 101));
                assert!(problems.is_empty(), "{problems:?}");
                assert_eq!(
                    packets,
                    vec![(1, 1_700_000_000_123_456, 101, b"abc".to_vec())],
                    "big endian {big_endian}, nanoseconds {nanos}"
                );
            }
        }
    }

    /// pcapng blocks, little-endian.
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let padded = body.len().div_ceil(4) * 4;
        let len = (12 + padded) as u32;
        let mut out = Vec::new();
        out.extend(kind.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(8 + padded, 0);
        out.extend(len.to_le_bytes());
        out
    }

    fn section() -> Vec<u8> {
        let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        body.extend([1, 0, 0, 0]);
        body.extend((-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &body)
    }

    /// An interface; `tsresol` 9 means nanoseconds (option 9).
    fn interface(linktype: u16, nanos: bool) -> Vec<u8> {
        let mut body = linktype.to_le_bytes().to_vec();
        body.extend([0, 0]);
        body.extend(65535u32.to_le_bytes());
        if nanos {
            body.extend([9, 0, 1, 0, 9, 0, 0, 0]);
            body.extend([0, 0, 0, 0]);
        }
        block(1, &body)
    }

    fn packet(interface: u32, units: u64, data: &[u8]) -> Vec<u8> {
        let mut body = interface.to_le_bytes().to_vec();
        body.extend(((units >> 32) as u32).to_le_bytes());
        body.extend((units as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        block(6, &body)
    }

    #[test]
    fn a_block_shorter_than_its_own_header_ends_the_file_with_a_problem() {
        // Found by the capture fuzz target: pcap-parser subtracts 12 from a
        // process information block's length of 9.
        let mut file = section();
        file.extend(interface(1, false));
        file.extend(packet(0, 5, b"abc"));
        file.extend(0x8000_0001u32.to_le_bytes());
        file.extend(9u32.to_le_bytes());
        file.extend([0; 12]);
        let (packets, problems) = read_all(file);
        assert_eq!(packets.len(), 1, "the packet before it is kept");
        assert!(
            matches!(problems.as_slice(), [p] if p.text.contains("9 bytes long")),
            "{problems:?}"
        );
    }

    #[test]
    fn pcapng_sections_and_interfaces_each_keep_their_own_link_type_and_clock() {
        let mut file = section();
        file.extend(interface(1, false));
        file.extend(interface(113, true));
        file.extend(packet(0, 1_700_000_000_000_001, b"eth"));
        file.extend(packet(1, 1_700_000_000_000_002_000, b"sll"));
        // A second section starts its own interface list.
        file.extend(section());
        file.extend(interface(276, false));
        file.extend(packet(0, 5, b"sll2"));
        let (packets, problems) = read_all(file);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            packets,
            vec![
                (1, 1_700_000_000_000_001, 1, b"eth".to_vec()),
                (2, 1_700_000_000_000_002, 113, b"sll".to_vec()),
                (3, 5, 276, b"sll2".to_vec()),
            ]
        );
    }

    #[test]
    fn packets_keep_nanoseconds_their_interface_and_its_snap_length() {
        let mut file = section();
        file.extend(interface(1, false));
        file.extend(interface(1, true));
        file.extend(packet(1, 1_700_000_000_123_456_789, b"a"));
        file.extend(packet(0, 1_700_000_000_123_456, b"b"));
        // The next section's interface 0 is the file's third.
        file.extend(section());
        file.extend(interface(1, true));
        file.extend(packet(0, 7, b"c"));
        let seen = |file: Vec<u8>| {
            let mut reader = PacketReader::new(Box::new(std::io::Cursor::new(file))).unwrap();
            let (mut seen, mut number) = (Vec::new(), 0);
            reader.for_each(
                &mut number,
                &mut |p| seen.push((p.ts_ns, p.interface, p.snaplen)),
                &mut |p| panic!("{p:?}"),
            );
            seen
        };
        assert_eq!(
            seen(file),
            [
                (1_700_000_000_123_456_789, 1, 65535),
                (1_700_000_000_123_456_000, 0, 65535),
                (7, 2, 65535),
            ]
        );
        assert_eq!(
            seen(classic(false, true, 1)),
            [(1_700_000_000_123_456_789, 0, 65535)]
        );
    }

    #[test]
    fn a_packet_naming_an_interface_its_section_lacks_is_a_problem() {
        let mut file = section();
        file.extend(interface(1, false));
        file.extend(packet(3, 1, b"x"));
        file.extend(packet(0, 2, b"y"));
        let (packets, problems) = read_all(file);
        assert_eq!(packets, vec![(2, 2, 1, b"y".to_vec())]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].packet, 1);
        assert!(problems[0].text.contains("interface 3"), "{problems:?}");
    }
}
