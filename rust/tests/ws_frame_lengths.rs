//! All three payload-length forms decode, at and around their boundaries; a
//! length not in its shortest form, and a 64-bit length with its top bit
//! set, are protocol errors (1002).

mod ws_common;

use _core::ws::{apply_mask, WsEvent};
use ws_common::*;

/// A masked binary frame whose length is written in the given form
/// (7, 16 or 64 bits), minimal or not.
fn frame_with_length_form(payload: &[u8], form: u8) -> Vec<u8> {
    let mut out = vec![0x82];
    let n = payload.len();
    match form {
        7 => out.push(0x80 | n as u8),
        16 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

#[test]
fn boundary_lengths_in_shortest_form() {
    for len in [0usize, 1, 124, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let (events, err) = feed_all(cfg(), &client(2, &payload, true));
        assert_eq!(err, None, "len {len}");
        assert_eq!(events, [binary(&payload)], "len {len}");
    }
}

#[test]
fn non_minimal_length_forms_are_protocol_errors() {
    for (len, form) in [
        (0usize, 16u8),
        (5, 16),
        (125, 16),
        (0, 64),
        (5, 64),
        (300, 64),
    ] {
        let payload = vec![9u8; len];
        let (events, err) = decode_every_way(cfg(), &frame_with_length_form(&payload, form));
        assert_eq!(close_code(err), 1002, "{len} bytes in the {form}-bit form");
        assert_eq!(events, [], "{len} bytes in the {form}-bit form");
    }
}

#[test]
fn every_split_of_each_length_form_gives_the_same_result() {
    // (The 64-bit form starts at 64 KiB: boundary_lengths_in_shortest_form.)
    for (len, form) in [(5usize, 7u8), (125, 7), (126, 16), (200, 16)] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let (events, err) = decode_every_way(cfg(), &frame_with_length_form(&payload, form));
        assert_eq!(err, None);
        assert_eq!(events, [binary(&payload)]);
    }
}

#[test]
fn msb_of_64_bit_length_is_a_protocol_error() {
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 63).to_be_bytes());
    frame.extend_from_slice(&KEY);
    let (_, err) = decode_every_way(cfg(), &frame);
    assert_eq!(close_code(err), 1002);
}

#[test]
fn zero_length_frames_of_every_kind() {
    let data = concat(&[
        client(1, b"", true),
        client(2, b"", true),
        client(9, b"", true),
        client(10, b"", true),
        client(1, b"", false),
        client(0, b"", true),
        client(8, b"", true),
    ]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            text(""),
            binary(b""),
            WsEvent::Ping(Default::default()),
            WsEvent::Pong(Default::default()),
            text(""),
            WsEvent::Close {
                code: None,
                reason: String::new()
            },
        ]
    );
}
