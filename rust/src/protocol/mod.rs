//! Tracker and viewer messages: JSON text in, typed messages out.
//!
//! [`ProtocolDecoder::decode`] turns one WebSocket text message into a
//! [`ClientMessage`] or an [`Error::Message`] carrying the protocol error code
//! (and the batch `seq`, when it could be read) to answer with. Limits are
//! fixed when the decoder is built, once per server.
//!
//! - [`messages`]: the small control messages, plain serde structs.
//! - [`batch`]: `events_batch`, validated event by event, raw bytes kept.
//! - [`chunks`]: splitting and joining stored JSON arrays of events.

pub mod batch;
pub mod chunks;
pub mod messages;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Events are [`Bytes`] slices; re-exported so users need not depend on `bytes`.
pub use bytes::Bytes;

pub use batch::{Event, EventsBatch, FULL_SNAPSHOT, META};
pub use chunks::{join_events, split_events, NotAnArray};
pub use messages::{
    ClientMessage, GetSessionEvents, SessionEnd, SessionStart, ViewerJoin, ViewerLeave, Viewport,
    MAX_SESSION_ID_CHARS,
};

use crate::error::{Error, MessageCode, Result};
use batch::{Backing, Fields, FieldsSeed};
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

    fn decode_with(&self, input: &[u8], backing: Backing<'_>) -> Result<ClientMessage> {
        let text = std::str::from_utf8(input)
            .map_err(|err| invalid(format!("message is not valid UTF-8: {err}")))?;
        // Fast path: one pass over the message when `type` comes before
        // `data` (as trackers send it), reading a batch's fields directly.
        // Anything unusual, errors included, takes the slow path, which
        // keeps `data` raw until `type` is known and explains errors fully.
        let too_many = Cell::new(false);
        let seed = EnvelopeSeed {
            batch: FieldsSeed::new(&self.limits, &too_many),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = seed
            .deserialize(&mut de)
            .and_then(|parsed| de.end().map(|()| parsed));
        let (kind, data) = match parsed {
            Ok(Parsed::Batch(fields)) => {
                return Ok(ClientMessage::EventsBatch(batch::build(
                    text,
                    fields,
                    backing,
                    &self.limits,
                )?))
            }
            Ok(Parsed::Other { kind, data }) => (kind, data),
            Err(_) => {
                // Derived structs also accept arrays (`["session_end"]`).
                if !text.trim_start().starts_with('{') {
                    return Err(invalid("message is not a JSON object"));
                }
                let envelope: Envelope<'_> = serde_json::from_str(text)
                    .map_err(|err| invalid(format!("invalid message: {err}")))?;
                (envelope.kind, envelope.data)
            }
        };
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
/// The slow path, and the reference for what the fast one accepts.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with a string \"type\"")]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
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

/// What the fast path read: a batch's fields, or any other message with its
/// `data` still raw.
enum Parsed<'a> {
    Batch(Fields<'a>),
    Other {
        kind: Cow<'a, str>,
        data: Option<&'a RawValue>,
    },
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvelopeField {
    Type,
    Data,
    #[serde(other)]
    Other,
}

struct EnvelopeSeed<'s> {
    batch: FieldsSeed<'s>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Parsed<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a string \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut kind: Option<Cow<'de, str>> = None;
        let mut data: Option<Option<&'de RawValue>> = None;
        let mut fields = None;
        let mut batch = Some(self.batch);
        while let Some(key) = map.next_key::<EnvelopeField>()? {
            match key {
                EnvelopeField::Type if kind.is_some() => {
                    return Err(de::Error::duplicate_field("type"))
                }
                EnvelopeField::Type => kind = Some(map.next_value::<TypeName<'de>>()?.0),
                EnvelopeField::Data if data.is_some() || fields.is_some() => {
                    return Err(de::Error::duplicate_field("data"))
                }
                EnvelopeField::Data => match (&kind, batch.take()) {
                    (Some(k), Some(seed)) if k == "events_batch" => {
                        fields = Some(map.next_value_seed(seed)?);
                    }
                    _ => data = Some(map.next_value()?),
                },
                EnvelopeField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok(match fields {
            Some(fields) => Parsed::Batch(fields),
            None => Parsed::Other {
                kind,
                data: data.flatten(),
            },
        })
    }
}

/// A message `type`, borrowed from the input unless it had escapes.
struct TypeName<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for TypeName<'de> {
    fn deserialize<D: de::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TypeName<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(TypeName(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(TypeName(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(V)
    }
}
