//! Cutting one direction's byte stream into whole frames, each kept as it
//! was on the wire: what a proxy needs when it must hold, drop or rewrite
//! frames instead of passing bytes straight on.
//!
//! Unlike [`crate::tap::Tap`], which looks at bytes after they have been
//! forwarded and keeps only a bounded view, a [`FrameSplitter`] holds each
//! frame until it is complete, so memory is bounded by the largest frame it
//! accepts. Frames over the limit are refused rather than buffered.

use crate::frame::{Decoded, FrameHeader};
use crate::mask::apply_mask;

/// One frame exactly as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    pub header: FrameHeader,
    /// How many of `wire`'s bytes are the header.
    pub header_len: usize,
    /// Header and payload (masked, if the sender masked it).
    pub wire: Vec<u8>,
}

impl WireFrame {
    /// The payload, unmasked, appended to `out`.
    pub fn payload_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.wire[self.header_len..]);
        if let Some(key) = self.header.mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }

    /// The payload, unmasked.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire.len() - self.header_len);
        self.payload_into(&mut out);
        out
    }
}

/// A frame announced a payload larger than the splitter will hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    pub header: FrameHeader,
    pub limit: u64,
}

/// What the stream was cut into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole frame.
    Frame(WireFrame),
    /// More of a frame released by [`FrameSplitter::release_partial`],
    /// passed on as it arrives.
    Rest(Vec<u8>),
}

/// Cuts a byte stream into [`WireFrame`]s.
#[derive(Debug)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out; compacted once per feed.
    start: usize,
    limit: u64,
    failed: Option<TooLarge>,
    /// Bytes of a released frame still to come.
    rest: u64,
}

impl FrameSplitter {
    /// Holds frames with payloads of up to `limit` bytes.
    pub fn new(limit: u64) -> Self {
        FrameSplitter {
            buf: Vec::new(),
            start: 0,
            limit,
            failed: None,
            rest: 0,
        }
    }

    /// The frame begun but not complete: its header, header length, and
    /// its payload so far (masked as it came).
    pub fn partial(&self) -> Option<(FrameHeader, usize, &[u8])> {
        let rest = &self.buf[self.start..];
        match FrameHeader::decode(rest) {
            Decoded::Complete { header, header_len } if header.payload_len <= self.limit => {
                let end = rest.len().min(header_len + header.payload_len as usize);
                (end < header_len + header.payload_len as usize)
                    .then(|| (header, header_len, &rest[header_len..end]))
            }
            _ => None,
        }
    }

    /// Gives up holding the frame in progress: returns its bytes so far;
    /// the rest of it comes out of [`FrameSplitter::feed`] as
    /// [`Piece::Rest`] as it arrives.
    pub fn release_partial(&mut self) -> Vec<u8> {
        let Some((header, header_len, so_far)) = self.partial() else {
            return Vec::new();
        };
        let taken = header_len + so_far.len();
        self.rest = header.payload_len - so_far.len() as u64;
        let out = self.buf[self.start..self.start + taken].to_vec();
        self.buf.drain(..self.start + taken);
        self.start = 0;
        out
    }

    /// Bytes received that are not yet part of a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether no partial frame is held.
    pub fn at_frame_boundary(&self) -> bool {
        self.pending() == 0
    }

    /// Takes the next bytes of the stream and appends every frame they
    /// complete to `out`. Once a frame over the limit is announced, that and
    /// every later call fail: the stream cannot be cut any further.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Piece>) -> Result<(), TooLarge> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        if self.rest > 0 {
            let n = data.len().min(self.rest as usize);
            out.push(Piece::Rest(data[..n].to_vec()));
            self.rest -= n as u64;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        let result = loop {
            let rest = &self.buf[self.start..];
            let (header, header_len) = match FrameHeader::decode(rest) {
                Decoded::Incomplete { .. } => break Ok(()),
                Decoded::Complete { header, header_len } => (header, header_len),
            };
            if header.payload_len > self.limit {
                let failed = TooLarge {
                    header,
                    limit: self.limit,
                };
                self.failed = Some(failed);
                break Err(failed);
            }
            let total = header_len + header.payload_len as usize;
            if rest.len() < total {
                break Ok(());
            }
            out.push(Piece::Frame(WireFrame {
                header,
                header_len,
                wire: rest[..total].to_vec(),
            }));
            self.start += total;
        };
        self.buf.drain(..self.start);
        self.start = 0;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpCode;
    use crate::frame::encode_frame;
    use proptest::prelude::*;

