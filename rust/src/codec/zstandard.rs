//! zstd frames (RFC 8878): compression with a kept context, bounded
//! decompression, dictionary training.
//!
//! Frames are standard, so any zstd decoder reads them (the `zstd` CLI,
//! Python's `zstandard`, browser decoders): one frame per call, with the
//! content size in the header (decoders can allocate once, and
//! decompression refuses an oversized frame before decoding a byte) and a
//! 4-byte checksum of the content (a corrupt stored chunk fails as
//! `invalid_compression` instead of decoding to wrong JSON). A frame made
//! with a dictionary also names the dictionary's id.
//!
//! Decompression never holds more than `max_size + 1` bytes of output:
//!
//! - when every frame declares its content size, the sizes are summed from
//!   the headers first; over `max_size` is refused at once, otherwise the
//!   output is allocated exactly and decoded in one pass;
//! - otherwise (frames from streaming encoders) the frames are decoded as a
//!   stream, one by one, into an output grown up to `max_size + 1` bytes,
//!   and refused as soon as that last byte is written; a frame that
//!   declares its content size must hold exactly that. Such a frame also needs a window
//!   buffer as large as its declared window; [`window_log_limit`] caps it.

use std::cell::Cell;

use zstd::bulk;
use zstd::zstd_safe::{
    self, CParameter, DCtx, DParameter, ErrorCode, InBuffer, OutBuffer, ResetDirective,
};

use super::{grow_output, initial_output_capacity};
use crate::error::Error;

const NAME: &str = "zstd";

/// zstd's default level, used when none is given (and for level `0`, as
/// zstd itself does).
pub const DEFAULT_LEVEL: i32 = 3;
/// Highest level accepted. Levels 20-22 ("ultra") need windows of 32-128 MiB
/// to decode, which a viewer's browser should not have to give.
pub const MAX_LEVEL: i32 = 19;
/// Lowest level accepted: zstd's fastest "fast" level (`ZSTD_minCLevel()`,
/// the CLI's `--fast=131072`). Levels below 0 trade ratio for speed.
pub const MIN_LEVEL: i32 = -(1 << 17);

/// The smallest window cap [`window_log_limit`] gives: 8 MiB, the largest
/// window zstd levels 1 to 19 ever choose, so no frame a normal encoder made
/// is refused for its window alone.
const MIN_WINDOW_LOG_LIMIT: u32 = 23;
/// The largest: 1 GiB (zstd's limit on 32-bit targets).
const MAX_WINDOW_LOG_LIMIT: u32 = 30;

/// The frame magic number (RFC 8878 §3.1.1), little-endian.
const FRAME_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames use magic numbers `0x184D2A50..=0x184D2A5F`.
const SKIPPABLE_MAGIC_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// A zstd compression context with its level (and dictionary) applied once.
/// Each call resets the session and reuses the context's tables, which is
/// most of the cost for inputs of a few KB.
pub(super) struct Encoder {
    inner: bulk::Compressor<'static>,
}

impl Encoder {
    pub(super) fn new(level: i32, dictionary: Option<&[u8]>) -> Result<Self, Error> {
        let mut inner = match dictionary {
            None => bulk::Compressor::new(level).map_err(compress_failed)?,
            Some(dict) => bulk::Compressor::with_dictionary(level, dict).map_err(|e| {
                Error::InvalidDictionary(format!("zstd refused the dictionary: {e}"))
            })?,
        };
        inner
            .set_parameter(CParameter::ContentSizeFlag(true))
            .and_then(|()| inner.set_parameter(CParameter::ChecksumFlag(true)))
            .map_err(compress_failed)?;
        Ok(Encoder { inner })
    }

    /// Replaces `out`'s contents with one frame holding `data`.
    pub(super) fn compress_to(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        out.clear();
        out.reserve(zstd_safe::compress_bound(data.len()));
        self.inner
            .compress_to_buffer(data, out)
            .map_err(compress_failed)?;
        Ok(())
    }
}

fn compress_failed(e: std::io::Error) -> Error {
    Error::CompressFailed {
        codec: NAME,
        reason: e.to_string(),
    }
}

fn corrupt(code: ErrorCode) -> Error {
    let reason = zstd_safe::get_error_name(code);
    if reason.contains("Dictionary mismatch") {
        return Error::corrupt(
            NAME,
            format!("{reason} (the frame names a dictionary other than the one given, or none)"),
        );
    }
    Error::corrupt(NAME, reason)
}

