//! The peer's close frame: body rules, close codes, reason encoding, and
//! that nothing may follow it.

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
fn any_frame_after_close_is_a_protocol_error() {
    // In the same chunk: the close is returned, then the error.
    let data = concat(&[client(8, b"", true), client(9, b"late", true)]);
    let (events, err) = feed_all(cfg(), &data);
    assert_eq!(events.len(), 1);
    assert_eq!(close_code(err), 1002);

    // In a later read, and even a single stray byte.
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    dec.feed(&client(8, &close_body(1000, b""), true), &mut out)
        .unwrap();
    dec.feed(b"", &mut out).unwrap();
    let err = dec.feed(b"\x81", &mut out).unwrap_err();
    assert!(matches!(
        err,
        _core::Error::WebSocket {
            close_code: 1002,
            ..
        }
    ));
}

#[test]
fn every_split_gives_the_same_result_after_close() {
    let data = concat(&[
        client(1, b"hi", true),
        client(8, b"", true),
        client(1, b"x", true),
    ]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(events.len(), 2);
    assert_eq!(close_code(err), 1002);
}
