//! `events_batch`: the hot path.
//!
//! A batch is parsed without building a value tree: its `data` is read into
//! `seq`, `sessionId` and a vector of borrowed [`RawValue`]s (stopping early
//! once there are more events than allowed, so a huge array of tiny values
//! cannot make us allocate far more than the message itself). Each event is
//! then checked by deserializing only its `type` and `timestamp`, and kept as
//! a [`Bytes`] slice of one shared copy of the message: the bytes a viewer or
//! the store later sees are exactly the bytes the tracker sent.
//!
//! That is the general path, which explains every error. A batch as trackers
//! send it is first tried by `protocol::one_pass`, which finds each event's
//! end and reads its head in the same scan, then meets this path in
//! `build`.

use std::cell::Cell;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::chunks;
use super::messages::session_id_problem;
use super::DecoderLimits;
use crate::error::{Error, MessageCode, Result};

/// rrweb `EventType.FullSnapshot`.
pub const FULL_SNAPSHOT: i64 = 2;
/// rrweb `EventType.Meta`.
pub const META: i64 = 4;

/// One validated rrweb event: its raw bytes and the two fields we read.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    raw: Bytes,
    kind: i64,
    timestamp: f64,
}

impl Event {
    /// The event's JSON text exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The rrweb event type (`type` on the wire).
    pub fn kind(&self) -> i64 {
        self.kind
    }

    pub fn timestamp(&self) -> f64 {
        self.timestamp
    }

    /// Size of the raw event in bytes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// A validated `events_batch` message.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsBatch {
    session_id: Option<String>,
    seq: Option<u64>,
    events: Vec<Event>,
    nbytes: usize,
    min_timestamp: Option<f64>,
    max_timestamp: Option<f64>,
    last_full_snapshot: Option<usize>,
    last_meta: Option<usize>,
    meta_before_full_snapshot: Option<usize>,
}

impl EventsBatch {
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The tracker's per-session batch counter, if it sent one.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn count(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Sum of the events' raw sizes.
    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    pub fn min_timestamp(&self) -> Option<f64> {
        self.min_timestamp
    }

    pub fn max_timestamp(&self) -> Option<f64> {
        self.max_timestamp
    }

    pub fn has_full_snapshot(&self) -> bool {
        self.last_full_snapshot.is_some()
    }

    pub fn has_meta(&self) -> bool {
        self.last_meta.is_some()
    }

    /// Position in the batch of the last full snapshot (type 2).
    pub fn last_full_snapshot(&self) -> Option<usize> {
        self.last_full_snapshot
    }

    /// Position in the batch of the last meta event (type 4).
    pub fn last_meta(&self) -> Option<usize> {
        self.last_meta
    }

    /// Position of the last meta event *before* the last full snapshot, when
    /// both are in this batch (the keyframe a late viewer starts from).
    pub fn meta_before_full_snapshot(&self) -> Option<usize> {
        self.meta_before_full_snapshot
    }

    /// Length of [`Self::payload`] without building it.
    pub fn payload_len(&self) -> usize {
        chunks::array_len(self.events.len(), self.nbytes)
    }

    /// The events as one JSON array, `[e0,e1,...]`, each byte-for-byte as
    /// received.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = vec![0; self.payload_len()];
        self.write_payload(&mut out);
        out
    }

    /// Write [`Self::payload`] into `out`, which must be exactly
    /// [`Self::payload_len`] bytes (lets the caller fill a buffer it
    /// allocated itself, e.g. a Python `bytes`, without a second copy).
    pub fn write_payload(&self, out: &mut [u8]) {
        chunks::write_array(self.events.iter().map(|e| &e.raw[..]), out);
    }
}

/// Where the events' bytes come from.
pub(super) enum Backing<'a> {
    /// The input is this `Bytes`: slice it, copy nothing.
    Shared(&'a Bytes),
    /// The input is borrowed: copy the span holding the events once.
    Copy,
}

/// Decode the `data` of an `events_batch`. `input` is the whole message and
/// `data` a part of it.
pub(super) fn decode(
    input: &str,
    data: Option<&RawValue>,
    backing: Backing<'_>,
    limits: &DecoderLimits,
) -> Result<EventsBatch> {
    let Some(data) = data else {
        return Err(invalid("events_batch has no data", None));
    };
    let too_many = Cell::new(false);
    let seed = FieldsSeed::new(limits, &too_many);
    let mut de = serde_json::Deserializer::from_str(data.get());
    let fields = match seed.deserialize(&mut de) {
        Ok(fields) => fields,
        Err(err) => {
            let seq = probe_seq(data);
            return Err(if too_many.get() {
                Error::message(
                    MessageCode::PayloadTooLarge,
                    format!(
                        "batch has more than {} events (the limit)",
                        limits.max_events_per_batch
                    ),
                    seq,
                )
            } else {
                invalid(format!("invalid events_batch data: {err}"), seq)
            });
        }
    };
    build(input, fields, backing, limits)
}

