//! Watching one direction of a connection go by: what a proxy sees.
//!
//! A [`Tap`] is fed the bytes of one direction exactly as they crossed, in
//! pieces of any size, and reports the frames, messages and close frames in
//! them. It never fails and never changes the bytes: the proxy forwards what
//! arrived and the tap only looks. Violations are reported with the frame
//! that carries them and the tap goes on as best it can, since the endpoints,
//! not the proxy, decide whether to fail the connection.
//!
//! Memory stays bounded whatever the message size: at most `capture` bytes
//! of each message (after decompression) and of each frame are kept. With
//! permessage-deflate every compressed byte is still inflated, because with
//! context takeover a message can refer back to earlier ones; the output
//! past the capture limit is counted and thrown away.

use crate::deflate::{DeflateParams, PerMessageDeflate};
use crate::frame::FrameRules;
use crate::mask::apply_mask;
use crate::utf8::Utf8Validator;
use crate::{ClosePayload, Decoded, FrameHeader, OpCode, Role, Violation};

/// How much compressed input is inflated at a time, so one slice's output
/// (at most ~1032 times its size) stays small before it is cut.
const INFLATE_SLICE: usize = 4096;

/// How much room for a frame's payload is made ahead of its arrival.
const RESERVE: usize = 64 * 1024;

/// What the tap saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A frame: every control frame, every frame that breaks a rule, and
    /// every data frame when frames are asked for. `payload` is the kept part
    /// of the (unmasked, still compressed) payload.
    Frame {
        header: FrameHeader,
        payload: Vec<u8>,
        violations: Vec<Violation>,
    },
    /// A whole data message, decompressed. `data` is its first `capture`
    /// bytes; `len` its true length.
    Message {
        opcode: OpCode,
        data: Vec<u8>,
        len: u64,
        compressed: bool,
        frames: u32,
    },
    /// A close frame's contents (also reported as a `Frame`).
    Close(ClosePayload),
    /// The stream can no longer be interpreted (compressed data that does
    /// not inflate); bytes still pass, the tap stops decoding messages.
    Problem(String),
    /// A frame has ended, after whatever else it completed: its header and
    /// its length on the wire. Only with [`Tap::track_frames`], for a relay
    /// that holds frames and must know where each one ends.
    FrameEnd { header: FrameHeader, wire_len: u64 },
    /// The uncompressed text message in progress has just stopped being
    /// UTF-8, possibly in the middle of a frame. Only with
    /// [`Tap::track_frames`]: a relay holding the message passes it on at
    /// once, so the receiver fails it as early as it would without a proxy.
    NotText,
}

#[derive(Debug)]
struct InFrame {
    header: FrameHeader,
    header_len: usize,
    remaining: u64,
    /// Payload bytes seen so far (the mask offset).
    seen: u64,
    kept: Vec<u8>,
    /// This frame is reported on its own.
    report: bool,
    violations: Vec<Violation>,
    /// Its payload belongs to the message in progress.
    data: bool,
}

/// What [`Tap::track_frames`] adds.
#[derive(Debug)]
struct Tracking {
    /// Checks the uncompressed text message in progress; `None` once it
    /// failed (or for other messages).
    utf8: Option<Utf8Validator>,
}

#[derive(Debug)]
struct InMessage {
    opcode: OpCode,
    compressed: bool,
    frames: u32,
    len: u64,
    data: Vec<u8>,
    /// How much of it is kept.
    keep: usize,
}

/// Counts for the end-of-connection report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TapStats {
    pub bytes: u64,
    pub frames: u64,
    pub messages: u64,
}

/// What a [`Tap`] holds between messages, from [`Tap::held`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapHeld {
    /// permessage-deflate's state, when it was negotiated.
    pub deflate: Option<crate::deflate::Held>,
    /// The unmasking and inflating buffers' allocations.
    pub buffers: usize,
}

