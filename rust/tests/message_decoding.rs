//! The control messages: fields, defaults, nulls, unknown fields, the
//! error codes for bad JSON, bad fields and unknown types, and each side's
//! answer to the other side's messages.

use _core::protocol::{ProtocolDecoder, TrackerMessage, ViewerMessage, Viewport};
use _core::{Error, MessageCode};

fn decode(input: &str) -> TrackerMessage {
    ProtocolDecoder::default()
        .decode_tracker(input.as_bytes())
        .unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn decode_viewer(input: &str) -> ViewerMessage {
    ProtocolDecoder::default()
        .decode_viewer(input.as_bytes())
        .unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn message_error<T: std::fmt::Debug>(outcome: Result<T, Error>) -> (MessageCode, String) {
    match outcome {
        Err(Error::Message { code, message, seq }) => {
            assert_eq!(seq, None);
            (code, message)
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The error a malformed message gets, the same on either side.
fn error(input: &[u8]) -> (MessageCode, String) {
    let decoder = ProtocolDecoder::default();
    let tracker = message_error(decoder.decode_tracker(input));
    let viewer = message_error(decoder.decode_viewer(input));
    assert_eq!(tracker, viewer, "{input:?}");
    tracker
}

#[test]
fn session_start_with_every_field() {
    let m = decode(
        r#"{"type":"session_start","data":{"sessionId":"s-1","userId":"u","url":"https://e.x/",
        "userAgent":"UA","viewport":{"width":1440,"height":900,"devicePixelRatio":2.5},
        "startTime":1700000000000,"referrer":"https://r.x/","timeZone":"Europe/Paris","extra":[1]}}"#,
    );
    let TrackerMessage::SessionStart(s) = m else {
        panic!("{m:?}")
    };
    assert_eq!(s.session_id, "s-1");
    assert_eq!(s.user_id.as_deref(), Some("u"));
    assert_eq!(s.url.as_deref(), Some("https://e.x/"));
    assert_eq!(s.user_agent.as_deref(), Some("UA"));
    assert_eq!(
        s.viewport,
        Some(Viewport {
            width: Some(1440),
            height: Some(900),
            device_pixel_ratio: Some(2.5)
        })
    );
    assert_eq!(s.start_time, Some(1.7e12));
    assert_eq!(s.referrer.as_deref(), Some("https://r.x/"));
    assert_eq!(s.time_zone.as_deref(), Some("Europe/Paris"));
}

#[test]
fn session_start_optional_fields_may_be_null_or_absent() {
    let m = decode(
        r#"{"type":"session_start","data":{"sessionId":"s","userId":null,"viewport":{"width":null}}}"#,
    );
    let TrackerMessage::SessionStart(s) = m else {
        panic!("{m:?}")
    };
    assert_eq!(s.user_id, None);
    assert_eq!(s.url, None);
    assert_eq!(s.viewport, Some(Viewport::default()));
    let m = decode(r#"{"type":"session_start","data":{"sessionId":"s","viewport":null}}"#);
    let TrackerMessage::SessionStart(s) = m else {
        panic!("{m:?}")
    };
    assert_eq!(s.viewport, None);
}

#[test]
fn session_ids_are_1_to_128_characters() {
    let ok = "é".repeat(128);
    let m = decode(&format!(
        r#"{{"type":"session_start","data":{{"sessionId":"{ok}"}}}}"#
    ));
    assert_eq!(m.session_id(), Some(ok.as_str()));
    for bad in [String::new(), "é".repeat(129), "a".repeat(129)] {
        for kind in ["session_start", "viewer_join_session", "session_end"] {
            let input = format!(r#"{{"type":"{kind}","data":{{"sessionId":"{bad}"}}}}"#);
            assert_eq!(
                error(input.as_bytes()).0,
                MessageCode::InvalidMessage,
                "{input}"
            );
        }
    }
}

#[test]
fn session_end_data_is_optional() {
    for input in [
        r#"{"type":"session_end"}"#,
        r#"{"type":"session_end","data":null}"#,
        r#"{"type":"session_end","data":{}}"#,
        r#"{"type":"session_end","data":{"sessionId":null}}"#,
    ] {
        let m = decode(input);
        assert!(
            matches!(&m, TrackerMessage::SessionEnd(e) if e.session_id.is_none()),
            "{input}"
        );
    }
    let m = decode(r#"{"type":"session_end","data":{"sessionId":"x"}}"#);
    assert_eq!(m.session_id(), Some("x"));
    assert_eq!(m.type_name(), "session_end");
}

#[test]
fn viewer_messages() {
    let m =
        decode_viewer(r#"{"type":"viewer_join_session","data":{"sessionId":"a","fromIndex":12}}"#);
    assert!(
        matches!(m, ViewerMessage::ViewerJoin(ref j) if j.session_id == "a" && j.from_index == Some(12))
    );
    let m = decode_viewer(r#"{"type":"viewer_join_session","data":{"sessionId":"a"}}"#);
    assert!(matches!(m, ViewerMessage::ViewerJoin(ref j) if j.from_index.is_none()));
    let m = decode_viewer(r#"{"type":"viewer_leave_session","data":{"sessionId":"a"}}"#);
    assert!(matches!(m, ViewerMessage::ViewerLeave(ref l) if l.session_id == "a"));

    let m = decode_viewer(r#"{"type":"get_session_events","data":{"sessionId":"a"}}"#);
    assert!(
        matches!(m, ViewerMessage::GetSessionEvents(ref g) if g.from_index == 0 && g.limit.is_none())
    );
    let m = decode_viewer(
        r#"{"type":"get_session_events","data":{"sessionId":"a","fromIndex":null,"limit":5}}"#,
    );
    assert!(
        matches!(m, ViewerMessage::GetSessionEvents(ref g) if g.from_index == 0 && g.limit == Some(5))
    );
    let m =
        decode_viewer(r#"{"type":"get_session_events","data":{"sessionId":"a","fromIndex":7}}"#);
    assert!(matches!(m, ViewerMessage::GetSessionEvents(ref g) if g.from_index == 7));
}

#[test]
fn each_side_refuses_the_other_sides_well_formed_messages() {
    let decoder = ProtocolDecoder::default();
    for input in [
        r#"{"type":"viewer_join_session","data":{"sessionId":"a"}}"#,
        r#"{"type":"viewer_leave_session","data":{"sessionId":"a"}}"#,
        r#"{"type":"get_session_events","data":{"sessionId":"a"}}"#,
    ] {
        assert_eq!(
            message_error(decoder.decode_tracker(input.as_bytes())),
            (
                MessageCode::NotAllowed,
                "viewer messages are not accepted on a tracker connection".to_owned()
            ),
            "{input}"
        );
    }
    for input in [
        r#"{"type":"session_start","data":{"sessionId":"a"}}"#,
        r#"{"type":"session_end"}"#,
        r#"{"type":"events_batch","data":{"sessionId":"a","seq":0,"events":[]}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"too_large","bytes":9}}"#,
    ] {
        assert_eq!(
            message_error(decoder.decode_viewer(input.as_bytes())),
            (
                MessageCode::NotAllowed,
                "tracker messages are not accepted on a viewer connection".to_owned()
            ),
            "{input}"
        );
    }
}

#[test]
fn bad_fields_are_invalid_messages() {
    let cases = [
        r#"{"type":"session_start","data":{}}"#,
        r#"{"type":"session_start","data":{"sessionId":null}}"#,
        r#"{"type":"session_start","data":{"sessionId":5}}"#,
        r#"{"type":"session_start"}"#,
        r#"{"type":"session_start","data":{"sessionId":"s","viewport":{"width":1.5}}}"#,
        r#"{"type":"session_start","data":{"sessionId":"s","viewport":[1440,900]}}"#,
        r#"{"type":"session_start","data":{"sessionId":"s","startTime":"now"}}"#,
        r#"{"type":"viewer_join_session","data":{"sessionId":"a","fromIndex":-1}}"#,
        r#"{"type":"viewer_join_session","data":{}}"#,
        r#"{"type":"viewer_leave_session"}"#,
        r#"{"type":"get_session_events","data":{"sessionId":"a","limit":0}}"#,
        r#"{"type":"get_session_events","data":{"sessionId":"a","fromIndex":-3}}"#,
        r#"{"type":"session_end","data":[]}"#,
    ];
    for input in cases {
        let (code, message) = error(input.as_bytes());
        assert_eq!(code, MessageCode::InvalidMessage, "{input}: {message}");
    }
}

#[test]
fn broken_envelopes_are_invalid_messages() {
    let cases: [&[u8]; 11] = [
        b"",
        b"not json",
        b"[1,2]",
        br#"["session_end"]"#,
        br#" ["events_batch", {"events": []}]"#,
        b"\"events_batch\"",
        br#"{"type":"session_end""#,
        br#"{"data":{}}"#,
        br#"{"type":7}"#,
        br#"{"type":"session_end"} trailing"#,
        b"{\"type\":\"session_end\",\"data\":{\"sessionId\":\"\xff\"}}",
    ];
    for input in cases {
        let (code, message) = error(input);
        assert_eq!(code, MessageCode::InvalidMessage, "{input:?}: {message}");
    }
}

#[test]
fn unknown_types_are_named_in_the_error() {
    let (code, message) = error(br#"{"type":"session_pause","data":{}}"#);
    assert_eq!(code, MessageCode::UnknownMessageType);
    assert!(message.contains("session_pause"), "{message}");
    // Escaped type names are compared after unescaping.
    let m = decode(r#"{"type":"session\u005fend"}"#);
    assert_eq!(m.type_name(), "session_end");
    // A huge type name is not echoed in full.
    let long = "x".repeat(10_000);
    let (code, message) = error(format!(r#"{{"type":"{long}"}}"#).as_bytes());
    assert_eq!(code, MessageCode::UnknownMessageType);
    assert!(message.len() < 200, "{message}");
}
