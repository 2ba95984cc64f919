//! Packets written out as pcapng, as they were captured: what `--write`
//! makes of a live capture or of the captures `read` reads.
//!
//! [`PcapngWriter`] writes into any `io::Write` (no files, no clocks): a
//! Section Header Block first, then, the first time a packet comes from
//! an (input, interface, link type) it has not seen, an Interface
//! Description Block for it (its link type, its snap length, nanosecond
//! timestamps: `if_tsresol` 9), and an Enhanced Packet Block per packet
//! with its captured and original lengths. [`PcapngWriter::write_secrets`]
//! adds a Decryption Secrets Block (a TLS key log), which Wireshark uses to
//! decrypt the packets after it. Blocks are little-endian (the byte-order
//! magic says so; readers accept either) and padded to 32 bits, as the
//! pcapng specification (draft-ietf-opsawg-pcapng) asks.

use std::io::{self, Write};

use crate::packets::Packet;

const SECTION_HEADER: u32 = 0x0A0D_0D0A;
const INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
const ENHANCED_PACKET: u32 = 0x0000_0006;
const DECRYPTION_SECRETS: u32 = 0x0000_000A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Secrets type of a TLS key log in NSS's format ("TLSK").
const TLS_KEY_LOG: u32 = 0x544C_534B;

const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// One interface of the file: where its packets came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Described {
    input: u32,
    interface: u32,
    linktype: i32,
}

