//! Reassembly of messages from frames (RFC 6455 section 5.4), with
//! permessage-deflate (RFC 7692) and incremental UTF-8 validation.
//!
//! The assembler is fed one frame at a time — or one frame in pieces, via
//! [`MessageAssembler::begin_frame`], [`MessageAssembler::payload`] and
//! [`MessageAssembler::end_frame`], so a reader can pass payload on as it
//! arrives and catch bad UTF-8 before a large frame is complete. It enforces
//! what needs message state: continuation sequencing, the size limit, and
//! that text is UTF-8. Rules a header breaks on its own are in
//! [`crate::frame`]. Control frames pass straight through: they may arrive
//! between the fragments of a message and never touch its state.

use crate::deflate::PerMessageDeflate;
use crate::utf8::Utf8Validator;
use crate::{Error, FrameHeader, OpCode, Violation};

/// Default maximum message size: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 * 1024 * 1024;

/// A whole data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `Text` or `Binary`.
    pub opcode: OpCode,
    /// The payload, unmasked and decompressed. Text is valid UTF-8.
    pub data: Vec<u8>,
    /// It arrived compressed (RSV1 on its first frame).
    pub compressed: bool,
    /// How many frames carried it.
    pub frames: u32,
    /// Payload bytes on the wire (before decompression).
    pub wire_len: u64,
}

/// What a frame amounted to.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// A data frame that did not finish its message yet.
    Partial,
    /// A data frame that finished a message.
    Message(Message),
    /// A control frame: its payload is the caller's to interpret.
    Control,
}

#[derive(Debug)]
struct InProgress {
    opcode: OpCode,
    compressed: bool,
    frames: u32,
    wire_len: u64,
}

/// Turns a sequence of frames from one direction of one connection into
/// messages.
#[derive(Debug)]
pub struct MessageAssembler {
    max_message: u64,
    deflate: bool,
    message: Option<InProgress>,
    /// The frame currently being fed: its opcode and FIN.
    frame: Option<(OpCode, bool)>,
    data: Vec<u8>,
    utf8: Utf8Validator,
}

impl MessageAssembler {
    /// `max_message` bounds a message's size on the wire and after
    /// decompression. `deflate` says permessage-deflate was negotiated.
    pub fn new(max_message: u64, deflate: bool) -> Self {
        MessageAssembler {
            max_message,
            deflate,
            message: None,
            frame: None,
            data: Vec::new(),
            utf8: Utf8Validator::new(),
        }
    }

    /// Whether a fragmented message is in progress.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Feeds one whole frame (payload already unmasked).
    pub fn push(
        &mut self,
        header: &FrameHeader,
        payload: &[u8],
        deflate: Option<&mut PerMessageDeflate>,
    ) -> Result<Assembled, Error> {
        if self.begin_frame(header)? == Assembled::Control {
            return Ok(Assembled::Control);
        }
        let mut deflate = deflate;
        self.payload(payload, deflate.as_deref_mut())?;
        self.end_frame(deflate)
    }

