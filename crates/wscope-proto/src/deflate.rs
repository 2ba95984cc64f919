//! permessage-deflate (RFC 7692): negotiation and the per-connection
//! compressor and decompressor.
//!
//! Each message is compressed with a sync flush and sent without the
//! trailing `00 00 ff ff` (section 7.2.1); the receiver puts it back before
//! inflating the last fragment (section 7.2.2). Unless "no context takeover"
//! was agreed for a direction, the LZ77 window carries over from one message
//! to the next.
//!
//! Memory: zlib state is allocated on the first compressed message, not at
//! the handshake, because most connections that negotiate the extension are
//! idle most of the time and many never compress anything. Between
//! messages [`Retain`] says what stays: by default only what the context
//! needs, the last window of plaintext sent and the last window received,
//! from which a fresh compressor and a fresh decompressor are primed as
//! preset dictionaries, so an idle connection keeps neither a 370 KiB
//! compressor nor a 43 KiB decompressor.
//!
//! Window sizes: zlib cannot write raw deflate with an 8-bit window, so an
//! offer that asks *us* to compress within 256 bytes is declined (server)
//! or refused (client) rather than silently broken. Inflating always uses a
//! 15-bit window, which decodes any smaller one.
//!
//! Inflation is bounded: output never grows more than one byte past the
//! caller's limit (the byte that shows the message is over it), so a deflate
//! bomb ends in [`Error::TooBig`] instead of eating memory.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::handshake::Extension;
use crate::{Error, Role};

/// The extension's registered name.
pub const NAME: &str = "permessage-deflate";

/// The tail a sync flush ends with, removed on the wire (section 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Parameters agreed for one connection (section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window (base-2 log, 8..=15).
    pub server_max_window_bits: u8,
    /// The client compresses with at most this window.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl DeflateParams {
    /// The Sec-WebSocket-Extensions value a server answers with.
    pub fn response_header(&self) -> String {
        let mut ext = Extension::new(NAME);
        if self.server_no_context_takeover {
            ext = ext.with_param("server_no_context_takeover", None);
        }
        if self.client_no_context_takeover {
            ext = ext.with_param("client_no_context_takeover", None);
        }
        if self.server_max_window_bits < 15 {
            ext = ext.with_param(
                "server_max_window_bits",
                Some(&self.server_max_window_bits.to_string()),
            );
        }
        if self.client_max_window_bits < 15 {
            ext = ext.with_param(
                "client_max_window_bits",
                Some(&self.client_max_window_bits.to_string()),
            );
        }
        ext.to_string()
    }
}

/// What a client offers, in order of preference: first
/// `permessage-deflate; client_max_window_bits`, as browsers send it (the
/// server may limit our window); then the same with
/// `client_no_context_takeover`, for servers that only accept clients that
/// reset their compressor after each message. A server picks one offer, so
/// the second costs nothing when the first is taken.
pub fn client_offers() -> Vec<Extension> {
    let preferred = Extension::new(NAME).with_param("client_max_window_bits", None);
    let fallback = Extension::new(NAME)
        .with_param("client_no_context_takeover", None)
        .with_param("client_max_window_bits", None);
    vec![preferred, fallback]
}

/// The parameters one offer or response carries, checked for syntax.
#[derive(Default)]
struct Seen {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (only valid in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

fn read_params(ext: &Extension) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let mut names: Vec<&str> = Vec::new();
    for param in &ext.params {
        let name = param.name.to_ascii_lowercase();
        if names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            return Err(format!("parameter {name} appears twice"));
        }
        names.push(&param.name);
        let bits = |value: &Option<String>| -> Result<Option<u8>, String> {
            match value {
                None => Ok(None),
                Some(v) => match v.parse::<u8>() {
                    Ok(bits @ 8..=15) if !v.starts_with('0') => Ok(Some(bits)),
                    _ => Err(format!("{name}={v} is not a window size from 8 to 15")),
                },
            }
        };
        match name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => {
                if param.value.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                if name.starts_with("server") {
                    seen.server_no_context_takeover = true;
                } else {
                    seen.client_no_context_takeover = true;
                }
            }
            "server_max_window_bits" => {
                seen.server_max_window_bits =
                    Some(bits(&param.value)?.ok_or("server_max_window_bits needs a value")?);
            }
            "client_max_window_bits" => seen.client_max_window_bits = Some(bits(&param.value)?),
            _ => return Err(format!("unknown parameter {name}")),
        }
    }
    Ok(seen)
}

