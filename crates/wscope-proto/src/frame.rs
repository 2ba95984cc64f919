//! Frame headers (RFC 6455 section 5.2): incremental parse, encode, and the
//! rules a header can break on its own.
//!
//! Parsing is two-phase, as the house style asks: [`FrameHeader::decode`]
//! first looks at the first two bytes to learn how long the header is, and
//! answers "need N more" without touching the rest; only when the whole
//! header is there does it build the value. It never fails: every bit
//! pattern is *some* header, and what is wrong with it is reported by
//! [`FrameHeader::violations`].

use crate::{OpCode, Role, Violation};

/// The largest header: 2 bytes + 8 bytes of length + 4 bytes of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame header as it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv1: bool,
    pub rsv2: bool,
    pub rsv3: bool,
    pub opcode: OpCode,
    /// The masking key, when the mask bit is set.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// The result of trying to read a header from the bytes that have arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// At least this many more bytes are needed before the header is complete.
    Incomplete { needed: usize },
    /// A whole header, which took `header_len` bytes. The payload follows.
    Complete {
        header: FrameHeader,
        header_len: usize,
    },
}

/// What a reader knows about the connection, to judge a header by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRules {
    /// Who sent the frame: clients must mask, servers must not.
    pub sender: Role,
    /// permessage-deflate was negotiated, so RSV1 has a meaning.
    pub deflate: bool,
}

impl FrameHeader {
    /// A final, unmasked frame of `opcode` with `payload_len` bytes.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Reads a header from the start of `buf`, or says how many more bytes
    /// are needed. Does not allocate and never fails.
    pub fn decode(buf: &[u8]) -> Decoded {
        // Phase one: how long is the header?
        if buf.len() < 2 {
            return Decoded::Incomplete {
                needed: 2 - buf.len(),
            };
        }
        let (b0, b1) = (buf[0], buf[1]);
        let masked = b1 & 0x80 != 0;
        let len_bytes = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Decoded::Incomplete {
                needed: header_len - buf.len(),
            };
        }
        // Phase two: build it.
        let payload_len = match len_bytes {
            0 => u64::from(b1 & 0x7F),
            2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            _ => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&buf[2..10]);
                u64::from_be_bytes(be)
            }
        };
        let mask = masked.then(|| {
            let at = 2 + len_bytes;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        Decoded::Complete {
            header: FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode: OpCode::from_bits(b0),
                mask,
                payload_len,
            },
            header_len,
        }
    }

    /// How many bytes [`FrameHeader::encode`] writes: the minimal encoding.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header, with the length in its minimal form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let b0 = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        out.push(b0);
        match self.payload_len {
            len @ 0..=125 => out.push(mask_bit | len as u8),
            len @ 126..=0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
    }

    /// Everything wrong with this header on its own, given who sent it and
    /// what was negotiated. `header_len` is what [`FrameHeader::decode`]
    /// reported, to catch a non-minimal length encoding. Sequencing rules
    /// (continuations) need the message state; see [`crate::message`].
    pub fn violations(&self, header_len: usize, rules: FrameRules, out: &mut Vec<Violation>) {
        match (rules.sender, self.mask.is_some()) {
            (Role::Client, false) => out.push(Violation::UnmaskedClientFrame),
            (Role::Server, true) => out.push(Violation::MaskedServerFrame),
            _ => {}
        }
        if let OpCode::Reserved(bits) = self.opcode {
            out.push(Violation::ReservedOpcode(bits));
        }
        let deflate_rsv1 = rules.deflate && self.rsv1;
        if deflate_rsv1 && self.opcode.is_control() {
            out.push(Violation::CompressedControlFrame);
        } else if deflate_rsv1 && self.opcode == OpCode::Continuation {
            out.push(Violation::CompressedContinuation);
        }
        let reserved = (u8::from(self.rsv1 && !rules.deflate))
            | (u8::from(self.rsv2) << 1)
            | (u8::from(self.rsv3) << 2);
        if reserved != 0 {
            out.push(Violation::ReservedBits(reserved));
        }
        if self.opcode.is_control() {
            if self.payload_len > 125 {
                out.push(Violation::ControlFrameTooLong(self.payload_len));
            }
            if !self.fin {
                out.push(Violation::FragmentedControlFrame);
            }
        }
        if self.payload_len > i64::MAX as u64 {
            out.push(Violation::LengthHighBitSet);
        }
        if header_len != self.encoded_len() {
            out.push(Violation::NonMinimalLength);
        }
    }
}

