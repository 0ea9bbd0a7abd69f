//! Compressed inputs for the `decompress` property: data compressed the
//! ways a store or a peer may have done it (zstd with and without a content
//! size, several frames, skippable frames, a dictionary the decoder lacks;
//! raw deflate in one or several blocks, with bytes after its end), then
//! often damaged, in the frame header fields above all.
//!
//! The input layout is the harness's: a settings byte (`% 3` the codec:
//! none, deflate, zstd; `/ 3 % 4` the small limit), then the data (see
//! `fuzz/decompress_harness.rs`).

use std::io::Write as _;

use _core::codec::{compress, Codec};
use flate2::{Compress, Compression, FlushCompress};

use super::driver::Rng;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Data worth compressing: events-like JSON, random bytes, or a run of one
/// byte.
fn plain(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => {
            let n = rng.size(3000);
            rng.bytes(n)
        }
        1 | 2 => vec![rng.byte(); rng.size(200_000)],
        _ => {
            let event = format!(
                "{{\"type\":{},\"timestamp\":{},\"data\":{{\"source\":{},\"x\":{}}}}},",
                rng.below(7),
                rng.next_u64() >> 24,
                rng.below(4),
                rng.below(1000)
            );
            let mut out = b"[".to_vec();
            out.extend(event.repeat(rng.size(400)).into_bytes());
            out.push(b']');
            out
        }
    }
}

/// Raw deflate, whole or in several flushed pieces, sometimes followed by
/// more bytes.
fn deflate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let level = rng.range(0, 9) as u32;
    let mut out = if rng.one_in(2) {
        compress(Codec::Deflate { level }, data).expect("deflate")
    } else {
        let mut c = Compress::new(Compression::new(level), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        let mut from = 0;
        while from < data.len() {
            let to = (from + rng.size(data.len() - from).max(1)).min(data.len());
            let flush = rng.pick(&[
                FlushCompress::None,
                FlushCompress::Sync,
                FlushCompress::Full,
            ]);
            compress_all(&mut c, &data[from..to], &mut out, flush);
            from = to;
        }
        compress_all(&mut c, &[], &mut out, FlushCompress::Finish);
        out
    };
    if rng.one_in(10) {
        out.extend({
            let n = rng.range(1, 8);
            rng.bytes(n)
        });
    }
    out
}

fn compress_all(c: &mut Compress, data: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    let start = c.total_in();
    loop {
        out.reserve(data.len() / 2 + 128);
        let done = (c.total_in() - start) as usize;
        let status = c.compress_vec(&data[done..], out, flush).expect("deflate");
        let consumed = (c.total_in() - start) as usize == data.len();
        if consumed && out.len() < out.capacity() || status == flate2::Status::StreamEnd {
            return;
        }
    }
}

/// One zstd frame: with its content size (as the store writes), or
/// streamed without one (a window to respect), checksummed or not, with a
/// large window now and then, or made with a dictionary the decoder does
/// not have.
fn zstd_frame(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let level = rng.range(1, 6) as i32;
    match rng.below(4) {
        0 | 1 => compress(Codec::Zstd { level }, data).expect("zstd"),
        2 => {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).expect("zstd");
            enc.include_checksum(rng.one_in(2)).expect("zstd");
            if rng.one_in(4) {
                enc.window_log(rng.range(10, 27) as u32).expect("zstd");
            }
            enc.write_all(data).expect("zstd");
            enc.finish().expect("zstd")
        }
        _ => {
            let dict = {
                let n = rng.range(8, 256);
                rng.bytes(n)
            };
            let mut c = zstd::bulk::Compressor::with_dictionary(level, &dict).expect("zstd");
            c.compress(data).expect("zstd")
        }
    }
}

/// A skippable frame (magic 0x184D2A5?, a length, that many bytes).
fn skippable(rng: &mut Rng) -> Vec<u8> {
    let body = {
        let n = rng.size(64);
        rng.bytes(n)
    };
    let declared = if rng.one_in(8) {
        rng.next_u64() as u32
    } else {
        body.len() as u32
    };
    let mut out = vec![0x50 | rng.below(16) as u8, 0x2a, 0x4d, 0x18];
    out.extend(declared.to_le_bytes());
    out.extend(body);
    out
}

/// Frames, one after the other, sometimes with skippable frames between.
fn zstd(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = zstd_frame(rng, data);
    while rng.one_in(4) {
        if rng.one_in(2) {
            out.extend(skippable(rng));
        } else {
            let more = plain(rng);
            out.extend(zstd_frame(rng, &more[..more.len().min(5000)]));
        }
    }
    out
}

/// Damage to the header of a zstd frame: the descriptor (content size
/// width, single segment, checksum and dictionary flags), the window
/// descriptor, the content size itself; or a frame header where none was.
pub fn mutate_zstd_header(rng: &mut Rng, data: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..data.len().saturating_sub(3))
        .filter(|&i| data[i..i + 4] == ZSTD_MAGIC)
        .collect();
    let Some(&start) = starts.get(rng.below(starts.len())) else {
        let at = rng.below(data.len() + 1);
        data.splice(at..at, ZSTD_MAGIC);
        return;
    };
    let at = start + 4 + rng.below(10);
    if let Some(b) = data.get_mut(at) {
        *b = match rng.below(3) {
            0 => *b ^ (1 << rng.below(8)),
            1 => rng.byte(),
            _ => rng.pick(&[0x00, 0x20, 0x24, 0x40, 0x60, 0x80, 0xa0, 0xe0, 0xff]),
        };
    }
}

/// Data compressed with the codec named by `codec % 3`.
fn compressed(rng: &mut Rng, codec: u8, data: &[u8]) -> Vec<u8> {
    match codec % 3 {
        0 => data.to_vec(),
        1 => deflate(rng, data),
        _ => zstd(rng, data),
    }
}

/// Compressed data made once per run (compressing costs far more than
/// decoding in a debug build), by codec: none, deflate, zstd.
pub struct Pool {
    items: [Vec<Vec<u8>>; 3],
}

impl Pool {
    pub fn new(rng: &mut Rng) -> Pool {
        let mut items: [Vec<Vec<u8>>; 3] = Default::default();
        for codec in 0..3u8 {
            // One bomb each: inflates past the harness's 1 MiB limit.
            let bomb = vec![rng.byte(); rng.range(1 << 20, 3 << 19)];
            items[usize::from(codec)].push(compressed(rng, codec, &bomb));
            for _ in 0..40 {
                let data = plain(rng);
                items[usize::from(codec)].push(compressed(rng, codec, &data));
            }
        }
        Pool { items }
    }
}

/// Settings byte and data: mostly compressed by the codec the settings
/// name, now and then two pieces of data end to end, or made afresh.
pub fn generate(pool: &Pool, rng: &mut Rng) -> Vec<u8> {
    let settings = rng.byte();
    let codec = usize::from(settings % 3);
    let mut body = if rng.one_in(40) {
        let data = plain(rng);
        compressed(rng, settings, &data)
    } else {
        rng.pick_ref(&pool.items[codec]).clone()
    };
    if rng.one_in(8) {
        let other_codec = if rng.one_in(4) { rng.below(3) } else { codec };
        let other = rng.pick_ref(&pool.items[other_codec]);
        body.extend_from_slice(other);
    }
    if codec == 2 && rng.one_in(8) {
        let at = if rng.one_in(2) { 0 } else { body.len() };
        body.splice(at..at, skippable(rng));
    }
    [vec![settings], body].concat()
}
