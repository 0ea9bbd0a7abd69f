//! permessage-deflate (RFC 7692): inflating received messages and deflating
//! messages to send. Sans-IO, like the rest of `ws`.
//!
//! The negotiation itself (the `Sec-WebSocket-Extensions` header) happens in
//! the handshake, in Python; what it agreed reaches the decoder as an
//! [`InflateConfig`] and the encoder as a window size and a level.
//!
//! # Receiving
//!
//! A compressed message is the raw DEFLATE data of its payload, cut after a
//! sync flush with the final `00 00 ff ff` removed (§7.2.1). [`Inflater`]
//! inflates each frame of the message as it completes and the four bytes
//! back at the end (§7.2.2). Output is bounded while it is produced: the
//! inflater never holds more than `limit + 1` bytes of a message, so a small
//! "decompression bomb" fails with 1009 after at most `limit` bytes of work,
//! not after it filled memory. Invalid DEFLATE data fails with 1002 (see
//! [`invalid_data`]).
//!
//! zlib (and so zlib-rs) cannot set up an 8-bit window; a 9-bit window holds
//! every back-reference an 8-bit compressor can make, so an agreed window of
//! 8 bits is inflated with 9. zlib-rs allocates a 32 KiB window whatever
//! the setting (about 47 KiB per inflater with its state), so a smaller
//! agreed window saves no memory here, and a peer that uses a larger window
//! than it agreed to is still inflated correctly rather than refused.
//!
//! # Sending
//!
//! The server always negotiates `server_no_context_takeover`: every message
//! is compressed on its own, so one compressed frame can be sent unchanged to
//! many peers and no compressor is kept per connection. [`deflate_message`]
//! compresses with a compressor kept per thread and per (window, level) and
//! reset before each message, so a message costs no allocation of zlib's
//! ~380 KiB of state. An 8-bit window is not possible with zlib; such a peer
//! gets uncompressed messages (always allowed: RSV1 clear).

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::{close_code, Error, Result};

use super::decoder::invalid_text;
use super::frame::{header_len, write_header, OpCode};
use super::utf8::Utf8Validator;

/// What the sender appends to every message after a sync flush and removes
/// before sending; the receiver puts it back (RFC 7692 §7.2.1, §7.2.2).
pub const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest and largest LZ77 window, in bits, RFC 7692 allows (§7.1.2).
pub const MIN_WINDOW_BITS: u8 = 8;
pub const MAX_WINDOW_BITS: u8 = 15;

/// Smallest window zlib can compress or inflate with.
const ZLIB_MIN_WINDOW_BITS: u8 = 9;

/// Bounds of the first output buffer of a message: four times its
/// compressed size, within these. It then doubles as needed.
const INFLATE_FIRST_MIN: usize = 256;
const INFLATE_FIRST_MAX: usize = 256 * 1024;

/// How the peer compresses, as agreed in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateConfig {
    /// The peer's LZ77 window (`client_max_window_bits` for a server),
    /// 8..=15.
    pub window_bits: u8,
    /// The peer starts every message with an empty window
    /// (`client_no_context_takeover`): the inflater is reset after each.
    pub no_context_takeover: bool,
}

impl Default for InflateConfig {
    fn default() -> Self {
        InflateConfig {
            window_bits: MAX_WINDOW_BITS,
            no_context_takeover: false,
        }
    }
}

impl InflateConfig {
    /// Checks the window size; the error names the bad value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&self.window_bits) {
            Ok(())
        } else {
            Err(format!(
                "window bits must be {MIN_WINDOW_BITS}..={MAX_WINDOW_BITS}, not {}",
                self.window_bits
            ))
        }
    }
}

