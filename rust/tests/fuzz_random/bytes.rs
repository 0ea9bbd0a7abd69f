//! Format-blind mutations, as libFuzzer's: flips, inserts, deletes,
//! copies, splices with other inputs, interesting integers.

use super::driver::Rng;

/// Bytes that sit on boundaries of the formats fuzzed here: lengths
/// (125..127), bits (0x80), JSON punctuation, UTF-8 lead and continuation
/// bytes.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x08, 0x0f, 0x10, 0x20, 0x40, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0xbf, 0xc0, 0xc2,
    0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xfe, 0xff, b'{', b'}', b'[', b']', b'"', b'\\',
    b',', b':', b'0', b'-', b'e',
];

const INTERESTING_WIDE: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// Applies one random mutation; `others` are inputs to splice from.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, others: &[&[u8]]) {
    let len = data.len();
    match rng.below(12) {
        0 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            data[at] = rng.byte();
        }
        2 if len > 0 => {
            let at = rng.below(len);
            data[at] = rng.pick(INTERESTING);
        }
        3 => {
            let at = rng.below(len + 1);
            let n = rng.range(1, 8);
            let fresh = rng.bytes(n);
            data.splice(at..at, fresh);
        }
        4 => {
            let at = rng.below(len + 1);
            let n = rng.size(256).max(1);
            let b = if rng.one_in(2) {
                rng.byte()
            } else {
                rng.pick(INTERESTING)
            };
            data.splice(at..at, std::iter::repeat_n(b, n));
        }
        5 if len > 0 => {
            let at = rng.below(len);
            let n = rng.size(len - at).max(1);
            data.drain(at..at + n);
        }
        6 if len > 0 => {
            // Copy a range to another place (repeats structure).
            let from = rng.below(len);
            let n = rng.size(len - from).max(1);
            let copy = data[from..from + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, copy);
        }
        7 if !others.is_empty() => {
            // Head of this input, tail of another.
            let other = rng.pick(others);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        8 if !others.is_empty() => {
            // A piece of another input inserted here.
            let other = rng.pick(others);
            let from = rng.below(other.len() + 1);
            let n = rng.size(other.len() - from);
            let at = rng.below(len + 1);
            data.splice(at..at, other[from..from + n].iter().copied());
        }
        9 if len > 1 => data.truncate(rng.below(len)),
        10 if len > 0 => {
            // An interesting integer, 2, 4 or 8 bytes, either byte order.
            let v = rng.pick(INTERESTING_WIDE);
            let v = if rng.one_in(4) {
                v.wrapping_add(rng.range(0, 2) as u64).wrapping_sub(1)
            } else {
                v
            };
            let width = rng.pick(&[2usize, 4, 8]);
            let bytes = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            let bytes = if rng.one_in(2) {
                &bytes[8 - width..]
            } else {
                &bytes[..width]
            };
            let at = rng.below(len);
            let end = (at + width).min(len);
            data[at..end].copy_from_slice(&bytes[..end - at]);
        }
        11 if len > 1 => {
            // Swap two bytes.
            let (a, b) = (rng.below(len), rng.below(len));
            data.swap(a, b);
        }
        _ => data.push(rng.byte()),
    }
}

/// One to `max` stacked mutations (libFuzzer's "havoc").
pub fn havoc(rng: &mut Rng, data: &mut Vec<u8>, others: &[&[u8]], max: usize) {
    for _ in 0..rng.range(1, max) {
        mutate(rng, data, others);
    }
}

/// A settings byte and up to `max` random bytes.
pub fn random_input(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.size(max);
    rng.bytes(n + 1)
}
