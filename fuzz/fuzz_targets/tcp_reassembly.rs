//! Arbitrary segments (sequence numbers, flags, payloads, snap-length
//! cuts, the other side's ACKs) through one direction's reassembly: no
//! panic, and every byte handed out is accounted for in order (data and
//! gaps together advance the stream without overlapping, and their times
//! never go backwards).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wscope_capture::tcp::{Chunk, HalfStream};

fuzz_target!(|data: &[u8]| {
    let mut stream = HalfStream::default();
    let mut next: Option<u32> = None;
    let mut last_ts = 0u64;
    let mut check = |chunk: Chunk<'_>| match chunk {
        Chunk::Data { seq, bytes, ts } => {
            if let Some(n) = next {
                assert_eq!(seq, n, "data must follow what came before");
            }
            assert!(ts >= last_ts, "a stream's times never go backwards");
            last_ts = ts;
            next = Some(seq.wrapping_add(bytes.len() as u32));
        }
        Chunk::Gap {
            from, to, len, ts, ..
        } => {
            if let Some(n) = next {
                assert_eq!(from, n, "a gap must start where the stream stopped");
            }
            assert_eq!(to, from.wrapping_add(len as u32));
            assert!(ts >= last_ts, "a stream's times never go backwards");
            last_ts = ts;
            next = Some(to);
        }
        Chunk::Conflict { .. } | Chunk::Fin | Chunk::Rst => {}
    };
    let mut rest = data;
    let mut now = 0u64;
    // Each segment: 4 bytes of sequence offset, 1 of flags, 1 of length;
    // the capture's clock moves on with every one.
    while rest.len() >= 6 {
        now += 1;
        let seq = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) % 4096;
        let flags = rest[4];
        let len = usize::from(rest[5]).min(rest.len() - 6);
        let payload = &rest[6..6 + len];
        let missing = if flags & 0x10 != 0 {
            u32::from(flags & 0x0f)
        } else {
            0
        };
        if flags & 0x60 == 0x60 {
            // The other side's ACK up to this point.
            stream.acked(1_000_000u32.wrapping_add(seq), &mut check);
            rest = &rest[6..];
            continue;
        }
        stream.segment(
            now,
            1_000_000u32.wrapping_add(seq),
            flags & 0x01 != 0,
            flags & 0x02 != 0,
            flags & 0x04 != 0 && flags & 0x08 != 0,
            payload,
            missing,
            &mut check,
        );
        rest = &rest[6 + len..];
    }
    stream.finish(&mut check);
});