/// Server side: the first acceptable permessage-deflate offer among the
/// client's extensions, and what to answer with. Offers that are malformed
/// or that we cannot honour are declined (section 7.1), never an error.
pub fn server_accept(offers: &[Extension]) -> Option<DeflateParams> {
    offers
        .iter()
        .filter(|ext| ext.name.eq_ignore_ascii_case(NAME))
        .find_map(|ext| {
            let seen = read_params(ext).ok()?;
            let server_max_window_bits = match seen.server_max_window_bits {
                // zlib cannot compress raw deflate in a 256-byte window.
                Some(8) => return None,
                Some(bits) => bits,
                None => 15,
            };
            Some(DeflateParams {
                server_no_context_takeover: seen.server_no_context_takeover,
                client_no_context_takeover: seen.client_no_context_takeover,
                server_max_window_bits,
                // We inflate with a full window: no need to limit the client.
                client_max_window_bits: 15,
            })
        })
}

/// Client side: checks the server's answer against what we offered
/// (section 7.1: a parameter we did not offer, or a bad value, fails the
/// connection).
pub fn client_accept(offered: &[Extension], response: &Extension) -> Result<DeflateParams, Error> {
    let fail = |why: String| Error::Extension(format!("server's {response}: {why}"));
    if !response.name.eq_ignore_ascii_case(NAME) {
        return Err(fail(format!("{} was not offered", response.name)));
    }
    let seen = read_params(response).map_err(fail)?;
    let client_max_window_bits = match seen.client_max_window_bits {
        None => 15,
        Some(_)
            if !offered
                .iter()
                .filter(|offer| offer.name.eq_ignore_ascii_case(NAME))
                .any(|offer| offer.param("client_max_window_bits").is_some()) =>
        {
            return Err(fail(
                "client_max_window_bits was not offered, so the server may not set it".into(),
            ));
        }
        Some(None) => {
            return Err(fail(
                "client_max_window_bits needs a value in a response".into(),
            ));
        }
        Some(Some(8)) => {
            return Err(fail(
                "client_max_window_bits=8 cannot be honoured: zlib needs a window of at least 9 bits"
                    .into(),
            ));
        }
        Some(Some(bits)) => bits,
    };
    Ok(DeflateParams {
        server_no_context_takeover: seen.server_no_context_takeover,
        client_no_context_takeover: seen.client_no_context_takeover,
        server_max_window_bits: seen.server_max_window_bits.unwrap_or(15),
        client_max_window_bits,
    })
}

/// Client side: what the server's Sec-WebSocket-Extensions answer amounts
/// to, given our offers. Any extension we did not offer, or a second
/// permessage-deflate, fails the handshake (RFC 6455 section 9.1).
pub fn client_negotiate(
    offered: &[Extension],
    accepted: &[Extension],
) -> Result<Option<DeflateParams>, Error> {
    let mut params = None;
    for extension in accepted {
        let was_offered = offered
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&extension.name));
        if !was_offered || params.is_some() {
            return Err(Error::Extension(format!(
                "server accepted {extension}, which was not offered (or not offered twice)"
            )));
        }
        params = Some(client_accept(offered, extension)?);
    }
    Ok(params)
}

/// What a [`PerMessageDeflate`] keeps between two messages of a direction
/// whose context carries over.
///
/// zlib's compressor costs about 370 KiB (window, hash chains, a 128 KiB hash
/// table and its pending buffers, whatever the window size) and its
/// decompressor about 43 KiB (zlib-rs allocates a full window whatever the
/// window bits), so an endpoint that keeps them is the bulk of an idle
/// connection's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// Only the plaintext the next message may refer back to (at most the
    /// agreed window each way, 32 KiB): the compressor and the decompressor
    /// are built again for each message and primed with it. Costs some CPU
    /// per message: hashing the window for the compressor, a copy for the
    /// decompressor.
    Window,
    /// The zlib state itself, reset rather than freed: for a relay that
    /// compresses everything it forwards and cares more about CPU.
    State,
}

/// What a [`PerMessageDeflate`] holds right now: how memory tests and
/// reports tell an unused extension from a used one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// A zlib compressor is allocated.
    pub compressor: bool,
    /// A zlib decompressor is allocated.
    pub decompressor: bool,
    /// Bytes of sent plaintext kept to prime the next compressor.
    pub window: usize,
    /// Bytes of received plaintext kept to prime the next decompressor.
    pub received_window: usize,
}

