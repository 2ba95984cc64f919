//! Protocol violations: what is wrong with a frame or message, and where the
//! RFC says so.
//!
//! Parsing never refuses bytes; it returns what was on the wire and a list of
//! these. Each knows its RFC section, so output can cite it, and the close
//! code an endpoint should fail the connection with (section 7.1.7).

use std::fmt;

use crate::close::CloseCode;

/// One way a frame, message or close payload breaks RFC 6455 or RFC 7692.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// A client sent a frame without a mask.
    UnmaskedClientFrame,
    /// A server sent a masked frame.
    MaskedServerFrame,
    /// RSV1-3 set without an extension that defines them. Bits are 1/2/4 for RSV1/2/3.
    ReservedBits(u8),
    /// An opcode reserved for future use.
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong(u64),
    /// A control frame with FIN clear.
    FragmentedControlFrame,
    /// The payload length was not written in its shortest form.
    NonMinimalLength,
    /// A 64-bit payload length with its most significant bit set.
    LengthHighBitSet,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message was in progress.
    ExpectedContinuation,
    /// A text message (or close reason) that is not valid UTF-8.
    InvalidUtf8 { offset: u64 },
    /// A close code that may not be sent.
    InvalidCloseCode(u16),
    /// A close payload of exactly one byte.
    ClosePayloadTooShort,
    /// A close reason that is not valid UTF-8.
    InvalidCloseReason,
    /// RSV1 set on a control frame with permessage-deflate.
    CompressedControlFrame,
    /// RSV1 set on a continuation frame with permessage-deflate.
    CompressedContinuation,
}

impl Violation {
    /// The RFC section that the violation breaks, as `RFC 6455 §5.1`.
    pub fn section(self) -> &'static str {
        match self {
            Violation::UnmaskedClientFrame | Violation::MaskedServerFrame => "RFC 6455 §5.1",
            Violation::ReservedBits(_)
            | Violation::ReservedOpcode(_)
            | Violation::NonMinimalLength
            | Violation::LengthHighBitSet => "RFC 6455 §5.2",
            Violation::ControlFrameTooLong(_) | Violation::FragmentedControlFrame => {
                "RFC 6455 §5.5"
            }
            Violation::UnexpectedContinuation | Violation::ExpectedContinuation => "RFC 6455 §5.4",
            Violation::InvalidUtf8 { .. } => "RFC 6455 §8.1",
            Violation::InvalidCloseCode(_) => "RFC 6455 §7.4.1",
            Violation::ClosePayloadTooShort | Violation::InvalidCloseReason => "RFC 6455 §5.5.1",
            Violation::CompressedControlFrame | Violation::CompressedContinuation => {
                "RFC 7692 §6.1"
            }
        }
    }

    /// The close code to fail the connection with: 1007 for bad data in a
    /// message, 1002 for everything else (RFC 6455 section 7.4.1).
    pub fn close_code(self) -> CloseCode {
        match self {
            Violation::InvalidUtf8 { .. } | Violation::InvalidCloseReason => {
                CloseCode::INVALID_PAYLOAD
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short phrase for close reasons and one-line output.
    pub fn short(self) -> &'static str {
        match self {
            Violation::UnmaskedClientFrame => "unmasked client frame",
            Violation::MaskedServerFrame => "masked server frame",
            Violation::ReservedBits(_) => "reserved bit set",
            Violation::ReservedOpcode(_) => "reserved opcode",
            Violation::ControlFrameTooLong(_) => "control frame over 125 bytes",
            Violation::FragmentedControlFrame => "fragmented control frame",
            Violation::NonMinimalLength => "non-minimal length",
            Violation::LengthHighBitSet => "64-bit length with high bit set",
            Violation::UnexpectedContinuation => "continuation without a message",
            Violation::ExpectedContinuation => "new message inside a fragmented one",
            Violation::InvalidUtf8 { .. } => "invalid UTF-8 in text",
            Violation::InvalidCloseCode(_) => "invalid close code",
            Violation::ClosePayloadTooShort => "1-byte close payload",
            Violation::InvalidCloseReason => "invalid UTF-8 in close reason",
            Violation::CompressedControlFrame => "compressed control frame",
            Violation::CompressedContinuation => "RSV1 on continuation frame",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::UnmaskedClientFrame => {
                f.write_str("client frame is not masked; every client-to-server frame must be")
            }
            Violation::MaskedServerFrame => {
                f.write_str("server frame is masked; server-to-client frames must not be")
            }
            Violation::ReservedBits(bits) => {
                let names: Vec<&str> = [(1, "RSV1"), (2, "RSV2"), (4, "RSV3")]
                    .iter()
                    .filter(|(bit, _)| bits & bit != 0)
                    .map(|(_, name)| *name)
                    .collect();
                write!(
                    f,
                    "{} set but no negotiated extension defines it",
                    names.join("+")
                )
            }
            Violation::ReservedOpcode(op) => write!(f, "opcode 0x{op:X} is reserved"),
            Violation::ControlFrameTooLong(len) => write!(
                f,
                "control frame has {len} bytes of payload; the limit is 125"
            ),
            Violation::FragmentedControlFrame => {
                f.write_str("control frame has FIN clear; control frames must not be fragmented")
            }
            Violation::NonMinimalLength => {
                f.write_str("payload length not encoded in the minimal number of bytes")
            }
            Violation::LengthHighBitSet => {
                f.write_str("64-bit payload length has its most significant bit set")
            }
            Violation::UnexpectedContinuation => {
                f.write_str("continuation frame but no fragmented message is in progress")
            }
            Violation::ExpectedContinuation => f.write_str(
                "text/binary frame while a fragmented message is in progress; expected a continuation",
            ),
            Violation::InvalidUtf8 { offset } => {
                write!(f, "text is not valid UTF-8 (first bad byte at offset {offset})")
            }
            Violation::InvalidCloseCode(code) => {
                write!(f, "close code {code} may not be sent on the wire")
            }
            Violation::ClosePayloadTooShort => {
                f.write_str("close payload of 1 byte; it must be empty or hold a 2-byte code")
            }
            Violation::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            Violation::CompressedControlFrame => {
                f.write_str("RSV1 set on a control frame; control frames are never compressed")
            }
            Violation::CompressedContinuation => f.write_str(
                "RSV1 set on a continuation frame; only a message's first frame carries it",
            ),
        }?;
        write!(f, " ({})", self.section())
    }
}
