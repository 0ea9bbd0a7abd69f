//! `max_frame_bytes` and `max_message_bytes` (1009), enforced from frame
//! headers before any payload is buffered, and the memory bound that follows.

mod ws_common;

use _core::ws::{DecoderConfig, FrameDecoder};
use ws_common::*;

fn limits(frame: usize, message: usize) -> DecoderConfig {
    DecoderConfig {
        max_frame_bytes: frame,
        max_message_bytes: message,
        require_mask: true,
        deflate: None,
        skip_oversized: false,
    }
}

#[test]
fn frame_at_the_limit_is_accepted() {
    let (events, err) = decode_every_way(limits(100, 100), &client(2, &[1; 100], true));
    assert_eq!(err, None);
    assert_eq!(events.len(), 1);
}

#[test]
fn oversized_frame_fails_on_its_header_alone() {
    let frame = client(2, &vec![0; 70_000], true);
    let mut dec = FrameDecoder::new(limits(65_536, 1 << 20));
    // 64-bit length form and mask: a 14-byte header, no payload needed.
    dec.feed(&frame[..13], &mut Vec::new()).unwrap();
    let err = dec.feed(&frame[13..14], &mut Vec::new()).unwrap_err();
    assert!(matches!(
        err,
        _core::Error::WebSocket {
            close_code: 1009,
            ..
        }
    ));
    assert_eq!(dec.buffered_bytes(), 0);
}

#[test]
fn huge_declared_length_fails_without_allocating() {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
    header.extend_from_slice(&KEY);
    let (_, err) = decode_every_way(cfg(), &header);
    assert_eq!(close_code(err), 1009);
}

#[test]
fn oversized_single_frame_message() {
    let (_, err) = decode_every_way(limits(1000, 50), &client(1, &[b'a'; 51], true));
    assert_eq!(close_code(err), 1009);
}

#[test]
fn message_total_is_checked_when_the_fragment_header_arrives() {
    let first = client(2, &[0; 60], false);
    let second = client(0, &[0; 60], true);
    let mut dec = FrameDecoder::new(limits(100, 100));
    let mut out = Vec::new();
    dec.feed(&first, &mut out).unwrap();
    // Only the header (2 bytes + mask) of the second fragment.
    let err = dec.feed(&second[..6], &mut out).unwrap_err();
    assert!(matches!(
        err,
        _core::Error::WebSocket {
            close_code: 1009,
            ..
        }
    ));

    let data = concat(&[first, client(0, &[0; 40], true)]);
    let (events, err) = decode_every_way(limits(100, 100), &data);
    assert_eq!((events.len(), err), (1, None));
}

#[test]
fn control_frames_do_not_count_toward_the_message() {
    let data = concat(&[
        client(2, &[0; 60], false),
        client(9, &[0; 100], true),
        client(0, &[0; 40], true),
    ]);
    let (events, err) = decode_every_way(limits(100, 100), &data);
    assert_eq!((events.len(), err), (2, None));
}

#[test]
fn buffered_bytes_stay_within_one_message_and_one_frame_header() {
    let max = 10_000;
    let mut rng = Rng(42);
    let payload: Vec<u8> = (0..max).map(|_| rng.next() as u8).collect();
    let data = concat(&[
        client(2, &payload[..3000], false),
        client(0, &payload[3000..7000], false),
        client(0, &payload[7000..], true),
    ]);
    let mut dec = FrameDecoder::new(limits(max, max));
    let mut out = Vec::new();
    for chunk in data.chunks(777) {
        dec.feed(chunk, &mut out).unwrap();
        assert!(dec.buffered_bytes() <= max + 14, "{}", dec.buffered_bytes());
    }
    assert_eq!(out, [binary(&payload)]);
    assert_eq!(dec.buffered_bytes(), 0);
}