/// One direction of one connection, observed.
#[derive(Debug)]
pub struct Tap {
    rules: FrameRules,
    capture: usize,
    report_data_frames: bool,
    deflate: Option<PerMessageDeflate>,
    header: [u8; crate::frame::MAX_HEADER_LEN],
    header_len: usize,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    scratch: Vec<u8>,
    /// Inflated output of one slice, reused.
    inflated: Vec<u8>,
    /// How much of each message is kept (`capture` unless raised).
    message_capture: usize,
    /// Uncompressed binary messages are kept up to `message_capture` too
    /// (else up to `capture`, what events keep).
    whole_binary: bool,
    tracking: Option<Tracking>,
    /// Decompression failed: messages are no longer decoded.
    inflate_broken: bool,
    stats: TapStats,
}

impl Tap {
    /// A tap on what `sender` sends, on a connection that negotiated
    /// `deflate` (or not), keeping `capture` bytes of each payload.
    pub fn new(sender: Role, deflate: Option<DeflateParams>, capture: usize) -> Tap {
        Tap {
            rules: FrameRules {
                sender,
                deflate: deflate.is_some(),
            },
            capture,
            report_data_frames: false,
            // The receiving end's decompressor: its parameters decide what
            // the sender may rely on.
            deflate: deflate.map(|params| PerMessageDeflate::new(sender.peer(), params)),
            header: [0; crate::frame::MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            scratch: Vec::new(),
            inflated: Vec::new(),
            message_capture: capture,
            whole_binary: true,
            tracking: None,
            inflate_broken: false,
            stats: TapStats::default(),
        }
    }

    /// Also report every data frame.
    pub fn report_data_frames(&mut self, yes: bool) {
        self.report_data_frames = yes;
    }

    /// Also report where each frame ends and when a text message stops
    /// being UTF-8, and keep up to `message_capture` bytes of each message
    /// (decompressed): what a relay that judges whole messages needs, so
    /// the stream is decoded once for both its events and its rules.
    pub fn track_frames(&mut self, message_capture: usize) {
        self.message_capture = message_capture.max(self.capture);
        self.tracking = Some(Tracking { utf8: None });
    }

    /// Whether uncompressed binary messages are kept whole (up to the
    /// `track_frames` limit) or, when no rule reads them, only as far as
    /// events keep: copying a 64 KiB message nobody reads was a third of
    /// the judging relay's copies. Compressed messages are always kept
    /// whole (the relay compresses them again). Counts from the next
    /// message on.
    pub fn keep_whole_binary(&mut self, yes: bool) {
        self.whole_binary = yes;
    }

    /// Keeps no more of each message than events need again (the relay
    /// gave up judging this direction), dropping what is kept beyond it.
    pub fn keep_for_events_only(&mut self) {
        self.message_capture = self.capture;
        if let Some(message) = &mut self.message {
            message.keep = self.capture;
            message.data.truncate(self.capture);
            message.data.shrink_to_fit();
        }
    }

    /// Bytes kept of the message in progress (decompressed).
    pub fn message_kept(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.data.len())
    }

