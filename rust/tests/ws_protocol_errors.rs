//! Framing violations that close with 1002, each caught as soon as the
//! bytes that show it arrive.

mod ws_common;

use _core::ws::{encode_client_frame, encode_frame, DecoderConfig, FrameDecoder, OpCode};
use ws_common::*;

fn client_rsv(opcode: u8, payload: &[u8], rsv: u8) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_frame(opcode, payload, KEY, true, rsv, &mut out);
    out
}

#[test]
fn reserved_bits_without_extension() {
    for rsv in 1..8 {
        let (_, err) = decode_every_way(cfg(), &client_rsv(1, b"x", rsv));
        assert_eq!(close_code(err), 1002, "rsv {rsv}");
    }
}

#[test]
fn reserved_opcodes() {
    for opcode in [3, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        let (_, err) = decode_every_way(cfg(), &client(opcode, b"", true));
        assert_eq!(close_code(err), 1002, "opcode {opcode}");
    }
}

#[test]
fn unmasked_client_frame() {
    let mut data = Vec::new();
    encode_frame(OpCode::Text, b"hello", true, &mut data);
    let (_, err) = decode_every_way(cfg(), &data);
    assert_eq!(close_code(err), 1002);
}

#[test]
fn fragmented_control_frames() {
    for opcode in [8, 9, 10] {
        let (_, err) = decode_every_way(cfg(), &client(opcode, b"", false));
        assert_eq!(close_code(err), 1002, "opcode {opcode}");
    }
}

#[test]
fn control_payload_over_125_bytes() {
    for opcode in [8, 9, 10] {
        let (_, err) = decode_every_way(cfg(), &client(opcode, &[b'p'; 126], true));
        assert_eq!(close_code(err), 1002, "opcode {opcode}");
    }
    // Exactly 125 is fine.
    let (events, err) = decode_every_way(cfg(), &client(9, &[b'p'; 125], true));
    assert_eq!((events.len(), err), (1, None));
}

#[test]
fn errors_are_raised_from_the_first_byte_that_shows_them() {
    // RSV, opcode and control-fragmentation errors need only byte 0; the
    // mask and control-length errors byte 1. No payload need arrive.
    let one_byte: &[u8] = &[0xC1, 0x83, 0x09];
    for b0 in one_byte {
        let mut dec = FrameDecoder::new(cfg());
        assert!(dec.feed(&[*b0], &mut Vec::new()).is_err(), "{b0:#x}");
    }
    for b in [[0x81u8, 0x05], [0x89, 0xFE]] {
        let mut dec = FrameDecoder::new(cfg());
        assert!(dec.feed(&b, &mut Vec::new()).is_err(), "{b:x?}");
    }
}

#[test]
fn earlier_events_of_the_same_call_are_kept_by_the_rust_api() {
    let data = concat(&[client(1, b"ok", true), client(3, b"", true)]);
    let (events, err) = feed_all(DecoderConfig::default(), &data);
    assert_eq!(events, [text("ok")]);
    assert_eq!(close_code(err), 1002);
}

#[test]
fn a_failed_decoder_refuses_further_input() {
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    let err = dec.feed(&client(3, b"", true), &mut out).unwrap_err();
    assert_eq!(dec.feed(&client(1, b"ok", true), &mut out), Err(err));
    assert!(out.is_empty());
}