/// The compressor and decompressor of one endpoint of one connection.
///
/// Neither is allocated until the first message that needs it: a connection
/// that negotiated the extension and never sends a compressed message costs
/// nothing here.
pub struct PerMessageDeflate {
    params: DeflateParams,
    level: Compression,
    /// Our compressor's window, base-2 log.
    own_bits: u8,
    /// The peer's compressor's window, base-2 log: how far back its next
    /// message may refer.
    peer_bits: u8,
    retain: Retain,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// Under [`Retain::Window`] with context takeover: the last sent
    /// plaintext, at most `1 << own_bits` bytes, which is what the peer's
    /// decompressor has in its window.
    sent: Vec<u8>,
    /// With context takeover from the peer: the last inflated plaintext,
    /// what a decompressor built for the next message is primed with.
    /// Between messages at most `1 << peer_bits` bytes; within one, up to
    /// twice that (trimmed in bulk, not for every piece inflated).
    received: Vec<u8>,
    reset_compressor: bool,
    reset_decompressor: bool,
    /// The peer's stream had a final block: the next message starts afresh.
    stream_ended: bool,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("params", &self.params)
            .field("retain", &self.retain)
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// `role` says which of the agreed parameters govern what we send and
    /// what we receive. Keeps as little as possible between messages
    /// ([`Retain::Window`]).
    pub fn new(role: Role, params: DeflateParams) -> Self {
        Self::build(role, params, Compression::default(), Retain::Window)
    }

    /// Compresses at zlib's fastest level and keeps the zlib state between
    /// messages ([`Retain::State`]): for a relay that re-deflates what it
    /// forwards, where CPU matters more than the last bytes saved.
    pub fn fast(role: Role, params: DeflateParams) -> Self {
        Self::build(role, params, Compression::fast(), Retain::State)
    }

    /// The same endpoint, keeping `retain` between messages instead.
    pub fn retaining(mut self, retain: Retain) -> Self {
        self.retain = retain;
        self
    }