/// Inflates the compressed messages of one connection.
pub struct Inflater {
    cfg: InflateConfig,
    inner: Decompress,
    /// The message's DEFLATE data ended with a final block (BFINAL=1); what
    /// follows in the message is ignored and the inflater must be reset
    /// before the next message, whatever the context takeover.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("cfg", &self.cfg)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// # Panics
    ///
    /// If `cfg.window_bits` is outside 8..=15 ([`InflateConfig::validate`]).
    pub fn new(cfg: InflateConfig) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        let bits = cfg.window_bits.max(ZLIB_MIN_WINDOW_BITS);
        Inflater {
            cfg,
            inner: Decompress::new_with_window_bits(false, bits),
            ended: false,
        }
    }

    pub fn config(&self) -> &InflateConfig {
        &self.cfg
    }

    /// Inflates one frame's payload of a compressed message onto `out`,
    /// which holds the message inflated so far. Fails with 1009 as soon as
    /// `out` would pass `limit` bytes, with 1002 on invalid DEFLATE data, and
    /// with 1007 when `utf8` is given and the output cannot be UTF-8.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<()> {
        self.run(input, out, limit, utf8, FlushDecompress::None)
    }

    /// Ends a message: inflates the `00 00 ff ff` the sender removed, then
    /// resets the inflater when the peer does not keep its context (or its
    /// data ended with a final block). Same errors as [`inflate`](Self::inflate).
    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
        utf8: Option<&mut Utf8Validator>,
    ) -> Result<()> {
        let result = self.run(&DEFLATE_TAIL, out, limit, utf8, FlushDecompress::Sync);
        if self.cfg.no_context_takeover || self.ended {
            self.reset();
        }
        result
    }

    /// Forgets the window and any partial message.
    pub fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        mut utf8: Option<&mut Utf8Validator>,
        flush: FlushDecompress,
    ) -> Result<()> {
        // Room for one byte over the limit: producing it proves the message
        // is too big without inflating any further.
        let cap = limit.saturating_add(1);
        while !self.ended {
            if out.len() == out.capacity() {
                let room = cap - out.len();
                if room == 0 {
                    return Err(too_big(limit));
                }
                let grow = if out.is_empty() {
                    input
                        .len()
                        .saturating_mul(4)
                        .clamp(INFLATE_FIRST_MIN, INFLATE_FIRST_MAX)
                } else {
                    out.len().max(INFLATE_FIRST_MIN)
                };
                let grow = grow.min(room);
                out.reserve_exact(grow);
            }
            let (in_before, out_before) = (self.inner.total_in(), out.len());
            let status = self
                .inner
                .decompress_vec(input, out, flush)
                .map_err(|e| invalid_data(e.message()))?;
            let consumed = (self.inner.total_in() - in_before) as usize;
            input = &input[consumed..];
            if let Some(v) = utf8.as_deref_mut() {
                if v.feed(&out[out_before..]).is_err() {
                    return Err(invalid_text());
                }
            }
            if out.len() > limit {
                return Err(too_big(limit));
            }
            match status {
                Status::StreamEnd => self.ended = true,
                // Everything was read and the output was not filled up: zlib
                // holds nothing back.
                _ if input.is_empty() && out.len() < out.capacity() => break,
                _ if consumed == 0 && out.len() == out_before && out.len() < out.capacity() => {
                    // No progress with room on both sides cannot happen with
                    // zlib; refuse rather than spin.
                    return Err(invalid_data(Some("inflate made no progress")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A compressed message that is not valid DEFLATE data.
///
/// 1002 (protocol error) rather than 1007: the payload breaks the framing
/// the extension negotiated, before there is any message whose type it
/// could be inconsistent with. The Python `websockets` library answers the
/// same (`ProtocolError("decompression failed")`).
fn invalid_data(detail: Option<&str>) -> Error {
    Error::protocol(format!(
        "compressed message is not valid DEFLATE data{}",
        detail.map(|d| format!(": {d}")).unwrap_or_default()
    ))
}

fn too_big(limit: usize) -> Error {
    Error::ws(
        close_code::MESSAGE_TOO_BIG,
        format!("message inflates to over the {limit} byte limit"),
    )
}

// --- sending -----------------------------------------------------------------

/// Why a message cannot be compressed with the given settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateSettingsError(pub String);

/// Checks the settings of [`deflate_message`]: a window of 9..=15 bits (zlib
/// cannot compress with 8) and a level of 0..=9.
pub fn check_deflate_settings(
    window_bits: u8,
    level: u32,
) -> std::result::Result<(), DeflateSettingsError> {
    if !(ZLIB_MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&window_bits) {
        return Err(DeflateSettingsError(format!(
            "window_bits must be {ZLIB_MIN_WINDOW_BITS}..={MAX_WINDOW_BITS} (zlib cannot \
             compress with an 8-bit window; send uncompressed), not {window_bits}"
        )));
    }
    if level > 9 {
        return Err(DeflateSettingsError(format!(
            "level must be 0..=9, not {level}"
        )));
    }
    Ok(())
}

thread_local! {
    /// Compressors by (window bits, level), reset before each use. A thread
    /// keeps one per setting it was ever asked for, each ~380 KiB (zlib-rs,
    /// window 15, default memory level); in practice one, as browsers and
    /// websockets do not ask for a smaller server window.
    static COMPRESSORS: RefCell<Vec<(u8, u32, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// Appends the compressed form of one whole message to `out`: raw DEFLATE
/// with a window of `window_bits`, sync-flushed, the final `00 00 ff ff`
/// removed (RFC 7692 §7.2.1). No context is shared with any other message.
///
/// # Panics
///
/// On settings that [`check_deflate_settings`] refuses.
pub fn deflate_message(payload: &[u8], window_bits: u8, level: u32, out: &mut Vec<u8>) {
    if let Err(e) = check_deflate_settings(window_bits, level) {
        panic!("{}", e.0);
    }
    COMPRESSORS.with(|cell| {
        let mut cache = cell.borrow_mut();
        let index = match cache
            .iter()
            .position(|(w, l, _)| *w == window_bits && *l == level)
        {
            Some(i) => i,
            None => {
                let c = Compress::new_with_window_bits(Compression::new(level), false, window_bits);
                cache.push((window_bits, level, c));
                cache.len() - 1
            }
        };
        let compressor = &mut cache[index].2;
        compressor.reset();
        compress_into(compressor, payload, out);
    });
}

fn compress_into(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    // Rough first guess; rrweb JSON compresses 5-10x. The buffer doubles
    // when it is too small.
    out.reserve(input.len() / 4 + 64);
    loop {
        if out.len() == out.capacity() {
            out.reserve((out.len() - start).max(64));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(input, out, FlushCompress::Sync)
            .expect("raw deflate into a growing buffer cannot fail");
        input = &input[(c.total_in() - before) as usize..];
        // A sync flush is complete once all input was taken and the output
        // was not filled up.
        if input.is_empty() && out.len() < out.capacity() {
            debug_assert!(matches!(status, Status::Ok | Status::BufError));
            break;
        }
    }
    debug_assert!(out[start..].ends_with(&DEFLATE_TAIL));
    out.truncate(out.len() - DEFLATE_TAIL.len());
}

/// Appends one complete server frame (unmasked, FIN, RSV1 set) holding the
/// compressed `payload` to `out`. `opcode` is Text or Binary; for Text,
/// `payload` must be UTF-8 (not checked here).
///
/// # Panics
///
/// On a control opcode, or settings [`check_deflate_settings`] refuses.
pub fn encode_deflated_frame(
    opcode: OpCode,
    payload: &[u8],
    window_bits: u8,
    level: u32,
    out: &mut Vec<u8>,
) {
    assert!(
        matches!(opcode, OpCode::Text | OpCode::Binary),
        "only text and binary messages are compressed"
    );
    let mut body = Vec::new();
    deflate_message(payload, window_bits, level, &mut body);
    let start = out.len();
    let hlen = header_len(body.len(), false);
    out.resize(start + hlen, 0);
    write_header(
        &mut out[start..],
        deflated_first_byte(opcode),
        None,
        body.len(),
    );
    out.extend_from_slice(&body);
}

/// First header byte of a compressed single-frame message: FIN, RSV1, opcode.
#[inline]
pub fn deflated_first_byte(opcode: OpCode) -> u8 {
    0x80 | 0x40 | opcode as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(payload: &[u8], bits: u8) -> Vec<u8> {
        let mut out = Vec::new();
        deflate_message(payload, bits, 6, &mut out);
        out
    }

    fn inflate_all(cfg: InflateConfig, data: &[u8], limit: usize) -> Result<Vec<u8>> {
        let mut inf = Inflater::new(cfg);
        let mut out = Vec::new();
        inf.inflate(data, &mut out, limit, None)?;
        inf.finish(&mut out, limit, None)?;
        Ok(out)
    }

    #[test]
    fn rfc_7692_hello_examples() {
        let cfg = InflateConfig::default();
        // §7.2.3.1: "Hello" compressed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(cfg, &hello, 100).unwrap(), b"Hello");
        // §7.2.3.3: a stored (uncompressed) block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_all(cfg, &stored, 100).unwrap(), b"Hello");
        // §7.2.3.4: a final block (BFINAL=1), with a byte after it.
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(cfg, &last, 100).unwrap(), b"Hello");
        // §7.2.3.5: two blocks in one message.
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_all(cfg, &two, 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_7692_shared_window() {
        // §7.2.3.2: the second "Hello" refers back into the first message.
        let mut inf = Inflater::new(InflateConfig::default());
        let mut out = Vec::new();
        inf.inflate(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &mut out,
            100,
            None,
        )
        .unwrap();
        inf.finish(&mut out, 100, None).unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        inf.inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100, None)
            .unwrap();
        inf.finish(&mut out, 100, None).unwrap();
        assert_eq!(out, b"Hello");

        // Without context takeover the same bytes point before the start.
        let mut inf = Inflater::new(InflateConfig {
            no_context_takeover: true,
            ..InflateConfig::default()
        });
        let mut out = Vec::new();
        inf.inflate(
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &mut out,
            100,
            None,
        )
        .unwrap();
        inf.finish(&mut out, 100, None).unwrap();
        out.clear();
        let err = inf
            .inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100, None)
            .and_then(|_| inf.finish(&mut out, 100, None))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::WebSocket {
                    close_code: 1002,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn deflate_round_trips_for_every_window() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"type\":3,\"x\":{}}},", i % 97).into_bytes())
            .collect();
        for bits in 9..=15 {
            let packed = deflate(&text, bits);
            assert!(
                packed.len() < text.len() / 5,
                "bits {bits}: {}",
                packed.len()
            );
            assert!(!packed.ends_with(&DEFLATE_TAIL));
            let cfg = InflateConfig {
                window_bits: bits,
                no_context_takeover: true,
            };
            assert_eq!(inflate_all(cfg, &packed, text.len()).unwrap(), text);
        }
        // An empty message compresses to one byte (an empty fixed block).
        let empty = deflate(b"", 15);
        assert_eq!(
            inflate_all(InflateConfig::default(), &empty, 0).unwrap(),
            b""
        );
    }

    #[test]
    fn compressor_is_reset_between_messages() {
        // The same payload compresses to the same bytes each time: nothing
        // of the previous message is referenced.
        let a = deflate(b"hello hello hello hello", 15);
        let b = deflate(b"hello hello hello hello", 15);
        assert_eq!(a, b);
        let c = deflate(b"hello hello hello hello", 10);
        assert_eq!(
            inflate_all(InflateConfig::default(), &c, 100).unwrap(),
            b"hello hello hello hello"
        );
    }

    #[test]
    fn window_of_8_bits_inflates_with_9() {
        let cfg = InflateConfig {
            window_bits: 8,
            no_context_takeover: false,
        };
        let packed = deflate(&b"abcdefgh".repeat(100), 9);
        assert_eq!(
            inflate_all(cfg, &packed, 1000).unwrap(),
            b"abcdefgh".repeat(100)
        );
    }

    #[test]
    fn output_stops_one_byte_past_the_limit() {
        let bomb = deflate(&vec![0u8; 10_000_000], 15);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let mut inf = Inflater::new(InflateConfig::default());
        let mut out = Vec::new();
        let err = inf.inflate(&bomb, &mut out, 1000, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::WebSocket {
                    close_code: 1009,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(out.capacity() <= 1001, "{}", out.capacity());

        // Exactly at the limit is fine, including when the last bytes come
        // out of the tail.
        let packed = deflate(&[7u8; 5000], 15);
        assert_eq!(
            inflate_all(InflateConfig::default(), &packed, 5000)
                .unwrap()
                .len(),
            5000
        );
        let err = inflate_all(InflateConfig::default(), &packed, 4999).unwrap_err();
        assert!(matches!(
            err,
            Error::WebSocket {
                close_code: 1009,
                ..
            }
        ));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for data in [&[0xff, 0xff, 0xff][..], &[0x07], b"not deflate at all"] {
            let err = inflate_all(InflateConfig::default(), data, 1000).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::WebSocket {
                        close_code: 1002,
                        ..
                    }
                ),
                "{data:?}: {err:?}"
            );
        }
    }

    #[test]
    fn utf8_is_checked_on_the_output() {
        let mut inf = Inflater::new(InflateConfig::default());
        let mut v = Utf8Validator::new();
        let mut out = Vec::new();
        let packed = deflate(b"ok \xff", 15);
        let err = inf
            .inflate(&packed, &mut out, 100, Some(&mut v))
            .unwrap_err();
        assert!(matches!(
            err,
            Error::WebSocket {
                close_code: 1007,
                ..
            }
        ));
    }

    #[test]
    fn settings_are_checked() {
        assert!(check_deflate_settings(8, 6).is_err());
        assert!(check_deflate_settings(16, 6).is_err());
        assert!(check_deflate_settings(15, 10).is_err());
        assert!(check_deflate_settings(9, 0).is_ok());
        assert!(InflateConfig {
            window_bits: 7,
            no_context_takeover: false
        }
        .validate()
        .is_err());
        assert!(InflateConfig {
            window_bits: 8,
            no_context_takeover: false
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn deflated_frame_has_rsv1_and_parses() {
        let mut out = Vec::new();
        encode_deflated_frame(OpCode::Text, &b"x".repeat(300), 15, 6, &mut out);
        let (h, n) = super::super::frame::parse_header(&out).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.rsv, 0b100);
        assert_eq!(h.opcode, 1);
        assert_eq!(h.payload_len as usize, out.len() - n);
        let body = &out[n..];
        assert_eq!(
            inflate_all(InflateConfig::default(), body, 300).unwrap(),
            b"x".repeat(300)
        );
    }
}
