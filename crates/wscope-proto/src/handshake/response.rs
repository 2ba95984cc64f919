//! The server's opening handshake: build it (server side), parse it and
//! check it against what was asked (client side). RFC 6455 sections 4.1
//! and 4.2.2.

use super::{
    Extension, Headers, MAX_HEAD_LEN, MAX_HEADERS, Parsed, accept_key, has_token, header,
    http_error, own_headers, parse_extensions,
};
use crate::Error;

/// An HTTP response head, as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The minor version: 1 for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
}

/// What a successful upgrade negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    pub protocol: Option<String>,
    /// The extensions the server accepted, for the caller to check against
    /// its offers (see [`crate::deflate::client_accept`]).
    pub extensions: Vec<Extension>,
}

impl Response {
    /// Parses a response head from the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Parsed<Response>, Error> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut raw);
        match res.parse(buf).map_err(http_error)? {
            httparse::Status::Partial if buf.len() > MAX_HEAD_LEN => Err(Error::Http(format!(
                "response head is over {} KiB without an end",
                MAX_HEAD_LEN / 1024
            ))),
            httparse::Status::Partial => Ok(Parsed::Incomplete),
            httparse::Status::Complete(len) => Ok(Parsed::Complete(
                Response {
                    version: res.version.unwrap_or(1),
                    status: res.code.unwrap_or_default(),
                    reason: res.reason.unwrap_or_default().to_owned(),
                    headers: own_headers(res.headers),
                },
                len,
            )),
        }
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Checks that this response completes the upgrade we asked for with
    /// `key`, offering `protocols` (section 4.1, the client's checks).
    pub fn validate_upgrade(&self, key: &str, protocols: &[String]) -> Result<Upgraded, Error> {
        if self.status != 101 {
            return Err(Error::Handshake(format!(
                "server answered {} {} instead of 101 Switching Protocols",
                self.status, self.reason
            )));
        }
        if !has_token(&self.headers, "Upgrade", "websocket") {
            return Err(Error::Handshake(
                "101 response without Upgrade: websocket".into(),
            ));
        }
        if !has_token(&self.headers, "Connection", "upgrade") {
            return Err(Error::Handshake(
                "101 response without Connection: Upgrade".into(),
            ));
        }
        let expected = accept_key(key);
        match self.header("Sec-WebSocket-Accept").map(str::trim) {
            Some(accept) if accept == expected => {}
            Some(accept) => {
                return Err(Error::Handshake(format!(
                    "Sec-WebSocket-Accept is {accept:?} but should be {expected:?}: something between you and the server answered for it, or it ignores the key"
                )));
            }
            None => {
                return Err(Error::Handshake(
                    "101 response without Sec-WebSocket-Accept".into(),
                ));
            }
        }
        let protocol = self
            .header("Sec-WebSocket-Protocol")
            .map(|p| p.trim().to_owned());
        if let Some(chosen) = &protocol
            && !protocols.iter().any(|p| p == chosen)
        {
            return Err(Error::Handshake(format!(
                "server selected subprotocol {chosen:?}, which was not offered"
            )));
        }
        let mut extensions = Vec::new();
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") {
                extensions.extend(parse_extensions(value)?);
            }
        }
        Ok(Upgraded {
            protocol,
            extensions,
        })
    }
}

/// A server's answer to an upgrade request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl ServerResponse {
    /// `101 Switching Protocols` for a request that sent `key`.
    pub fn accept(key: &str, protocol: Option<&str>, extensions: Option<&str>) -> Self {
        let mut headers: Headers = vec![
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
            ("Sec-WebSocket-Accept".into(), accept_key(key)),
        ];
        if let Some(protocol) = protocol {
            headers.push(("Sec-WebSocket-Protocol".into(), protocol.into()));
        }
        if let Some(extensions) = extensions {
            headers.push(("Sec-WebSocket-Extensions".into(), extensions.into()));
        }
        ServerResponse {
            status: 101,
            reason: "Switching Protocols".into(),
            headers,
            body: Vec::new(),
        }
    }

    /// A refusal with a plain-text body explaining it.
    pub fn reject(status: u16, body: &str, headers: Headers) -> Self {
        let mut headers = headers;
        headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        headers.push(("Connection".into(), "close".into()));
        ServerResponse {
            status,
            reason: reason_phrase(status).into(),
            headers,
            body: format!("{body}\n").into_bytes(),
        }
    }

    /// Appends the head (with Content-Length when there is a body) and body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.status != 101 {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.body);
    }
}

/// The standard reason phrase for the statuses a WebSocket server uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Response {
        match Response::parse(bytes).unwrap() {
            Parsed::Complete(res, _) => res,
            Parsed::Incomplete => panic!("complete response expected"),
        }
    }

    #[test]
    fn accept_round_trip() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut buf = Vec::new();
        ServerResponse::accept(key, Some("chat"), Some("permessage-deflate")).encode(&mut buf);
        let res = parse(&buf);
        assert_eq!(
            res.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        let up = res.validate_upgrade(key, &["chat".into()]).unwrap();
        assert_eq!(up.protocol.as_deref(), Some("chat"));
        assert_eq!(up.extensions.len(), 1);
    }

    #[test]
    fn client_checks_fail_with_reasons() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut buf = Vec::new();
        ServerResponse::reject(403, "origin not allowed", vec![]).encode(&mut buf);
        let err = parse(&buf)
            .validate_upgrade(key, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("403"), "{err}");
        let wrong_accept = parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n");
        assert!(
            wrong_accept
                .validate_upgrade(key, &[])
                .unwrap_err()
                .to_string()
                .contains("Accept")
        );
        let mut buf = Vec::new();
        ServerResponse::accept(key, Some("other"), None).encode(&mut buf);
        assert!(parse(&buf).validate_upgrade(key, &["chat".into()]).is_err());
    }
}
