//! The property behind the `frame_decoder` fuzz target, shared with the
//! `ws_fuzz_seeds` cargo test so that committed seeds are replayed on every
//! `cargo test`.
//!
//! Input layout: byte 0 picks the settings, the rest is the byte stream a
//! client sent.
//! - bit 7: tight limits (`max_frame_bytes` 64, `max_message_bytes` 200), so
//!   the 1009 paths are reachable with small inputs;
//! - bit 6: masking not required;
//! - bit 5: permessage-deflate negotiated (RSV1 allowed on the first frame
//!   of a data message), with the peer's window 8 + bits 0-2 (8..15) and,
//!   with bit 4, no context takeover;
//! - bit 3: oversized messages skipped (`WsEvent::TooLarge`) instead of
//!   failing with 1009;
//! - bits 0-5: seed of the chunk sizes the stream is cut into.
//!
//! The stream is decoded whole, one byte at a time and in seeded chunks; all
//! three must give the same events and the same error (or none), and never
//! panic. Every event and the buffered size are checked against the rules.

use _core::ws::frame::{is_valid_close_code, MAX_CONTROL_PAYLOAD};
use _core::ws::{DecoderConfig, FrameDecoder, InflateConfig, WsEvent, TOO_LARGE_PREFIX};
use _core::Error;

pub type Outcome = (Vec<WsEvent>, Option<Error>);

pub fn config(settings: u8) -> DecoderConfig {
    let (max_frame_bytes, max_message_bytes) = if settings & 0x80 != 0 {
        (64, 200)
    } else {
        (1 << 20, 1 << 20)
    };
    DecoderConfig {
        max_frame_bytes,
        max_message_bytes,
        require_mask: settings & 0x40 == 0,
        deflate: (settings & 0x20 != 0).then_some(InflateConfig {
            window_bits: 8 + (settings & 0x07),
            no_context_takeover: settings & 0x10 != 0,
        }),
        skip_oversized: settings & 0x08 != 0,
    }
}

fn decode<'a>(cfg: DecoderConfig, chunks: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut dec = FrameDecoder::new(cfg);
    let mut events = Vec::new();
    // Largest possible holding: a whole message plus a control frame (or a
    // partial header) received between two of its fragments; for a
    // compressed message, its inflated part plus the frame in transit.
    // A message being skipped keeps its first TOO_LARGE_PREFIX bytes.
    let messages = if cfg.deflate.is_some() { 2 } else { 1 };
    let skipped = if cfg.skip_oversized {
        TOO_LARGE_PREFIX
    } else {
        0
    };
    let bound = messages * cfg.max_message_bytes + MAX_CONTROL_PAYLOAD + skipped;
    for chunk in chunks {
        if let Err(e) = dec.feed(chunk, &mut events) {
            return (events, Some(e));
        }
        assert!(
            dec.buffered_bytes() <= bound,
            "holds {} bytes",
            dec.buffered_bytes()
        );
    }
    (events, None)
}

/// Chunk sizes 1..=64 from a xorshift generator seeded by `seed`.
fn seeded_chunks(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = (0x9e37_79b9_u32 ^ u32::from(seed).wrapping_mul(0x0100_0193)) | 1;
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 64 + 1) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

fn check_events(cfg: &DecoderConfig, events: &[WsEvent]) {
    for event in events {
        match event {
            WsEvent::Message { text, data } => {
                assert!(data.len() <= cfg.max_message_bytes);
                if *text {
                    assert!(std::str::from_utf8(data).is_ok());
                }
            }
            WsEvent::Ping(data) | WsEvent::Pong(data) => {
                assert!(data.len() <= MAX_CONTROL_PAYLOAD);
            }
            WsEvent::Close { code, reason } => {
                assert!(code.is_none_or(is_valid_close_code));
                assert!(code.is_some() || reason.is_empty());
                assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
            }
            WsEvent::TooLarge { size, prefix, .. } => {
                assert!(cfg.skip_oversized);
                assert!(prefix.len() <= TOO_LARGE_PREFIX);
                let limit = cfg.max_frame_bytes.min(cfg.max_message_bytes) as u64;
                assert!(*size > limit, "size {size} is within the limits");
            }
        }
    }
    // Nothing may follow a close.
    if let Some(i) = events
        .iter()
        .position(|e| matches!(e, WsEvent::Close { .. }))
    {
        assert_eq!(i, events.len() - 1);
    }
}

/// Runs the property on one fuzz input; returns the whole-stream outcome.
pub fn run(input: &[u8]) -> Option<Outcome> {
    let (&settings, stream) = input.split_first()?;
    let cfg = config(settings);
    let whole = decode(cfg, std::iter::once(stream));
    check_events(&cfg, &whole.0);
    let bytewise = decode(cfg, stream.chunks(1));
    assert_eq!(bytewise, whole, "byte by byte differs from whole");
    let seeded = decode(cfg, seeded_chunks(stream, settings & 0x3F).into_iter());
    assert_eq!(seeded, whole, "seeded chunks differ from whole");
    Some(whole)
}
