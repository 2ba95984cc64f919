//! The crate's one error type.
//!
//! Protocol *violations* are not errors: they are values ([`crate::Violation`])
//! reported beside what was parsed. An `Error` means the bytes could not be
//! understood at all (an HTTP request that is not HTTP) or that an operation
//! cannot be done (a message larger than the limit, a compressed stream that
//! does not inflate).

use crate::Violation;

/// What went wrong, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame or message breaks RFC 6455 or RFC 7692.
    #[error("protocol violation: {0}")]
    Protocol(Violation),

    /// A message or frame is larger than the configured limit.
    #[error(
        "message of {size} bytes is over the {limit}-byte limit (raise the maximum message size if this is expected)"
    )]
    TooBig { size: u64, limit: u64 },

    /// The bytes are not an HTTP request or response we can read.
    #[error("malformed HTTP: {0}")]
    Http(String),

    /// The handshake is well-formed HTTP but not a valid WebSocket handshake.
    #[error("handshake rejected: {0}")]
    Handshake(String),

    /// The Sec-WebSocket-Extensions header (or one extension's parameters)
    /// cannot be parsed or accepted.
    #[error("bad extension negotiation: {0}")]
    Extension(String),

    /// A permessage-deflate payload did not decompress.
    #[error("permessage-deflate payload does not inflate: {0}")]
    Inflate(String),
}
