//! Reading HTTP/1.1 heads off a stream, for the servers (serve, proxy): the
//! head is parsed by `wscope-proto`; whatever was read past it stays in the
//! buffer for the caller (the first frames, or a body).

use tokio::io::{AsyncRead, AsyncReadExt};
use wscope_events::Head;
use wscope_proto::handshake::{Parsed, Request, Response};

/// Reads until a whole request head is in `buf`. `None` when the peer went
/// away first.
pub async fn read_request(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<Option<(Request, usize)>, wscope_proto::Error> {
    loop {
        if let Parsed::Complete(request, len) = Request::parse(buf)? {
            return Ok(Some((request, len)));
        }
        if !read_more(stream, buf).await {
            return Ok(None);
        }
    }
}

/// Reads until a whole response head is in `buf`. `None` when the peer
/// went away first.
pub async fn read_response(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Result<Option<(Response, usize)>, wscope_proto::Error> {
    loop {
        if let Parsed::Complete(response, len) = Response::parse(buf)? {
            return Ok(Some((response, len)));
        }
        if !read_more(stream, buf).await {
            return Ok(None);
        }
    }
}

async fn read_more(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A parsed request head as an event shows it.
pub fn request_head(request: &Request) -> Head {
    Head {
        line: format!(
            "{} {} HTTP/1.{}",
            request.method, request.target, request.version
        ),
        headers: request.headers.clone(),
    }
}

/// Encodes a request head: `METHOD TARGET HTTP/1.1` and the headers in the
/// order given.
pub fn encode_request(method: &str, target: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
