//! `FrameDecoder` with permessage-deflate negotiated: compressed messages in
//! one frame or many, context takeover or not, small windows, and the
//! errors (RSV1 where it is not allowed, bombs, invalid DEFLATE data, bad
//! UTF-8 after inflating). Every stream is also decoded byte by byte and
//! split at many points, which must not change the outcome.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

use crate::error::Error;

use super::deflate::{InflateConfig, DEFLATE_TAIL};
use super::frame::encode_client_frame;
use super::{DecoderConfig, FrameDecoder, WsEvent};

const KEY: [u8; 4] = [0x5a, 0xc3, 0x0f, 0x96];
const RSV1: u8 = 0b100;

fn cfg(window_bits: u8, no_context_takeover: bool) -> DecoderConfig {
    DecoderConfig {
        deflate: Some(InflateConfig {
            window_bits,
            no_context_takeover,
        }),
        ..DecoderConfig::default()
    }
}

fn deflating() -> DecoderConfig {
    cfg(15, false)
}

/// A client compressor as browsers run one: raw DEFLATE, a sync flush per
/// message, the tail removed, context kept unless told otherwise.
struct Client {
    c: Compress,
    no_context_takeover: bool,
}

impl Client {
    fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Client {
            c: Compress::new_with_window_bits(Compression::default(), false, window_bits),
            no_context_takeover,
        }
    }

    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        if self.no_context_takeover {
            self.c.reset();
        }
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.len().max(64));
            }
            let before = self.c.total_in();
            self.c
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .unwrap();
            input = &input[(self.c.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        assert!(out.ends_with(&DEFLATE_TAIL));
        out.truncate(out.len() - 4);
        out
    }
}

fn frame(opcode: u8, payload: &[u8], fin: bool, rsv: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_frame(opcode, payload, KEY, fin, rsv, &mut out);
    out
}

/// A compressed message cut into `parts` frames (RSV1 on the first only).
fn fragmented(opcode: u8, compressed: &[u8], parts: usize) -> Vec<u8> {
    let size = compressed.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = compressed.chunks(size).collect();
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { 0 };
        let rsv = if i == 0 { RSV1 } else { 0 };
        out.extend(frame(op, chunk, i + 1 == chunks.len(), rsv));
    }
    out
}

type Outcome = (Vec<WsEvent>, Option<Error>);

fn feed_pieces(cfg: DecoderConfig, pieces: &[&[u8]]) -> Outcome {
    let mut dec = FrameDecoder::new(cfg);
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = dec.feed(piece, &mut out) {
            return (out, Some(e));
        }
    }
    (out, None)
}

/// Decodes whole, byte by byte and split in two at up to 200 points; all
/// must agree.
fn decode(cfg: DecoderConfig, data: &[u8]) -> Outcome {
    let whole = feed_pieces(cfg, &[data]);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(feed_pieces(cfg, &bytes), whole, "byte by byte");
    let step = (data.len() / 200).max(1);
    for cut in (0..=data.len()).step_by(step) {
        let (a, b) = data.split_at(cut);
        assert_eq!(feed_pieces(cfg, &[a, b]), whole, "split at {cut}");
    }
    whole
}

fn close_code(err: Option<Error>) -> u16 {
    match err {
        Some(Error::WebSocket { close_code, .. }) => close_code,
        other => panic!("expected a WebSocket error, got {other:?}"),
    }
}

fn text(data: &[u8]) -> WsEvent {
    WsEvent::Message {
        text: true,
        data: Bytes::copy_from_slice(data),
    }
}

/// rrweb-like batches: similar from one to the next, as a tracker sends.
fn batch(n: u32) -> Vec<u8> {
    let events: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"type":3,"data":{{"source":1,"positions":[{{"x":{},"y":{},"id":{},"timeOffset":-16}}]}},"timestamp":{}}}"#,
                (n * 7 + i) % 1440,
                (n * 13 + i) % 900,
                i % 40,
                1_700_000_000_000u64 + u64::from(n * 40 + i)
            )
        })
        .collect();
    format!(
        r#"{{"type":"events_batch","data":{{"sessionId":"s1","seq":{n},"events":[{}]}}}}"#,
        events.join(",")
    )
    .into_bytes()
}