/// The base-2 log of the largest window a frame without a content size may
/// ask for when decoding at most `max_size` bytes: `max_size` rounded up to
/// a power of two, but at least 8 MiB (every frame zstd levels 1 to 19 make
/// fits) and at most 1 GiB. libzstd's own default cap is 128 MiB whatever
/// the output; this one keeps a small `max_size` from being answered with a
/// large allocation.
pub fn window_log_limit(max_size: usize) -> u32 {
    let log = max_size
        .checked_next_power_of_two()
        .map_or(usize::BITS, usize::trailing_zeros);
    log.clamp(MIN_WINDOW_LOG_LIMIT, MAX_WINDOW_LOG_LIMIT)
}

/// What the frame headers of a whole input say.
#[derive(Debug, PartialEq, Eq)]
struct Frames {
    /// Sum of the frames' content sizes; `None` when a frame records none.
    content_size: Option<u64>,
    /// Largest window a frame without a content size asks for.
    max_unsized_window: u64,
    /// Each frame's length in the input and the content size it declares
    /// (0 for a skippable frame), in order.
    each: Vec<(usize, Option<u64>)>,
}

/// Walks the frames of `data` by their headers and block headers, without
/// decoding any content.
fn scan(data: &[u8]) -> Result<Frames, Error> {
    if data.is_empty() {
        return Err(Error::corrupt(NAME, "empty input is not a zstd frame"));
    }
    let mut frames = Frames {
        content_size: Some(0),
        max_unsized_window: 0,
        each: Vec::new(),
    };
    let mut rest = data;
    while !rest.is_empty() {
        let len = zstd_safe::find_frame_compressed_size(rest).map_err(corrupt)?;
        let size = zstd_safe::get_frame_content_size(rest)
            .map_err(|_| Error::corrupt(NAME, "invalid frame header"))?;
        match size {
            Some(size) => {
                frames.content_size = frames.content_size.map(|t| t.saturating_add(size));
            }
            None => {
                frames.content_size = None;
                let window = window_size(rest)
                    .ok_or_else(|| Error::corrupt(NAME, "invalid frame header"))?;
                frames.max_unsized_window = frames.max_unsized_window.max(window);
            }
        }
        rest = match rest.get(len..) {
            Some(tail) if len > 0 => tail,
            _ => return Err(Error::corrupt(NAME, "frame size out of bounds")),
        };
        frames.each.push((len, size));
    }
    Ok(frames)
}

/// The window size a frame header declares (RFC 8878 §3.1.1.1.2); 0 for a
/// skippable frame. Only called on frames libzstd has already walked, so the
/// header is complete; `None` if it is not a frame.
fn window_size(frame: &[u8]) -> Option<u64> {
    let magic = u32::from_le_bytes(frame.get(..4)?.try_into().ok()?);
    if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
        return Some(0);
    }
    if magic != FRAME_MAGIC {
        return None;
    }
    let descriptor = *frame.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if single_segment {
        // The window is the content size, which such a frame always has:
        // `scan` never gets here with one.
        return None;
    }
    let window_descriptor = *frame.get(5)?;
    let window_log = 10 + u32::from(window_descriptor >> 3);
    let base = 1u64 << window_log;
    Some(base + (base / 8) * u64::from(window_descriptor & 7))
}

/// A kept decompression context is at most this large: one that decoded a
/// frame of unknown size holds that frame's window (up to 1 GiB) and is
/// dropped rather than kept.
const KEPT_DCTX_MAX_BYTES: usize = 256 * 1024;

thread_local! {
    /// One decompression context per thread, kept between calls: creating
    /// one (~100 KiB) costs more than decoding a delta of a few KB. A call
    /// takes it out and puts it back reset, so no two calls share it.
    static KEPT_DCTX: Cell<Option<DCtx<'static>>> = const { Cell::new(None) };
}

fn take_dctx() -> Result<DCtx<'static>, Error> {
    KEPT_DCTX
        .try_with(Cell::take)
        .ok()
        .flatten()
        .or_else(DCtx::try_create)
        .ok_or_else(|| Error::CompressFailed {
            codec: NAME,
            reason: "could not allocate a decompression context".to_owned(),
        })
}

/// Keeps `dctx` for the thread's next call, without its dictionary and
/// parameters, unless it grew large.
fn keep_dctx(mut dctx: DCtx<'static>) {
    if dctx.reset(ResetDirective::SessionAndParameters).is_ok()
        && dctx.sizeof() <= KEPT_DCTX_MAX_BYTES
    {
        // Fails only while the thread exits; then it is dropped.
        let _ = KEPT_DCTX.try_with(|kept| kept.set(Some(dctx)));
    }
}