/// Appends a whole frame: header, then `payload`, masked with `mask` when
/// given (clients must pass a fresh random key for every frame).
pub fn encode_frame(
    opcode: OpCode,
    fin: bool,
    rsv1: bool,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let header = FrameHeader {
        fin,
        rsv1,
        mask,
        ..FrameHeader::new(opcode, payload.len() as u64)
    };
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        crate::mask::apply_mask(&mut out[start..], key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rules(sender: Role) -> FrameRules {
        FrameRules {
            sender,
            deflate: false,
        }
    }

    #[test]
    fn rfc_examples() {
        // RFC 6455 section 5.7: unmasked "Hello".
        let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let Decoded::Complete { header, header_len } = FrameHeader::decode(&bytes) else {
            panic!("complete header expected");
        };
        assert_eq!(header_len, 2);
        assert!(header.fin);
        assert_eq!(header.opcode, OpCode::Text);
        assert_eq!(header.payload_len, 5);
        // 256 bytes binary message in a single unmasked frame.
        let bytes = [0x82, 0x7E, 0x01, 0x00];
        let Decoded::Complete { header, header_len } = FrameHeader::decode(&bytes) else {
            panic!("complete header expected");
        };
        assert_eq!((header_len, header.payload_len), (4, 256));
        // 64 KiB, 64-bit length.
        let bytes = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let Decoded::Complete { header, .. } = FrameHeader::decode(&bytes) else {
            panic!("complete header expected");
        };
        assert_eq!(header.payload_len, 65536);
    }

    #[test]
    fn says_how_many_more_bytes() {
        assert_eq!(FrameHeader::decode(&[]), Decoded::Incomplete { needed: 2 });
        assert_eq!(
            FrameHeader::decode(&[0x81]),
            Decoded::Incomplete { needed: 1 }
        );
        // Masked, 64-bit length: 14 bytes in all.
        assert_eq!(
            FrameHeader::decode(&[0x82, 0xFF, 0, 0]),
            Decoded::Incomplete { needed: 10 }
        );
    }

    #[test]
    fn violations_cite_rules() {
        let mut v = Vec::new();
        let mut h = FrameHeader::new(OpCode::Ping, 200);
        h.fin = false;
        h.rsv2 = true;
        h.violations(4, rules(Role::Client), &mut v);
        assert!(v.contains(&Violation::UnmaskedClientFrame));
        assert!(v.contains(&Violation::ControlFrameTooLong(200)));
        assert!(v.contains(&Violation::FragmentedControlFrame));
        assert!(v.contains(&Violation::ReservedBits(2)));
        v.clear();
        let h = FrameHeader {
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::new(OpCode::Text, 3)
        };
        h.violations(6, rules(Role::Server), &mut v);
        assert_eq!(v, vec![Violation::MaskedServerFrame]);
        v.clear();
        // A 5-byte payload written with a 16-bit length.
        let h = FrameHeader::new(OpCode::Text, 5);
        h.violations(4, rules(Role::Server), &mut v);
        assert_eq!(v, vec![Violation::NonMinimalLength]);
        v.clear();
        let h = FrameHeader {
            rsv1: true,
            ..FrameHeader::new(OpCode::Pong, 0)
        };
        h.violations(
            2,
            FrameRules {
                sender: Role::Server,
                deflate: true,
            },
            &mut v,
        );
        assert_eq!(v, vec![Violation::CompressedControlFrame]);
    }

    fn any_header() -> impl Strategy<Value = FrameHeader> {
        (
            any::<[bool; 4]>(),
            0u8..16,
            proptest::option::of(any::<[u8; 4]>()),
            prop_oneof![0u64..200, 100u64..70_000, any::<u64>()],
        )
            .prop_map(|(bits, op, mask, payload_len)| FrameHeader {
                fin: bits[0],
                rsv1: bits[1],
                rsv2: bits[2],
                rsv3: bits[3],
                opcode: OpCode::from_bits(op),
                mask,
                payload_len,
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode(header in any_header()) {
            let mut buf = Vec::new();
            header.encode(&mut buf);
            prop_assert_eq!(buf.len(), header.encoded_len());
            // Every strict prefix asks for more; the whole thing is complete.
            for cut in 0..buf.len() {
                let is_incomplete = matches!(FrameHeader::decode(&buf[..cut]), Decoded::Incomplete { .. });
                prop_assert!(is_incomplete);
            }
            prop_assert_eq!(
                FrameHeader::decode(&buf),
                Decoded::Complete { header, header_len: buf.len() }
            );
        }

        #[test]
        fn whole_frames_round_trip(op in prop_oneof![Just(OpCode::Text), Just(OpCode::Binary), Just(OpCode::Ping)],
                                   fin in any::<bool>(),
                                   mask in proptest::option::of(any::<[u8; 4]>()),
                                   payload in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut buf = Vec::new();
            encode_frame(op, fin, false, mask, &payload, &mut buf);
            let Decoded::Complete { header, header_len } = FrameHeader::decode(&buf) else {
                return Err(TestCaseError::fail("incomplete"));
            };
            prop_assert_eq!(header.opcode, op);
            prop_assert_eq!(header.fin, fin);
            prop_assert_eq!(header.mask, mask);
            let mut body = buf[header_len..].to_vec();
            prop_assert_eq!(body.len() as u64, header.payload_len);
            if let Some(key) = header.mask {
                crate::mask::apply_mask(&mut body, key, 0);
            }
            prop_assert_eq!(body, payload);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Decoded::Complete { header, header_len } = FrameHeader::decode(&bytes) {
                prop_assert!(header_len <= bytes.len());
                let mut v = Vec::new();
                header.violations(header_len, rules(Role::Client), &mut v);
            }
        }
    }
}