    fn whole_frames(pieces: Vec<Piece>) -> Vec<WireFrame> {
        pieces
            .into_iter()
            .map(|p| match p {
                Piece::Frame(f) => f,
                Piece::Rest(_) => panic!("nothing was released"),
            })
            .collect()
    }

    /// Opcode, FIN, payload, mask.
    type Spec<'a> = (OpCode, bool, &'a [u8], Option<[u8; 4]>);

    fn wire(frames: &[Spec<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (opcode, fin, payload, mask) in frames {
            encode_frame(*opcode, *fin, false, *mask, payload, &mut out);
        }
        out
    }

    #[test]
    fn whole_frames_come_out_as_they_went_in() {
        let bytes = wire(&[
            (OpCode::Text, false, b"hel", Some([1, 2, 3, 4])),
            (OpCode::Ping, true, b"p", Some([9, 9, 9, 9])),
            (OpCode::Continuation, true, b"lo", Some([5, 6, 7, 8])),
        ]);
        let mut splitter = FrameSplitter::new(1024);
        let mut out = Vec::new();
        splitter.feed(&bytes, &mut out).unwrap();
        let out = whole_frames(out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].payload(), b"hel");
        assert_eq!(out[1].header.opcode, OpCode::Ping);
        assert_eq!(out[2].payload(), b"lo");
        let rejoined: Vec<u8> = out.iter().flat_map(|f| f.wire.clone()).collect();
        assert_eq!(rejoined, bytes);
        assert!(splitter.at_frame_boundary());
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_it_is_buffered() {
        let bytes = wire(&[(OpCode::Binary, true, &[0u8; 200], None)]);
        let mut splitter = FrameSplitter::new(100);
        let mut out = Vec::new();
        let err = splitter.feed(&bytes[..4], &mut out).unwrap_err();
        assert_eq!(err.header.payload_len, 200);
        assert!(splitter.feed(&bytes[4..], &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn a_released_frame_passes_the_rest_as_it_comes() {
        let bytes = wire(&[
            (OpCode::Text, true, b"hello world", Some([1, 2, 3, 4])),
            (OpCode::Ping, true, b"", None),
        ]);
        let mut splitter = FrameSplitter::new(1024);
        let mut out = Vec::new();
        splitter.feed(&bytes[..10], &mut out).unwrap();
        assert!(out.is_empty());
        let (header, header_len, so_far) = splitter.partial().unwrap();
        assert_eq!((header.payload_len, header_len, so_far.len()), (11, 6, 4));
        let mut passed = splitter.release_partial();
        assert!(splitter.partial().is_none());
        splitter.feed(&bytes[10..14], &mut out).unwrap();
        splitter.feed(&bytes[14..], &mut out).unwrap();
        let mut whole = Vec::new();
        for piece in out {
            match piece {
                Piece::Rest(rest) => passed.extend(rest),
                Piece::Frame(frame) => whole.push(frame),
            }
        }
        assert_eq!(passed, &bytes[..17]);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].header.opcode, OpCode::Ping);
    }

    proptest! {
        /// However the stream is cut, the same frames come out, and their
        /// bytes put back together are the stream.
        #[test]
        fn any_split_gives_the_same_frames(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let frames: Vec<_> = payloads
                .iter()
                .map(|p| (OpCode::Binary, true, p.as_slice(), Some([7, 1, 2, 3])))
                .collect();
            let bytes = wire(&frames);
            let mut splitter = FrameSplitter::new(1 << 20);
            let mut out = Vec::new();
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at >= bytes.len() {
                    break;
                }
                let end = (at + cut).min(bytes.len());
                splitter.feed(&bytes[at..end], &mut out).unwrap();
                at = end;
            }
            let out = whole_frames(out);
            prop_assert_eq!(out.len(), payloads.len());
            for (frame, payload) in out.iter().zip(&payloads) {
                prop_assert_eq!(&frame.payload(), payload);
            }
            let rejoined: Vec<u8> = out.iter().flat_map(|f| f.wire.clone()).collect();
            prop_assert_eq!(rejoined, bytes);
        }
    }
}
