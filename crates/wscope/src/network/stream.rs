//! A connection's byte stream: plain TCP, or TLS over TCP as the server or
//! as the client, with the TCP socket reachable for what only it can do (an
//! abortive close).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum NetStream {
    Plain(TcpStream),
    /// We are the TLS server (serve, the proxy's listener).
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// We are the TLS client (the proxy's upstream).
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// We are the TLS server inside a CONNECT tunnel (interception).
    Intercepted(Box<tokio_rustls::server::TlsStream<Replay>>),
}

impl NetStream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            NetStream::Plain(tcp) => tcp,
            NetStream::TlsServer(tls) => tls.get_ref().0,
            NetStream::TlsClient(tls) => tls.get_ref().0,
            NetStream::Intercepted(tls) => &tls.get_ref().0.tcp,
        }
    }

    /// Makes the coming close an abortive one: the kernel sends RST, not
    /// FIN, so the peer's read fails with "connection reset".
    pub fn reset_on_close(&self) -> io::Result<()> {
        self.tcp().set_zero_linger()
    }
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            NetStream::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            NetStream::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            NetStream::Intercepted(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            NetStream::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            NetStream::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            NetStream::Intercepted(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    // Passed through, so a relay's several pieces go out in one call
    // (without this the default writes only the first).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            NetStream::TlsServer(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            NetStream::TlsClient(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            NetStream::Intercepted(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            NetStream::Plain(s) => s.is_write_vectored(),
            NetStream::TlsServer(s) => s.is_write_vectored(),
            NetStream::TlsClient(s) => s.is_write_vectored(),
            NetStream::Intercepted(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_flush(cx),
            NetStream::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            NetStream::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            NetStream::Intercepted(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NetStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            NetStream::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            NetStream::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            NetStream::Intercepted(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A TCP stream whose first bytes were already read (to peek at the TLS
/// client hello) and are given back first.
pub struct Replay {
    first: std::collections::VecDeque<u8>,
    tcp: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.first.is_empty() {
            let n = buf.remaining().min(self.first.len());
            let bytes: Vec<u8> = self.first.drain(..n).collect();
            buf.put_slice(&bytes);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Replay {
    pub fn new(first: Vec<u8>, tcp: TcpStream) -> Self {
        Replay {
            first: first.into(),
            tcp,
        }
    }
}
