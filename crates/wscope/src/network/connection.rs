//! An open WebSocket connection over any byte stream: the async shell around
//! `wscope-proto`'s sans-IO pieces, shared by `serve` and `connect`.
//!
//! Reading streams data frames: payload is unmasked and handed to the
//! message assembler as it arrives, so invalid UTF-8 fails the connection at
//! the first bad byte, not when a large frame completes, and a frame is never
//! buffered twice. Control frames (at most 125 bytes) are read whole.
//!
//! [`Connection::next`] is cancel-safe: everything it has read or still has
//! to write lives in `self`, so it can sit in a `tokio::select!` beside stdin
//! or a shutdown signal. Replies the protocol requires (pong for ping, the
//! close echo) are queued and flushed by the next call, before reading.

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wscope_proto::deflate::{DeflateParams, PerMessageDeflate, Retain};
use wscope_proto::frame::{FrameRules, encode_frame};
use wscope_proto::mask::apply_mask;
use wscope_proto::message::{Assembled, Message, MessageAssembler};
use wscope_proto::{CloseCode, ClosePayload, Decoded, FrameHeader, OpCode, Role, Violation};

use crate::network::read_buffer::ReadBuffer;

/// Write and scratch buffers larger than this are freed once used, so a
/// connection that sent one large message does not keep its size while
/// idle.
const KEEP_AFTER_USE: usize = 1024;

/// How long a read waits before zlib state is parked: zero, so a
/// connection keeps its compressor through a burst of messages that arrive
/// back to back and parks it as soon as it has to wait. A longer delay
/// saves CPU on busy connections (rebuilding and priming a compressor costs
/// about 65 µs a message) but lets every connection active at once hold
/// 370 KiB, which glibc then keeps as RSS after it is freed
/// (`BENCHMARKS.md`, memory per connection).
const PARK_AFTER: Duration = Duration::ZERO;

/// Frees `buf` when it grew past [`KEEP_AFTER_USE`]; call when it is empty.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_AFTER_USE {
        *buf = Vec::new();
    }
}

/// Any byte stream a connection can run over: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Something the peer did.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    Ping(Bytes),
    Pong(Bytes),
    /// The peer's close frame. Our answer is already queued.
    Close(ClosePayload),
    /// The byte stream ended. Without a close frame first, that is 1006.
    Eof,
    /// A whole data frame, as it was on the wire (only with
    /// [`Connection::capture_frames`]): its header and up to the capture
    /// limit of its (unmasked, still compressed) payload. Comes before the
    /// message it completes.
    DataFrame(FrameHeader, Bytes),
}

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol; a close frame with the matching code
    /// has been sent.
    #[error("{0}")]
    Proto(#[from] wscope_proto::Error),
}

struct InFrame {
    header: FrameHeader,
    remaining: u64,
    unmasked: usize,
}

/// The close code a connection is failed with for `err` (RFC 6455 section
/// 7.4.1).
pub fn close_code_for(err: &wscope_proto::Error) -> CloseCode {
    match err {
        wscope_proto::Error::Protocol(violation) => violation.close_code(),
        wscope_proto::Error::TooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
        wscope_proto::Error::Inflate(_) => CloseCode::INVALID_PAYLOAD,
        _ => CloseCode::PROTOCOL_ERROR,
    }
}

/// What the peer did to make us fail the connection with `err`, for
/// "the server ...": a message over our size limit breaks no rule.
pub fn what_the_peer_did(err: &wscope_proto::Error) -> &'static str {
    match err {
        wscope_proto::Error::TooBig { .. } => "sent a message over the size limit",
        _ => "broke the protocol",
    }
}

/// Appends one final frame to the write buffer and counts its bytes.
fn push_frame(
    wbuf: &mut Vec<u8>,
    stats: &mut Stats,
    mask: Option<[u8; 4]>,
    opcode: OpCode,
    compressed: bool,
    payload: &[u8],
) {
    let before = wbuf.len();
    encode_frame(opcode, true, compressed, mask, payload, wbuf);
    stats.bytes_out += (wbuf.len() - before) as u64;
}

