//! `events_batch` decoding: event validation, limits, error codes and the
//! `seq` carried by errors, and raw bytes kept verbatim.

mod rrweb;

use _core::protocol::{DecoderLimits, EventsBatch, ProtocolDecoder, TrackerMessage};
use _core::{Error, MessageCode};
use bytes::Bytes;
use rrweb::{batch_message, event, mouse_move, FULL_SNAPSHOT, INCREMENTAL, META};

fn decode(input: &[u8]) -> Result<EventsBatch, Error> {
    decode_with(DecoderLimits::default(), input)
}

fn decode_with(limits: DecoderLimits, input: &[u8]) -> Result<EventsBatch, Error> {
    match ProtocolDecoder::new(limits).decode_tracker(input)? {
        TrackerMessage::EventsBatch(b) => Ok(b),
        other => panic!("not a batch: {other:?}"),
    }
}

fn error(input: &[u8]) -> (MessageCode, String, Option<i64>) {
    error_with(DecoderLimits::default(), input)
}

fn error_with(limits: DecoderLimits, input: &[u8]) -> (MessageCode, String, Option<i64>) {
    match decode_with(limits, input) {
        Err(Error::Message { code, message, seq }) => (code, message, seq),
        other => panic!("expected a message error, got {other:?}"),
    }
}

#[test]
fn keeps_each_event_byte_for_byte() {
    let events = vec![
        r#"{"type":4,"data":{"href":"https://e.x/é?q=\"1\"","width":1440},"timestamp":1.5}"#
            .to_owned(),
        r#"{ "timestamp" : 2e3 , "type" : 2 , "data" : { "node" : [ 1 , 2 ] } }"#.to_owned(),
        mouse_move(1_700_000_000_123),
    ];
    let input = batch_message(Some("abc"), Some(7), &events);
    let batch = decode(&input).unwrap();
    assert_eq!(batch.session_id(), Some("abc"));
    assert_eq!(batch.seq(), Some(7));
    assert_eq!(batch.count(), 3);
    let raws: Vec<&[u8]> = batch.events().iter().map(|e| &e.raw()[..]).collect();
    let expected: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
    assert_eq!(raws, expected);
    assert_eq!(
        batch.nbytes(),
        events.iter().map(String::len).sum::<usize>()
    );
    assert_eq!(
        batch.payload(),
        format!("[{}]", events.join(",")).into_bytes()
    );
    assert_eq!(batch.payload().len(), batch.payload_len());
}

#[test]
fn whitespace_around_events_is_not_part_of_them() {
    let input = br#"{"type":"events_batch","data":{"events":[ {"type":3,"timestamp":1} ,
        {"type":3,"timestamp":2}
    ]}}"#;
    let batch = decode(input).unwrap();
    assert_eq!(
        batch.payload(),
        br#"[{"type":3,"timestamp":1},{"type":3,"timestamp":2}]"#
    );
}

#[test]
fn summarises_types_and_timestamps() {
    let events = vec![
        event(INCREMENTAL, 30, 80),
        event(META, 10, 80),
        event(FULL_SNAPSHOT, 20, 80),
        event(META, 40, 80),
        event(INCREMENTAL, 5, 80),
    ];
    let batch = decode(&batch_message(None, None, &events)).unwrap();
    assert_eq!(batch.min_timestamp(), Some(5.0));
    assert_eq!(batch.max_timestamp(), Some(40.0));
    assert!(batch.has_full_snapshot());
    assert!(batch.has_meta());
    assert_eq!(batch.last_full_snapshot(), Some(2));
    assert_eq!(batch.last_meta(), Some(3));
    assert_eq!(batch.meta_before_full_snapshot(), Some(1));
    let kinds: Vec<i64> = batch.events().iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [3, 4, 2, 4, 3]);
}

