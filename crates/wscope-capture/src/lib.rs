//! Packet captures read as wscope events.
//!
//! A capture (pcap or pcapng, from a file, stdin, several files in order)
//! goes through the layers a packet went through, in reverse:
//!
//! - [`input`]: decompression (gzip, zstd) and recognising the format by
//!   its first bytes;
//! - [`packets`]: blocks to packets with timestamps (pcap-parser);
//! - [`link`]: Ethernet/VLAN, Linux cooked, raw IP, loopback → IP;
//! - [`ip`]: IP and TCP headers (etherparse), fragments put back together;
//! - [`tcp`]: each direction of each connection reassembled, gaps named;
//! - [`conn`]: what a connection carries: an HTTP upgrade and then
//!   WebSocket frames (the protocol crate's `Tap`, as in the proxy), TLS
//!   (named by its SNI), HTTP/2, or nothing of interest; a stream joined
//!   in the middle is resynchronised on frame boundaries ([`resync`]);
//! - [`decoder`]: the connection table and the event stream out of it;
//! - [`capture`]: packets from files or a live interface in, events out in
//!   time order, the packets written again as pcapng ([`pcapng`]) when
//!   asked.
//!
//! Everything is sans I/O except [`input`] (the binary captures live
//! packets itself and hands them in), and memory is bounded per
//! connection, so a capture of any size streams through.

pub mod capture;
pub mod conn;
pub mod decoder;
pub mod http2;
pub mod input;
pub mod ip;
pub mod keylog;
pub mod link;
pub mod packets;
pub mod pcapng;
pub mod reader;
pub mod resync;
pub mod tcp;
pub mod tls;
pub mod tls_crypto;
pub mod tls_session;

pub use capture::{Capture, PacketWriter};
pub use decoder::{Decoder, Options, Summary};
pub use input::{Format, Input};
pub use packets::{Packet, PacketReader, Problem};
pub use pcapng::PcapngWriter;
pub use reader::{CaptureReader, FileProblem};
