//! Compression of event data: stored chunks and live viewer deltas.
//!
//! rrweb events are JSON with the same keys, tag names and class lists over
//! and over, so they compress well. Two callers, two shapes:
//!
//! - the storage writer compresses each flushed chunk (a JSON array of tens
//!   of events, ~10 KB) and a REST read decompresses it;
//! - the live fan-out compresses a session's new events once per tick (a
//!   few events, 1-3 KB) and sends the same bytes to every viewer.
//!
//! Small inputs are where the time goes into setting up a context (zstd's
//! tables, deflate's window), so a [`Compressor`] keeps its context from
//! call to call; [`compress`] builds one for a single call. [`decompress`]
//! keeps one decompression context per thread (zstd ~100 KiB, deflate
//! ~40 KiB), reset after every call; a zstd dictionary given to it is
//! prepared anew each call (tens of µs for 100 KiB).
//!
//! Decompression takes a `max_size` and never holds more output than
//! `max_size + 1` bytes, whatever the input claims or contains: a small
//! input that would inflate to gigabytes (a "zip bomb") is refused with
//! [`Error::TooLarge`] once the output passes the limit, or before
//! decoding at all when zstd frame headers declare a larger size.
//!
//! Sans-IO like the rest of the core: whole buffers in, whole buffers out.
//!
//! - [`zstandard`]: zstd frames, with an optional trained dictionary.
//! - `deflate`: raw deflate (RFC 1951).
//!
//! Failures are the core's one [`Error`]: its codec variants.

mod deflate;
pub mod zstandard;

use std::fmt;

use crate::error::Error;

/// A compression format and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// The bytes as they are.
    None,
    /// Raw deflate (RFC 1951, no zlib or gzip header), levels 0..=9.
    Deflate { level: u32 },
    /// zstd frames (RFC 8878) with content size and checksum, levels 1..=19
    /// and zstd's negative "fast" levels.
    Zstd { level: i32 },
}

impl Default for Codec {
    fn default() -> Self {
        Codec::Zstd {
            level: zstandard::DEFAULT_LEVEL,
        }
    }
}

impl Codec {
    /// The names [`Codec::new`] knows.
    pub const NAMES: [&'static str; 3] = ["none", "deflate", "zstd"];

    /// The codec named `name` at `level`, or at its default level (zstd 3,
    /// deflate 6) when `level` is `None`. `none` takes no level but `0`;
    /// zstd, as zstd itself does, reads `0` as its default level.
    pub fn new(name: &str, level: Option<i64>) -> Result<Codec, Error> {
        match name {
            "none" => match level {
                None | Some(0) => Ok(Codec::None),
                Some(level) => Err(out_of_range("none", level, 0, 0)),
            },
            "deflate" => {
                let level = level.unwrap_or(i64::from(deflate::DEFAULT_LEVEL));
                match u32::try_from(level) {
                    Ok(level) if (deflate::MIN_LEVEL..=deflate::MAX_LEVEL).contains(&level) => {
                        Ok(Codec::Deflate { level })
                    }
                    _ => Err(out_of_range(
                        "deflate",
                        level,
                        deflate::MIN_LEVEL as i32,
                        deflate::MAX_LEVEL as i32,
                    )),
                }
            }
            "zstd" => {
                let level = match level {
                    None | Some(0) => i64::from(zstandard::DEFAULT_LEVEL),
                    Some(level) => level,
                };
                match i32::try_from(level) {
                    Ok(level) if (zstandard::MIN_LEVEL..=zstandard::MAX_LEVEL).contains(&level) => {
                        Ok(Codec::Zstd { level })
                    }
                    _ => Err(out_of_range(
                        "zstd",
                        level,
                        zstandard::MIN_LEVEL,
                        zstandard::MAX_LEVEL,
                    )),
                }
            }
            _ => Err(Error::UnknownCodec(name.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Deflate { .. } => "deflate",
            Codec::Zstd { .. } => "zstd",
        }
    }

    /// The level; `0` for `none`.
    pub fn level(self) -> i32 {
        match self {
            Codec::None => 0,
            // At most 9.
            Codec::Deflate { level } => level as i32,
            Codec::Zstd { level } => level,
        }
    }
}

fn out_of_range(codec: &'static str, level: i64, min: i32, max: i32) -> Error {
    Error::LevelOutOfRange {
        codec,
        level,
        min,
        max,
    }
}

/// `zstd:3`, `deflate:6`, `none`.
impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::None => f.write_str("none"),
            _ => write!(f, "{}:{}", self.name(), self.level()),
        }
    }
}

enum Encoder {
    None,
    Deflate(deflate::Encoder),
    Zstd(zstandard::Encoder),
}

/// Scratch buffers larger than this are not kept after a call that needed
/// one, so that compressing one multi-MB snapshot does not pin its size in a
/// long-lived compressor.
const RETAINED_SCRATCH_BYTES: usize = 1 << 20;

