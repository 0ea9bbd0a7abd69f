//! Fragmented messages: reassembly, control frames between fragments
//! (returned at once, in order), the continuation rules, and independence
//! from how the byte stream is chunked.

mod ws_common;

use _core::ws::{DecoderConfig, FrameDecoder, WsEvent};
use bytes::Bytes;
use ws_common::*;

#[test]
fn fragments_are_joined() {
    let data = concat(&[
        client(1, b"Hel", false),
        client(0, b"lo, ", false),
        client(0, b"", false),
        client(0, b"world", true),
    ]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(err, None);
    assert_eq!(events, [text("Hello, world")]);
}

#[test]
fn control_frames_between_fragments_come_out_at_once_and_in_order() {
    let data = concat(&[
        client(2, b"ab", false),
        client(9, b"p1", true),
        client(0, b"cd", false),
        client(10, b"p2", true),
        client(9, b"p3", true),
        client(0, b"ef", true),
        client(1, b"next", true),
    ]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            WsEvent::Ping(Bytes::from_static(b"p1")),
            WsEvent::Pong(Bytes::from_static(b"p2")),
            WsEvent::Ping(Bytes::from_static(b"p3")),
            binary(b"abcdef"),
            text("next"),
        ]
    );
}

#[test]
fn ping_is_returned_before_the_message_completes() {
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    dec.feed(&client(1, b"part", false), &mut out).unwrap();
    assert!(out.is_empty());
    assert_eq!(dec.buffered_bytes(), 4);
    dec.feed(&client(9, b"now", true), &mut out).unwrap();
    assert_eq!(out, [WsEvent::Ping(Bytes::from_static(b"now"))]);
    out.clear();
    dec.feed(&client(0, b"!", true), &mut out).unwrap();
    assert_eq!(out, [text("part!")]);
    assert_eq!(dec.buffered_bytes(), 0);
}

#[test]
fn close_between_fragments_is_returned() {
    let data = concat(&[client(1, b"abc", false), client(8, b"\x03\xe8", true)]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [WsEvent::Close {
            code: Some(1000),
            reason: String::new()
        }]
    );
}

#[test]
fn continuation_without_a_message_is_a_protocol_error() {
    let (_, err) = decode_every_way(cfg(), &client(0, b"orphan", true));
    assert_eq!(close_code(err), 1002);

    // Also right after a complete message.
    let data = concat(&[client(1, b"done", true), client(0, b"more", true)]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(events, [text("done")]);
    assert_eq!(close_code(err), 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_is_a_protocol_error() {
    for opcode in [1, 2] {
        for fin in [true, false] {
            let data = concat(&[client(1, b"first", false), client(opcode, b"x", fin)]);
            let (events, err) = decode_every_way(cfg(), &data);
            assert!(events.is_empty());
            assert_eq!(close_code(err), 1002, "opcode {opcode} fin {fin}");
        }
    }
}

#[test]
fn a_hundred_frames_in_one_chunk_come_out_in_one_call() {
    let frames: Vec<Vec<u8>> = (0..100)
        .map(|i| client(1, format!("message {i}").as_bytes(), true))
        .collect();
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    dec.feed(&frames.concat(), &mut out).unwrap();
    assert_eq!(out.len(), 100);
    for (i, e) in out.iter().enumerate() {
        assert_eq!(e, &text(&format!("message {i}")));
    }
    assert_eq!(dec.buffered_bytes(), 0);
}

/// Random streams of valid frames, with random fragmentation and control
/// frames, decoded with random chunk sizes: same events as the messages put
/// in, whatever the chunking.
#[test]
fn random_streams_decode_the_same_under_random_chunking() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _round in 0..200 {
        let mut data = Vec::new();
        let mut expected = Vec::new();
        for _msg in 0..rng.below(6) + 1 {
            let is_text = rng.below(2) == 0;
            let len = [0, 1, 10, 125, 126, 300, 70_000][rng.below(7)];
            let payload: Vec<u8> = if is_text {
                "aé€𝄞"
                    .chars()
                    .cycle()
                    .take(len)
                    .collect::<String>()
                    .into_bytes()
            } else {
                (0..len).map(|_| rng.next() as u8).collect()
            };
            // Split the payload anywhere, even inside a UTF-8 character.
            let mut cuts: Vec<usize> = (0..rng.below(4))
                .map(|_| rng.below(payload.len() + 1))
                .collect();
            cuts.push(payload.len());
            cuts.sort_unstable();
            let mut start = 0;
            for (i, &cut) in cuts.iter().enumerate() {
                let opcode = if i == 0 {
                    if is_text {
                        1
                    } else {
                        2
                    }
                } else {
                    0
                };
                let fin = i == cuts.len() - 1;
                data.extend(client(opcode, &payload[start..cut], fin));
                start = cut;
                if !fin && rng.below(3) == 0 {
                    let ping: Vec<u8> = (0..rng.below(126)).map(|_| rng.next() as u8).collect();
                    data.extend(client(9, &ping, true));
                    expected.push(WsEvent::Ping(Bytes::from(ping)));
                }
            }
            expected.push(WsEvent::Message {
                text: is_text,
                data: Bytes::from(payload),
            });
        }
        let sizes: Vec<usize> = (0..rng.below(20)).map(|_| rng.below(5000) + 1).collect();
        let (events, err) = feed_chunks(DecoderConfig::default(), &data, &sizes);
        assert_eq!(err, None);
        assert_eq!(events, expected);
        let (events, err) = feed_all(DecoderConfig::default(), &data);
        assert_eq!(err, None);
        assert_eq!(events, expected);
    }
}
