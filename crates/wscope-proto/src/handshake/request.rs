//! The client's opening handshake: parse it (server side), check it, and
//! build it (client side). RFC 6455 sections 4.1 and 4.2.1.

use super::{
    Extension, Headers, MAX_HEAD_LEN, MAX_HEADERS, Parsed, has_token, header, header_tokens,
    http_error, own_headers, parse_extensions,
};
use crate::Error;

/// An HTTP request head, as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target: a path and query, or an absolute URI (proxies).
    pub target: String,
    /// The minor version: 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Headers,
}

/// What a valid upgrade request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub key: String,
    /// Sec-WebSocket-Protocol, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Sec-WebSocket-Extensions offers, in order.
    pub extensions: Vec<Extension>,
    pub origin: Option<String>,
}

/// Why a server refuses an upgrade: the status to answer with, a reason a
/// person can read, and headers the answer must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
}

impl Rejection {
    fn bad_request(reason: impl Into<String>) -> Self {
        Rejection {
            status: 400,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
}

impl Request {
    /// Parses a request head from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Parsed<Request>, Error> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut raw);
        match req.parse(buf).map_err(http_error)? {
            httparse::Status::Partial if buf.len() > MAX_HEAD_LEN => Err(Error::Http(format!(
                "request head is over {} KiB without an end",
                MAX_HEAD_LEN / 1024
            ))),
            httparse::Status::Partial => Ok(Parsed::Incomplete),
            httparse::Status::Complete(len) => Ok(Parsed::Complete(
                Request {
                    method: req.method.unwrap_or_default().to_owned(),
                    target: req.path.unwrap_or_default().to_owned(),
                    version: req.version.unwrap_or(1),
                    headers: own_headers(req.headers),
                },
                len,
            )),
        }
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Checks that this is a WebSocket upgrade a server can accept (section
    /// 4.2.1), or says why not and with which status.
    pub fn validate_upgrade(&self) -> Result<UpgradeRequest, Rejection> {
        if self.method != "GET" {
            return Err(Rejection {
                status: 405,
                reason: format!(
                    "method {} cannot upgrade; a WebSocket handshake is a GET",
                    self.method
                ),
                headers: vec![("Allow".into(), "GET".into())],
            });
        }
        if self.version < 1 {
            return Err(Rejection::bad_request(
                "HTTP/1.0 cannot upgrade; a WebSocket handshake needs HTTP/1.1",
            ));
        }
        if !has_token(&self.headers, "Upgrade", "websocket") {
            let reason = match self.header("Upgrade") {
                None => "no Upgrade header: this is a plain HTTP request, or a proxy on the way removed Upgrade".to_owned(),
                Some(other) => format!("Upgrade is {other:?}, not websocket"),
            };
            return Err(Rejection {
                status: 426,
                reason,
                headers: vec![
                    ("Upgrade".into(), "websocket".into()),
                    ("Connection".into(), "Upgrade".into()),
                    ("Sec-WebSocket-Version".into(), "13".into()),
                ],
            });
        }
        if !has_token(&self.headers, "Connection", "upgrade") {
            return Err(Rejection::bad_request(
                "Connection header does not contain Upgrade (a proxy may have rewritten it)",
            ));
        }
        match self.header("Sec-WebSocket-Version").map(str::trim) {
            Some("13") => {}
            other => {
                return Err(Rejection {
                    status: 426,
                    reason: match other {
                        None => "no Sec-WebSocket-Version header".to_owned(),
                        Some(v) => format!("Sec-WebSocket-Version {v} is not supported; only 13"),
                    },
                    headers: vec![("Sec-WebSocket-Version".into(), "13".into())],
                });
            }
        }
        let key = self
            .header("Sec-WebSocket-Key")
            .map(str::trim)
            .ok_or_else(|| Rejection::bad_request("no Sec-WebSocket-Key header"))?;
        if !is_valid_key(key) {
            return Err(Rejection::bad_request(format!(
                "Sec-WebSocket-Key {key:?} is not 16 bytes in base64"
            )));
        }
        let mut extensions = Vec::new();
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") {
                extensions.extend(
                    parse_extensions(value).map_err(|e| Rejection::bad_request(e.to_string()))?,
                );
            }
        }
        Ok(UpgradeRequest {
            key: key.to_owned(),
            protocols: header_tokens(&self.headers, "Sec-WebSocket-Protocol")
                .map(str::to_owned)
                .collect(),
            extensions,
            origin: self.header("Origin").map(str::to_owned),
        })
    }
}

fn is_valid_key(key: &str) -> bool {
    use base64::Engine;
    matches!(
        base64::engine::general_purpose::STANDARD.decode(key),
        Ok(bytes) if bytes.len() == 16
    )
}

/// A client's upgrade request, ready to be written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRequest {
    /// The Host header: `host` or `host:port`.
    pub host: String,
    /// Path and query, starting with `/`.
    pub target: String,
    /// From [`super::generate_key`].
    pub key: String,
    pub protocols: Vec<String>,
    pub extensions: Vec<Extension>,
    pub origin: Option<String>,
    /// Extra headers, written after the required ones, in order.
    pub headers: Headers,
}