    /// Starts a frame. Returns `Control` for control frames (which leave the
    /// message state alone), `Partial` otherwise.
    pub fn begin_frame(&mut self, header: &FrameHeader) -> Result<Assembled, Error> {
        if header.opcode.is_control() {
            return Ok(Assembled::Control);
        }
        match (header.opcode, &mut self.message) {
            (OpCode::Continuation, None) => {
                return Err(Error::Protocol(Violation::UnexpectedContinuation));
            }
            (OpCode::Continuation, Some(message)) => message.frames += 1,
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(Error::Protocol(Violation::ExpectedContinuation));
            }
            (OpCode::Text | OpCode::Binary, None) => {
                self.data.clear();
                self.utf8.reset();
                self.message = Some(InProgress {
                    opcode: header.opcode,
                    compressed: self.deflate && header.rsv1,
                    frames: 1,
                    wire_len: 0,
                });
            }
            (OpCode::Reserved(bits), _) => {
                return Err(Error::Protocol(Violation::ReservedOpcode(bits)));
            }
            _ => unreachable!("control opcodes returned above"),
        }
        let message = self.message.as_mut().expect("set or checked just above");
        let size = message.wire_len.saturating_add(header.payload_len);
        if size > self.max_message {
            return Err(Error::TooBig {
                size: Some(size),
                limit: self.max_message,
            });
        }
        self.frame = Some((header.opcode, header.fin));
        Ok(Assembled::Partial)
    }

    /// Feeds (unmasked) payload of the current data frame.
    pub fn payload(
        &mut self,
        chunk: &[u8],
        deflate: Option<&mut PerMessageDeflate>,
    ) -> Result<(), Error> {
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        message.wire_len += chunk.len() as u64;
        let before = self.data.len();
        if message.compressed {
            let deflate = deflate.ok_or_else(|| {
                Error::Inflate("compressed message but no permessage-deflate state".into())
            })?;
            deflate.decompress_chunk(chunk, &mut self.data, self.max_message as usize)?;
        } else {
            self.data.extend_from_slice(chunk);
        }
        let opcode = message.opcode;
        self.check_text(opcode, before)
    }

    /// Ends the current data frame. Returns the message when FIN was set.
    pub fn end_frame(
        &mut self,
        deflate: Option<&mut PerMessageDeflate>,
    ) -> Result<Assembled, Error> {
        let Some((_, fin)) = self.frame.take() else {
            return Ok(Assembled::Partial);
        };
        if !fin {
            return Ok(Assembled::Partial);
        }
        let message = self
            .message
            .take()
            .expect("a data frame is only begun with a message in progress");
        if message.compressed {
            let before = self.data.len();
            let deflate = deflate.ok_or_else(|| {
                Error::Inflate("compressed message but no permessage-deflate state".into())
            })?;
            deflate.finish_message(&mut self.data, self.max_message as usize)?;
            self.check_text(message.opcode, before)?;
        }
        if message.opcode == OpCode::Text {
            self.utf8
                .finish()
                .map_err(|e| Error::Protocol(Violation::InvalidUtf8 { offset: e.offset }))?;
        }
        Ok(Assembled::Message(Message {
            opcode: message.opcode,
            data: std::mem::take(&mut self.data),
            compressed: message.compressed,
            frames: message.frames,
            wire_len: message.wire_len,
        }))
    }

    /// Validates the text bytes appended since `from`.
    fn check_text(&mut self, opcode: OpCode, from: usize) -> Result<(), Error> {
        if opcode != OpCode::Text {
            return Ok(());
        }
        self.utf8
            .feed(&self.data[from..])
            .map_err(|e| Error::Protocol(Violation::InvalidUtf8 { offset: e.offset }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: OpCode, fin: bool, len: usize) -> FrameHeader {
        FrameHeader {
            fin,
            ..FrameHeader::new(opcode, len as u64)
        }
    }

    #[test]
    fn fragments_with_interleaved_ping() {
        let mut a = MessageAssembler::new(DEFAULT_MAX_MESSAGE, false);
        assert_eq!(
            a.push(&frame(OpCode::Text, false, 3), b"Hel", None)
                .unwrap(),
            Assembled::Partial
        );
        assert_eq!(
            a.push(&frame(OpCode::Ping, true, 2), b"hi", None).unwrap(),
            Assembled::Control
        );
        let Assembled::Message(m) = a
            .push(&frame(OpCode::Continuation, true, 2), b"lo", None)
            .unwrap()
        else {
            panic!("message expected");
        };
        assert_eq!(m.data, b"Hello");
        assert_eq!(m.frames, 2);
        assert!(!a.in_message());
    }

    #[test]
    fn sequencing_violations() {
        let mut a = MessageAssembler::new(DEFAULT_MAX_MESSAGE, false);
        let err = a
            .push(&frame(OpCode::Continuation, true, 0), b"", None)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(Violation::UnexpectedContinuation)
        ));
        a.push(&frame(OpCode::Binary, false, 1), b"x", None)
            .unwrap();
        let err = a
            .push(&frame(OpCode::Text, true, 1), b"y", None)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(Violation::ExpectedContinuation)
        ));
    }

    #[test]
    fn utf8_fails_on_the_fragment_that_breaks_it() {
        let mut a = MessageAssembler::new(DEFAULT_MAX_MESSAGE, false);
        a.push(&frame(OpCode::Text, false, 2), "κ".as_bytes(), None)
            .unwrap();
        let err = a
            .push(&frame(OpCode::Continuation, false, 2), &[0xF4, 0x90], None)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(Violation::InvalidUtf8 { offset: 3 })
        ));
        // A character cut off by the end of the message.
        let mut a = MessageAssembler::new(DEFAULT_MAX_MESSAGE, false);
        let err = a
            .push(&frame(OpCode::Text, true, 2), &[0x61, 0xE2], None)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Protocol(Violation::InvalidUtf8 { offset: 1 })
        ));
    }

    #[test]
    fn size_limit_counts_all_fragments() {
        let mut a = MessageAssembler::new(10, false);
        a.push(&frame(OpCode::Binary, false, 6), &[0; 6], None)
            .unwrap();
        let err = a
            .push(&frame(OpCode::Continuation, true, 6), &[0; 6], None)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::TooBig {
                size: Some(12),
                limit: 10
            }
        ));
    }

    #[test]
    fn streamed_payload_equals_whole() {
        let mut a = MessageAssembler::new(DEFAULT_MAX_MESSAGE, false);
        let h = frame(OpCode::Text, true, 11);
        a.begin_frame(&h).unwrap();
        a.payload(b"hello ", None).unwrap();
        a.payload(b"world", None).unwrap();
        let Assembled::Message(m) = a.end_frame(None).unwrap() else {
            panic!("message expected");
        };
        assert_eq!(m.data, b"hello world");
    }
}
