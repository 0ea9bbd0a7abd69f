//! The tracker side of replaywire's protocol (docs/protocol.md), the subset
//! the other peers speak: sessions, their rings and seqs, and the answer to
//! one text message. No I/O here: `main.rs` owns the sockets.
//!
//! Parsing takes one pass in the common case: the message is read as an
//! adjacently tagged enum (`type` first, as trackers send it), the batch's
//! events as `&RawValue`s borrowed from the message, and each event once
//! more for its `type` and `timestamp`, skipping the rest. Only a message
//! that fails that (an error to report, or `data` before `type`) is read
//! again as a `serde_json::Value` to say precisely what is wrong.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::rc::Rc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

pub const MAX_EVENTS_PER_SESSION: usize = 20_000; // replaywire's defaults
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;
pub const MAX_SESSIONS_PER_CONNECTION: usize = 16;
pub const MAX_SEQ_WINDOW: u64 = 4096;
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024 + 256 * 1024;

/// A live session: its newest events and which seqs were accepted (a
/// watermark plus the few above it).
pub struct Session {
    id: String,
    id_json: String,
    /// The newest events, as slices of the messages they came in: a ring
    /// of at most MAX_EVENTS_PER_SESSION, slot `next_index % capacity` next.
    ring: Vec<Bytes>,
    next_index: u64,
    next_seq: u64,
    above: HashSet<u64>,
}

impl Session {
    fn new(id: &str) -> Self {
        Session {
            id: id.to_owned(),
            id_json: serde_json::to_string(id).expect("a str serializes"),
            ring: Vec::new(),
            next_index: 0,
            next_seq: 0,
            above: HashSet::new(),
        }
    }

    fn seen(&self, seq: u64) -> bool {
        seq < self.next_seq || self.above.contains(&seq)
    }

    fn push(&mut self, event: Bytes) {
        if self.ring.len() < MAX_EVENTS_PER_SESSION {
            self.ring.push(event);
        } else {
            let slot = (self.next_index % MAX_EVENTS_PER_SESSION as u64) as usize;
            self.ring[slot] = event;
        }
        self.next_index += 1;
    }

    fn accept(&mut self, seq: u64) {
        if seq == self.next_seq {
            self.next_seq += 1;
            while self.above.remove(&self.next_seq) {
                self.next_seq += 1;
            }
        } else if seq > self.next_seq {
            self.above.insert(seq);
        }
    }
}

type Shared = Rc<RefCell<Session>>;

/// Every live session of the process, by id: a tracker that reconnects
/// resumes its session.
#[derive(Default)]
pub struct Sessions(HashMap<String, Shared>);

/// The sessions one connection started: a few (at most 16), so a list
/// searched in order beats hashing.
#[derive(Default)]
pub struct Connection {
    own: Vec<Shared>,
}

impl Connection {
    fn find(&self, id: &str) -> Option<&Shared> {
        self.own.iter().find(|s| s.borrow().id == id)
    }

    /// The session a message names, which must be started here.
    fn session_of(&self, id: Option<&str>, seq: Option<u64>) -> Result<Shared, Refused> {
        match id {
            None if self.own.len() == 1 => Ok(self.own[0].clone()),
            None => Err(Refused::new(
                "unknown_session",
                "sessionId is required when the connection has no or several sessions".into(),
                seq,
            )),
            Some(id) => self.find(id).cloned().ok_or_else(|| {
                let message = format!("session {} was not started on this connection", json(id));
                Refused::new("unknown_session", message, seq)
            }),
        }
    }
}

/// A message answered with an `error` (the connection goes on).
#[derive(Debug)]
pub struct Refused {
    code: &'static str,
    message: String,
    seq: Option<u64>,
}

impl Refused {
    fn new(code: &'static str, message: String, seq: Option<u64>) -> Self {
        Refused { code, message, seq }
    }