/// Validate the events of a parsed batch and share their bytes.
pub(super) fn build(
    input: &str,
    fields: Fields<'_>,
    backing: Backing<'_>,
    limits: &DecoderLimits,
) -> Result<EventsBatch> {
    // From here on the error can carry the batch's seq.
    let error_seq = fields.seq;
    let seq = fields
        .seq
        .map(|s| u64::try_from(s).map_err(|_| invalid("seq must be >= 0", error_seq)))
        .transpose()?;
    let session_id = fields.session_id;
    if let Some(problem) = session_id.as_deref().and_then(session_id_problem) {
        return Err(invalid(problem, error_seq));
    }

    let raws = fields.events;
    let (shared, shared_start) = shared_span(input, &raws, backing);
    let mut events = Vec::with_capacity(raws.len());
    let mut nbytes = 0usize;
    let mut min_ts = f64::INFINITY;
    let mut max_ts = f64::NEG_INFINITY;
    let mut last_full_snapshot = None;
    let mut last_meta = None;
    let mut meta_before_full_snapshot = None;
    for (i, raw) in raws.iter().enumerate() {
        let text = raw.text;
        if text.len() > limits.max_event_bytes {
            return Err(Error::message(
                MessageCode::PayloadTooLarge,
                format!(
                    "event {i} of the batch is {} bytes, over the limit of {} bytes",
                    text.len(),
                    limits.max_event_bytes
                ),
                error_seq,
            ));
        }
        let head = match raw.head {
            Some(head) => head,
            None => read_head(text).map_err(|why| {
                Error::message(
                    MessageCode::InvalidEvent,
                    format!("event {i} of the batch {why}"),
                    error_seq,
                )
            })?,
        };
        match head.kind {
            FULL_SNAPSHOT => {
                last_full_snapshot = Some(i);
                meta_before_full_snapshot = last_meta;
            }
            META => last_meta = Some(i),
            _ => {}
        }
        min_ts = min_ts.min(head.timestamp);
        max_ts = max_ts.max(head.timestamp);
        nbytes += text.len();
        let start = offset_in(input, text) - shared_start;
        events.push(Event {
            raw: shared.slice(start..start + text.len()),
            kind: head.kind,
            timestamp: head.timestamp,
        });
    }
    let (min_timestamp, max_timestamp) = if events.is_empty() {
        (None, None)
    } else {
        (Some(min_ts), Some(max_ts))
    };
    Ok(EventsBatch {
        session_id,
        seq,
        events,
        nbytes,
        min_timestamp,
        max_timestamp,
        last_full_snapshot,
        last_meta,
        meta_before_full_snapshot,
    })
}

/// One buffer all of `raws` slice into, and where it starts in `input`.
fn shared_span(input: &str, raws: &[RawEvent<'_>], backing: Backing<'_>) -> (Bytes, usize) {
    match (backing, raws.first(), raws.last()) {
        (Backing::Shared(bytes), _, _) => {
            debug_assert_eq!(
                bytes.as_ptr(),
                input.as_ptr(),
                "input must be the shared bytes"
            );
            (bytes.clone(), 0)
        }
        (Backing::Copy, Some(first), Some(last)) => {
            let start = offset_in(input, first.text);
            let end = offset_in(input, last.text) + last.text.len();
            (Bytes::copy_from_slice(&input.as_bytes()[start..end]), start)
        }
        (Backing::Copy, _, _) => (Bytes::new(), 0),
    }
}

fn invalid(message: impl Into<String>, seq: Option<i64>) -> Error {
    Error::message(MessageCode::InvalidMessage, message, seq)
}

/// Byte offset of `part` within `whole`; `part` must borrow from `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    debug_assert!(
        offset + part.len() <= whole.len(),
        "part is not within whole"
    );
    offset
}

/// The two fields of an rrweb event we need; everything else is skipped.
///
/// Deserialize it only from a `{`: serde_json would also read a derived
/// struct from an array (`[3, 1.0]`).
#[derive(Deserialize, Clone, Copy)]
pub(super) struct EventHead {
    #[serde(rename = "type")]
    kind: i64,
    timestamp: f64,
}

impl EventHead {
    pub(super) fn new(kind: i64, timestamp: f64) -> Self {
        EventHead { kind, timestamp }
    }
}

fn read_head(text: &str) -> std::result::Result<EventHead, String> {
    // A derived struct would also accept `[type, timestamp]`; events are objects.
    if !text.starts_with('{') {
        return Err("is not a JSON object".to_owned());
    }
    serde_json::from_str::<EventHead>(text).map_err(|err| explain_bad_event(text, err))
}

/// Say which of the two fields is wrong (the cold path: it may allocate).
fn explain_bad_event(text: &str, err: serde_json::Error) -> String {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<&'a RawValue>,
        #[serde(borrow, default)]
        timestamp: Option<&'a RawValue>,
    }
    let is = |raw: Option<&RawValue>, ok: fn(&str) -> bool| raw.is_some_and(|r| ok(r.get()));
    match serde_json::from_str::<Probe<'_>>(text) {
        Ok(p) if !is(p.kind, |r| serde_json::from_str::<i64>(r).is_ok()) => {
            "has no integer \"type\"".to_owned()
        }
        Ok(p) if !is(p.timestamp, |r| serde_json::from_str::<f64>(r).is_ok()) => {
            "has no numeric \"timestamp\"".to_owned()
        }
        _ => format!("is invalid: {err}"),
    }
}