#[test]
fn compressed_single_frame_message() {
    let msg = batch(0);
    let packed = Client::new(15, false).compress(&msg);
    assert!(packed.len() < msg.len() / 3);
    let (events, err) = decode(deflating(), &frame(1, &packed, true, RSV1));
    assert_eq!(err, None);
    assert_eq!(events, [text(&msg)]);
}

#[test]
fn compressed_fragmented_message_with_control_frames_between() {
    let msg = batch(1);
    let packed = Client::new(15, false).compress(&msg);
    let mut data = fragmented(1, &packed, 3);
    // A ping after the first fragment.
    let first_len = 2 + 4 + packed.len().div_ceil(3);
    let first_len = first_len + if packed.len().div_ceil(3) > 125 { 2 } else { 0 };
    let ping = frame(9, b"p", true, 0);
    data.splice(first_len..first_len, ping);
    let (events, err) = decode(deflating(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [WsEvent::Ping(Bytes::from_static(b"p")), text(&msg)]
    );
    // Empty fragments are fine too.
    let mut data = frame(2, &packed[..10], false, RSV1);
    data.extend(frame(0, b"", false, 0));
    data.extend(frame(0, &packed[10..], false, 0));
    data.extend(frame(0, b"", true, 0));
    let (events, err) = decode(deflating(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [WsEvent::Message {
            text: false,
            data: Bytes::from(msg)
        }]
    );
}

#[test]
fn compressed_and_plain_messages_mix() {
    let mut client = Client::new(15, false);
    let mut data = Vec::new();
    let mut want = Vec::new();
    for n in 0..6 {
        let msg = batch(n);
        if n % 2 == 0 {
            data.extend(frame(1, &client.compress(&msg), true, RSV1));
        } else {
            data.extend(frame(1, &msg, true, 0));
        }
        want.push(text(&msg));
    }
    let (events, err) = decode(deflating(), &data);
    assert_eq!(err, None);
    assert_eq!(events, want);
}

#[test]
fn context_takeover_shares_the_window_across_messages() {
    let mut client = Client::new(15, false);
    let msgs: Vec<Vec<u8>> = (0..5).map(|_| batch(3)).collect();
    let packed: Vec<Vec<u8>> = msgs.iter().map(|m| client.compress(m)).collect();
    // Later copies refer back to the first: much smaller.
    assert!(
        packed[1].len() * 4 < packed[0].len(),
        "{} {}",
        packed[1].len(),
        packed[0].len()
    );
    let data: Vec<u8> = packed
        .iter()
        .flat_map(|p| frame(1, p, true, RSV1))
        .collect();
    let (events, err) = decode(deflating(), &data);
    assert_eq!(err, None);
    assert_eq!(events, msgs.iter().map(|m| text(m)).collect::<Vec<_>>());

    // A decoder that resets after each message cannot follow those
    // back-references: a protocol error.
    let (events, err) = decode(cfg(15, true), &data);
    assert_eq!(events.len(), 1);
    assert_eq!(close_code(err), 1002);
}

#[test]
fn no_context_takeover_messages_stand_alone() {
    let mut client = Client::new(15, true);
    let msgs: Vec<Vec<u8>> = (0..4).map(batch).collect();
    let data: Vec<u8> = msgs
        .iter()
        .flat_map(|m| frame(1, &client.compress(m), true, RSV1))
        .collect();
    for decoder in [cfg(15, true), cfg(15, false)] {
        let (events, err) = decode(decoder, &data);
        assert_eq!(err, None);
        assert_eq!(events, msgs.iter().map(|m| text(m)).collect::<Vec<_>>());
    }
}

#[test]
fn small_windows() {
    for bits in 9..=15 {
        let mut client = Client::new(bits, false);
        let msgs: Vec<Vec<u8>> = (0..3).map(batch).collect();
        let data: Vec<u8> = msgs
            .iter()
            .flat_map(|m| frame(1, &client.compress(m), true, RSV1))
            .collect();
        // The decoder's window is the agreed one (8 means 9 inside zlib).
        let agreed = if bits == 9 { 8 } else { bits };
        let (events, err) = decode(cfg(agreed, false), &data);
        assert_eq!(err, None, "bits {bits}");
        assert_eq!(events.len(), 3);
    }
    // A peer that compresses with a larger window than it agreed to is
    // still read correctly: zlib-rs keeps a 32 KiB window whatever the
    // setting. Not enforced, never misread.
    let mut state = 0x2545_f491_u32;
    let big: Vec<u8> = (0..3000)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()
        })
        .collect();
    let mut client = Client::new(15, false);
    let mut data = frame(2, &client.compress(&big), true, RSV1);
    data.extend(frame(2, &client.compress(&big[..2000]), true, RSV1));
    let (events, err) = feed_pieces(cfg(9, false), &[&data]);
    assert_eq!(err, None);
    assert_eq!(
        events[1],
        WsEvent::Message {
            text: false,
            data: Bytes::copy_from_slice(&big[..2000])
        }
    );
}

