//! Feeds arbitrary bytes through the frame reader the way a connection does:
//! header decode, violations, unmasking, message assembly. It must never
//! panic, whatever arrives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_proto::frame::FrameRules;
use wscope_proto::mask::apply_mask;
use wscope_proto::message::MessageAssembler;
use wscope_proto::{ClosePayload, Decoded, FrameHeader, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let sender = if flags & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let rules = FrameRules {
        sender,
        deflate: false,
    };
    let mut assembler = MessageAssembler::new(1 << 20, false);
    let mut violations = Vec::new();
    while let Decoded::Complete { header, header_len } = FrameHeader::decode(rest) {
        violations.clear();
        header.violations(header_len, rules, &mut violations);
        let available = rest.len() - header_len;
        let take = (header.payload_len.min(available as u64)) as usize;
        let mut payload = rest[header_len..header_len + take].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        if header.opcode == wscope_proto::OpCode::Close {
            let _ = ClosePayload::parse(&payload);
        }
        if assembler.push(&header, &payload, None).is_err() {
            break;
        }
        rest = &rest[header_len + take..];
        if take == 0 && header_len == 0 {
            break;
        }
    }
});
