//! Tracker and viewer messages: JSON text in, typed messages out.
//!
//! [`ProtocolDecoder::decode`] turns one WebSocket text message into a
//! [`ClientMessage`] or an [`Error::Message`] carrying the protocol error code
//! (and the batch `seq`, when it could be read) to answer with. Limits are
//! fixed when the decoder is built, once per server.
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
    ClientMessage, GetSessionEvents, SessionEnd, SessionStart, SnapshotMissing, ViewerJoin,
    ViewerLeave, Viewport, MAX_REASON_CHARS, MAX_SESSION_ID_CHARS,
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

    /// Decode a borrowed message. The events of a batch are copied once, into
    /// one buffer that they then share.
    pub fn decode(&self, input: &[u8]) -> Result<ClientMessage> {
        self.decode_with(input, Backing::Copy)
    }

    /// Decode a message held in [`Bytes`]; a batch's events are slices of
    /// `input`, nothing is copied.
    pub fn decode_bytes(&self, input: &Bytes) -> Result<ClientMessage> {
        self.decode_with(input, Backing::Shared(input))
    }

    /// The general path alone, without the one-pass reading of a typical
    /// batch: the reference that the `protocol_decode` fuzz target holds
    /// [`Self::decode`] to. Not for other uses.
    #[doc(hidden)]
    pub fn decode_general(&self, input: &[u8]) -> Result<ClientMessage> {
        let text = utf8(input)?;
        self.decode_text(text, Backing::Copy)
    }

    fn decode_with(&self, input: &[u8], backing: Backing<'_>) -> Result<ClientMessage> {
        let text = utf8(input)?;
        // The hot path: a batch as trackers send it, read in one pass.
        if let Some(fields) = one_pass::read(text, self.limits.max_events_per_batch) {
            let batch = batch::build(text, fields, backing, &self.limits)?;
            return Ok(ClientMessage::EventsBatch(batch));
        }
        self.decode_text(text, backing)
    }

    /// Any message, `data` kept raw until `type` is known; explains every
    /// error.
    fn decode_text(&self, text: &str, backing: Backing<'_>) -> Result<ClientMessage> {
        // Derived structs also accept arrays (`["session_end"]`).
        if !text.trim_start().starts_with('{') {
            return Err(invalid("message is not a JSON object"));
        }
        let Envelope { kind, data } =
            serde_json::from_str(text).map_err(|err| invalid(format!("invalid message: {err}")))?;
        Ok(match kind.as_ref() {
            "events_batch" => {
                ClientMessage::EventsBatch(batch::decode(text, data, backing, &self.limits)?)
            }
            "session_start" => {
                let m: SessionStart = required_data("session_start", data)?;
                check_session_id(&m.session_id)?;
                ClientMessage::SessionStart(m)
            }
            "session_end" => {
                let m: SessionEnd = match data {
                    Some(_) => required_data("session_end", data)?,
                    None => SessionEnd::default(),
                };
                if let Some(id) = &m.session_id {
                    check_session_id(id)?;
                }
                ClientMessage::SessionEnd(m)
            }
            "viewer_join_session" => {
                let m: ViewerJoin = required_data("viewer_join_session", data)?;
                check_session_id(&m.session_id)?;
                ClientMessage::ViewerJoin(m)
            }
            "viewer_leave_session" => {
                let m: ViewerLeave = required_data("viewer_leave_session", data)?;
                check_session_id(&m.session_id)?;
                ClientMessage::ViewerLeave(m)
            }
            "get_session_events" => {
                let m: GetSessionEvents = required_data("get_session_events", data)?;
                check_session_id(&m.session_id)?;
                if m.limit == Some(0) {
                    return Err(invalid("get_session_events: limit must be >= 1"));
                }
                ClientMessage::GetSessionEvents(m)
            }
            "snapshot_missing" => {
                let m: SnapshotMissing = required_data("snapshot_missing", data)?;
                if let Some(id) = &m.session_id {
                    check_session_id(id)?;
                }
                if let Some(problem) = m.problem() {
                    return Err(invalid(problem));
                }
                ClientMessage::SnapshotMissing(m)
            }
            other => {
                let quoted: String = other.chars().take(MAX_QUOTED_TYPE_CHARS).collect();
                let ellipsis = if quoted.len() < other.len() {
                    "..."
                } else {
                    ""
                };
                return Err(Error::message(
                    MessageCode::UnknownMessageType,
                    format!("unknown message type {quoted:?}{ellipsis}"),
                    None,
                ));
            }
        })
    }
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
