//! The property behind the `decompress` fuzz target, shared with
//! `rust/tests/fuzz_seeds.rs`, which replays the committed seeds and their
//! truncations and bit flips on every `cargo test`.
//!
//! The includer brings `Codec`, `Error` and `decompress` into scope.
//!
//! Input layout: byte 0 picks the codec (`% 3`: none, deflate, zstd) and a
//! small `max_size` (`/ 3 % 4`: 0, 1, 100 or 4096 bytes); the rest is the
//! data. The data is decompressed under that limit and under 1 MiB; neither
//! may panic or return more than its limit (nor hold more than one byte
//! over it), and the two must agree:
//!
//! - accepted under the small limit: the same output under the large one;
//! - refused as too large under the small one: under the large one, more
//!   output than the small limit, or an error;
//! - refused as invalid under the small one: invalid under the large one
//!   too (the stop does not depend on the limit; for zstd this also checks
//!   that our reading of frame windows agrees with libzstd's). Only the kind
//!   is compared: zlib-rs words the same fault differently depending on
//!   where its output buffer ends.

use super::*;

pub const SMALL_LIMITS: [usize; 4] = [0, 1, 100, 4096];
pub const LARGE_LIMIT: usize = 1 << 20;

pub fn codec(settings: u8) -> Codec {
    match settings % 3 {
        0 => Codec::None,
        1 => Codec::Deflate { level: 6 },
        _ => Codec::Zstd { level: 3 },
    }
}

fn checked(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let result = decompress(codec, data, limit, None);
    match &result {
        Ok(out) => {
            assert!(out.len() <= limit, "{} bytes over {limit}", out.len());
            assert!(out.capacity() <= limit + 1, "capacity {}", out.capacity());
        }
        Err(e) => assert!(
            matches!(
                e.codec_code(),
                Some("payload_too_large" | "invalid_compression")
            ),
            "{e:?}"
        ),
    }
    result
}

/// Runs the property on one fuzz input; returns the small-limit outcome.
pub fn run(input: &[u8]) -> Option<Result<Vec<u8>, Error>> {
    let (&settings, data) = input.split_first()?;
    let codec = codec(settings);
    let small = SMALL_LIMITS[usize::from(settings / 3) % SMALL_LIMITS.len()];
    let small_result = checked(codec, data, small);
    let large_result = checked(codec, data, LARGE_LIMIT);
    match (&small_result, &large_result) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Ok(_), Err(e)) => panic!("accepted under {small}, refused under {LARGE_LIMIT}: {e}"),
        (Err(a @ Error::Corrupt { .. }), b) => {
            assert!(
                matches!(b, Err(Error::Corrupt { .. })),
                "{a} under {small}, {b:?}"
            )
        }
        (Err(_), Ok(b)) => assert!(b.len() > small, "refused under {small}, {} bytes", b.len()),
        (Err(_), Err(_)) => {}
    }
    Some(small_result)
}