#[test]
fn rsv1_on_continuation_or_control_frames_is_a_protocol_error() {
    let packed = Client::new(15, false).compress(&batch(0));
    let mut data = frame(1, &packed[..5], false, RSV1);
    data.extend(frame(0, &packed[5..], true, RSV1));
    assert_eq!(close_code(decode(deflating(), &data).1), 1002);

    // RSV1 on the continuation of an uncompressed message.
    let mut data = frame(1, b"ab", false, 0);
    data.extend(frame(0, b"cd", true, RSV1));
    assert_eq!(close_code(decode(deflating(), &data).1), 1002);

    for opcode in [8, 9, 10] {
        let data = frame(opcode, b"", true, RSV1);
        assert_eq!(
            close_code(decode(deflating(), &data).1),
            1002,
            "opcode {opcode}"
        );
    }
    // RSV2 and RSV3 stay reserved.
    for rsv in [0b010, 0b001, 0b110, 0b111] {
        let data = frame(1, &packed, true, rsv);
        assert_eq!(
            close_code(decode(deflating(), &data).1),
            1002,
            "rsv {rsv:03b}"
        );
    }
}

#[test]
fn rsv1_without_negotiation_is_a_protocol_error() {
    let packed = Client::new(15, false).compress(b"hello");
    let data = frame(1, &packed, true, RSV1);
    let (events, err) = decode(DecoderConfig::default(), &data);
    assert!(events.is_empty());
    assert_eq!(close_code(err), 1002);
}

#[test]
fn bomb_is_refused_while_inflating() {
    // 30 MB of zeros compress to ~30 KB; the limit is 1 MiB.
    let zeros = vec![0u8; 30 << 20];
    let packed = Client::new(15, false).compress(&zeros);
    assert!(packed.len() < 64 * 1024, "{}", packed.len());
    let cfg = DecoderConfig {
        max_message_bytes: 1 << 20,
        ..deflating()
    };
    let mut dec = FrameDecoder::new(cfg);
    let mut out = Vec::new();
    let err = dec
        .feed(&frame(2, &packed, true, RSV1), &mut out)
        .unwrap_err();
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
    assert_eq!(dec.buffered_bytes(), 0);

    // Fragmented: the limit holds across fragments.
    let (_, err) = feed_pieces(cfg, &[&fragmented(2, &packed, 7)]);
    assert_eq!(close_code(err), 1009);

    // Exactly at the limit inflates.
    let at_limit = vec![b'a'; 1 << 20];
    let packed = Client::new(15, false).compress(&at_limit);
    let (events, err) = feed_pieces(cfg, &[&frame(2, &packed, true, RSV1)]);
    assert_eq!(err, None);
    assert_eq!(events.len(), 1);
}

#[test]
fn invalid_deflate_data_is_a_protocol_error() {
    // A reserved block type (BTYPE=11).
    let (_, err) = decode(deflating(), &frame(1, &[0x07, 0x00], true, RSV1));
    assert_eq!(close_code(err), 1002);
    // A stored block whose length and its complement disagree.
    let (_, err) = decode(
        deflating(),
        &frame(2, &[0x00, 0x05, 0x00, 0x00, 0x00], true, RSV1),
    );
    assert_eq!(close_code(err), 1002);
    // A back-reference before the start of the stream (the second message
    // of RFC 7692 §7.2.3.2, sent first).
    let (_, err) = decode(
        deflating(),
        &frame(1, &[0xf2, 0x00, 0x11, 0x00, 0x00], true, RSV1),
    );
    assert_eq!(close_code(err), 1002);
    // The error is reported once the frame is complete, also when it is
    // the middle fragment of a message.
    let mut data = frame(2, &[0xf2, 0x48], false, RSV1);
    data.extend(frame(0, &[0x07, 0x00], false, 0));
    data.extend(frame(0, b"more", true, 0));
    let (_, err) = decode(deflating(), &data);
    assert_eq!(close_code(err), 1002);
}

