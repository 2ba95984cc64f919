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
        "message of {} is over the {limit}-byte limit (raise the maximum message size if this is expected)",
        size_words(*.size, *.limit)
    )]
    TooBig {
        /// The message's size when it is known (frame headers say it);
        /// `None` when only "more than `limit`" is: inflation stops one
        /// byte past the limit, never learning the whole size.
        size: Option<u64>,
        limit: u64,
    },

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

/// "N bytes", or "more than LIMIT bytes" when the size is not known.
fn size_words(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(size) => format!("{size} bytes"),
        None => format!("more than {limit} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_big_says_what_is_known_of_the_size() {
        let known = Error::TooBig {
            size: Some(12),
            limit: 10,
        };
        assert_eq!(
            known.to_string(),
            "message of 12 bytes is over the 10-byte limit (raise the maximum message size if this is expected)"
        );
        let unknown = Error::TooBig {
            size: None,
            limit: 10,
        };
        assert_eq!(
            unknown.to_string(),
            "message of more than 10 bytes is over the 10-byte limit (raise the maximum message size if this is expected)"
        );
    }
}
