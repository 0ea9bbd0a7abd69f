//! The peer's close frame: body rules, close codes, reason encoding, and
//! that what follows it is discarded, however the bytes are split.

mod ws_common;

use _core::ws::{FrameDecoder, WsEvent};
use ws_common::*;

fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    body
}

#[test]
fn empty_close_has_no_code() {
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    assert!(!dec.close_received());
    dec.feed(&client(8, b"", true), &mut out).unwrap();
    assert!(dec.close_received());
    assert_eq!(
        out,
        [WsEvent::Close {
            code: None,
            reason: String::new()
        }]
    );
}

#[test]
fn code_and_reason_are_returned() {
    let (events, err) = decode_every_way(
        cfg(),
        &client(8, &close_body(1001, "au revoir ✓".as_bytes()), true),
    );
    assert_eq!(err, None);
    assert_eq!(
        events,
        [WsEvent::Close {
            code: Some(1001),
            reason: "au revoir ✓".into()
        }]
    );
}

#[test]
fn valid_codes_are_accepted() {
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ] {
        let (events, err) = feed_all(cfg(), &client(8, &close_body(code, b""), true));
        assert_eq!(err, None, "code {code}");
        assert_eq!(events.len(), 1);
    }
}

#[test]
fn invalid_codes_are_protocol_errors() {
    for code in [
        0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let (events, err) = feed_all(cfg(), &client(8, &close_body(code, b""), true));
        assert!(events.is_empty());
        assert_eq!(close_code(err), 1002, "code {code}");
    }
}

#[test]
fn one_byte_body_is_a_protocol_error() {
    let (_, err) = decode_every_way(cfg(), &client(8, b"\x03", true));
    assert_eq!(close_code(err), 1002);
}

#[test]
fn reason_must_be_utf8() {
    let (_, err) = decode_every_way(cfg(), &client(8, &close_body(1000, b"bad \xff"), true));
    assert_eq!(close_code(err), 1007);
}

#[test]
fn longest_reason_fits() {
    let reason = "r".repeat(123);
    let (events, err) = feed_all(
        cfg(),
        &client(8, &close_body(1000, reason.as_bytes()), true),
    );
    assert_eq!(err, None);
    assert_eq!(
        events,
        [WsEvent::Close {
            code: Some(1000),
            reason
        }]
    );
}

#[test]
fn whatever_follows_the_close_is_discarded() {
    // In the same chunk: the close is the last event, and no error.
    let data = concat(&[client(8, b"\x03\xe8", true), client(9, b"late", true)]);
    let (events, err) = feed_all(cfg(), &data);
    assert_eq!(
        events,
        [WsEvent::Close {
            code: Some(1000),
            reason: String::new()
        }]
    );
    assert_eq!(err, None);

    // In a later read, even bytes that are no frame at all.
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    dec.feed(&client(8, &close_body(1000, b""), true), &mut out)
        .unwrap();
    dec.feed(b"", &mut out).unwrap();
    dec.feed(b"\xff\xff\xff", &mut out).unwrap();
    dec.feed(&client(1, b"late", true), &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(dec.buffered_bytes(), 0);
}

#[test]
fn every_split_gives_the_same_result_after_close() {
    // A message, the close, then a frame and a broken one (RSV2, reserved
    // opcode): however TCP splits them, the message and the close, no error.
    let data = concat(&[
        client(1, b"hi", true),
        client(8, b"\x03\xe8", true),
        client(1, b"x", true),
        vec![0xA3, 0x80, 0, 0, 0, 0],
    ]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            text("hi"),
            WsEvent::Close {
                code: Some(1000),
                reason: String::new()
            }
        ]
    );
}

#[test]
fn messages_before_a_violation_are_returned_with_the_error() {
    // The decoder hands out what was complete before the violation; the
    // error comes with them, and again on every later call.
    let data = concat(&[client(1, b"one", true), client(2, b"two", true), vec![0xF1]]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(events, [text("one"), binary(b"two")]);
    assert_eq!(close_code(err), 1002);

    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    let err = dec.feed(&data, &mut out).unwrap_err();
    assert_eq!(dec.error(), Some(&err));
    assert_eq!(dec.feed(b"", &mut out), Err(err));
    assert_eq!(out.len(), 2);
}