impl ClientRequest {
    /// Appends the request head.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut head = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.target, self.host, self.key
        );
        if let Some(origin) = &self.origin {
            head.push_str(&format!("Origin: {origin}\r\n"));
        }
        if !self.protocols.is_empty() {
            head.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                self.protocols.join(", ")
            ));
        }
        if !self.extensions.is_empty() {
            let offers: Vec<String> = self.extensions.iter().map(ToString::to_string).collect();
            head.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                offers.join(", ")
            ));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(bytes: &[u8]) -> Request {
        match Request::parse(bytes).unwrap() {
            Parsed::Complete(req, len) => {
                assert_eq!(len, bytes.len());
                req
            }
            Parsed::Incomplete => panic!("complete request expected"),
        }
    }

    #[test]
    fn rfc_request_is_valid() {
        let up = parse(RFC_REQUEST).validate_upgrade().unwrap();
        assert_eq!(up.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(up.protocols, ["chat", "superchat"]);
        assert_eq!(up.origin.as_deref(), Some("http://example.com"));
    }

    #[test]
    fn incomplete_until_blank_line() {
        for cut in 0..RFC_REQUEST.len() {
            assert_eq!(
                Request::parse(&RFC_REQUEST[..cut]).unwrap(),
                Parsed::Incomplete
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Request::parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").is_err());
        assert!(Request::parse(&vec![b'a'; MAX_HEAD_LEN + 1]).is_err());
    }

    #[test]
    fn rejections_explain_themselves() {
        let no_upgrade = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .validate_upgrade()
            .unwrap_err();
        assert_eq!(no_upgrade.status, 426);
        assert!(no_upgrade.reason.contains("Upgrade"));
        let bad_version = parse(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n")
            .validate_upgrade()
            .unwrap_err();
        assert_eq!(bad_version.status, 426);
        let bad_key = parse(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n")
            .validate_upgrade()
            .unwrap_err();
        assert_eq!(bad_key.status, 400);
        let post = parse(b"POST / HTTP/1.1\r\n\r\n")
            .validate_upgrade()
            .unwrap_err();
        assert_eq!(post.status, 405);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(Parsed::Complete(request, len)) = Request::parse(&bytes) {
                proptest::prop_assert!(len <= bytes.len());
                let _ = request.validate_upgrade();
            }
            if let Ok(Parsed::Complete(response, _)) = super::super::Response::parse(&bytes) {
                let _ = response.validate_upgrade("dGhlIHNhbXBsZSBub25jZQ==", &[]);
            }
        }

        #[test]
        fn never_panics_on_header_like_text(lines in proptest::collection::vec("[ -~]{0,40}", 0..8)) {
            let text = format!("GET / HTTP/1.1\r\n{}\r\n\r\n", lines.join("\r\n"));
            if let Ok(Parsed::Complete(request, _)) = Request::parse(text.as_bytes()) {
                let _ = request.validate_upgrade();
            }
            for line in &lines {
                let _ = parse_extensions(line);
            }
        }
    }

    #[test]
    fn built_request_parses_and_validates() {
        let request = ClientRequest {
            host: "127.0.0.1:9001".into(),
            target: "/echo?x=1".into(),
            key: super::super::generate_key([7; 16]),
            protocols: vec!["chat".into()],
            extensions: parse_extensions("permessage-deflate; client_max_window_bits").unwrap(),
            origin: Some("http://localhost".into()),
            headers: vec![("X-Test".into(), "1".into())],
        };
        let mut buf = Vec::new();
        request.encode(&mut buf);
        let req = parse(&buf);
        assert_eq!(req.target, "/echo?x=1");
        let up = req.validate_upgrade().unwrap();
        assert_eq!(up.key, request.key);
        assert_eq!(up.extensions, request.extensions);
        assert_eq!(req.header("x-test"), Some("1"));
    }
}
