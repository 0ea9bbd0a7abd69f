//! Payload masking (RFC 6455 §5.3).
//!
//! Masking is its own inverse, so one function serves the decoder (unmasking
//! client payloads in place) and `encode_client_frame` (masking test frames).
//!
//! This is the hottest loop of the ingest path: every tracker byte goes
//! through it once. It stays in safe Rust (`unsafe_code = "forbid"`): the
//! payload is walked in 8-byte chunks XORed with the key repeated as a `u64`
//! (unaligned loads are cheap on every target we ship), which LLVM turns
//! into SIMD; only the last 0..7 bytes are masked one at a time.

/// XORs `buf` with the masking `key`, as if `buf` began `offset` bytes into
/// the frame payload. The offset lets a payload that arrives in pieces be
/// unmasked piece by piece.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let [k0, k1, k2, k3] = key;
    let wide = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);

    // Eight u64s per step gives LLVM a block it vectorizes cleanly; the
    // 8-byte loop below picks up what is left.
    let mut blocks = buf.chunks_exact_mut(64);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            xor_word(word, wide);
        }
    }
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for word in &mut words {
        xor_word(word, wide);
    }
    // Every chunk so far was a multiple of 4 bytes long, so the tail starts
    // at key phase 0.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

#[inline(always)]
fn xor_word(word: &mut [u8], wide: u64) {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(word);
    let v = u64::from_ne_bytes(bytes) ^ wide;
    word.copy_from_slice(&v.to_ne_bytes());
}

/// The key as seen from `offset` bytes into the payload.
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut key = key;
    key.rotate_left(offset % 4);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    #[test]
    fn matches_bytewise_definition_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..200 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, key, offset);
                naive(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let data: Vec<u8> = (0..=255).collect();
        let mut buf = data.clone();
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_ne!(buf, data);
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_eq!(buf, data);
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = data.clone();
        let mut start = 0;
        for step in [1, 3, 8, 13, 64, 65, 7] {
            let end = (start + step).min(pieces.len());
            apply_mask(&mut pieces[start..end], key, start);
            start = end;
        }
        apply_mask(&mut pieces[start..], key, start);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