/// Decompresses every frame of `data`, refusing output over `max_size`
/// bytes (see the module docs for how, and what memory it takes).
pub(super) fn decompress(
    data: &[u8],
    max_size: usize,
    dictionary: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let frames = scan(data)?;
    let mut dctx = take_dctx()?;
    let result = decompress_frames(&mut dctx, &frames, data, max_size, dictionary);
    keep_dctx(dctx);
    result
}

fn decompress_frames(
    dctx: &mut DCtx<'static>,
    frames: &Frames,
    data: &[u8],
    max_size: usize,
    dictionary: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    if let Some(dict) = dictionary {
        dctx.load_dictionary(dict).map_err(|code| {
            Error::InvalidDictionary(format!(
                "zstd refused the dictionary: {}",
                zstd_safe::get_error_name(code)
            ))
        })?;
    }
    match frames.content_size {
        Some(size) => {
            if size > max_size as u64 {
                return Err(Error::TooLarge {
                    codec: NAME,
                    max_size,
                    size: Some(size),
                });
            }
            // `size <= max_size`, so it fits in usize. The frames are
            // checked against their declared sizes as they are decoded, and
            // zstd never writes past the capacity.
            let mut out = Vec::with_capacity(size as usize);
            dctx.decompress(&mut out, data).map_err(corrupt)?;
            Ok(out)
        }
        None => {
            let log = window_log_limit(max_size);
            let limit = 1u64 << log;
            if frames.max_unsized_window > limit {
                return Err(Error::WindowTooLarge {
                    window: frames.max_unsized_window,
                    limit,
                    max_size,
                });
            }
            dctx.set_parameter(DParameter::WindowLogMax(log))
                .map_err(corrupt)?;
            decompress_stream(dctx, data, &frames.each, max_size)
        }
    }
}

/// Decodes the frames of `data` one by one as a stream (`frames` as
/// [`scan`] found them), checking each frame that declares a content size
/// against what it held.
///
/// libzstd's streaming decoder does not make that check when a frame ends
/// with an empty last block (its one-pass decoder does, and the streaming
/// one takes that path when the output has room for the whole frame), so
/// without it such a frame was refused or not depending on `max_size`.
/// Found by the `decompress` fuzz target: a frame declaring 255 bytes and
/// holding none, before a frame without a size.
fn decompress_stream(
    dctx: &mut DCtx<'_>,
    data: &[u8],
    frames: &[(usize, Option<u64>)],
    max_size: usize,
) -> Result<Vec<u8>, Error> {
    let cap_limit = max_size.saturating_add(1);
    let mut out = Vec::with_capacity(initial_output_capacity(data.len(), cap_limit));
    let mut rest = data;
    for &(len, declared) in frames {
        let (frame, tail) = rest.split_at_checked(len).ok_or_else(|| {
            Error::corrupt(NAME, "frame size out of bounds") // `scan` checked it
        })?;
        rest = tail;
        let start = out.len();
        decompress_frame(dctx, frame, &mut out, max_size)?;
        let held = (out.len() - start) as u64;
        if declared.is_some_and(|size| size != held) {
            return Err(Error::corrupt(
                NAME,
                "a frame holds another size than its header declares",
            ));
        }
    }
    Ok(out)
}

/// Streams one frame onto `out`, which never grows past `max_size + 1`.
fn decompress_frame(
    dctx: &mut DCtx<'_>,
    data: &[u8],
    out: &mut Vec<u8>,
    max_size: usize,
) -> Result<(), Error> {
    let cap_limit = max_size.saturating_add(1);
    let mut input = InBuffer::around(data);
    loop {
        if out.len() == out.capacity() {
            grow_output(out, cap_limit);
        }
        let (in_before, out_before) = (input.pos(), out.len());
        let hint = {
            let mut output = OutBuffer::around_pos(out, out_before);
            dctx.decompress_stream(&mut output, &mut input)
                .map_err(corrupt)?
        };
        if out.len() > max_size {
            return Err(Error::TooLarge {
                codec: NAME,
                max_size,
                size: None,
            });
        }
        let done_with_input = input.pos() == data.len();
        if done_with_input && hint == 0 {
            // The frame is complete and flushed.
            return Ok(());
        }
        let progress = input.pos() != in_before || out.len() != out_before;
        if !progress && out.len() < out.capacity() {
            // Room to write and nothing written: zstd is waiting for input
            // that is not there.
            return Err(Error::corrupt(NAME, "truncated frame"));
        }
    }
}

