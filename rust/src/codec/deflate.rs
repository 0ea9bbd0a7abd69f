//! Raw deflate (RFC 1951): no zlib or gzip wrapper, so no size, no
//! checksum; what `zlib.compress(data, wbits=-15)` and browsers'
//! `DecompressionStream("deflate-raw")` read and write.
//!
//! Without a size in the stream, decompression grows its output as it goes,
//! up to `max_size + 1` bytes, and stops as soon as that last byte is
//! written. Bytes after the end of the stream are refused: a stored chunk is
//! one stream, nothing else.

use std::cell::Cell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{grow_output, initial_output_capacity};
use crate::error::Error;

const NAME: &str = "deflate";

/// zlib's default level.
pub const DEFAULT_LEVEL: u32 = 6;
/// `0` stores the data in uncompressed blocks.
pub const MIN_LEVEL: u32 = 0;
pub const MAX_LEVEL: u32 = 9;

/// A deflate stream state (its 32 KiB window and hash tables) kept between
/// calls and reset at the start of each.
pub(super) struct Encoder {
    inner: Compress,
}

impl Encoder {
    pub(super) fn new(level: u32) -> Self {
        Encoder {
            inner: Compress::new(Compression::new(level), false),
        }
    }

    /// Replaces `out`'s contents with one complete stream holding `data`.
    pub(super) fn compress_to(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.inner.reset();
        out.clear();
        out.reserve(compress_bound(data.len()));
        let start = self.inner.total_in();
        loop {
            let consumed = usize::try_from(self.inner.total_in() - start).unwrap_or(usize::MAX);
            let rest = data.get(consumed..).unwrap_or_default();
            let status = self
                .inner
                .compress_vec(rest, out, FlushCompress::Finish)
                .map_err(|e| Error::CompressFailed {
                    codec: NAME,
                    reason: e.to_string(),
                })?;
            match status {
                Status::StreamEnd => return Ok(()),
                // Out of room (the bound is zlib's, zlib-rs may differ a little).
                Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
            }
        }
    }
}

/// zlib's `deflateBound` for a raw stream with the default window and memory
/// level, plus a margin.
fn compress_bound(len: usize) -> usize {
    len + (len >> 12) + (len >> 14) + (len >> 25) + 7 + 64
}

thread_local! {
    /// One inflate state (~40 KiB with its window) per thread, kept between
    /// calls; a call takes it out and puts it back reset.
    static KEPT_INFLATE: Cell<Option<Decompress>> = const { Cell::new(None) };
}

/// Inflates one raw deflate stream, refusing output over `max_size` bytes.
pub(super) fn decompress(data: &[u8], max_size: usize) -> Result<Vec<u8>, Error> {
    let mut inflate = KEPT_INFLATE
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(|| Decompress::new(false));
    let result = inflate_into(&mut inflate, data, max_size);
    inflate.reset(false);
    // Fails only while the thread exits; then it is dropped.
    let _ = KEPT_INFLATE.try_with(|kept| kept.set(Some(inflate)));
    result
}

fn inflate_into(inflate: &mut Decompress, data: &[u8], max_size: usize) -> Result<Vec<u8>, Error> {
    let cap_limit = max_size.saturating_add(1);
    let mut out = Vec::with_capacity(initial_output_capacity(data.len(), cap_limit));
    loop {
        if out.len() == out.capacity() {
            grow_output(&mut out, cap_limit);
        }
        let (in_before, out_before) = (inflate.total_in(), out.len());
        let rest = usize::try_from(in_before)
            .ok()
            .and_then(|consumed| data.get(consumed..))
            .unwrap_or_default();
        let status = inflate
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|e| Error::corrupt(NAME, e.message().unwrap_or("invalid stream")))?;
        if out.len() > max_size {
            return Err(Error::TooLarge {
                codec: NAME,
                max_size,
                size: None,
            });
        }
        match status {
            Status::StreamEnd => {
                let trailing = data.len() as u64 - inflate.total_in();
                if trailing > 0 {
                    return Err(Error::corrupt(
                        NAME,
                        format!("{trailing} bytes after the end of the stream"),
                    ));
                }
                return Ok(out);
            }
            Status::Ok | Status::BufError => {
                let progress = inflate.total_in() != in_before || out.len() != out_before;
                if !progress && out.len() < out.capacity() {
                    // Room to write and nothing written: the stream needs
                    // input that is not there.
                    let what = if data.is_empty() {
                        "empty input is not a deflate stream"
                    } else {
                        "truncated stream"
                    };
                    return Err(Error::corrupt(NAME, what));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_round_trips() {
        let data = b"{\"type\":3,\"timestamp\":1700000000123}".repeat(300);
        let mut out = Vec::new();
        for level in MIN_LEVEL..=MAX_LEVEL {
            Encoder::new(level).compress_to(&data, &mut out).unwrap();
            assert_eq!(decompress(&out, data.len()).unwrap(), data, "level {level}");
        }
    }

    #[test]
    fn level_0_stores_incompressible_data_with_small_overhead() {
        // A xorshift stream: nothing to find.
        let mut state = 0x2545_f491_u32;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut out = Vec::new();
        Encoder::new(0).compress_to(&data, &mut out).unwrap();
        assert!(out.len() <= compress_bound(data.len()), "{}", out.len());
        assert_eq!(decompress(&out, data.len()).unwrap(), data);
    }

    #[test]
    fn the_kept_state_carries_nothing_over() {
        let data = b"0123456789abcdef".repeat(500);
        let mut out = Vec::new();
        Encoder::new(6).compress_to(&data, &mut out).unwrap();
        for _ in 0..3 {
            // Stopped mid-stream, failed, then whole again.
            assert!(decompress(&out, 100).is_err());
            assert!(decompress(&out[..out.len() / 2], data.len()).is_err());
            assert_eq!(decompress(&out, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn trailing_bytes_and_truncation_are_refused() {
        let mut out = Vec::new();
        Encoder::new(6)
            .compress_to(&b"abc".repeat(100), &mut out)
            .unwrap();
        let mut trailing = out.clone();
        trailing.push(0);
        assert_eq!(
            decompress(&trailing, 1000),
            Err(Error::corrupt(NAME, "1 bytes after the end of the stream"))
        );
        for cut in 0..out.len() {
            let e = decompress(&out[..cut], 1000).unwrap_err();
            assert_eq!(
                e.codec_code(),
                Some("invalid_compression"),
                "cut {cut}: {e}"
            );
        }
    }
}