/// One side of a WebSocket connection.
pub struct Connection<S> {
    stream: S,
    role: Role,
    rules: FrameRules,
    rbuf: ReadBuffer,
    wbuf: Vec<u8>,
    wpos: usize,
    assembler: MessageAssembler,
    deflate: Option<PerMessageDeflate>,
    frame: Option<InFrame>,
    violations: Vec<Violation>,
    scratch: Vec<u8>,
    close_sent: bool,
    close_received: bool,
    stats: Stats,
    /// Keep this many bytes of each data frame for `DataFrame` reports.
    frame_capture: Option<usize>,
    frame_buf: Vec<u8>,
    /// A message completed by the frame just reported.
    pending: Option<Incoming>,
    /// Answer pings with pongs (RFC 6455 section 5.5.2 says we must; a test
    /// server may be asked not to).
    answer_pings: bool,
    /// How long a read may wait before zlib state is parked.
    park_after: Duration,
}

/// What a [`Connection`] holds, from [`Connection::held`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// permessage-deflate's state, when it was negotiated.
    pub deflate: Option<wscope_proto::deflate::Held>,
    /// The read buffer's allocation.
    pub read_buffer: usize,
    /// The write, scratch and frame-report buffers' allocations.
    pub write_buffers: usize,
}

/// Counts for the end-of-connection report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream whose handshake is done. `leftover` is whatever was read
    /// past the end of the handshake (the first frames may come with it).
    pub fn new(
        stream: S,
        role: Role,
        leftover: &[u8],
        deflate: Option<DeflateParams>,
        max_message: u64,
    ) -> Self {
        let rbuf = ReadBuffer::new(leftover);
        Connection {
            stream,
            role,
            rules: FrameRules {
                sender: role.peer(),
                deflate: deflate.is_some(),
            },
            rbuf,
            wbuf: Vec::new(),
            wpos: 0,
            assembler: MessageAssembler::new(max_message, deflate.is_some()),
            deflate: deflate
                .map(|params| PerMessageDeflate::new(role, params).retaining(Retain::State)),
            frame: None,
            violations: Vec::new(),
            scratch: Vec::new(),
            close_sent: false,
            close_received: false,
            stats: Stats::default(),
            frame_capture: None,
            frame_buf: Vec::new(),
            pending: None,
            answer_pings: true,
            park_after: PARK_AFTER,
        }
    }

    /// Parks zlib state after `quiet` without anything read instead of
    /// [`PARK_AFTER`].
    pub fn park_after(&mut self, quiet: Duration) {
        self.park_after = quiet;
    }

    /// Reports every data frame (`Incoming::DataFrame`), keeping up to
    /// `limit` bytes of each payload.
    pub fn capture_frames(&mut self, limit: usize) {
        self.frame_capture = Some(limit);
    }

    /// Stops answering pings (the peer's keepalive should then time out).
    pub fn answer_pings(&mut self, answer: bool) {
        self.answer_pings = answer;
    }

    /// Whether permessage-deflate was negotiated.
    pub fn compressing(&self) -> bool {
        self.deflate.is_some()
    }

    /// What the connection holds in memory beyond its fixed size: how
    /// tests check that an idle connection stays small.
    pub fn held(&self) -> Held {
        Held {
            deflate: self.deflate.as_ref().map(PerMessageDeflate::held),
            read_buffer: self.rbuf.capacity(),
            write_buffers: self.wbuf.capacity()
                + self.scratch.capacity()
                + self.frame_buf.capacity(),
        }
    }

    /// The underlying stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Message and byte counts so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether we have sent a close frame.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Waits for the next thing the peer does. A protocol violation sends a
    /// close frame with the code the RFC asks for and returns the error.
    pub async fn next(&mut self) -> Result<Incoming, ConnError> {
        if let Some(incoming) = self.pending.take() {
            return Ok(incoming);
        }
        loop {
            self.flush().await?;
            if self.close_received {
                // Nothing after a close frame counts; wait for the end.
                self.rbuf.bytes().clear();
            } else {
                match self.process_buffer() {
                    Ok(Some(incoming)) => return Ok(incoming),
                    Ok(None) => {}
                    Err(err) => return Err(self.fail(err).await),
                }
            }
            // Only between messages: inside one, the inflater's state is
            // the message's (a fresh one cannot go on from the middle).
            let between_messages = !self.assembler.in_message();
            let room = self.rbuf.prepare();
            let read = self.stream.read_buf(self.rbuf.bytes());
            let n = match &mut self.deflate {
                // A read dropped unfinished has read nothing, on TCP and
                // TLS alike, so the timeout loses no bytes.
                Some(deflate) if between_messages && deflate.can_park() => {
                    match tokio::time::timeout(self.park_after, read).await {
                        Ok(n) => n?,
                        Err(_) => {
                            deflate.park();
                            continue;
                        }
                    }
                }
                _ => read.await?,
            };
            self.rbuf.filled(room, n);
            if n == 0 {
                return Ok(Incoming::Eof);
            }
            self.stats.bytes_in += n as u64;
        }
    }

    /// Parses what is buffered, up to the first thing worth reporting.
    fn process_buffer(&mut self) -> Result<Option<Incoming>, wscope_proto::Error> {
        loop {
            if let Some(frame) = &mut self.frame {
                let rbuf = self.rbuf.bytes();
                let take = frame.remaining.min(rbuf.len() as u64) as usize;
                if take == 0 && frame.remaining > 0 {
                    return Ok(None);
                }
                let mut chunk = rbuf.split_to(take);
                if let Some(key) = frame.header.mask {
                    apply_mask(&mut chunk, key, frame.unmasked);
                }
                frame.unmasked += take;
                frame.remaining -= take as u64;
                let done = frame.remaining == 0;
                let header = frame.header;
                if let Some(limit) = self.frame_capture {
                    let room = limit.saturating_sub(self.frame_buf.len());
                    self.frame_buf
                        .extend_from_slice(&chunk[..room.min(chunk.len())]);
                }
                self.assembler.payload(&chunk, self.deflate.as_mut())?;
                if !done {
                    return Ok(None);
                }
                self.frame = None;
                let message = match self.assembler.end_frame(self.deflate.as_mut())? {
                    Assembled::Message(message) => {
                        self.stats.messages_in += 1;
                        Some(Incoming::Message(message))
                    }
                    _ => None,
                };
                if self.frame_capture.is_some() {
                    let payload = Bytes::copy_from_slice(&self.frame_buf);
                    self.frame_buf.clear();
                    shrink(&mut self.frame_buf);
                    self.pending = message;
                    return Ok(Some(Incoming::DataFrame(header, payload)));
                }
                if message.is_some() {
                    return Ok(message);
                }
                continue;
            }
            let rbuf = self.rbuf.bytes();
            let (header, header_len) = match FrameHeader::decode(rbuf) {
                Decoded::Incomplete { .. } => return Ok(None),
                Decoded::Complete { header, header_len } => (header, header_len),
            };
            self.violations.clear();
            header.violations(header_len, self.rules, &mut self.violations);
            if let Some(&violation) = self.violations.first() {
                return Err(wscope_proto::Error::Protocol(violation));
            }
            if header.opcode.is_control() {
                let total = header_len + header.payload_len as usize;
                if rbuf.len() < total {
                    return Ok(None);
                }
                rbuf.advance(header_len);
                let mut payload = rbuf.split_to(header.payload_len as usize);
                if let Some(key) = header.mask {
                    apply_mask(&mut payload, key, 0);
                }
                return self.control(header.opcode, payload.freeze()).map(Some);
            }
            self.assembler.begin_frame(&header)?;
            self.rbuf.bytes().advance(header_len);
            self.frame = Some(InFrame {
                header,
                remaining: header.payload_len,
                unmasked: 0,
            });
        }
    }

    fn control(&mut self, opcode: OpCode, payload: Bytes) -> Result<Incoming, wscope_proto::Error> {
        match opcode {
            OpCode::Ping => {
                if !self.close_sent && self.answer_pings {
                    self.queue_frame(OpCode::Pong, &payload);
                }
                Ok(Incoming::Ping(payload))
            }
            OpCode::Pong => Ok(Incoming::Pong(payload)),
            _ => {
                let (close, violation) = ClosePayload::parse(&payload);
                if let Some(violation) = violation {
                    return Err(wscope_proto::Error::Protocol(violation));
                }
                self.close_received = true;
                if !self.close_sent {
                    // Echo the code, as RFC 6455 section 5.5.1 suggests.
                    self.queue_close(close.code, "");
                }
                Ok(Incoming::Close(close))
            }
        }
    }

    /// Sends a close frame that says why we fail the connection, then hands
    /// the error back.
    async fn fail(&mut self, err: wscope_proto::Error) -> ConnError {
        let code = close_code_for(&err);
        if !self.close_sent {
            let reason = match &err {
                wscope_proto::Error::Protocol(violation) => violation.short(),
                wscope_proto::Error::TooBig { .. } => "message too big",
                _ => "invalid compressed data",
            };
            self.queue_close(Some(code), reason);
        }
        self.close_received = true;
        match self.flush().await {
            Ok(()) => ConnError::Proto(err),
            Err(io) => ConnError::Io(io),
        }
    }

    /// Queues a whole message, compressed when permessage-deflate is on.
    pub fn queue_message(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), ConnError> {
        self.stats.messages_out += 1;
        let mask = self.mask_key();
        match &mut self.deflate {
            Some(deflate) => {
                self.scratch.clear();
                deflate.compress(data, &mut self.scratch)?;
                push_frame(
                    &mut self.wbuf,
                    &mut self.stats,
                    mask,
                    opcode,
                    true,
                    &self.scratch,
                );
                self.scratch.clear();
                shrink(&mut self.scratch);
            }
            None => push_frame(&mut self.wbuf, &mut self.stats, mask, opcode, false, data),
        }
        Ok(())
    }

    /// Queues a message split into `fragments` frames (fewer when it is
    /// shorter than that many bytes). With permessage-deflate the message is
    /// compressed whole and the compressed bytes are split, RSV1 on the first
    /// frame only (RFC 7692 section 6.1).
    pub fn queue_fragmented(
        &mut self,
        opcode: OpCode,
        data: &[u8],
        fragments: u32,
    ) -> Result<(), ConnError> {
        self.stats.messages_out += 1;
        let mask = self.mask_key();
        let compressed = self.deflate.is_some();
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        match &mut self.deflate {
            Some(deflate) => deflate.compress(data, &mut payload)?,
            None => payload.extend_from_slice(data),
        }
        let fragments = (fragments.max(1) as usize).min(payload.len().max(1));
        let size = payload.len().div_ceil(fragments).max(1);
        let mut chunks = payload.chunks(size).peekable();
        let mut first = true;
        if payload.is_empty() {
            encode_frame(opcode, true, compressed, mask, &[], &mut self.wbuf);
        }
        while let Some(chunk) = chunks.next() {
            let before = self.wbuf.len();
            let op = if first { opcode } else { OpCode::Continuation };
            let fin = chunks.peek().is_none();
            let mask = if first { mask } else { self.mask_key() };
            encode_frame(op, fin, compressed && first, mask, chunk, &mut self.wbuf);
            self.stats.bytes_out += (self.wbuf.len() - before) as u64;
            first = false;
        }
        payload.clear();
        shrink(&mut payload);
        self.scratch = payload;
        Ok(())
    }

    /// Queues a frame exactly as described, whatever the rules say: how a
    /// test server breaks the protocol on purpose. The header's length is
    /// taken from `payload`, which is masked when the header has a key.
    pub fn queue_raw_frame(&mut self, header: FrameHeader, payload: &[u8]) {
        let header = FrameHeader {
            payload_len: payload.len() as u64,
            ..header
        };
        let before = self.wbuf.len();
        header.encode(&mut self.wbuf);
        let start = self.wbuf.len();
        self.wbuf.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut self.wbuf[start..], key, 0);
        }
        self.stats.bytes_out += (self.wbuf.len() - before) as u64;
        if header.opcode == OpCode::Close {
            self.close_sent = true;
        }
    }

    /// Queues one uncompressed final frame.
    pub fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask_key();
        push_frame(
            &mut self.wbuf,
            &mut self.stats,
            mask,
            opcode,
            false,
            payload,
        );
    }

    /// Queues a close frame (once: later calls do nothing).
    pub fn queue_close(&mut self, code: Option<CloseCode>, reason: &str) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        self.scratch.clear();
        ClosePayload::encode(code, reason, &mut self.scratch);
        let payload = std::mem::take(&mut self.scratch);
        self.queue_frame(OpCode::Close, &payload);
        self.scratch = payload;
    }

    /// Sends a message now.
    pub async fn send(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), ConnError> {
        self.queue_message(opcode, data)?;
        Ok(self.flush().await?)
    }

    /// Sends a control frame (ping or pong) now.
    pub async fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.queue_frame(opcode, payload);
        self.flush().await
    }

    /// Sends a close frame now.
    pub async fn close(&mut self, code: Option<CloseCode>, reason: &str) -> io::Result<()> {
        self.queue_close(code, reason);
        self.flush().await
    }

    /// Writes everything queued. Cancel-safe: progress is kept in `self`.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            let n = self.stream.write(&self.wbuf[self.wpos..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.wpos += n;
        }
        if self.wpos > 0 {
            self.wbuf.clear();
            shrink(&mut self.wbuf);
            self.wpos = 0;
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Ends the connection after the close handshake (or a failure): the
    /// server closes TCP first (RFC 6455 section 7.1.1); the client waits a
    /// moment for the server to do so. Either way, bytes still arriving are
    /// read and dropped so the kernel does not answer them with a reset.
    pub async fn finish(&mut self, wait: Duration) {
        let _ = self.flush().await;
        if self.role == Role::Server {
            let _ = self.stream.shutdown().await;
        }
        let mut sink = [0u8; 4096];
        let drained = tokio::time::timeout(wait, async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if drained.is_err() || self.role == Role::Client {
            let _ = self.stream.shutdown().await;
        }
    }

    fn mask_key(&self) -> Option<[u8; 4]> {
        // Clients mask every frame with a fresh, unpredictable key
        // (RFC 6455 section 5.3); ThreadRng is a CSPRNG.
        (self.role == Role::Client).then(|| rand::rng().random())
    }
}

/// Limits that keep a connection from eating memory.
#[derive(Debug, clap::Args, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted, in bytes; a bigger one closes with 1009.
    #[arg(long, default_value_t = wscope_proto::message::DEFAULT_MAX_MESSAGE)]
    pub max_message: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::read_buffer::SMALLEST;
    use tokio::io::DuplexStream;
    use wscope_proto::deflate::Held as DeflateHeld;

    fn pair(
        deflate: Option<DeflateParams>,
    ) -> (Connection<DuplexStream>, Connection<DuplexStream>) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        (
            Connection::new(server, Role::Server, b"", deflate, 64 << 20),
            Connection::new(client, Role::Client, b"", deflate, 64 << 20),
        )
    }

    async fn next_message(conn: &mut Connection<DuplexStream>) -> Message {
        let wait = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match conn.next().await.expect("the peer is well-behaved") {
                    Incoming::Message(message) => return message,
                    Incoming::Ping(_) | Incoming::Pong(_) | Incoming::DataFrame(..) => {}
                    other => panic!("expected a message, got {other:?}"),
                }
            }
        });
        wait.await.expect("a message within 10 s")
    }

    async fn next_ping(conn: &mut Connection<DuplexStream>) {
        let incoming = tokio::time::timeout(Duration::from_secs(10), conn.next())
            .await
            .expect("a ping within 10 s")
            .expect("the peer is well-behaved");
        assert!(matches!(incoming, Incoming::Ping(_)), "{incoming:?}");
    }

    #[test]
    fn a_message_over_the_limit_is_not_called_a_protocol_violation() {
        let too_big = wscope_proto::Error::TooBig {
            size: None,
            limit: 10,
        };
        assert_eq!(
            what_the_peer_did(&too_big),
            "sent a message over the size limit"
        );
        assert_eq!(close_code_for(&too_big), CloseCode::MESSAGE_TOO_BIG);
        let broken = wscope_proto::Error::Inflate("bad".into());
        assert_eq!(what_the_peer_did(&broken), "broke the protocol");
    }

    #[tokio::test]
    async fn negotiated_compression_holds_nothing_until_used() {
        let (mut server, mut client) = pair(Some(DeflateParams::default()));
        server.park_after(Duration::ZERO);
        client.send_control(OpCode::Ping, b"hi").await.unwrap();
        next_ping(&mut server).await;
        let held = server.held();
        assert_eq!(held.deflate, Some(DeflateHeld::default()));
        assert!(held.read_buffer <= SMALLEST, "{held:?}");
        assert!(held.write_buffers <= KEEP_AFTER_USE, "{held:?}");

        // A compressed message each way: the server keeps the windows it
        // received and sent, never zlib's state.
        let text = br#"{"type":"update","items":[1,2,3,4,5,6,7,8,9]}"#.repeat(10);
        client.send(OpCode::Text, &text).await.unwrap();
        let message = next_message(&mut server).await;
        assert!(message.compressed);
        server.send(OpCode::Text, &message.data).await.unwrap();
        assert_eq!(next_message(&mut client).await.data, text);
        // Kept while busy, parked once a read has to wait (at once, with
        // a zero delay; the outer timeout only ends the wait, and `next`
        // is cancel-safe).
        assert!(server.held().deflate.is_some_and(|d| d.compressor));
        let waited = tokio::time::timeout(Duration::from_millis(50), server.next()).await;
        assert!(waited.is_err(), "nothing was sent: {waited:?}");
        let deflate = server.held().deflate.expect("negotiated");
        assert_eq!(
            deflate,
            DeflateHeld {
                compressor: false,
                decompressor: false,
                window: text.len(),
                received_window: text.len(),
            }
        );
    }

    #[tokio::test]
    async fn a_wait_inside_a_compressed_message_parks_nothing() {
        // The client resets its context every message, so the server's
        // inflater may be dropped between messages, never inside one.
        let params = DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let (server_end, mut client_end) = tokio::io::duplex(64 * 1024);
        let mut server = Connection::new(server_end, Role::Server, b"", Some(params), 64 << 20);
        server.park_after(Duration::ZERO);
        let mut sender = wscope_proto::deflate::PerMessageDeflate::new(Role::Client, params);
        for text in [
            "a first message, compressed",
            "and a second one, compressed",
        ] {
            let mut packed = Vec::new();
            sender
                .compress(text.repeat(20).as_bytes(), &mut packed)
                .unwrap();
            let (head, tail) = packed.split_at(packed.len() / 2);
            let mut first = Vec::new();
            let mut rest = Vec::new();
            encode_frame(
                OpCode::Text,
                false,
                true,
                Some([1, 2, 3, 4]),
                head,
                &mut first,
            );
            encode_frame(
                OpCode::Continuation,
                true,
                false,
                Some([5, 6, 7, 8]),
                tail,
                &mut rest,
            );
            client_end.write_all(&first).await.unwrap();
            // The server reads the first frame, then has to wait.
            let waited = tokio::time::timeout(Duration::from_millis(50), server.next()).await;
            assert!(waited.is_err(), "half a message: {waited:?}");
            client_end.write_all(&rest).await.unwrap();
            let message = next_message(&mut server).await;
            assert_eq!(message.data, text.repeat(20).as_bytes());
        }
    }

    #[tokio::test]
    async fn buffers_grow_for_a_large_message_and_shrink_after() {
        let (mut server, mut client) = pair(None);
        let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let sending = tokio::spawn(async move {
            client.send(OpCode::Binary, &big).await.unwrap();
            client
        });
        let message = next_message(&mut server).await;
        assert_eq!(message.data.len(), 4 << 20);
        let mut client = sending.await.unwrap();
        // The echo goes out through the write buffer, which is let go after.
        let echo = tokio::spawn(async move {
            let back = next_message(&mut client).await;
            (client, back)
        });
        server.send(OpCode::Binary, &message.data).await.unwrap();
        let (mut client, back) = echo.await.unwrap();
        assert_eq!(back.data.len(), 4 << 20);
        assert!(server.held().write_buffers <= KEEP_AFTER_USE);
        client
            .send_control(OpCode::Ping, b"idle now")
            .await
            .unwrap();
        next_ping(&mut server).await;
        let held = server.held();
        assert!(held.read_buffer <= SMALLEST, "{held:?}");
    }
}