/// The id a trained dictionary carries; `None` for raw content.
pub(super) fn dictionary_id(dictionary: &[u8]) -> Option<u32> {
    zstd_safe::get_dict_id_from_dict(dictionary).map(std::num::NonZeroU32::get)
}

/// Trains a zstd dictionary of at most `max_size` bytes on `samples` (zstd's
/// `ZDICT_trainFromBuffer`). zstd wants many samples (a hundred or more)
/// and about 100 times `max_size` bytes of them; with too few it fails.
pub(super) fn train_dictionary<S: AsRef<[u8]>>(
    samples: &[S],
    max_size: usize,
) -> Result<Vec<u8>, Error> {
    zstd::dict::from_samples(samples, max_size).map_err(|e| {
        Error::InvalidDictionary(format!(
            "cannot train a dictionary from {} samples: {e}",
            samples.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_without_size(data: &[u8], level: i32) -> Vec<u8> {
        // The streaming encoder does not know the size up front.
        let mut out = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut out, level).unwrap();
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap();
        out
    }

    #[test]
    fn our_frames_declare_their_size() {
        let mut enc = Encoder::new(DEFAULT_LEVEL, None).unwrap();
        let mut out = Vec::new();
        enc.compress_to(&[7; 1000], &mut out).unwrap();
        assert_eq!(
            zstd_safe::get_frame_content_size(&out).ok(),
            Some(Some(1000))
        );
        // Single segment: the content size stands in for the window.
        assert_eq!(out[4] & 0x20, 0x20);
        assert_eq!(
            scan(&out).unwrap(),
            Frames {
                content_size: Some(1000),
                max_unsized_window: 0,
                each: vec![(out.len(), Some(1000))],
            }
        );
    }

    #[test]
    fn a_frame_holding_another_size_than_declared_is_corrupt_whatever_the_limit() {
        // fuzz/corpus/decompress/seed-regress-zstd-empty-last-block-wrong-size:
        // a frame declaring 255 bytes (single segment, checksum) whose only
        // block is an empty last one, then a frame without a size holding
        // "[]". The stream decoder only noticed the lie when the output had
        // room for 255 bytes, so a small limit accepted it.
        let data = [
            0x28, 0xb5, 0x2f, 0xfd, 0x24, 0xff, 0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51, //
            0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x11, 0x00, 0x00, b'[', b']',
        ];
        assert_eq!(scan(&data).unwrap().content_size, None);
        for max_size in [0, 2, 100, 254, 255, 4096, 1 << 20] {
            match decompress(&data, max_size, None) {
                Err(Error::Corrupt { .. }) => {}
                Err(Error::TooLarge { .. }) if max_size < 2 => {}
                other => panic!("under {max_size}: {other:?}"),
            }
        }
        // The same frame alone declares its size: the one-pass path.
        assert!(matches!(
            decompress(&data[..13], 4096, None),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn streaming_frames_are_decoded_within_the_limit() {
        let data = b"{\"type\":3,\"data\":{\"source\":1}}".repeat(1000);
        let frame = frame_without_size(&data, 3);
        assert_eq!(zstd_safe::get_frame_content_size(&frame).ok(), Some(None));
        let frames = scan(&frame).unwrap();
        assert_eq!(frames.content_size, None);
        // Level 3 on an unknown size picks a 2 MiB window (log 21).
        assert_eq!(frames.max_unsized_window, 1 << 21);
        assert_eq!(decompress(&frame, data.len(), None).unwrap(), data);
        assert_eq!(
            decompress(&frame, data.len() - 1, None),
            Err(Error::TooLarge {
                codec: NAME,
                max_size: data.len() - 1,
                size: None
            })
        );
    }

    #[test]
    fn concatenated_and_skippable_frames() {
        let mut enc = Encoder::new(1, None).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enc.compress_to(b"hello ", &mut a).unwrap();
        enc.compress_to(b"world", &mut b).unwrap();
        let skippable = [0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 1, 2, 3];
        let data = [&a[..], &skippable, &b].concat();
        assert_eq!(scan(&data).unwrap().content_size, Some(11));
        assert_eq!(decompress(&data, 11, None).unwrap(), b"hello world");
        assert!(matches!(
            decompress(&data, 10, None),
            Err(Error::TooLarge { size: Some(11), .. })
        ));
        // The same with a frame of unknown size in the middle.
        let data = [&a[..], &frame_without_size(b"big ", 1), &b].concat();
        assert_eq!(scan(&data).unwrap().content_size, None);
        assert_eq!(decompress(&data, 15, None).unwrap(), b"hello big world");
        assert!(matches!(
            decompress(&data, 14, None),
            Err(Error::TooLarge { size: None, .. })
        ));
    }

    #[test]
    fn window_limit_follows_max_size() {
        assert_eq!(window_log_limit(0), 23);
        assert_eq!(window_log_limit(1 << 20), 23);
        assert_eq!(window_log_limit((1 << 23) + 1), 24);
        assert_eq!(window_log_limit(64 << 20), 26);
        assert_eq!(window_log_limit(usize::MAX), 30);
    }

    #[test]
    fn a_huge_window_is_refused_before_decoding() {
        // Long-distance matching picks a 128 MiB window.
        let mut out = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut out, 3).unwrap();
        enc.long_distance_matching(true).unwrap();
        std::io::Write::write_all(&mut enc, b"tiny").unwrap();
        enc.finish().unwrap();
        assert_eq!(
            decompress(&out, 1 << 20, None),
            Err(Error::WindowTooLarge {
                window: 1 << 27,
                limit: 1 << 23,
                max_size: 1 << 20
            })
        );
        // With a max_size that large, the window is allowed.
        assert_eq!(decompress(&out, 128 << 20, None).unwrap(), b"tiny");
    }

    #[test]
    fn a_frame_made_with_a_dictionary_needs_it() {
        let samples: Vec<Vec<u8>> = (0..400)
            .map(|i| {
                format!(
                    "{{\"type\":3,\"data\":{{\"source\":1,\"x\":{i},\"id\":{}}}}}",
                    i * 7
                )
                .into_bytes()
            })
            .collect();
        let dict = train_dictionary(&samples, 2048).unwrap();
        let mut enc = Encoder::new(3, Some(&dict)).unwrap();
        let mut out = Vec::new();
        enc.compress_to(&samples[3], &mut out).unwrap();
        assert_eq!(decompress(&out, 100, Some(&dict)).unwrap(), samples[3]);
        match decompress(&out, 100, None) {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(reason.contains("Dictionary mismatch"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            train_dictionary(&samples[..2], 2048),
            Err(Error::InvalidDictionary(_))
        ));
    }

    #[test]
    fn the_kept_context_carries_nothing_over() {
        let data = b"{\"source\":3,\"id\":1,\"x\":0,\"y\":400}".repeat(200);
        let mut enc = Encoder::new(3, None).unwrap();
        let mut sized = Vec::new();
        enc.compress_to(&data, &mut sized).unwrap();
        let unsized_frame = frame_without_size(&data, 19);
        let kept_size = || {
            KEPT_DCTX.with(|kept| {
                let dctx = kept.take();
                let size = dctx.as_ref().map(DCtx::sizeof);
                kept.set(dctx);
                size
            })
        };
        for _ in 0..3 {
            assert_eq!(decompress(&sized, data.len(), None).unwrap(), data);
            assert!(kept_size().unwrap() <= KEPT_DCTX_MAX_BYTES);
            // A failure, a refusal, then a frame with an 8 MiB window, whose
            // buffers are not kept.
            assert!(decompress(&sized[..sized.len() - 1], data.len(), None).is_err());
            assert!(decompress(&unsized_frame, 10, None).is_err());
            assert_eq!(decompress(&unsized_frame, data.len(), None).unwrap(), data);
            assert_eq!(kept_size(), None);
        }
    }

    #[test]
    fn a_checksum_catches_a_flipped_content_byte() {
        let data = b"abcdefghij".repeat(50);
        let mut enc = Encoder::new(3, None).unwrap();
        let mut out = Vec::new();
        enc.compress_to(&data, &mut out).unwrap();
        let mut failures = 0;
        for at in 6..out.len() {
            let mut bad = out.clone();
            bad[at] ^= 0x01;
            match decompress(&bad, 1 << 20, None) {
                Ok(decoded) => assert_eq!(decoded, data, "flip at {at} went unnoticed"),
                Err(e) => {
                    assert!(e.codec_code().is_some(), "{e}");
                    failures += 1;
                }
            }
        }
        assert!(failures > 0);
    }
}