    fn frame(&self) -> String {
        let mut data = serde_json::Map::new();
        data.insert("code".into(), self.code.into());
        data.insert("message".into(), self.message.as_str().into());
        if let Some(seq) = self.seq {
            data.insert("seq".into(), seq.into());
        }
        serde_json::json!({"type": "error", "data": data}).to_string()
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a str serializes")
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "data")]
enum Message<'a> {
    #[serde(rename = "events_batch", borrow)]
    EventsBatch(Batch<'a>),
    #[serde(rename = "session_start", borrow)]
    SessionStart(Named<'a>),
    #[serde(rename = "session_end", borrow)]
    SessionEnd(Named<'a>),
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(rename = "sessionId", borrow, default)]
    session_id: Option<Cow<'a, str>>,
}

/// What an event must have; everything else in it is skipped unread.
#[derive(Deserialize)]
struct EventHead {
    #[serde(rename = "type")]
    _kind: i64,
    #[serde(rename = "timestamp")]
    _timestamp: f64,
}

/// A text message: its payload as `text`, and `owner`, the buffer `text`
/// lies in (tungstenite's `Utf8Bytes` gives both), so that the events kept
/// are slices of it rather than copies.
#[derive(Clone, Copy)]
pub struct Text<'a> {
    pub text: &'a str,
    pub owner: &'a Bytes,
}

/// The answer to one text message: an ack, another reply or an error.
pub fn answer(sessions: &mut Sessions, conn: &mut Connection, text: Text) -> String {
    let result = match serde_json::from_str::<Message>(text.text) {
        Ok(message) => handle(sessions, conn, text, message),
        Err(_) => slow(sessions, conn, text),
    };
    result.unwrap_or_else(|refused| refused.frame())
}

/// A message the one-pass parse refused: read again, to say what is wrong
/// (or to handle it, when only the order of its keys was unusual).
fn slow(sessions: &mut Sessions, conn: &mut Connection, text: Text) -> Result<String, Refused> {
    let value: Value = serde_json::from_str(text.text)
        .map_err(|e| Refused::new("invalid_message", format!("not JSON: {e}"), None))?;
    let (Some(kind), Some(data)) = (
        value.get("type").and_then(Value::as_str),
        value.get("data").filter(|d| d.is_object()),
    ) else {
        let message = r#"expected {"type": string, "data": object}"#.into();
        return Err(Refused::new("invalid_message", message, None));
    };
    let seq = data.get("seq").and_then(Value::as_u64);
    if !matches!(kind, "events_batch" | "session_start" | "session_end") {
        let message = format!("unknown message type {}", json(kind));
        return Err(Refused::new("unknown_message_type", message, None));
    }
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        data: &'a RawValue,
    }
    let invalid = |e: serde_json::Error| Refused::new("invalid_message", e.to_string(), seq);
    let data = serde_json::from_str::<Envelope>(text.text)
        .map_err(invalid)?
        .data
        .get();
    let message = match kind {
        "events_batch" => Message::EventsBatch(serde_json::from_str(data).map_err(invalid)?),
        "session_start" => Message::SessionStart(serde_json::from_str(data).map_err(invalid)?),
        _ => Message::SessionEnd(serde_json::from_str(data).map_err(invalid)?),
    };
    handle(sessions, conn, text, message)
}

fn handle(
    sessions: &mut Sessions,
    conn: &mut Connection,
    text: Text,
    message: Message,
) -> Result<String, Refused> {
    match message {
        Message::EventsBatch(batch) => accept_batch(conn, text, batch),
        Message::SessionStart(named) => start(sessions, conn, named),
        Message::SessionEnd(named) => end(sessions, conn, named),
    }
}