#[test]
fn an_empty_batch_is_valid() {
    let batch = decode(&batch_message(Some("s"), Some(0), &[])).unwrap();
    assert_eq!(batch.count(), 0);
    assert_eq!(batch.nbytes(), 0);
    assert_eq!(batch.min_timestamp(), None);
    assert_eq!(batch.max_timestamp(), None);
    assert!(!batch.has_full_snapshot() && !batch.has_meta());
    assert_eq!(batch.payload(), b"[]");
}

#[test]
fn session_id_and_seq_are_optional_and_nullable() {
    let batch =
        decode(br#"{"type":"events_batch","data":{"sessionId":null,"seq":null,"events":[]}}"#)
            .unwrap();
    assert_eq!((batch.session_id(), batch.seq()), (None, None));
    let batch =
        decode(br#"{"data":{"events":[],"extra":{"x":[1]}},"type":"events_batch","more":1}"#)
            .unwrap();
    assert_eq!((batch.session_id(), batch.seq()), (None, None));
}

#[test]
fn an_event_that_is_not_an_object_is_invalid_and_named_by_position() {
    for bad in ["[3, 100]", "3", "\"event\"", "null", "true"] {
        let events = vec![event(3, 1, 60), event(3, 2, 60), bad.to_owned()];
        let (code, message, seq) = error(&batch_message(Some("s"), Some(9), &events));
        assert_eq!(code, MessageCode::InvalidEvent, "{bad}");
        assert!(message.contains("event 2"), "{message}");
        assert_eq!(seq, Some(9));
    }
}

#[test]
fn type_must_be_an_integer_and_timestamp_a_number() {
    let cases = [
        (r#"{"timestamp":1}"#, r#"has no integer "type""#),
        (r#"{"type":"3","timestamp":1}"#, r#"has no integer "type""#),
        (r#"{"type":3.5,"timestamp":1}"#, r#"has no integer "type""#),
        (r#"{"type":null,"timestamp":1}"#, r#"has no integer "type""#),
        (r#"{"type":1e3,"timestamp":1}"#, r#"has no integer "type""#),
        (r#"{"type":3}"#, r#"has no numeric "timestamp""#),
        (
            r#"{"type":3,"timestamp":"1"}"#,
            r#"has no numeric "timestamp""#,
        ),
        (
            r#"{"type":3,"timestamp":null}"#,
            r#"has no numeric "timestamp""#,
        ),
        (
            r#"{"type":3,"timestamp":1e999}"#,
            r#"has no numeric "timestamp""#,
        ),
        (
            r#"{"type":3,"type":3,"timestamp":1}"#,
            "is invalid: duplicate field",
        ),
        ("[3, 1]", "is not a JSON object"),
    ];
    for (bad, why) in cases {
        let (code, message, seq) = error(&batch_message(None, Some(0), &[bad.to_owned()]));
        assert_eq!(code, MessageCode::InvalidEvent, "{bad}: {message}");
        assert!(
            message.starts_with(&format!("event 0 of the batch {why}")),
            "{bad}: {message}"
        );
        assert_eq!(seq, Some(0));
    }
    let ok = [
        r#"{"type":-1,"timestamp":-5}"#,
        r#"{"type":3,"timestamp":1.25e12,"data":{"type":"nested","timestamp":"x"}}"#,
    ];
    for good in ok {
        decode(&batch_message(None, None, &[good.to_owned()])).unwrap();
    }
}

#[test]
fn too_many_events_is_payload_too_large_and_names_the_limit() {
    let limits = DecoderLimits {
        max_events_per_batch: 3,
        ..DecoderLimits::default()
    };
    let events: Vec<String> = (0..3).map(|i| event(3, i, 60)).collect();
    assert_eq!(
        decode_with(limits, &batch_message(None, None, &events))
            .unwrap()
            .count(),
        3
    );

    let events: Vec<String> = (0..4).map(|i| event(3, i, 60)).collect();
    let (code, message, seq) = error_with(limits, &batch_message(None, Some(12), &events));
    assert_eq!(code, MessageCode::PayloadTooLarge);
    assert!(message.contains('3'), "{message}");
    assert_eq!(seq, Some(12));

    // Also when `seq` comes after the events, and when the events are not
    // even objects (the count is checked first).
    let input = br#"{"type":"events_batch","data":{"events":[1,2,3,4,5],"seq":4}}"#;
    let (code, _, seq) = error_with(limits, input);
    assert_eq!((code, seq), (MessageCode::PayloadTooLarge, Some(4)));
}

#[test]
fn an_event_over_the_size_limit_is_payload_too_large() {
    let limits = DecoderLimits {
        max_event_bytes: 100,
        ..DecoderLimits::default()
    };
    let events = vec![event(3, 1, 100), event(3, 2, 101)];
    let (code, message, seq) = error_with(limits, &batch_message(None, Some(3), &events));
    assert_eq!(code, MessageCode::PayloadTooLarge);
    assert!(
        message.contains("event 1") && message.contains("100 bytes"),
        "{message}"
    );
    assert_eq!(seq, Some(3));
    let events = vec![event(3, 1, 100), event(3, 2, 100)];
    assert_eq!(
        decode_with(limits, &batch_message(None, None, &events))
            .unwrap()
            .nbytes(),
        200
    );
}

#[test]
fn bad_batch_fields_are_invalid_messages_with_seq_when_readable() {
    let cases: [(&[u8], Option<i64>); 10] = [
        (br#"{"type":"events_batch","data":[5]}"#, None),
        (br#"{"type":"events_batch"}"#, None),
        (br#"{"type":"events_batch","data":null}"#, None),
        (br#"{"type":"events_batch","data":[]}"#, None),
        (br#"{"type":"events_batch","data":{"seq":5}}"#, Some(5)),
        (
            br#"{"type":"events_batch","data":{"events":{},"seq":6}}"#,
            Some(6),
        ),
        (
            br#"{"type":"events_batch","data":{"events":[],"sessionId":7,"seq":7}}"#,
            Some(7),
        ),
        (
            br#"{"type":"events_batch","data":{"events":[],"seq":-1}}"#,
            Some(-1),
        ),
        (
            br#"{"type":"events_batch","data":{"events":[],"seq":1.5}}"#,
            None,
        ),
        (
            br#"{"type":"events_batch","data":{"events":[],"seq":"1"}}"#,
            None,
        ),
    ];
    for (input, expected_seq) in cases {
        let (code, message, seq) = error(input);
        let shown = String::from_utf8_lossy(input);
        assert_eq!(code, MessageCode::InvalidMessage, "{shown}: {message}");
        assert_eq!(seq, expected_seq, "{shown}");
    }
    let long = "s".repeat(129);
    let (code, _, seq) = error(&batch_message(Some(&long), Some(2), &[]));
    assert_eq!((code, seq), (MessageCode::InvalidMessage, Some(2)));
}

#[test]
fn decode_bytes_shares_the_input_instead_of_copying() {
    let events = vec![event(4, 1, 90), event(2, 2, 300)];
    let input = Bytes::from(batch_message(Some("s"), None, &events));
    let batch = match ProtocolDecoder::default()
        .decode_tracker_bytes(&input)
        .unwrap()
    {
        TrackerMessage::EventsBatch(b) => b,
        other => panic!("{other:?}"),
    };
    let range = input.as_ptr_range();
    for e in batch.events() {
        assert!(range.contains(&e.raw().as_ptr()), "event bytes were copied");
    }
    assert_eq!(
        batch.payload(),
        format!("[{}]", events.join(",")).into_bytes()
    );
}

#[test]
fn events_of_a_copied_batch_share_one_buffer() {
    let events = vec![event(3, 1, 90), event(3, 2, 90), event(3, 3, 90)];
    let batch = decode(&batch_message(None, None, &events)).unwrap();
    let raws: Vec<&Bytes> = batch.events().iter().map(|e| e.raw()).collect();
    // Consecutive events sit one comma apart in the same allocation.
    for pair in raws.windows(2) {
        let gap = pair[1].as_ptr() as usize - (pair[0].as_ptr() as usize + pair[0].len());
        assert_eq!(gap, 1);
    }
}