/// After a failed parse: read `seq` alone, so the error can carry it.
fn probe_seq(data: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct SeqOnly {
        #[serde(default)]
        seq: Option<i64>,
    }
    // Not from an array: a derived struct would read `[5]` as seq 5.
    if !data.get().starts_with('{') {
        return None;
    }
    serde_json::from_str::<SeqOnly>(data.get())
        .ok()
        .and_then(|s| s.seq)
}

/// The fields of a batch's `data`, events not yet checked against limits.
pub(super) struct Fields<'a> {
    pub(super) session_id: Option<String>,
    pub(super) seq: Option<i64>,
    pub(super) events: Vec<RawEvent<'a>>,
}

/// One event of a batch as found in the input.
pub(super) struct RawEvent<'a> {
    /// The event's JSON text, a slice of the input.
    pub(super) text: &'a str,
    /// Its head, when it was read in the same pass as `text`; otherwise
    /// [`build`] reads (and explains) it.
    pub(super) head: Option<EventHead>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
pub(super) enum Field {
    SessionId,
    Seq,
    Events,
    #[serde(other)]
    Other,
}

/// Reads a batch's `data`, failing (and setting `too_many`) as soon as the
/// events array grows past the limit.
struct FieldsSeed<'s> {
    max_events: usize,
    too_many: &'s Cell<bool>,
}

impl<'s> FieldsSeed<'s> {
    fn new(limits: &DecoderLimits, too_many: &'s Cell<bool>) -> Self {
        FieldsSeed {
            max_events: limits.max_events_per_batch,
            too_many,
        }
    }
}

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with an \"events\" array")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut session_id: Option<Option<String>> = None;
        let mut seq: Option<Option<i64>> = None;
        let mut events = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::SessionId => {
                    if session_id.is_some() {
                        return Err(de::Error::duplicate_field("sessionId"));
                    }
                    session_id = Some(map.next_value()?);
                }
                Field::Seq => {
                    if seq.is_some() {
                        return Err(de::Error::duplicate_field("seq"));
                    }
                    seq = Some(map.next_value()?);
                }
                Field::Events => {
                    if events.is_some() {
                        return Err(de::Error::duplicate_field("events"));
                    }
                    events = Some(map.next_value_seed(EventsSeed {
                        max_events: self.max_events,
                        too_many: self.too_many,
                    })?);
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Fields {
            session_id: session_id.flatten(),
            seq: seq.flatten(),
            events: events.ok_or_else(|| de::Error::missing_field("events"))?,
        })
    }
}

/// The `events` array as borrowed raw values, refusing to grow past the limit.
struct EventsSeed<'s> {
    max_events: usize,
    too_many: &'s Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = Vec<RawEvent<'de>>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = Vec<RawEvent<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut events = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if events.len() == self.max_events {
                self.too_many.set(true);
                return Err(de::Error::custom("too many events"));
            }
            events.push(RawEvent {
                text: raw.get(),
                head: None,
            });
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_reads_type_and_timestamp_only() {
        let head = read_head(r#"{"data":{"type":9},"timestamp":12.5,"type":3,"x":[1]}"#).unwrap();
        assert_eq!((head.kind, head.timestamp), (3, 12.5));
        let head = read_head(r#"{"type":2,"timestamp":1700000000000}"#).unwrap();
        assert_eq!((head.kind, head.timestamp), (2, 1.7e12));
    }

    #[test]
    fn head_refuses_arrays_that_serde_would_take_as_a_struct() {
        assert!(serde_json::from_str::<EventHead>("[3, 1.0]").is_ok());
        assert!(read_head("[3, 1.0]").is_err());
    }

    #[test]
    fn offsets_are_measured_within_the_input() {
        let input = r#"{"events":[ {"a":1}, {"b":2} ]}"#;
        let at = input.find("{\"b").unwrap();
        assert_eq!(offset_in(input, &input[at..at + 7]), at);
    }

    #[test]
    fn too_many_events_stops_reading_early() {
        let limits = DecoderLimits {
            max_events_per_batch: 2,
            ..DecoderLimits::default()
        };
        let data: Box<RawValue> =
            serde_json::from_str(r#"{"events":[1,2,3,{"never":"read"}],"seq":1}"#).unwrap();
        let input = data.get();
        let data: &RawValue = serde_json::from_str(input).unwrap();
        let err = decode(input, Some(data), Backing::Copy, &limits).unwrap_err();
        assert_eq!(
            err,
            Error::message(
                MessageCode::PayloadTooLarge,
                "batch has more than 2 events (the limit)",
                Some(1)
            )
        );
    }
}