#[test]
fn text_is_validated_after_inflating() {
    let packed = Client::new(15, false).compress(b"caf\xc3");
    let (_, err) = decode(deflating(), &frame(1, &packed, true, RSV1));
    assert_eq!(close_code(err), 1007);
    let packed = Client::new(15, false).compress(b"bad \xff byte");
    let (_, err) = decode(deflating(), &fragmented(1, &packed, 3));
    assert_eq!(close_code(err), 1007);
    // The same bytes in a binary message are fine.
    let (events, err) = decode(deflating(), &frame(2, &packed, true, RSV1));
    assert_eq!(err, None);
    assert_eq!(events.len(), 1);
    // Multi-byte characters cut between frames and between inflate calls.
    let msg = "κόσμε €𝄞 ".repeat(500);
    let packed = Client::new(15, false).compress(msg.as_bytes());
    let (events, err) = decode(deflating(), &fragmented(1, &packed, 5));
    assert_eq!(err, None);
    assert_eq!(events, [text(msg.as_bytes())]);
}

#[test]
fn final_block_resets_the_window() {
    // RFC 7692 §7.2.3.4: a message ending with BFINAL=1, then another.
    let mut data = frame(
        1,
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        true,
        RSV1,
    );
    data.extend(frame(
        1,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        true,
        RSV1,
    ));
    let (events, err) = decode(deflating(), &data);
    assert_eq!(err, None);
    assert_eq!(events, [text(b"Hello"), text(b"Hello")]);
}

#[test]
fn an_inflated_message_over_the_limit_is_skipped_without_context_takeover() {
    let mut client = Client::new(15, true);
    let big = vec![b'z'; 50_000];
    let small = b"{\"ok\":true}".to_vec();
    let data = [
        frame(1, &client.compress(&big), true, RSV1),
        frame(1, &client.compress(&small), true, RSV1),
    ]
    .concat();
    let cfg = DecoderConfig {
        max_message_bytes: 10_000,
        skip_oversized: true,
        ..cfg(15, true)
    };
    let mut dec = FrameDecoder::new(cfg);
    let mut out = Vec::new();
    dec.feed(&data, &mut out).unwrap();
    match &out[..] {
        [WsEvent::TooLarge {
            text: true,
            size,
            prefix,
        }, WsEvent::Message { data, .. }] => {
            assert_eq!(*size, 10_001);
            assert_eq!(&prefix[..], &big[..crate::ws::decoder::TOO_LARGE_PREFIX]);
            assert_eq!(&data[..], &small[..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fragmented_compressed_message_over_the_limit_is_skipped_without_context_takeover() {
    let mut client = Client::new(15, true);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let packed = client.compress(&big);
    let data = [
        fragmented(2, &packed, 4),
        frame(2, &client.compress(b"next"), true, RSV1),
    ]
    .concat();
    let cfg = DecoderConfig {
        max_message_bytes: 100_000,
        max_frame_bytes: 1 << 20,
        skip_oversized: true,
        ..cfg(15, true)
    };
    let mut dec = FrameDecoder::new(cfg);
    let mut out = Vec::new();
    for chunk in data.chunks(1000) {
        dec.feed(chunk, &mut out).unwrap();
    }
    assert!(matches!(
        &out[..],
        [
            WsEvent::TooLarge { text: false, .. },
            WsEvent::Message { .. }
        ]
    ));
    let WsEvent::Message { data, .. } = &out[1] else {
        unreachable!()
    };
    assert_eq!(&data[..], b"next");
}

#[test]
fn with_context_takeover_an_oversized_compressed_message_still_fails() {
    let mut client = Client::new(15, false);
    let data = frame(1, &client.compress(&vec![b'z'; 50_000]), true, RSV1);
    let cfg = DecoderConfig {
        max_message_bytes: 10_000,
        skip_oversized: true,
        ..deflating()
    };
    let err = FrameDecoder::new(cfg)
        .feed(&data, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        err,
        crate::Error::WebSocket {
            close_code: 1009,
            ..
        }
    ));
}
