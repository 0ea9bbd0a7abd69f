//! Text messages must be UTF-8 (1007), checked across fragment and read
//! boundaries, and failing at the first byte that makes them invalid rather
//! than at the end of the message.

mod ws_common;

use _core::ws::FrameDecoder;
use ws_common::*;

#[test]
fn characters_split_across_fragments_are_fine() {
    let s = "€𝄞é".as_bytes(); // 3 + 4 + 2 bytes
    for cut1 in 0..=s.len() {
        for cut2 in cut1..=s.len() {
            let data = concat(&[
                client(1, &s[..cut1], false),
                client(0, &s[cut1..cut2], false),
                client(0, &s[cut2..], true),
            ]);
            let (events, err) = feed_all(cfg(), &data);
            assert_eq!(err, None, "cuts {cut1} {cut2}");
            assert_eq!(events, [text("€𝄞é")]);
        }
    }
}

#[test]
fn invalid_fragment_fails_before_the_message_ends() {
    // Autobahn 6.4.1: the second fragment holds a code point over U+10FFFF;
    // the error must come with it, not with the final fragment.
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    dec.feed(&client(1, "κόσμε".as_bytes(), false), &mut out)
        .unwrap();
    let err = dec
        .feed(&client(0, b"\xf4\x90\x80\x80", false), &mut out)
        .unwrap_err();
    assert!(matches!(
        err,
        _core::Error::WebSocket {
            close_code: 1007,
            ..
        }
    ));
}

#[test]
fn invalid_bytes_fail_before_the_frame_is_complete() {
    // Autobahn 6.4.3: one frame, delivered in pieces; the bad byte fails the
    // read that carries it, although most of the frame is still to come.
    let mut payload = "κόσμε".as_bytes().to_vec();
    payload.extend_from_slice(b"\xf4\x90\x80\x80");
    payload.extend(std::iter::repeat_n(b'x', 10_000));
    let frame = client(1, &payload, true);
    let bad_at = 4 + 4 + "κόσμε".len() + 1; // header(16-bit len) + mask + text + 0xF4
    let mut dec = FrameDecoder::new(cfg());
    let mut out = Vec::new();
    dec.feed(&frame[..bad_at], &mut out).unwrap(); // 0xF4 alone may still be valid
    let err = dec.feed(&frame[bad_at..bad_at + 1], &mut out).unwrap_err();
    assert!(matches!(
        err,
        _core::Error::WebSocket {
            close_code: 1007,
            ..
        }
    ));
}

#[test]
fn truncated_character_at_message_end_is_invalid() {
    let data = concat(&[client(1, b"abc\xe2\x82", false), client(0, b"", true)]);
    let (_, err) = decode_every_way(cfg(), &data);
    assert_eq!(close_code(err), 1007);
    let (_, err) = decode_every_way(cfg(), &client(1, b"\xf0\x9f\x98", true));
    assert_eq!(close_code(err), 1007);
}

#[test]
fn binary_messages_are_not_checked() {
    let (events, err) = decode_every_way(cfg(), &client(2, b"\xff\xfe\xc0", true));
    assert_eq!(err, None);
    assert_eq!(events, [binary(b"\xff\xfe\xc0")]);
}

#[test]
fn validation_restarts_with_each_message() {
    // A binary message ending mid-"character" must not leak into the next
    // text message's validation, nor a text message's state into the next.
    let data = concat(&[
        client(2, b"\xe2\x82", true),
        client(1, b"ok", true),
        client(1, b"\xe2\x82\xac", true),
    ]);
    let (events, err) = decode_every_way(cfg(), &data);
    assert_eq!(err, None);
    assert_eq!(events, [binary(b"\xe2\x82"), text("ok"), text("€")]);
}

#[test]
fn known_invalid_sequences() {
    let cases: &[&[u8]] = &[
        b"\xc0\x80",             // overlong NUL
        b"\xe0\x80\xaf",         // overlong
        b"\xed\xa0\x80",         // UTF-16 surrogate
        b"\xed\xbf\xbf",         // surrogate
        b"\xf8\x88\x80\x80\x80", // 5-byte form
        b"\xfe",
        b"\xff",
        b"\x80",
        b"a\xbfb",
    ];
    for c in cases {
        let (_, err) = decode_every_way(cfg(), &client(1, c, true));
        assert_eq!(close_code(err), 1007, "{c:x?}");
    }
}