/// A pcapng file being written.
pub struct PcapngWriter<W: Write> {
    out: W,
    /// The interfaces described so far; a packet's interface id is its
    /// index here.
    interfaces: Vec<Described>,
    /// Names to give interfaces when they are described.
    names: Vec<((u32, u32), String)>,
    /// The interface of the last packet, which the next one nearly always
    /// shares.
    last: Option<usize>,
    block: Vec<u8>,
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a file: writes its section header, naming `application`
    /// (`shb_userappl`) as its writer.
    pub fn new(out: W, application: &str) -> io::Result<Self> {
        let mut writer = PcapngWriter {
            out,
            interfaces: Vec::new(),
            names: Vec::new(),
            last: None,
            block: Vec::with_capacity(64 * 1024),
        };
        let mut body = Vec::new();
        body.extend(BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend(1u16.to_le_bytes()); // version 1.0
        body.extend(0u16.to_le_bytes());
        body.extend((-1i64).to_le_bytes()); // section length: not known
        option(&mut body, SHB_USERAPPL, application.as_bytes());
        option(&mut body, OPT_END, &[]);
        writer.write_block(SECTION_HEADER, &body)?;
        Ok(writer)
    }

    /// Gives `interface` of `input` a name (`if_name`, e.g. `lo`) for when
    /// it is described; call before its first packet.
    pub fn name_interface(&mut self, input: u32, interface: u32, name: &str) {
        self.names.push(((input, interface), name.to_owned()));
    }

    /// Writes one packet that came from `input` (a file's place among the
    /// inputs; 0 for a live interface), describing its interface first if
    /// it is the first packet from there.
    pub fn packet(&mut self, input: u32, packet: &Packet<'_>) -> io::Result<()> {
        let id = match self.last {
            Some(i) if self.is_interface(i, input, packet) => i,
            _ => match (0..self.interfaces.len()).find(|&i| self.is_interface(i, input, packet)) {
                Some(i) => i,
                None => self.describe(input, packet)?,
            },
        };
        self.last = Some(id);
        let data = packet.data;
        let mut body = std::mem::take(&mut self.block);
        body.clear();
        body.extend((id as u32).to_le_bytes());
        body.extend(((packet.ts_ns >> 32) as u32).to_le_bytes());
        body.extend((packet.ts_ns as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend(packet.orig_len.max(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        let result = self.write_block(ENHANCED_PACKET, &body);
        self.block = body;
        result
    }

    /// Writes a Decryption Secrets Block holding `keylog_text`, a TLS key
    /// log in NSS's format (`CLIENT_RANDOM ...` lines, as SSLKEYLOGFILE
    /// writes them). Wireshark decrypts the TLS sessions of the packets
    /// written after it.
    pub fn write_secrets(&mut self, keylog_text: &[u8]) -> io::Result<()> {
        let len = u32::try_from(keylog_text.len())
            .ok()
            .filter(|len| *len <= u32::MAX - 64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "key log too large"))?;
        let mut body = Vec::with_capacity(keylog_text.len() + 12);
        body.extend(TLS_KEY_LOG.to_le_bytes());
        body.extend(len.to_le_bytes());
        body.extend_from_slice(keylog_text);
        self.write_block(DECRYPTION_SECRETS, &body)
    }

    /// Flushes what is buffered below (a `BufWriter`, a file).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer underneath, flushed.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }

    fn is_interface(&self, i: usize, input: u32, packet: &Packet<'_>) -> bool {
        let d = &self.interfaces[i];
        d.input == input && d.interface == packet.interface && d.linktype == packet.linktype
    }

    /// Writes the Interface Description Block of `packet`'s interface;
    /// returns its id.
    fn describe(&mut self, input: u32, packet: &Packet<'_>) -> io::Result<usize> {
        let mut body = Vec::new();
        // LINKTYPE_ values are 16 bits in an interface description.
        body.extend((packet.linktype as u16).to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(packet.snaplen.to_le_bytes());
        let name = self
            .names
            .iter()
            .find(|(key, _)| *key == (input, packet.interface))
            .map(|(_, name)| name.clone());
        if let Some(name) = name {
            option(&mut body, IF_NAME, name.as_bytes());
        }
        // Timestamps in units of 10^-9 s.
        option(&mut body, IF_TSRESOL, &[9]);
        option(&mut body, OPT_END, &[]);
        self.write_block(INTERFACE_DESCRIPTION, &body)?;
        self.interfaces.push(Described {
            input,
            interface: packet.interface,
            linktype: packet.linktype,
        });
        Ok(self.interfaces.len() - 1)
    }

    /// One block: type, total length, `body` padded to 32 bits, total
    /// length again.
    fn write_block(&mut self, kind: u32, body: &[u8]) -> io::Result<()> {
        let padding = (4 - body.len() % 4) % 4;
        let total = u32::try_from(12 + body.len() + padding)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "block too large"))?;
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&kind.to_le_bytes());
        head[4..].copy_from_slice(&total.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(body)?;
        self.out.write_all(&[0u8; 3][..padding])?;
        self.out.write_all(&total.to_le_bytes())
    }
}

/// Appends one option (code, length, value padded to 32 bits).
fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend(code.to_le_bytes());
    body.extend((value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    body.resize(body.len() + (4 - value.len() % 4) % 4, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::PacketReader;

    fn packet(interface: u32, linktype: i32, ts_ns: u64, data: &[u8]) -> Packet<'_> {
        Packet {
            number: 0,
            ts_ns,
            linktype,
            data,
            orig_len: data.len() as u32 + 7,
            interface,
            snaplen: 262_144,
        }
    }

    /// Every packet of `file`: (µs, ns, link type, data, original length).
    fn read_back(file: Vec<u8>) -> Vec<(u64, u64, i32, Vec<u8>, u32)> {
        let mut reader = PacketReader::new(Box::new(std::io::Cursor::new(file))).unwrap();
        let (mut packets, mut number) = (Vec::new(), 0);
        reader.for_each(
            &mut number,
            &mut |p| {
                packets.push((p.ts_us(), p.ts_ns, p.linktype, p.data.to_vec(), p.orig_len));
            },
            &mut |problem| panic!("{problem:?}"),
        );
        packets
    }

    /// The blocks of a little-endian pcapng file: (type, body).
    fn blocks(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < file.len() {
            let kind = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0, "blocks are padded to 32 bits");
            let trailer = u32::from_le_bytes(file[at + len - 4..at + len].try_into().unwrap());
            assert_eq!(trailer as usize, len, "the length is repeated at the end");
            out.push((kind, file[at + 8..at + len - 4].to_vec()));
            at += len;
        }
        out
    }

    #[test]
    fn packets_read_back_as_written_with_nanoseconds() {
        let mut writer = PcapngWriter::new(Vec::new(), "wscope test").unwrap();
        let ts = 1_700_000_000_123_456_789;
        writer.packet(0, &packet(0, 1, ts, b"first")).unwrap();
        writer.packet(0, &packet(0, 1, ts + 1, b"second!")).unwrap();
        writer.packet(0, &packet(0, 101, ts + 2, b"raw")).unwrap();
        let file = writer.into_inner().unwrap();
        assert_eq!(
            read_back(file),
            vec![
                (ts / 1000, ts, 1, b"first".to_vec(), 12),
                (ts / 1000, ts + 1, 1, b"second!".to_vec(), 14),
                (ts / 1000, ts + 2, 101, b"raw".to_vec(), 10),
            ]
        );
    }

    #[test]
    fn one_interface_per_input_interface_and_link_type() {
        let mut writer = PcapngWriter::new(Vec::new(), "wscope test").unwrap();
        writer.name_interface(0, 0, "lo");
        for (input, interface, linktype) in
            [(0, 0, 1), (1, 0, 1), (0, 0, 1), (1, 2, 1), (1, 2, 113)]
        {
            writer
                .packet(input, &packet(interface, linktype, 5, b"x"))
                .unwrap();
        }
        let file = writer.into_inner().unwrap();
        let blocks = blocks(&file);
        let kinds: Vec<u32> = blocks.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, [SECTION_HEADER, 1, 6, 1, 6, 6, 1, 6, 1, 6]);
        let packet_interfaces: Vec<u32> = blocks
            .iter()
            .filter(|(kind, _)| *kind == ENHANCED_PACKET)
            .map(|(_, body)| u32::from_le_bytes(body[..4].try_into().unwrap()))
            .collect();
        assert_eq!(packet_interfaces, [0, 1, 0, 2, 3]);
        // The first interface: Ethernet, its snap length, its name, ns.
        let first = &blocks[1].1;
        assert_eq!(&first[..8], &[1, 0, 0, 0, 0, 0, 4, 0]);
        assert_eq!(&first[8..16], b"\x02\x00\x02\x00lo\x00\x00");
        assert_eq!(&first[16..24], &[9, 0, 1, 0, 9, 0, 0, 0]);
        let last_interface = &blocks[8].1;
        assert_eq!(&last_interface[..2], &113u16.to_le_bytes());
        let linktypes: Vec<i32> = read_back(file).iter().map(|p| p.2).collect();
        assert_eq!(linktypes, [1, 1, 1, 1, 113]);
    }

    #[test]
    fn a_secrets_block_holds_the_key_log_padded() {
        let mut writer = PcapngWriter::new(Vec::new(), "wscope test").unwrap();
        let keylog = b"CLIENT_RANDOM 00 11\n";
        writer.write_secrets(keylog).unwrap();
        writer.packet(0, &packet(0, 1, 5, b"x")).unwrap();
        let file = writer.into_inner().unwrap();
        let blocks = blocks(&file);
        let (kind, body) = &blocks[1];
        assert_eq!(*kind, DECRYPTION_SECRETS);
        assert_eq!(&body[..4], b"KSLT", "TLSK, little-endian");
        assert_eq!(body[4..8], (keylog.len() as u32).to_le_bytes());
        assert_eq!(&body[8..8 + keylog.len()], keylog);
        assert_eq!(body.len(), 8 + keylog.len().div_ceil(4) * 4);
        // Readers step over it to the packet.
        assert_eq!(read_back(file).len(), 1);
    }
}