    /// What the tap holds now: how tests check an idle connection is
    /// small.
    pub fn held(&self) -> TapHeld {
        TapHeld {
            deflate: self.deflate.as_ref().map(PerMessageDeflate::held),
            buffers: self.scratch.capacity() + self.inflated.capacity(),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> TapStats {
        self.stats
    }

    /// Whether the stream is between frames (a frame could be inserted).
    pub fn at_frame_boundary(&self) -> bool {
        self.frame.is_none() && self.header_len == 0
    }

    /// The frame whose payload is still arriving: its header, how long
    /// the header was, what is wrong with it, and how many payload bytes
    /// have gone by. A reader of a capture uses it to tell a header that
    /// is really garbage (whose length would swallow the rest of the
    /// stream) before its payload ends.
    pub fn frame_in_progress(&self) -> Option<(&FrameHeader, usize, &[Violation], u64)> {
        self.frame
            .as_ref()
            .map(|f| (&f.header, f.header_len, f.violations.as_slice(), f.seen))
    }

    /// Gives up on the frame in progress (its header was garbage): it is
    /// reported as far as it got, and the message it was part of is
    /// dropped. The next byte fed must start a frame.
    pub fn abandon_frame(&mut self, out: &mut Vec<Observed>) {
        if let Some(frame) = self.frame.take() {
            out.push(Observed::Frame {
                header: frame.header,
                payload: frame.kept,
                violations: frame.violations,
            });
            if frame.data {
                self.message = None;
            }
        }
        self.header_len = 0;
    }

    /// Whether a fragmented message is in progress.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Looks at the next bytes of the stream, appending what they complete.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Observed>) {
        self.stats.bytes += data.len() as u64;
        while !data.is_empty() {
            if self.frame.is_some() {
                let frame = self.frame.as_ref().expect("checked");
                let take = frame.remaining.min(data.len() as u64) as usize;
                let (chunk, rest) = data.split_at(take);
                self.payload(chunk, out);
                data = rest;
                if self.frame.as_ref().is_some_and(|f| f.remaining == 0) {
                    self.end_frame(out);
                }
                continue;
            }
            // A header, possibly split across calls.
            let (decoded, from_buffer) = if self.header_len == 0 {
                (FrameHeader::decode(data), 0)
            } else {
                let take = (self.header.len() - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                (FrameHeader::decode(&self.header[..self.header_len]), take)
            };
            match decoded {
                Decoded::Complete { header, header_len } => {
                    if from_buffer > 0 {
                        // Bytes copied past the header belong to the payload.
                        let surplus = self.header_len - header_len;
                        data = &data[from_buffer - surplus..];
                        self.header_len = 0;
                    } else {
                        data = &data[header_len..];
                    }
                    self.begin_frame(header, header_len, out);
                }
                Decoded::Incomplete { .. } => {
                    if from_buffer == 0 {
                        self.header[..data.len()].copy_from_slice(data);
                        self.header_len = data.len();
                    }
                    return;
                }
            }
        }
    }

    fn begin_frame(&mut self, header: FrameHeader, header_len: usize, out: &mut Vec<Observed>) {
        self.stats.frames += 1;
        let mut violations = Vec::new();
        header.violations(header_len, self.rules, &mut violations);
        let mut data = false;
        if header.opcode.is_data() && !header.opcode.is_reserved() {
            match (header.opcode, &mut self.message) {
                (OpCode::Continuation, None) => {
                    violations.push(Violation::UnexpectedContinuation);
                }
                (OpCode::Continuation, Some(message)) => {
                    message.frames += 1;
                    data = true;
                }
                (_, in_progress) => {
                    if in_progress.is_some() {
                        violations.push(Violation::ExpectedContinuation);
                    }
                    let compressed = self.rules.deflate && header.rsv1;
                    let whole = compressed || header.opcode != OpCode::Binary || self.whole_binary;
                    *in_progress = Some(InMessage {
                        opcode: header.opcode,
                        compressed,
                        frames: 1,
                        len: 0,
                        data: Vec::new(),
                        keep: if whole {
                            self.message_capture
                        } else {
                            self.capture
                        },
                    });
                    if let Some(tracking) = &mut self.tracking {
                        tracking.utf8 =
                            (header.opcode == OpCode::Text && !compressed).then(Utf8Validator::new);
                    }
                    data = true;
                }
            }
        }
        let report =
            header.opcode.is_control() || self.report_data_frames || !violations.is_empty();
        self.frame = Some(InFrame {
            header,
            header_len,
            remaining: header.payload_len,
            seen: 0,
            kept: Vec::new(),
            report,
            violations,
            data,
        });
        if header.payload_len == 0 {
            self.end_frame(out);
        }
    }

    fn payload(&mut self, chunk: &[u8], out: &mut Vec<Observed>) {
        let Some(frame) = self.frame.as_mut() else {
            return;
        };
        let offset = frame.seen;
        frame.seen += chunk.len() as u64;
        frame.remaining -= chunk.len() as u64;
        let control = frame.header.opcode.is_control();
        let mask = frame.header.mask;
        // This chunk and what is still to come of the frame.
        let to_come = frame.remaining + chunk.len() as u64;
        // The frame's own copy (control frames, reported frames).
        if frame.report || control {
            let room = self.capture.max(125).saturating_sub(frame.kept.len());
            let keep = room.min(chunk.len());
            let start = frame.kept.len();
            frame.kept.extend_from_slice(&chunk[..keep]);
            if let Some(key) = mask {
                apply_mask(&mut frame.kept[start..], key, offset as usize);
            }
        }
        if !frame.data {
            return;
        }
        let Some(message) = self.message.as_mut() else {
            return;
        };
        if message.compressed {
            if self.inflate_broken {
                return;
            }
            // Every byte must be inflated to keep the shared window right.
            let mut unmasked = std::mem::take(&mut self.scratch);
            for (i, slice) in chunk.chunks(INFLATE_SLICE).enumerate() {
                unmasked.clear();
                unmasked.extend_from_slice(slice);
                if let Some(key) = mask {
                    apply_mask(&mut unmasked, key, offset as usize + i * INFLATE_SLICE);
                }
                let inflated = &mut self.inflated;
                inflated.clear();
                let deflate = self.deflate.as_mut().expect("compressed implies deflate");
                if let Err(err) = deflate.decompress_chunk(&unmasked, inflated, usize::MAX) {
                    self.inflate_broken = true;
                    out.push(Observed::Problem(format!(
                        "compressed data does not inflate ({err}); messages are no longer decoded"
                    )));
                    break;
                }
                keep_prefix(&mut message.data, inflated, message.keep);
                message.len += inflated.len() as u64;
            }
            self.scratch = unmasked;
        } else {
            message.len += chunk.len() as u64;
            let start = message.data.len();
            // Room for the rest of the frame at once, rather than growing
            // by doubling (each growth copied what was kept so far); only
            // up to RESERVE ahead of what has arrived, so a header that
            // promises much reserves little.
            let wanted = usize::try_from(to_come).unwrap_or(usize::MAX).min(RESERVE);
            let room = message.keep.saturating_sub(start);
            message.data.reserve(wanted.min(room));
            keep_prefix(&mut message.data, chunk, message.keep);
            if let Some(key) = mask {
                apply_mask(&mut message.data[start..], key, offset as usize);
            }
            if let Some(tracking) = &mut self.tracking
                && let Some(utf8) = &mut tracking.utf8
            {
                // What was kept is unmasked already; past the capture limit
                // (the relay refuses such messages) the rest goes unchecked.
                let kept = &message.data[start..];
                if utf8.feed(kept).is_err() {
                    tracking.utf8 = None;
                    out.push(Observed::NotText);
                }
            }
        }
    }

    fn end_frame(&mut self, out: &mut Vec<Observed>) {
        let Some(frame) = self.frame.take() else {
            return;
        };
        let header = frame.header;
        let wire_len = frame.header_len as u64 + header.payload_len;
        self.frame_ended(frame, out);
        if self.tracking.is_some() {
            out.push(Observed::FrameEnd { header, wire_len });
        }
    }

    /// What a frame that has just ended completes.
    fn frame_ended(&mut self, frame: InFrame, out: &mut Vec<Observed>) {
        let header = frame.header;
        if header.opcode == OpCode::Close {
            let (close, violation) = ClosePayload::parse(&frame.kept);
            let mut violations = frame.violations;
            violations.extend(violation);
            out.push(Observed::Frame {
                header,
                payload: frame.kept,
                violations,
            });
            out.push(Observed::Close(close));
            return;
        }
        if frame.report {
            out.push(Observed::Frame {
                header,
                payload: frame.kept,
                violations: frame.violations,
            });
        }
        if !(frame.data && header.fin) {
            return;
        }
        let Some(mut message) = self.message.take() else {
            return;
        };
        if message.compressed && !self.inflate_broken {
            let mut inflated = Vec::new();
            let deflate = self.deflate.as_mut().expect("compressed implies deflate");
            match deflate.finish_message(&mut inflated, usize::MAX) {
                Ok(()) => {
                    keep_prefix(&mut message.data, &inflated, message.keep);
                    message.len += inflated.len() as u64;
                }
                Err(err) => {
                    self.inflate_broken = true;
                    out.push(Observed::Problem(format!(
                        "compressed data does not inflate ({err}); messages are no longer decoded"
                    )));
                }
            }
        }
        if message.compressed {
            // The slices' buffers served this message; an idle connection
            // should not keep them.
            self.scratch = Vec::new();
            self.inflated = Vec::new();
        }
        if message.compressed && self.inflate_broken {
            // Its contents are unknown: the frames say what was sent, a
            // message event would claim it was empty.
            return;
        }
        self.stats.messages += 1;
        out.push(Observed::Message {
            opcode: message.opcode,
            data: message.data,
            len: message.len,
            compressed: message.compressed,
            frames: message.frames,
        });
    }
}

/// Appends as much of `bytes` to `kept` as fits in `limit`.
fn keep_prefix(kept: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let room = limit.saturating_sub(kept.len());
    kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn masked(opcode: OpCode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
        encode_frame(opcode, fin, false, Some([1, 2, 3, 4]), payload, out);
    }

    /// Feeds `wire` in pieces of every size from 1 up, checking the tap
    /// sees the same thing each time.
    fn observe(tap: impl Fn() -> Tap, wire: &[u8]) -> Vec<Observed> {
        let mut whole = Vec::new();
        tap().feed(wire, &mut whole);
        for piece in 1..wire.len().min(40) {
            let mut t = tap();
            let mut seen = Vec::new();
            for chunk in wire.chunks(piece) {
                t.feed(chunk, &mut seen);
            }
            assert_eq!(seen, whole, "fed {piece} bytes at a time");
            assert!(t.at_frame_boundary());
        }
        whole
    }

    #[test]
    fn masked_fragments_with_a_ping_between() {
        let mut wire = Vec::new();
        masked(OpCode::Text, false, b"Hel", &mut wire);
        masked(OpCode::Ping, true, b"hi", &mut wire);
        masked(OpCode::Continuation, true, b"lo", &mut wire);
        masked(OpCode::Close, true, &[0x03, 0xe8, b'o', b'k'], &mut wire);
        let seen = observe(|| Tap::new(Role::Client, None, 1024), &wire);
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(matches!(&seen[0], Observed::Frame { header, payload, .. }
            if header.opcode == OpCode::Ping && payload == b"hi"));
        assert_eq!(
            seen[1],
            Observed::Message {
                opcode: OpCode::Text,
                data: b"Hello".to_vec(),
                len: 5,
                compressed: false,
                frames: 2
            }
        );
        assert!(matches!(&seen[3], Observed::Close(close)
            if close.code == Some(crate::CloseCode(1000)) && close.reason == "ok"));
    }

    #[test]
    fn capture_limit_keeps_a_prefix_and_the_true_length() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        masked(OpCode::Binary, true, &payload, &mut wire);
        let mut tap = Tap::new(Role::Client, None, 10);
        let mut seen = Vec::new();
        for chunk in wire.chunks(7000) {
            tap.feed(chunk, &mut seen);
        }
        assert_eq!(
            seen,
            [Observed::Message {
                opcode: OpCode::Binary,
                data: payload[..10].to_vec(),
                len: 100_000,
                compressed: false,
                frames: 1
            }]
        );
        assert_eq!(tap.stats().bytes, wire.len() as u64);
    }

    #[test]
    fn compressed_messages_with_context_takeover() {
        let params = DeflateParams::default();
        let mut sender = PerMessageDeflate::new(Role::Server, params);
        let mut wire = Vec::new();
        let texts = ["hello hello hello", "hello hello hello again", ""];
        for text in texts {
            let mut compressed = Vec::new();
            sender.compress(text.as_bytes(), &mut compressed).unwrap();
            encode_frame(OpCode::Text, true, true, None, &compressed, &mut wire);
        }
        let seen = observe(|| Tap::new(Role::Server, Some(params), 1024), &wire);
        let got: Vec<_> = seen
            .iter()
            .map(|o| match o {
                Observed::Message {
                    data, compressed, ..
                } => {
                    assert!(compressed);
                    String::from_utf8(data.clone()).unwrap()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, texts);
    }

    #[test]
    fn a_tap_holds_no_deflate_state_until_a_compressed_message() {
        let params = DeflateParams::default();
        let mut tap = Tap::new(Role::Client, Some(params), 1024);
        let mut out = Vec::new();
        let mut wire = Vec::new();
        masked(OpCode::Text, true, b"plain", &mut wire);
        tap.feed(&wire, &mut out);
        assert_eq!(tap.held().deflate, Some(crate::deflate::Held::default()));
        let mut sender = PerMessageDeflate::new(Role::Client, params);
        let mut compressed = Vec::new();
        sender
            .compress(&b"hello ".repeat(2000), &mut compressed)
            .unwrap();
        wire.clear();
        encode_frame(
            OpCode::Text,
            true,
            true,
            Some([1, 2, 3, 4]),
            &compressed,
            &mut wire,
        );
        tap.feed(&wire, &mut out);
        // Between messages only the received window (12,000 bytes of
        // plaintext) stays, no zlib state.
        let held = tap.held();
        assert_eq!(
            held.deflate,
            Some(crate::deflate::Held {
                received_window: 12_000,
                ..crate::deflate::Held::default()
            })
        );
        assert_eq!(held.buffers, 0, "{held:?}");
    }

    #[test]
    fn violations_are_reported_and_the_stream_goes_on() {
        let mut wire = Vec::new();
        // Unmasked from a client, then a continuation with nothing to continue.
        encode_frame(OpCode::Text, true, false, None, b"no mask", &mut wire);
        masked(OpCode::Continuation, true, b"orphan", &mut wire);
        masked(OpCode::Binary, true, b"fine", &mut wire);
        let seen = observe(|| Tap::new(Role::Client, None, 1024), &wire);
        let violations: Vec<Vec<Violation>> = seen
            .iter()
            .filter_map(|o| match o {
                Observed::Frame { violations, .. } => Some(violations.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            violations,
            [
                vec![Violation::UnmaskedClientFrame],
                vec![Violation::UnexpectedContinuation]
            ]
        );
        assert!(
            seen.iter()
                .any(|o| matches!(o, Observed::Message { data, .. } if data == b"fine"))
        );
    }

    #[test]
    fn garbage_that_does_not_inflate_is_a_problem_not_a_panic() {
        let params = DeflateParams::default();
        let mut wire = Vec::new();
        encode_frame(OpCode::Text, true, true, None, &[0xff; 64], &mut wire);
        let mut tap = Tap::new(Role::Server, Some(params), 1024);
        let mut seen = Vec::new();
        tap.feed(&wire, &mut seen);
        assert!(
            seen.iter().any(|o| matches!(o, Observed::Problem(_))),
            "{seen:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            piece in 1usize..64,
            deflate in proptest::prelude::any::<bool>(),
        ) {
            let params = deflate.then(DeflateParams::default);
            let mut tap = Tap::new(Role::Client, params, 32);
            tap.report_data_frames(true);
            let mut seen = Vec::new();
            for chunk in bytes.chunks(piece) {
                tap.feed(chunk, &mut seen);
            }
            proptest::prop_assert_eq!(tap.stats().bytes, bytes.len() as u64);
        }
    }
}
