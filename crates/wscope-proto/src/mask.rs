//! Masking (RFC 6455 section 5.3).
//!
//! Every byte of a client's payload is XORed with one byte of a 4-byte key,
//! cycling. Done a byte at a time this is the slowest step of reading a
//! frame, so the bulk of the buffer is processed eight bytes at a time with
//! the key repeated into a `u64`; only the unaligned head and the tail go
//! byte by byte. The compiler vectorises the word loop further on targets
//! with SIMD. `benches/codec.rs` compares it with `memcpy` of the same bytes.

/// XORs `buf` with `key` in place, as if `buf` started `offset` bytes into
/// the payload. The offset lets a payload be unmasked in pieces as it
/// arrives: pass the number of payload bytes already unmasked. Masking and
/// unmasking are the same operation.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that key[0] applies to buf[0].
    let key = rotate(key, offset);
    // SAFETY-free fast path: align_to_mut hands back the largest u64-aligned
    // middle; reinterpreting bytes as u64 is sound for any bit pattern.
    let (head, words, tail) = unsafe { buf.align_to_mut::<u64>() };
    let mut i = 0usize;
    for byte in head.iter_mut() {
        *byte ^= key[i & 3];
        i += 1;
    }
    // After the head, the key phase has moved by head.len().
    let key = rotate(key, i);
    let word_key = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    for word in words.iter_mut() {
        *word ^= word_key;
    }
    // Words are a multiple of 4 bytes, so the phase is unchanged for the tail.
    for (j, byte) in tail.iter_mut().enumerate() {
        *byte ^= key[j & 3];
    }
}

fn rotate(key: [u8; 4], by: usize) -> [u8; 4] {
    let r = by & 3;
    [key[r], key[(r + 1) & 3], key[(r + 2) & 3], key[(r + 3) & 3]]
}

/// The obvious byte-at-a-time version, kept as the reference the fast one is
/// tested (and benchmarked) against.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..300),
                            key in any::<[u8; 4]>(), offset in 0usize..8, start in 0usize..8) {
            // Slice at `start` so every alignment of the fast path is exercised.
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_bytewise(&mut slow[start..], key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn in_pieces_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..200),
                                  key in any::<[u8; 4]>(), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
