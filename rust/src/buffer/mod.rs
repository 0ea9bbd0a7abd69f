//! Per-session ring buffers of raw events under a global byte budget.
//!
//! The buffers hold what live viewers are sent and what a late viewer
//! catches up from; storage holds everything. Events are the decoder's
//! [`bytes::Bytes`] slices, shared with the batch they came in, so appending
//! copies no event bytes.
//!
//! - [`ring`]: one session's events, indices and keyframe.
//! - [`sessions`]: all sessions, per-session and global limits, LRU trimming.

pub mod ring;
pub mod sessions;

pub use ring::{SessionRing, Slice, Trimmed};
pub use sessions::{BufferLimits, BufferStats, SessionBuffers};

/// A decoded batch of events of the given rrweb types, each padded with
/// `pad` bytes, for the buffer tests.
#[cfg(test)]
pub(crate) fn test_batch(kinds: &[i64], pad: usize) -> crate::protocol::EventsBatch {
    use crate::protocol::{ProtocolDecoder, TrackerMessage};
    let events: Vec<String> = kinds
        .iter()
        .map(|k| format!(r#"{{"type":{k},"timestamp":1,"p":"{}"}}"#, "x".repeat(pad)))
        .collect();
    let msg = format!(
        r#"{{"type":"events_batch","data":{{"events":[{}]}}}}"#,
        events.join(",")
    );
    match ProtocolDecoder::default()
        .decode_tracker(msg.as_bytes())
        .unwrap()
    {
        TrackerMessage::EventsBatch(b) => b,
        _ => unreachable!(),
    }
}
