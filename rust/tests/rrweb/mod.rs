//! rrweb-shaped events and messages for the protocol and buffer tests.
#![allow(dead_code)]

use _core::protocol::{EventsBatch, ProtocolDecoder, TrackerMessage};

pub const FULL_SNAPSHOT: i64 = 2;
pub const INCREMENTAL: i64 = 3;
pub const META: i64 = 4;

/// An event of rrweb type `kind` whose raw size is exactly `size` bytes
/// (at least the size of the skeleton, ~50 bytes).
pub fn event(kind: i64, ts: u64, size: usize) -> String {
    let head = format!(r#"{{"type":{kind},"data":{{"source":1,"pad":""#);
    let tail = format!(r#""}},"timestamp":{ts}}}"#);
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// A mouse-move-like incremental event, as rrweb sends it (~230 bytes).
pub fn mouse_move(ts: u64) -> String {
    format!(
        r#"{{"type":3,"data":{{"source":1,"positions":[{{"x":812,"y":411,"id":97,"timeOffset":0}},{{"x":806,"y":409,"id":97,"timeOffset":-16}},{{"x":799,"y":407,"id":97,"timeOffset":-32}},{{"x":791,"y":404,"id":97,"timeOffset":-48}}]}},"timestamp":{ts}}}"#
    )
}

/// An `events_batch` message with `events` spliced in verbatim.
pub fn batch_message(session_id: Option<&str>, seq: Option<i64>, events: &[String]) -> Vec<u8> {
    let mut out = String::from(r#"{"type":"events_batch","data":{"#);
    if let Some(id) = session_id {
        out += &format!(r#""sessionId":"{id}","#);
    }
    if let Some(seq) = seq {
        out += &format!(r#""seq":{seq},"#);
    }
    out += r#""events":["#;
    out += &events.join(",");
    out += "]}}";
    out.into_bytes()
}

/// Decode a batch of `events` with default limits.
pub fn batch(events: &[String]) -> EventsBatch {
    match ProtocolDecoder::default().decode_tracker(&batch_message(Some("s"), Some(0), events)) {
        Ok(TrackerMessage::EventsBatch(b)) => b,
        other => panic!("not a batch: {other:?}"),
    }
}

/// A batch of `n` events of `kind`, `size` bytes each.
pub fn uniform(n: usize, kind: i64, size: usize) -> EventsBatch {
    let events: Vec<String> = (0..n).map(|i| event(kind, i as u64, size)).collect();
    batch(&events)
}
