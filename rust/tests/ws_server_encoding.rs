//! Server frames (unmasked) and close frames parse back to what was
//! encoded, using the decoder with masking not required.

mod ws_common;

use _core::ws::frame::truncate_reason;
use _core::ws::{encode_close, encode_frame, DecoderConfig, OpCode, WsEvent};
use bytes::Bytes;
use ws_common::*;

fn server_side() -> DecoderConfig {
    DecoderConfig {
        require_mask: false,
        ..DecoderConfig::default()
    }
}

#[test]
fn server_frames_round_trip() {
    let big = vec![b'z'; 70_000];
    let mut data = Vec::new();
    encode_frame(OpCode::Text, b"hello", true, &mut data);
    encode_frame(OpCode::Binary, &big, true, &mut data);
    encode_frame(OpCode::Text, b"frag", false, &mut data);
    encode_frame(OpCode::Ping, b"", true, &mut data);
    encode_frame(OpCode::Continuation, b"mented", true, &mut data);
    encode_frame(OpCode::Pong, b"pong", true, &mut data);
    encode_close(Some(1000), "bye", &mut data);
    let (events, err) = feed_bytewise(server_side(), &data);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            text("hello"),
            binary(&big),
            WsEvent::Ping(Bytes::new()),
            text("fragmented"),
            WsEvent::Pong(Bytes::from_static(b"pong")),
            WsEvent::Close {
                code: Some(1000),
                reason: "bye".into()
            },
        ]
    );
}

#[test]
fn server_frames_are_never_masked() {
    let mut data = Vec::new();
    encode_frame(OpCode::Binary, &[0; 300], true, &mut data);
    assert_eq!(data[1] & 0x80, 0);
    assert_eq!(data.len(), 4 + 300);
}

#[test]
fn close_reason_is_cut_to_123_bytes_on_a_char_boundary() {
    for reason in [
        "x".repeat(200),
        "€".repeat(60),
        "ab".to_owned() + &"𝄞".repeat(40),
    ] {
        let mut data = Vec::new();
        encode_close(Some(4000), &reason, &mut data);
        assert!(data.len() <= 2 + 125);
        let (events, err) = feed_all(server_side(), &data);
        assert_eq!(err, None);
        let expected = truncate_reason(&reason);
        assert!(reason.starts_with(expected));
        assert!(expected.len() > 119, "cut too short: {}", expected.len());
        assert_eq!(
            events,
            [WsEvent::Close {
                code: Some(4000),
                reason: expected.to_owned()
            }]
        );
    }
}

#[test]
fn close_without_code_has_empty_body() {
    let mut data = Vec::new();
    encode_close(None, "", &mut data);
    assert_eq!(data, [0x88, 0x00]);
}
