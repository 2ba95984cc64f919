//! Frame opcodes (RFC 6455 section 5.2 and 11.8).

use std::fmt;

/// A frame's 4-bit opcode. Reserved values are kept, not rejected: a
/// debugger shows what was on the wire and [`crate::Violation`] says why it is
/// wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
    /// 0x3-0x7 (data) or 0xB-0xF (control): reserved for future use.
    Reserved(u8),
}

impl OpCode {
    /// Decodes the low 4 bits of `bits`.
    pub fn from_bits(bits: u8) -> OpCode {
        match bits & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
            OpCode::Reserved(bits) => bits & 0x0F,
        }
    }

    /// Control frames have the high bit of the opcode set (section 5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }

    /// Text, binary or continuation (or a reserved data opcode).
    pub fn is_data(self) -> bool {
        !self.is_control()
    }

    /// Whether this opcode is reserved (section 5.2: "MUST fail the connection").
    pub fn is_reserved(self) -> bool {
        matches!(self, OpCode::Reserved(_))
    }

    /// The short lowercase name used in output and filters.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Continuation => "cont",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
            OpCode::Reserved(_) => "reserved",
        }
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpCode::Reserved(bits) => write!(f, "reserved(0x{bits:X})"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nibble_round_trips() {
        for bits in 0..16u8 {
            assert_eq!(OpCode::from_bits(bits).bits(), bits);
        }
    }

    #[test]
    fn control_and_reserved() {
        assert!(OpCode::Ping.is_control());
        assert!(!OpCode::Text.is_control());
        assert!(OpCode::from_bits(0x3).is_reserved());
        assert!(OpCode::from_bits(0xB).is_control());
    }
}
