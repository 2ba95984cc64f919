//! The opening handshake (RFC 6455 section 4): HTTP/1.1 Upgrade requests and
//! responses, built and parsed with `httparse`, checked field by field.
//!
//! Parsing is incremental like frames: `parse` answers
//! [`Parsed::Incomplete`] until the blank line that ends the head has
//! arrived. Headers are kept in wire order with their original spelling,
//! because a debugger shows what was sent. Validation returns the reason a
//! handshake fails, in words and with the HTTP status a server should answer
//! with, so `serve` can explain a refusal and `connect` can diagnose one.

pub mod extension;
pub mod request;
pub mod response;
pub mod status;

pub use extension::{Extension, ExtensionParam, extensions_in, parse_extensions};
pub use request::{ClientRequest, Rejection, Request, UpgradeRequest};
pub use response::{Response, ServerResponse, Upgraded, reason_phrase};

use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID that RFC 6455 section 1.3 appends to the key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest request or response head we read: 64 KiB.
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// The most headers we read in one head.
const MAX_HEADERS: usize = 128;

/// Headers in wire order, as (name, value) with the name's original case.
pub type Headers = Vec<(String, String)>;

/// The result of parsing a request or response head from what has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is not complete yet.
    Incomplete,
    /// The head, and how many bytes it took (the rest belongs to frames).
    Complete(T, usize),
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (section 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A `Sec-WebSocket-Key` from 16 random bytes (the caller supplies them:
/// this crate has no source of randomness).
pub fn generate_key(random: [u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(random)
}

/// The first header called `name` (ASCII case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of the headers called `name`, split on commas and trimmed:
/// the list syntax of RFC 7230 section 7, which may also span several lines.
pub fn header_tokens<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether the list header `name` contains `token` (case-insensitive).
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// Copies httparse's borrowed headers into owned, ordered pairs. Values that
/// are not UTF-8 are kept lossily: a debugger shows them, a validator
/// rejects them where it matters.
fn own_headers(raw: &[httparse::Header<'_>]) -> Headers {
    raw.iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Maps an httparse error to a sentence.
fn http_error(err: httparse::Error) -> crate::Error {
    let what = match err {
        httparse::Error::HeaderName => "invalid character in a header name",
        httparse::Error::HeaderValue => "invalid character in a header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status code",
        httparse::Error::Token => "invalid method or token",
        httparse::Error::TooManyHeaders => "too many headers (more than 128)",
        httparse::Error::Version => "not HTTP/1.x",
    };
    crate::Error::Http(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn tokens_span_lines_and_commas() {
        let headers = vec![
            ("Connection".to_owned(), "keep-alive, Upgrade".to_owned()),
            ("connection".to_owned(), "close".to_owned()),
        ];
        assert!(has_token(&headers, "CONNECTION", "upgrade"));
        assert!(has_token(&headers, "connection", "close"));
        assert!(!has_token(&headers, "connection", "websocket"));
    }
}