/// A codec with its compression context kept between calls.
///
/// Each call makes one complete, independent frame (zstd) or stream
/// (deflate): any output decompresses on its own, in any order. Only the
/// context's memory is reused, with the output buffer, and both are freed
/// with the compressor. zstd's context grows with the largest input seen:
/// at level 3, ~60 KiB for 2 KB deltas, ~300 KiB for 13 KB chunks, ~3.5 MiB
/// once a multi-MB snapshot went through (~50 MiB at level 19); deflate's is
/// ~270 KiB.
///
/// `&mut self` methods: one caller at a time. The Python binding enforces
/// that at run time.
pub struct Compressor {
    codec: Codec,
    encoder: Encoder,
    dictionary_id: Option<u32>,
    scratch: Vec<u8>,
}

impl Compressor {
    pub fn new(codec: Codec) -> Result<Self, Error> {
        Self::build(codec, None)
    }

    /// A zstd compressor primed with a dictionary (see [`train_dictionary`]):
    /// its frames name the dictionary's id, and decompressing them needs the
    /// same dictionary. Raw bytes (not made by training) also work, as a
    /// "content" dictionary of typical data.
    pub fn with_dictionary(codec: Codec, dictionary: &[u8]) -> Result<Self, Error> {
        Self::build(codec, Some(dictionary))
    }

    fn build(codec: Codec, dictionary: Option<&[u8]>) -> Result<Self, Error> {
        let encoder = match codec {
            Codec::Zstd { level } => Encoder::Zstd(zstandard::Encoder::new(level, dictionary)?),
            _ if dictionary.is_some() => return Err(no_dictionary(codec)),
            Codec::None => Encoder::None,
            Codec::Deflate { level } => Encoder::Deflate(deflate::Encoder::new(level)),
        };
        Ok(Compressor {
            codec,
            encoder,
            dictionary_id: dictionary.and_then(zstandard::dictionary_id),
            scratch: Vec::new(),
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The id a trained dictionary carries (and the frames name); `None`
    /// without a dictionary or with a raw-content one.
    pub fn dictionary_id(&self) -> Option<u32> {
        self.dictionary_id
    }

    /// Compresses `data` into the compressor's own buffer; the result is
    /// valid until the next call.
    pub fn compress(&mut self, data: &[u8]) -> Result<&[u8], Error> {
        if self.scratch.capacity() > RETAINED_SCRATCH_BYTES {
            self.scratch = Vec::new();
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.compress_to(data, &mut scratch);
        self.scratch = scratch;
        result.map(|()| self.scratch.as_slice())
    }

    /// Replaces `out`'s contents with `data` compressed.
    pub fn compress_to(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        match &mut self.encoder {
            Encoder::None => {
                out.clear();
                out.extend_from_slice(data);
                Ok(())
            }
            Encoder::Deflate(encoder) => encoder.compress_to(data, out),
            Encoder::Zstd(encoder) => encoder.compress_to(data, out),
        }
    }
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("codec", &self.codec)
            .field("dictionary_id", &self.dictionary_id)
            .finish_non_exhaustive()
    }
}

fn no_dictionary(codec: Codec) -> Error {
    Error::InvalidDictionary(format!("{} takes no dictionary", codec.name()))
}

/// Compresses `data` with a context made for this one call.
pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    Compressor::new(codec)?.compress_to(data, &mut out)?;
    Ok(out)
}

/// Decompresses `data`, refusing with [`Error::TooLarge`] output over
/// `max_size` bytes, without ever holding more than `max_size + 1`; the
/// codec's level does not matter. `dictionary` is for zstd frames made with
/// one.
pub fn decompress(
    codec: Codec,
    data: &[u8],
    max_size: usize,
    dictionary: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    match codec {
        Codec::Zstd { .. } => zstandard::decompress(data, max_size, dictionary),
        _ if dictionary.is_some() => Err(no_dictionary(codec)),
        Codec::Deflate { .. } => deflate::decompress(data, max_size),
        Codec::None if data.len() > max_size => Err(Error::TooLarge {
            codec: "none",
            max_size,
            size: Some(data.len() as u64),
        }),
        Codec::None => Ok(data.to_vec()),
    }
}

/// Trains a zstd dictionary of at most `max_size` bytes from typical inputs
/// (for live deltas: a few thousand deltas of real sessions). zstd needs a
/// hundred samples or more and about 100 times `max_size` bytes of them.
pub fn train_dictionary<S: AsRef<[u8]>>(samples: &[S], max_size: usize) -> Result<Vec<u8>, Error> {
    zstandard::train_dictionary(samples, max_size)
}

/// The first output capacity of a decoder that cannot know the size: a
/// guess from the input size, never more than the limit.
fn initial_output_capacity(input_len: usize, cap_limit: usize) -> usize {
    input_len
        .saturating_mul(4)
        .clamp(4096, 1 << 24)
        .min(cap_limit)
}

/// Makes room in a full `out`: doubles it, up to `cap_limit` bytes in all.
/// A full buffer at the limit stays full, and the decoder's next call
/// writes nothing.
fn grow_output(out: &mut Vec<u8>, cap_limit: usize) {
    let target = out.capacity().saturating_mul(2).max(4096).min(cap_limit);
    if target > out.len() {
        out.reserve_exact(target - out.len());
    }
}

#[cfg(test)]
mod tests;
