//! Tracker and viewer messages: JSON text in, typed messages out.
//!
//! [`ProtocolDecoder::decode_tracker`] turns one WebSocket text message of a
//! tracker connection into a [`TrackerMessage`], and
//! [`ProtocolDecoder::decode_viewer`] one of a viewer connection into a
//! [`ViewerMessage`]; either fails with an [`Error::Message`] carrying the
//! protocol error code (and the batch `seq`, when it could be read) to answer
//! with. A message of the other side is `not_allowed` once it is known to be
//! well-formed. Limits are fixed when the decoder is built, once per server.
//!
//! - [`messages`]: the small control messages, plain serde structs.
//! - [`batch`]: `events_batch`, validated event by event, raw bytes kept.
//! - `one_pass` (private): the hot path, a typical batch read in one scan;
//!   anything else falls through to the general path above.
//! - `skip` (private): the validating skip over the events' other fields
//!   that `one_pass` uses.
//! - [`chunks`]: splitting and joining stored JSON arrays of events.

pub mod batch;
pub mod chunks;
pub mod messages;
mod one_pass;
mod skip;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Events are [`Bytes`] slices; re-exported so users need not depend on `bytes`.
pub use bytes::Bytes;

pub use batch::{Event, EventsBatch, FULL_SNAPSHOT, META};
pub use chunks::{array_contents, join_events, split_events, NotAnArray};
pub use messages::{
    GetSessionEvents, SessionEnd, SessionStart, SnapshotMissing, TrackerMessage, ViewerJoin,
    ViewerLeave, ViewerMessage, Viewport, MAX_REASON_CHARS, MAX_SESSION_ID_CHARS,
};

use crate::error::{Error, MessageCode, Result};
use batch::Backing;
use messages::session_id_problem;

/// Limits enforced while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Most events one `events_batch` may hold.
    pub max_events_per_batch: usize,
    /// Largest raw size of one event, in bytes.
    pub max_event_bytes: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_events_per_batch: 10_000,
            max_event_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Longest message `type` quoted back in an `unknown_message_type` error.
const MAX_QUOTED_TYPE_CHARS: usize = 64;

/// Decodes client messages under fixed limits. Holds no per-connection
/// state, so one decoder can serve every connection.
#[derive(Debug, Clone, Default)]
pub struct ProtocolDecoder {
    limits: DecoderLimits,
}

impl ProtocolDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ProtocolDecoder { limits }
    }

    pub fn limits(&self) -> &DecoderLimits {
        &self.limits
    }

    /// Decode a borrowed tracker message. The events of a batch are copied
    /// once, into one buffer that they then share.
    pub fn decode_tracker(&self, input: &[u8]) -> Result<TrackerMessage> {
        self.decode_tracker_with(input, Backing::Copy)
    }

    /// Decode a tracker message held in [`Bytes`]; a batch's events are
    /// slices of `input`, nothing is copied.
    pub fn decode_tracker_bytes(&self, input: &Bytes) -> Result<TrackerMessage> {
        self.decode_tracker_with(input, Backing::Shared(input))
    }

    /// Decode a viewer message. Viewers send small control messages, so
    /// there is no one-pass reading here.
    pub fn decode_viewer(&self, input: &[u8]) -> Result<ViewerMessage> {
        let text = utf8(input)?;
        let (kind, data) = envelope(text)?;
        own_side(
            &kind,
            viewer(&kind, data),
            || self.tracker(&kind, data, text, Backing::Copy),
            "tracker messages are not accepted on a viewer connection",
        )
    }

    /// The general path alone, without the one-pass reading of a typical
    /// batch: the reference that the `protocol_decode` fuzz target holds
    /// [`Self::decode_tracker`] to. Not for other uses.
    #[doc(hidden)]
    pub fn decode_general(&self, input: &[u8]) -> Result<TrackerMessage> {
        let text = utf8(input)?;
        self.tracker_text(text, Backing::Copy)
    }

    fn decode_tracker_with(&self, input: &[u8], backing: Backing<'_>) -> Result<TrackerMessage> {
        let text = utf8(input)?;
        // The hot path: a batch as trackers send it, read in one pass.
        if let Some(fields) = one_pass::read(text, self.limits.max_events_per_batch) {
            let batch = batch::build(text, fields, backing, &self.limits)?;
            return Ok(TrackerMessage::EventsBatch(batch));
        }
        self.tracker_text(text, backing)
    }

    /// Any tracker message, `data` kept raw until `type` is known; explains
    /// every error.
    fn tracker_text(&self, text: &str, backing: Backing<'_>) -> Result<TrackerMessage> {
        let (kind, data) = envelope(text)?;
        own_side(
            &kind,
            self.tracker(&kind, data, text, backing),
            || viewer(&kind, data),
            "viewer messages are not accepted on a tracker connection",
        )
    }

    /// The tracker message of type `kind`; None when `kind` is not one.
    fn tracker(
        &self,
        kind: &str,
        data: Option<&RawValue>,
        text: &str,
        backing: Backing<'_>,
    ) -> Option<Result<TrackerMessage>> {
        let decoded = match kind {
            "events_batch" => {
                batch::decode(text, data, backing, &self.limits).map(TrackerMessage::EventsBatch)
            }
            "session_start" => required_data("session_start", data).and_then(|m: SessionStart| {
                check_session_id(&m.session_id)?;
                Ok(TrackerMessage::SessionStart(m))
            }),
            "session_end" => {
                let m = match data {
                    Some(_) => required_data("session_end", data),
                    None => Ok(SessionEnd::default()),
                };
                m.and_then(|m: SessionEnd| {
                    check_optional_session_id(m.session_id.as_deref())?;
                    Ok(TrackerMessage::SessionEnd(m))
                })
            }
            "snapshot_missing" => {
                required_data("snapshot_missing", data).and_then(|m: SnapshotMissing| {
                    check_optional_session_id(m.session_id.as_deref())?;
                    if let Some(problem) = m.problem() {
                        return Err(invalid(problem));
                    }
                    Ok(TrackerMessage::SnapshotMissing(m))
                })
            }
            _ => return None,
        };
        Some(decoded)
    }
}