    fn build(role: Role, params: DeflateParams, level: Compression, retain: Retain) -> Self {
        let (own_bits, peer_bits, reset_compressor, reset_decompressor) = match role {
            Role::Server => (
                params.server_max_window_bits,
                params.client_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits,
                params.server_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        PerMessageDeflate {
            params,
            level,
            // Negotiation never agrees to 8 for our own side; clamp rather
            // than let flate2 panic if a caller builds parameters by hand.
            own_bits: own_bits.clamp(9, 15),
            // A zlib peer asked for 8 bits compresses with 9 (it cannot do
            // 8): keep the larger window rather than break its references.
            peer_bits: peer_bits.clamp(9, 15),
            retain,
            compressor: None,
            decompressor: None,
            sent: Vec::new(),
            received: Vec::new(),
            reset_compressor,
            reset_decompressor,
            stream_ended: false,
        }
    }

    /// The agreed parameters.
    pub fn params(&self) -> DeflateParams {
        self.params
    }

    /// What is allocated now.
    pub fn held(&self) -> Held {
        Held {
            compressor: self.compressor.is_some(),
            decompressor: self.decompressor.is_some(),
            window: self.sent.capacity(),
            received_window: self.received.capacity(),
        }
    }

    /// The decompressor, built on first use and primed with the plaintext
    /// the peer's compressor still remembers. Priming a raw inflater only
    /// copies the bytes into its window.
    fn decompressor(&mut self) -> Result<&mut Decompress, Error> {
        if self.decompressor.is_none() {
            // Inflating always uses a 15-bit window, which decodes any
            // smaller one.
            let mut decompressor = Decompress::new_with_window_bits(false, 15);
            if !self.received.is_empty() {
                decompressor
                    .set_dictionary(&self.received)
                    .map_err(|e| Error::Inflate(format!("priming the inflater failed: {e}")))?;
            }
            self.decompressor = Some(decompressor);
        }
        Ok(self.decompressor.as_mut().expect("set just above"))
    }

    /// The peer's window in bytes.
    fn peer_window(&self) -> usize {
        1usize << self.peer_bits
    }

    /// Appends inflated plaintext to the received window. Trimmed to the
    /// window only when it reaches twice that, so that inflating in small
    /// pieces does not move the window for every piece.
    fn remember_received(&mut self, output: &[u8]) {
        let window = self.peer_window();
        let output = &output[output.len().saturating_sub(window)..];
        let total = self.received.len() + output.len();
        if total > 2 * window {
            // `output` is at most a window, so this is never more than
            // what is there.
            self.received.drain(..total - window);
        }
        self.received.extend_from_slice(output);
    }

    /// Cuts the received window down to the peer's window, and with
    /// `shrink` its allocation too.
    fn trim_received(&mut self, shrink: bool) {
        let excess = self.received.len().saturating_sub(self.peer_window());
        self.received.drain(..excess);
        if shrink {
            self.received.shrink_to_fit();
        }
    }

    /// The compressor, built on first use; under [`Retain::Window`] primed
    /// with the plaintext the peer still remembers.
    fn compressor(&mut self) -> Result<&mut Compress, Error> {
        if self.compressor.is_none() {
            let mut compressor = Compress::new_with_window_bits(self.level, false, self.own_bits);
            if !self.sent.is_empty() {
                compressor
                    .set_dictionary(&self.sent)
                    .map_err(|e| Error::Inflate(format!("compression failed: {e}")))?;
            }
            self.compressor = Some(compressor);
        }
        Ok(self.compressor.as_mut().expect("set just above"))
    }

    /// Appends sent plaintext to the kept window, dropping what falls out
    /// of it; the buffer never grows past the window.
    fn remember_sent(&mut self, payload: &[u8]) {
        let window = 1usize << self.own_bits;
        let payload = &payload[payload.len().saturating_sub(window)..];
        let overflow = (self.sent.len() + payload.len()).saturating_sub(window);
        self.sent.drain(..overflow);
        let needed = self.sent.len() + payload.len();
        if needed > self.sent.capacity() {
            self.sent.reserve_exact(needed - self.sent.len());
        }
        self.sent.extend_from_slice(payload);
    }

    /// Compresses one whole message payload, appending to `out`.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let compressor = self.compressor()?;
        let base_in = compressor.total_in();
        loop {
            let consumed = (compressor.total_in() - base_in) as usize;
            out.reserve((payload.len() - consumed) / 2 + 64);
            compressor
                .compress_vec(&payload[consumed..], out, FlushCompress::Sync)
                .map_err(|e| Error::Inflate(format!("compression failed: {e}")))?;
            let consumed = (compressor.total_in() - base_in) as usize;
            // Done when all input is in and the flush did not fill the buffer.
            if consumed == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start {
            // Section 7.2.3.6: an empty message can be a single 0x00.
            out.push(0x00);
        }
        if !self.reset_compressor {
            // Kept under either retention, so that a kept compressor can
            // still be parked.
            self.remember_sent(payload);
        }
        match (self.retain, self.reset_compressor) {
            (Retain::State, true) => {
                if let Some(compressor) = &mut self.compressor {
                    compressor.reset();
                }
            }
            (Retain::State, false) => {}
            (Retain::Window, _) => self.compressor = None,
        }
        Ok(())
    }

    /// Whether [`Self::park`] would free anything.
    pub fn can_park(&self) -> bool {
        self.compressor.is_some() || self.decompressor.is_some()
    }

    /// Frees zlib's state down to the windows the context needs, as
    /// [`Retain::Window`] does after every message: for a caller that keeps
    /// zlib's state while a connection is busy ([`Retain::State`]) and parks
    /// it once the connection goes quiet. Call between messages, never
    /// within one (a fresh inflater cannot go on from a message's middle).
    pub fn park(&mut self) {
        self.compressor = None;
        self.decompressor = None;
        self.trim_received(true);
    }

    /// Inflates one frame's payload of a compressed message, appending to
    /// `out`, which holds only this message so far. Fails with
    /// [`Error::TooBig`] once the message would exceed `limit` bytes; `out`
    /// then holds `limit + 1` bytes at most, and the error's `size` is
    /// `None`: the message's whole size is never learnt.
    pub fn decompress_chunk(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        if self.stream_ended {
            // Bytes after a final block belong to nothing; ignore them as
            // zlib would (the message still ends with its FIN frame).
            return Ok(());
        }
        let start = out.len();
        let result = self.inflate(data, out, limit);
        if !self.reset_decompressor {
            self.remember_received(&out[start..]);
        }
        self.stream_ended = result?;
        Ok(())
    }

    /// Inflates `data` into `out` under `limit`; true when the peer's
    /// stream had a final block.
    fn inflate(&mut self, data: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<bool, Error> {
        let decompressor = self.decompressor()?;
        let mut consumed = 0usize;
        loop {
            // One byte past the limit is all it takes to know the message
            // is too big. The window is a slice of exactly that size, not
            // spare capacity: Vec rounds reservations up, and inflating into
            // all of it would overshoot the limit by as much.
            let room = limit.saturating_sub(out.len()).saturating_add(1);
            let want = ((data.len() - consumed).saturating_mul(4)).clamp(4096, 1 << 20);
            let window = want.min(room);
            let before_in = decompressor.total_in();
            let before_out = decompressor.total_out();
            let start = out.len();
            out.resize(start + window, 0);
            let status = decompressor.decompress(
                &data[consumed..],
                &mut out[start..],
                FlushDecompress::None,
            );
            let written = (decompressor.total_out() - before_out) as usize;
            out.truncate(start + written);
            let status = status.map_err(|e| Error::Inflate(e.to_string()))?;
            consumed += (decompressor.total_in() - before_in) as usize;
            if out.len() > limit {
                // Only "more than the limit" is known: inflation stops here.
                return Err(Error::TooBig {
                    size: None,
                    limit: limit as u64,
                });
            }
            if status == Status::StreamEnd {
                return Ok(true);
            }
            let progressed = decompressor.total_in() != before_in || written != 0;
            let window_full = written == window;
            if consumed == data.len() && !window_full {
                return Ok(false);
            }
            if !progressed && !window_full {
                return Ok(false);
            }
        }
    }

    /// Ends a compressed message: feeds the removed tail (section 7.2.2),
    /// then keeps what the peer's next message may refer to: under
    /// [`Retain::Window`] only the received window (the decompressor is
    /// freed), under [`Retain::State`] the decompressor, reset when the
    /// peer does not keep its context.
    ///
    /// A fresh decompressor primed with the window decodes the next message
    /// as the old one would have, because a message ends with a sync flush
    /// (section 7.2.1): nothing but the window carries over.
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        let result = self.decompress_chunk(&TAIL, out, limit);
        let fresh = self.reset_decompressor || self.stream_ended;
        if fresh {
            self.received = Vec::new();
        }
        match self.retain {
            Retain::Window => {
                self.decompressor = None;
                self.trim_received(true);
            }
            Retain::State => {
                if fresh && let Some(decompressor) = &mut self.decompressor {
                    decompressor.reset(false);
                }
                self.trim_received(false);
            }
        }
        self.stream_ended = false;
        result
    }

    /// A whole compressed message: [`Self::decompress_chunk`] then
    /// [`Self::finish_message`].
    pub fn decompress(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Error> {
        self.decompress_chunk(payload, out, limit)?;
        self.finish_message(out, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::parse_extensions;

    fn pair(params: DeflateParams) -> (PerMessageDeflate, PerMessageDeflate) {
        (
            PerMessageDeflate::new(Role::Server, params),
            PerMessageDeflate::new(Role::Client, params),
        )
    }

    fn offer(text: &str) -> Vec<Extension> {
        parse_extensions(text).unwrap()
    }

    #[test]
    fn rfc_7692_hello_examples() {
        // Section 7.2.3.1: "Hello" compressed in one block.
        let mut server = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        server
            .decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 1024)
            .unwrap();
        assert_eq!(out, b"Hello");
        // Section 7.2.3.2: the same message again, with context takeover,
        // can refer back to the first.
        out.clear();
        server
            .decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 1024)
            .unwrap();
        assert_eq!(out, b"Hello");
        // Section 7.2.3.3: a stored (uncompressed) block.
        let mut fresh = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        out.clear();
        fresh
            .decompress(
                &[
                    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                ],
                &mut out,
                1024,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
        // Section 7.2.3.4: split across two frames.
        let mut fresh = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        out.clear();
        fresh
            .decompress_chunk(&[0xf2, 0x48, 0xcd], &mut out, 1024)
            .unwrap();
        fresh
            .decompress_chunk(&[0xc9, 0xc9, 0x07, 0x00], &mut out, 1024)
            .unwrap();
        fresh.finish_message(&mut out, 1024).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn we_compress_hello_like_the_rfc() {
        let mut client = PerMessageDeflate::new(Role::Client, DeflateParams::default());
        let mut out = Vec::new();
        client.compress(b"Hello", &mut out).unwrap();
        let mut server = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        let mut back = Vec::new();
        server.decompress(&out, &mut back, 100).unwrap();
        assert_eq!(back, b"Hello");
        assert!(!out.ends_with(&TAIL));
    }

    #[test]
    fn round_trips_every_combination() {
        let messages: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"hello hello hello".to_vec(),
            (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            br#"{"a":1,"b":[1,2,3]}"#.repeat(500),
            b"".to_vec(),
            b"hello hello hello".to_vec(),
        ];
        for bits in 9..=15u8 {
            for (snct, cnct) in [(false, false), (true, false), (false, true), (true, true)] {
                let params = DeflateParams {
                    server_no_context_takeover: snct,
                    client_no_context_takeover: cnct,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                let (mut server, mut client) = pair(params);
                for message in &messages {
                    for server_sends in [true, false] {
                        let (tx, rx) = if server_sends {
                            (&mut server, &mut client)
                        } else {
                            (&mut client, &mut server)
                        };
                        let mut wire = Vec::new();
                        tx.compress(message, &mut wire).unwrap();
                        assert!(!wire.is_empty());
                        let mut back = Vec::new();
                        // Feed in small pieces, as frames might arrive.
                        for piece in wire.chunks(7) {
                            rx.decompress_chunk(piece, &mut back, 1 << 20).unwrap();
                        }
                        rx.finish_message(&mut back, 1 << 20).unwrap();
                        assert_eq!(&back, message, "bits {bits} snct {snct} cnct {cnct}");
                    }
                }
            }
        }
    }

    #[test]
    fn nothing_is_allocated_until_a_message_needs_it() {
        for make in [PerMessageDeflate::new, PerMessageDeflate::fast] {
            let (mut server, mut client) = (
                make(Role::Server, DeflateParams::default()),
                make(Role::Client, DeflateParams::default()),
            );
            assert_eq!(server.held(), Held::default());
            assert_eq!(client.held(), Held::default());
            let mut wire = Vec::new();
            client.compress(b"hello hello", &mut wire).unwrap();
            // The server only inflated: it has no compressor.
            let mut back = Vec::new();
            server.decompress(&wire, &mut back, 1024).unwrap();
            // Kept as zlib state or as the window, by retention.
            assert!(server.held().decompressor || server.held().received_window > 0);
            assert!(!server.held().compressor);
            assert!(!client.held().decompressor);
            assert_eq!(client.held().received_window, 0);
        }
    }

    #[test]
    fn between_messages_only_the_context_is_kept() {
        let message = br#"{"type":"tick","value":12345}"#;
        // Context takeover both ways: the sent and the received windows,
        // no zlib state.
        let (mut server, mut client) = pair(DeflateParams::default());
        let mut wire = Vec::new();
        server.compress(message, &mut wire).unwrap();
        client.decompress(&wire, &mut Vec::new(), 1024).unwrap();
        assert_eq!(
            server.held(),
            Held {
                window: message.len(),
                ..Held::default()
            }
        );
        assert_eq!(
            client.held(),
            Held {
                received_window: message.len(),
                ..Held::default()
            }
        );
        // No context takeover: nothing at all once the message is done.
        let params = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let (mut server, mut client) = pair(params);
        wire.clear();
        server.compress(message, &mut wire).unwrap();
        client.decompress(&wire, &mut Vec::new(), 1024).unwrap();
        assert_eq!(server.held(), Held::default());
        assert_eq!(client.held(), Held::default());
        // The relay's choice keeps the zlib state, reset.
        let mut relay = PerMessageDeflate::fast(Role::Server, params);
        relay.compress(message, &mut Vec::new()).unwrap();
        assert!(relay.held().compressor);
    }

    #[test]
    fn a_parked_state_keeps_the_context() {
        let messages = [
            b"hello hello hello".to_vec(),
            br#"{"a":1,"b":[1,2,3]}"#.repeat(3000),
            b"hello hello hello".to_vec(),
        ];
        let (server, mut client) = pair(DeflateParams::default());
        let mut server = server.retaining(Retain::State);
        for message in &messages {
            let mut wire = Vec::new();
            server.compress(message, &mut wire).unwrap();
            assert!(server.can_park());
            server.park();
            assert!(!server.can_park());
            assert!(!server.held().compressor);
            let mut back = Vec::new();
            client.decompress(&wire, &mut back, 1 << 20).unwrap();
            assert_eq!(&back, message);
        }
        // Primed from the kept window: the repeat is a back-reference.
        let mut wire = Vec::new();
        server.compress(b"hello hello hello", &mut wire).unwrap();
        assert!(wire.len() < 10, "{} bytes", wire.len());
    }

    /// Messages that refer back into earlier ones, the later ones more than
    /// a whole message back: inflating with a decompressor kept throughout
    /// and with one rebuilt from the received window for every message
    /// must agree, whatever the window bits.
    #[test]
    fn a_decompressor_primed_from_the_window_inflates_like_a_kept_one() {
        let big: Vec<u8> = (0..40_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let messages: Vec<Vec<u8>> = vec![
            br#"{"type":"hello","user":"ada"}"#.to_vec(),
            br#"{"type":"hello","user":"ada"}"#.to_vec(),
            big[..3000].to_vec(),
            b"x".to_vec(),
            // Far back: the start of the 3000 bytes, two messages ago.
            big[..2000].to_vec(),
            b"".to_vec(),
            // More than a window: only its last window is kept.
            big.clone(),
            big[big.len() - 30_000..].to_vec(),
            br#"{"type":"hello","user":"ada"}"#.to_vec(),
        ];
        for bits in [9, 12, 15] {
            let params = DeflateParams {
                server_max_window_bits: bits,
                ..DeflateParams::default()
            };
            let mut sender = PerMessageDeflate::fast(Role::Server, params);
            let mut kept = PerMessageDeflate::new(Role::Client, params).retaining(Retain::State);
            let mut parked = PerMessageDeflate::new(Role::Client, params);
            for (i, message) in messages.iter().enumerate() {
                let mut wire = Vec::new();
                sender.compress(message, &mut wire).unwrap();
                if i == 1 {
                    assert!(wire.len() < 10, "no back-reference: {} bytes", wire.len());
                }
                let mut from_kept = Vec::new();
                kept.decompress(&wire, &mut from_kept, 1 << 20).unwrap();
                assert_eq!(&from_kept, message, "bits {bits}, message {i}");
                // In pieces, as frames arrive, and parked between messages.
                let mut from_parked = Vec::new();
                for piece in wire.chunks(5) {
                    parked
                        .decompress_chunk(piece, &mut from_parked, 1 << 20)
                        .unwrap();
                }
                parked.finish_message(&mut from_parked, 1 << 20).unwrap();
                assert_eq!(from_parked, from_kept, "bits {bits}, message {i}");
                let held = parked.held();
                assert!(!held.decompressor);
                assert!(held.received_window <= 1 << bits, "{held:?}");
                // The relay's kind, parked only now and then.
                if i % 2 == 0 {
                    kept.park();
                }
                assert!(kept.held().received_window <= 2 << bits);
            }
        }
    }

    #[test]
    fn without_context_takeover_nothing_received_is_kept() {
        let params = DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut sender = PerMessageDeflate::new(Role::Client, params);
        for retain in [Retain::Window, Retain::State] {
            let mut receiver = PerMessageDeflate::new(Role::Server, params).retaining(retain);
            for text in ["hello hello hello", "hello again"] {
                let mut wire = Vec::new();
                sender.compress(text.as_bytes(), &mut wire).unwrap();
                let mut back = Vec::new();
                receiver.decompress(&wire, &mut back, 1024).unwrap();
                assert_eq!(back, text.as_bytes());
                assert_eq!(receiver.held().received_window, 0);
            }
            receiver.park();
            assert_eq!(receiver.held(), Held::default());
        }
    }

    #[test]
    fn the_kept_window_is_bounded_and_still_referenced() {
        let params = DeflateParams {
            server_max_window_bits: 10,
            ..DeflateParams::default()
        };
        let (mut server, mut client) = pair(params);
        let big: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut wire = Vec::new();
        server.compress(&big, &mut wire).unwrap();
        assert_eq!(server.held().window, 1024);
        let mut back = Vec::new();
        client.decompress(&wire, &mut back, 1 << 20).unwrap();
        assert_eq!(back, big);
        // A repeat of the window's tail compresses to a back-reference.
        let tail = &big[big.len() - 500..];
        wire.clear();
        server.compress(tail, &mut wire).unwrap();
        assert!(
            wire.len() < 20,
            "{} bytes: the window was not used",
            wire.len()
        );
        back.clear();
        client.decompress(&wire, &mut back, 1 << 20).unwrap();
        assert_eq!(back, tail);
        assert_eq!(server.held().window, 1024);
    }

    #[test]
    fn either_retention_talks_to_the_other() {
        let messages: Vec<Vec<u8>> = vec![
            b"hello hello hello".to_vec(),
            br#"{"a":1,"b":[1,2,3]}"#.repeat(3000),
            b"".to_vec(),
            b"hello hello hello".to_vec(),
            (0..70_000u32).map(|i| (i % 241) as u8).collect(),
            b"hello hello hello".to_vec(),
        ];
        for (snct, cnct) in [(false, false), (true, true)] {
            let params = DeflateParams {
                server_no_context_takeover: snct,
                client_no_context_takeover: cnct,
                ..DeflateParams::default()
            };
            let mut lean = PerMessageDeflate::new(Role::Server, params);
            let mut relay = PerMessageDeflate::fast(Role::Client, params);
            for message in &messages {
                for lean_sends in [true, false] {
                    let (tx, rx) = if lean_sends {
                        (&mut lean, &mut relay)
                    } else {
                        (&mut relay, &mut lean)
                    };
                    let mut wire = Vec::new();
                    tx.compress(message, &mut wire).unwrap();
                    let mut back = Vec::new();
                    rx.decompress(&wire, &mut back, 1 << 20).unwrap();
                    assert_eq!(&back, message, "snct {snct} cnct {cnct}");
                }
            }
        }
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        let mut tx = PerMessageDeflate::new(Role::Client, DeflateParams::default());
        let mut wire = Vec::new();
        tx.compress(&vec![0u8; 10 << 20], &mut wire).unwrap();
        assert!(wire.len() < 20_000);
        let mut rx = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        let err = rx.decompress(&wire, &mut out, 1 << 20).unwrap_err();
        // The bomb's true size (10 MiB) is never learnt, and not claimed.
        assert!(
            matches!(err, Error::TooBig { size: None, limit } if limit == 1 << 20),
            "{err:?}"
        );
        assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
        assert!(out.capacity() < (2 << 20), "capacity {}", out.capacity());
    }

    #[test]
    fn output_never_passes_the_limit_by_more_than_one_byte() {
        // One byte past the limit is how inflation learns it is over; any
        // more is memory the caller did not agree to. Vec's growth rounds
        // a reservation up, so limits that are not a power of two catch an
        // inflater that fills whatever capacity it got.
        let mut tx = PerMessageDeflate::new(Role::Client, DeflateParams::default());
        let mut wire = Vec::new();
        tx.compress(&vec![b'a'; 1 << 20], &mut wire).unwrap();
        for limit in [0, 1, 1000, 4095, 4097, 65_536, 100_000, 700_001] {
            let mut rx = PerMessageDeflate::new(Role::Server, DeflateParams::default());
            let mut out = Vec::new();
            let err = rx.decompress(&wire, &mut out, limit).unwrap_err();
            assert!(matches!(err, Error::TooBig { .. }), "{err}");
            assert!(out.len() <= limit + 1, "limit {limit}: {} bytes", out.len());
        }
        // Fed in pieces, as frames arrive: the same bound.
        let mut rx = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        let limit = 50_000;
        let result: Result<(), Error> = wire
            .chunks(3)
            .try_for_each(|piece| rx.decompress_chunk(piece, &mut out, limit));
        assert!(matches!(result, Err(Error::TooBig { .. })), "{result:?}");
        assert!(out.len() <= limit + 1, "{} bytes", out.len());
    }

    #[test]
    fn a_message_exactly_at_the_limit_inflates() {
        let message: Vec<u8> = (0..70_000u32).map(|i| (i % 13) as u8).collect();
        let mut tx = PerMessageDeflate::new(Role::Client, DeflateParams::default());
        let mut wire = Vec::new();
        tx.compress(&message, &mut wire).unwrap();
        let mut rx = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        rx.decompress(&wire, &mut out, message.len()).unwrap();
        assert_eq!(out, message);
        let mut rx = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        out.clear();
        let err = rx
            .decompress(&wire, &mut out, message.len() - 1)
            .unwrap_err();
        assert!(matches!(err, Error::TooBig { .. }), "{err}");
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut rx = PerMessageDeflate::new(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        let result = rx.decompress(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x12], &mut out, 1024);
        assert!(matches!(result, Err(Error::Inflate(_))), "{result:?}");
    }

    #[test]
    fn server_negotiation() {
        assert_eq!(
            server_accept(&offer("permessage-deflate")),
            Some(DeflateParams::default())
        );
        let p = server_accept(&offer("permessage-deflate; server_no_context_takeover")).unwrap();
        assert!(p.server_no_context_takeover);
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_no_context_takeover"
        );
        let p = server_accept(&offer("permessage-deflate; server_max_window_bits=9")).unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        assert_eq!(
            p.response_header(),
            "permessage-deflate; server_max_window_bits=9"
        );
        let p = server_accept(&offer("permessage-deflate; client_max_window_bits")).unwrap();
        assert_eq!(p.response_header(), "permessage-deflate");
        // The first offer is invalid (unknown param), the second is taken.
        let p = server_accept(&offer(
            "permessage-deflate; bogus, permessage-deflate; client_no_context_takeover",
        ))
        .unwrap();
        assert!(p.client_no_context_takeover);
        assert_eq!(
            server_accept(&offer("permessage-deflate; server_max_window_bits=8")),
            None
        );
        assert_eq!(
            server_accept(&offer("permessage-deflate; server_max_window_bits")),
            None
        );
        assert_eq!(
            server_accept(&offer("permessage-deflate; server_max_window_bits=16")),
            None
        );
        assert_eq!(
            server_accept(&offer(
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            )),
            None
        );
        assert_eq!(server_accept(&offer("x-webkit-deflate-frame")), None);
    }

    #[test]
    fn client_negotiation() {
        let ours = client_offers();
        let accept = |text: &str| client_accept(&ours, &offer(text)[0]);
        assert_eq!(
            accept("permessage-deflate").unwrap(),
            DeflateParams::default()
        );
        let p = accept("permessage-deflate; client_max_window_bits=9; server_no_context_takeover")
            .unwrap();
        assert_eq!(p.client_max_window_bits, 9);
        assert!(p.server_no_context_takeover);
        assert!(accept("permessage-deflate; client_max_window_bits").is_err());
        assert!(accept("permessage-deflate; client_max_window_bits=8").is_err());
        assert!(accept("permessage-deflate; mystery").is_err());
        assert!(accept("permessage-deflate; server_max_window_bits=7").is_err());
        let bare = [Extension::new(NAME)];
        assert!(
            client_accept(
                &bare,
                &offer("permessage-deflate; client_max_window_bits=10")[0]
            )
            .is_err()
        );
        assert_eq!(client_negotiate(&ours, &[]).unwrap(), None);
        assert!(client_negotiate(&[], &offer("permessage-deflate")).is_err());
        assert!(client_negotiate(&ours, &offer("permessage-deflate, permessage-deflate")).is_err());
        assert!(client_negotiate(&ours, &offer("x-foo")).is_err());
        // Our offers, as a server sees them, are acceptable.
        let header = ours
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            server_accept(&offer(&header)),
            Some(DeflateParams::default())
        );
    }
}
