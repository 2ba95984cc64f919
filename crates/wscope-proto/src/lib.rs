//! The WebSocket protocol, sans I/O.
//!
//! Everything in this crate takes bytes and returns values (or the other way
//! round); nothing here owns a socket, a clock or a runtime. That is what lets
//! the same code decode a live connection, a packet capture and a fuzzer's
//! input. Reading is lenient — a debugger must show a broken frame, not hide
//! it — and reports what is wrong as [`Violation`]s, each citing the RFC
//! section it breaks. Writing is always correct.
//!
//! - [`frame`]: frame headers, incremental parse ("need N more") and encode.
//! - [`mask`]: XOR masking, a word at a time.
//! - [`message`]: reassembly of fragmented messages, with UTF-8 checked as
//!   the fragments arrive.
//! - [`utf8`]: the incremental UTF-8 validator behind it.
//! - [`close`]: close codes, their names and meanings, close payloads.
//! - [`violation`]: what can be wrong, and where the RFC says so.
//! - [`handshake`]: the opening handshake (RFC 6455 section 4).
//! - [`deflate`]: permessage-deflate (RFC 7692).
//! - [`split`]: one direction cut into whole frames kept as on the wire
//!   (a proxy that holds, drops or rewrites frames).
//! - [`tap`]: one direction of a connection observed as it passes (a
//!   proxy's view): frames, messages, violations, bounded memory.

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod opcode;
pub mod split;
pub mod tap;
pub mod utf8;
pub mod violation;

pub use close::{CloseCode, ClosePayload};
pub use error::Error;
pub use frame::{Decoded, FrameHeader};
pub use opcode::OpCode;
pub use violation::Violation;

/// Which end of a connection a piece of code speaks for. Masking rules and
/// permessage-deflate parameters depend on it (RFC 6455 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}