/// The viewer message of type `kind`; None when `kind` is not one.
fn viewer(kind: &str, data: Option<&RawValue>) -> Option<Result<ViewerMessage>> {
    let decoded = match kind {
        "viewer_join_session" => {
            required_data("viewer_join_session", data).and_then(|m: ViewerJoin| {
                check_session_id(&m.session_id)?;
                Ok(ViewerMessage::ViewerJoin(m))
            })
        }
        "viewer_leave_session" => {
            required_data("viewer_leave_session", data).and_then(|m: ViewerLeave| {
                check_session_id(&m.session_id)?;
                Ok(ViewerMessage::ViewerLeave(m))
            })
        }
        "get_session_events" => {
            required_data("get_session_events", data).and_then(|m: GetSessionEvents| {
                check_session_id(&m.session_id)?;
                if m.limit == Some(0) {
                    return Err(invalid("get_session_events: limit must be >= 1"));
                }
                Ok(ViewerMessage::GetSessionEvents(m))
            })
        }
        _ => return None,
    };
    Some(decoded)
}

/// The message of this connection's side (`own`), else the answer to one of
/// the other side: decoded first (`other`), so that a malformed one gets the
/// same error it would get on its own side, then refused as `not_allowed`.
/// A type neither side knows is `unknown_message_type`.
fn own_side<M, O>(
    kind: &str,
    own: Option<Result<M>>,
    other: impl FnOnce() -> Option<Result<O>>,
    refusal: &str,
) -> Result<M> {
    if let Some(decoded) = own {
        return decoded;
    }
    match other() {
        Some(decoded) => {
            decoded?;
            Err(Error::message(MessageCode::NotAllowed, refusal, None))
        }
        None => Err(unknown_type(kind)),
    }
}

fn unknown_type(kind: &str) -> Error {
    let quoted: String = kind.chars().take(MAX_QUOTED_TYPE_CHARS).collect();
    let ellipsis = if quoted.len() < kind.len() { "..." } else { "" };
    Error::message(
        MessageCode::UnknownMessageType,
        format!("unknown message type {quoted:?}{ellipsis}"),
        None,
    )
}

/// `{"type": ..., "data": ...}`; `data` is kept raw until `type` is known.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with a string \"type\"")]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// The message's `type` and raw `data`.
fn envelope(text: &str) -> Result<(Cow<'_, str>, Option<&RawValue>)> {
    // Derived structs also accept arrays (`["session_end"]`).
    if !text.trim_start().starts_with('{') {
        return Err(invalid("message is not a JSON object"));
    }
    let Envelope { kind, data } =
        serde_json::from_str(text).map_err(|err| invalid(format!("invalid message: {err}")))?;
    Ok((kind, data))
}

fn utf8(input: &[u8]) -> Result<&str> {
    std::str::from_utf8(input).map_err(|err| invalid(format!("message is not valid UTF-8: {err}")))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::message(MessageCode::InvalidMessage, message, None)
}

fn required_data<'a, T: Deserialize<'a>>(kind: &str, data: Option<&'a RawValue>) -> Result<T> {
    let data = data.ok_or_else(|| invalid(format!("{kind} has no data")))?;
    // Derived structs also accept arrays (`["id"]`); data must be an object.
    if !data.get().starts_with('{') {
        return Err(invalid(format!("{kind} data must be a JSON object")));
    }
    serde_json::from_str(data.get()).map_err(|err| invalid(format!("invalid {kind} data: {err}")))
}

fn check_session_id(id: &str) -> Result<()> {
    match session_id_problem(id) {
        Some(problem) => Err(invalid(problem)),
        None => Ok(()),
    }
}

fn check_optional_session_id(id: Option<&str>) -> Result<()> {
    id.map_or(Ok(()), check_session_id)
}
