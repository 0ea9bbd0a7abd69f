//! `snapshot_missing`: the tracker's notice that the page's full snapshot
//! could not be delivered. Fields, nulls, and what is refused.

use _core::protocol::{ProtocolDecoder, SnapshotMissing, TrackerMessage, MAX_REASON_CHARS};
use _core::{Error, MessageCode};

fn decode(input: &str) -> Result<SnapshotMissing, (MessageCode, String)> {
    match ProtocolDecoder::default().decode_tracker(input.as_bytes()) {
        Ok(TrackerMessage::SnapshotMissing(m)) => Ok(m),
        Ok(other) => panic!("{input}: decoded as {other:?}"),
        Err(Error::Message { code, message, .. }) => Err((code, message)),
        Err(other) => panic!("{input}: {other:?}"),
    }
}

#[test]
fn every_field() {
    let m = decode(
        r#"{"type":"snapshot_missing","data":{"sessionId":"s1","reason":"too_large",
        "bytes":71600000,"limitBytes":67108864,"extra":true}}"#,
    )
    .unwrap();
    assert_eq!(
        m,
        SnapshotMissing {
            session_id: Some("s1".to_owned()),
            reason: "too_large".to_owned(),
            bytes: 71_600_000,
            limit_bytes: Some(67_108_864),
        }
    );
}

#[test]
fn session_id_and_limit_may_be_null_or_absent() {
    for input in [
        r#"{"type":"snapshot_missing","data":{"reason":"too_large","bytes":0}}"#,
        r#"{"type":"snapshot_missing","data":{"sessionId":null,"reason":"too_large","bytes":0,"limitBytes":null}}"#,
    ] {
        let m = decode(input).unwrap();
        assert_eq!(m.session_id, None, "{input}");
        assert_eq!(m.limit_bytes, None, "{input}");
    }
}

#[test]
fn names_its_type_and_session() {
    let input = r#"{"type":"snapshot_missing","data":{"sessionId":"s1","reason":"r","bytes":1}}"#;
    let m = ProtocolDecoder::default()
        .decode_tracker(input.as_bytes())
        .unwrap();
    assert_eq!(m.type_name(), "snapshot_missing");
    assert_eq!(m.session_id(), Some("s1"));
}

#[test]
fn reason_is_a_short_identifier() {
    let longest = "r".repeat(MAX_REASON_CHARS);
    for ok in ["too_large", "a", "x-1.y", longest.as_str()] {
        let input =
            format!(r#"{{"type":"snapshot_missing","data":{{"reason":"{ok}","bytes":1}}}}"#);
        assert_eq!(decode(&input).unwrap().reason, ok);
    }
    let too_long = "r".repeat(MAX_REASON_CHARS + 1);
    for bad in ["", "too large", "é", "a\\nb", "<b>", too_long.as_str()] {
        let input =
            format!(r#"{{"type":"snapshot_missing","data":{{"reason":"{bad}","bytes":1}}}}"#);
        let (code, message) = decode(&input).unwrap_err();
        assert_eq!(code, MessageCode::InvalidMessage, "{bad:?}");
        assert!(message.contains("reason"), "{message}");
    }
}

#[test]
fn malformed_data_is_invalid_message() {
    for input in [
        r#"{"type":"snapshot_missing"}"#,
        r#"{"type":"snapshot_missing","data":null}"#,
        r#"{"type":"snapshot_missing","data":["too_large"]}"#,
        r#"{"type":"snapshot_missing","data":{"bytes":1}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"too_large"}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":7,"bytes":1}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"r","bytes":-1}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"r","bytes":1.5}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"r","bytes":"1"}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"r","bytes":1,"limitBytes":-5}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"r","bytes":9223372036854775808}}"#,
        r#"{"type":"snapshot_missing","data":{"reason":"r","bytes":1,"sessionId":""}}"#,
    ] {
        let (code, _) = decode(input).unwrap_err();
        assert_eq!(code, MessageCode::InvalidMessage, "{input}");
    }
}