fn start(sessions: &mut Sessions, conn: &mut Connection, named: Named) -> Result<String, Refused> {
    let id = match named.session_id.as_deref() {
        Some(id) if (1..=128).contains(&id.encode_utf16().count()) => id,
        _ => {
            let message = "sessionId must be a string of 1-128 characters".into();
            return Err(Refused::new("invalid_message", message, None));
        }
    };
    if conn.find(id).is_none() {
        if conn.own.len() >= MAX_SESSIONS_PER_CONNECTION {
            let message = format!("at most {MAX_SESSIONS_PER_CONNECTION} sessions per connection");
            return Err(Refused::new("session_limit", message, None));
        }
        let session = sessions
            .0
            .entry(id.to_owned())
            .or_insert_with(|| Rc::new(RefCell::new(Session::new(id))));
        conn.own.push(session.clone());
    }
    let session = conn.find(id).expect("just added").borrow();
    Ok(serde_json::json!({
        "type": "session_started",
        "data": {"sessionId": id, "nextSeq": session.next_seq, "nextIndex": session.next_index},
    })
    .to_string())
}

fn accept_batch(conn: &mut Connection, text: Text, batch: Batch) -> Result<String, Refused> {
    let seq = batch.seq;
    if batch.events.len() > MAX_EVENTS_PER_BATCH {
        let message = format!("more than {MAX_EVENTS_PER_BATCH} events in one batch");
        return Err(Refused::new("payload_too_large", message, seq));
    }
    for (i, event) in batch.events.iter().enumerate() {
        check_event(i, event.get()).map_err(|(code, message)| Refused::new(code, message, seq))?;
    }
    let shared = conn.session_of(batch.session_id.as_deref(), seq)?;
    let mut session = shared.borrow_mut();
    let seq = seq.unwrap_or(session.next_seq);
    if !session.seen(seq) {
        if seq >= session.next_seq + MAX_SEQ_WINDOW {
            let message = format!(
                "seq {seq} is more than {MAX_SEQ_WINDOW} ahead of {}",
                session.next_seq
            );
            return Err(Refused::new("seq_out_of_window", message, Some(seq)));
        }
        for event in &batch.events {
            session.push(text.owner.slice_ref(event.get().as_bytes()));
        }
        session.accept(seq);
    }
    let mut ack = String::with_capacity(48 + session.id_json.len());
    ack.push_str(r#"{"type":"ack","data":{"sessionId":"#);
    ack.push_str(&session.id_json);
    write!(ack, r#","seq":{seq}}}}}"#).expect("writing to a String");
    Ok(ack)
}

/// An event must be an object with an integer `type` and a numeric
/// `timestamp`; the error says which is missing.
fn check_event(i: usize, raw: &str) -> Result<(), (&'static str, String)> {
    // A derived struct also reads a JSON array: only objects go that way.
    if raw.starts_with('{') && serde_json::from_str::<EventHead>(raw).is_ok() {
        return Ok(());
    }
    let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let refused = |what: &str| ("invalid_event", format!("event {i} of the batch {what}"));
    let Some(event) = value.as_object() else {
        return Err(refused("is not an object"));
    };
    if !event.get("type").is_some_and(|t| t.is_i64() || t.is_u64()) {
        return Err(refused("has no integer 'type'"));
    }
    if !event.get("timestamp").is_some_and(Value::is_number) {
        return Err(refused("has no numeric 'timestamp'"));
    }
    Ok(()) // the one-pass read refused it for a duplicate key: JSON.parse keeps the last
}

fn end(sessions: &mut Sessions, conn: &mut Connection, named: Named) -> Result<String, Refused> {
    let shared = conn.session_of(named.session_id.as_deref(), None)?;
    let id = shared.borrow().id.clone();
    conn.own.retain(|s| !Rc::ptr_eq(s, &shared));
    sessions.0.remove(&id);
    Ok(serde_json::json!({"type": "session_ended", "data": {"sessionId": id}}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(sessions: &mut Sessions, conn: &mut Connection, text: &str) -> Value {
        let owner = Bytes::copy_from_slice(text.as_bytes());
        let text = Text {
            text: std::str::from_utf8(&owner).unwrap(),
            owner: &owner,
        };
        serde_json::from_str(&answer(sessions, conn, text)).unwrap()
    }

    #[test]
    fn start_batch_ack_and_resume() {
        let (mut sessions, mut conn) = (Sessions::default(), Connection::default());
        let started = ask(
            &mut sessions,
            &mut conn,
            r#"{"type":"session_start","data":{"sessionId":"s"}}"#,
        );
        assert_eq!(started["data"]["nextSeq"], 0);
        let batch = r#"{"type":"events_batch","data":{"sessionId":"s","seq":0,"events":[{"type":2,"timestamp":1.5,"data":{"a":[1]}},{"timestamp":2,"type":3}]}}"#;
        let ack = ask(&mut sessions, &mut conn, batch);
        assert_eq!(
            ack,
            serde_json::json!({"type": "ack", "data": {"sessionId": "s", "seq": 0}})
        );
        ask(&mut sessions, &mut conn, batch); // a duplicate: acked, not kept twice
        assert_eq!(sessions.0["s"].borrow().ring.len(), 2);
        let mut again = Connection::default();
        let resumed = ask(
            &mut sessions,
            &mut again,
            r#"{"data":{"sessionId":"s"},"type":"session_start"}"#,
        );
        assert_eq!(
            (
                resumed["data"]["nextSeq"].as_u64(),
                resumed["data"]["nextIndex"].as_u64()
            ),
            (Some(1), Some(2))
        );
    }

    #[test]
    fn the_kept_events_are_the_events_as_sent() {
        let (mut sessions, mut conn) = (Sessions::default(), Connection::default());
        ask(
            &mut sessions,
            &mut conn,
            r#"{"type":"session_start","data":{"sessionId":"s"}}"#,
        );
        ask(
            &mut sessions,
            &mut conn,
            r#"{"type":"events_batch","data":{"events":[ {"type":1, "timestamp":0} ]}}"#,
        );
        let session = &sessions.0["s"];
        assert_eq!(
            &session.borrow().ring[0][..],
            br#"{"type":1, "timestamp":0}"#
        );
    }

    #[test]
    fn refusals_say_why() {
        let (mut sessions, mut conn) = (Sessions::default(), Connection::default());
        let code = |v: &Value| v["data"]["code"].as_str().unwrap().to_owned();
        assert_eq!(code(&ask(&mut sessions, &mut conn, "{")), "invalid_message");
        assert_eq!(
            code(&ask(
                &mut sessions,
                &mut conn,
                r#"{"type":"nope","data":{}}"#
            )),
            "unknown_message_type"
        );
        let batch =
            r#"{"type":"events_batch","data":{"seq":0,"events":[{"type":1,"timestamp":0}]}}"#;
        assert_eq!(
            code(&ask(&mut sessions, &mut conn, batch)),
            "unknown_session"
        );
        ask(
            &mut sessions,
            &mut conn,
            r#"{"type":"session_start","data":{"sessionId":"s"}}"#,
        );
        for (events, why) in [
            ("[[1]]", "is not an object"),
            (r#"[{"type":1.5,"timestamp":0}]"#, "has no integer 'type'"),
            (
                r#"[{"type":1,"timestamp":"0"}]"#,
                "has no numeric 'timestamp'",
            ),
        ] {
            let batch =
                format!(r#"{{"type":"events_batch","data":{{"seq":3,"events":{events}}}}}"#);
            let error = ask(&mut sessions, &mut conn, &batch);
            assert_eq!(
                (code(&error), error["data"]["seq"].as_u64()),
                ("invalid_event".into(), Some(3))
            );
            assert!(
                error["data"]["message"].as_str().unwrap().ends_with(why),
                "{error}"
            );
        }
        let far = r#"{"type":"events_batch","data":{"seq":4096,"events":[]}}"#;
        assert_eq!(
            code(&ask(&mut sessions, &mut conn, far)),
            "seq_out_of_window"
        );
    }
}
