//! One tracker connection, sans-IO: bytes in, reply frames and the rare
//! decisions that need the server out.
//!
//! [`TrackerEngine::feed`] takes what one socket read returned and does
//! everything that happens per message: frame decoding, inflating
//! compressed messages, message decoding and event validation, the
//! per-tracker and per-session rate limits, the seq window and duplicate
//! check, event index assignment, the ring-buffer append, the session's
//! hot counters, queueing the chunk for storage and the ack frame. Python
//! calls it once per read and sends the bytes that come back.
//!
//! It stops early ([`Stop`]) only where the server must act before the
//! next message may be handled: a `session_start` (storage is read to
//! resume the session), a `session_end` (it is flushed), storage
//! backpressure (wait for room), the peer's close frame and a framing
//! violation. The server acts, tells the engine (`started`, `ended`), and
//! feeds again with no new bytes; the messages not handled yet are kept
//! in order. Errors that only need logging or a row in `session_errors`
//! come out as [`Notice`]s without stopping.
//!
//! Replies leave in the order of the messages they answer. With durable
//! acks an ack waits for the flush generation that holds its batch
//! ([`TrackerEngine::release`]); the answers after it wait behind it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde::Serialize;

use crate::buffer::SessionBuffers;
use crate::codec::{self, Codec};
use crate::error::{Error, MessageCode};
use crate::protocol::{
    EventsBatch, ProtocolDecoder, SessionEnd, SessionStart, SnapshotMissing, TrackerMessage,
};
use crate::ws::frame::{encode_frame, OpCode};
use crate::ws::{FrameDecoder, WsEvent};

use super::queue::{ChunkQueue, PendingChunk, Put};
use super::state::IngestState;
use super::windows::{Rate, Window, WindowTable};

/// Messages at least this large are decoded in place: their events are
/// slices of the message (kept alive by the ring) rather than copies.
const SHARE_MIN_BYTES: usize = 1 << 20;

/// What a tracker refused for a full spool is told to wait, ms.
pub const STORAGE_RETRY_AFTER_MS: i64 = 5000;

/// Header of a compressed tracker message (docs/protocol.md): version,
/// codec, reserved, raw length; big-endian.
const COMPRESSED_HEADER: usize = 8;

/// Limits and modes of every tracker connection of one server.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    pub max_sessions: usize,
    pub max_message_bytes: usize,
    pub max_event_bytes: usize,
    pub max_events_per_batch: usize,
    /// Acks wait for their flush to commit.
    pub durable: bool,
    /// Per-connection limits (None: off).
    pub messages: Option<Rate>,
    pub events: Option<Rate>,
}

/// Why `feed` stopped before handling every message it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// Open or resume the session, then call `started`.
    Start(SessionStart),
    /// End the session, then call `ended`.
    End { client_id: String, key: Arc<str> },
    /// Storage holds `max_pending_bytes`: feed again once there is room.
    Backpressure,
    /// The peer's close frame: answer it once the replies are out.
    Close { code: Option<u16>, reason: String },
    /// The peer broke RFC 6455: close with `close_code`.
    Failed { close_code: u16, message: String },
}

/// What the server logs, counts or records, without stopping.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// An error frame was sent. `key`: the session to record it on.
    /// `limit`: the rate limit that refused the message.
    Error {
        code: String,
        message: String,
        seq: Option<i64>,
        key: Option<Arc<str>>,
        limit: Option<&'static str>,
    },
    /// The tracker could not deliver the page's full snapshot.
    SnapshotMissing {
        key: Arc<str>,
        notice: SnapshotMissing,
    },
}

/// The outcome of one `feed`.
#[derive(Debug, Default)]
pub struct Step {
    pub stop: Option<Stop>,
    pub notices: Vec<Notice>,
    /// Sessions that got events: their viewers are woken.
    pub woken: Vec<Arc<str>>,
    /// The storage queue was empty (the writer starts its interval clock).
    pub queue_started: bool,
    /// The storage queue holds `batch_size` chunks (flush now).
    pub queue_full: bool,
}

/// Everything `feed` touches besides the connection itself.
pub struct Ctx<'a> {
    pub state: &'a mut IngestState,
    pub queue: &'a mut ChunkQueue,
    /// Events per session over every connection (None: off).
    pub session_limit: Option<&'a mut WindowTable>,
    /// Wall clock, epoch seconds: chunks' receive time, rate windows.
    pub now: f64,
    /// Monotonic seconds: ack latency.
    pub mono: f64,
}

#[derive(Debug)]
struct Reply {
    generation: u64,
    frame: Vec<u8>,
    /// When its batch was read (acks only).
    received: Option<f64>,
}

#[derive(Debug, Clone)]
struct Started {
    /// The id the tracker uses for it.
    client_id: Arc<str>,
    key: Arc<str>,
    open_id: u64,
    id_json: Arc<[u8]>,
}

/// A message refused: the error frame's fields.
struct Refusal {
    code: &'static str,
    message: String,
    seq: Option<i64>,
    retry_after_ms: Option<i64>,
    limit: Option<&'static str>,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>, seq: Option<u64>) -> Self {
        Refusal {
            code,
            message: message.into(),
            seq: seq.map(seq_i64),
            retry_after_ms: None,
            limit: None,
        }
    }
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

enum Outcome {
    Done,
    Stop(Stop),
    /// Not handled: keep the message first in line.
    Retry(Stop),
}

/// One tracker connection.
#[derive(Debug)]
pub struct TrackerEngine {
    frames: FrameDecoder,
    decoder: ProtocolDecoder,
    cfg: TrackerConfig,
    /// Sessions started on this connection, by the id the tracker sends.
    sessions: HashMap<String, Started>,
    messages: Option<Window>,
    events: Option<Window>,
    /// Decoded frames not handled yet.
    inbox: VecDeque<WsEvent>,
    /// The first message in `inbox` was counted against the rate limits
    /// already (it waits for storage room).
    counted: bool,
    /// The framing violation to report once `inbox` is handled.
    frame_error: Option<Box<Error>>,
    replies: VecDeque<Reply>,
    /// Data messages its frame decoder completed.
    received: u64,
}

impl TrackerEngine {
    pub fn new(frames: FrameDecoder, decoder: ProtocolDecoder, cfg: TrackerConfig) -> Self {
        TrackerEngine {
            frames,
            decoder,
            cfg,
            sessions: HashMap::new(),
            messages: None,
            events: None,
            inbox: VecDeque::new(),
            counted: false,
            frame_error: None,
            replies: VecDeque::new(),
            received: 0,
        }
    }

    pub fn frames(&self) -> &FrameDecoder {
        &self.frames
    }

    /// Data messages the engine's own frame decoder completed.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes allocated for what the connection holds between reads: its
    /// frame decoder's buffer and the queues of decoded messages and of
    /// replies. Zero once it went idle with nothing pending (see `shed`).
    pub fn buffer_capacity(&self) -> usize {
        self.frames.buffer_capacity()
            + self.inbox.capacity() * std::mem::size_of::<WsEvent>()
            + self.replies.capacity() * std::mem::size_of::<Reply>()
    }

    /// Frees the queues once they are empty: an idle connection (most of a
    /// server's) keeps no allocation sized by its last burst. Refilling
    /// them costs one small allocation per read, against everything a read
    /// does besides.
    fn shed(&mut self) {
        if self.inbox.is_empty() && self.inbox.capacity() > 0 {
            self.inbox = VecDeque::new();
        }
        if self.replies.is_empty() && self.replies.capacity() > 0 {
            self.replies = VecDeque::new();
        }
    }

    /// Messages decoded but not handled yet (after a stop).
    pub fn held(&self) -> usize {
        self.inbox.len()
    }

    /// Replies waiting for their flush, or behind one that waits.
    pub fn waiting(&self) -> usize {
        self.replies.len()
    }

    /// The flush generation the first waiting reply needs (0: none waits).
    pub fn waiting_for(&self) -> u64 {
        self.replies.front().map_or(0, |r| r.generation)
    }

    /// Session keys started on this connection.
    pub fn session_keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.sessions.values().map(|s| &s.key)
    }

    /// Queue a message decoded by another frame codec (the wsproto
    /// backend): the next `feed` handles it as one of its own.
    pub fn push_message(&mut self, event: WsEvent) {
        self.inbox.push_back(event);
    }

    /// Take the bytes of one read (empty: go on after a stop) and handle
    /// every message they complete, up to the first stop.
    pub fn feed(&mut self, data: &[u8], ctx: &mut Ctx<'_>) -> Step {
        if !data.is_empty() {
            let mut events = Vec::new();
            let decoded = self.frames.feed(data, &mut events);
            self.take_frames(decoded, events);
        }
        self.handle_inbox(ctx)
    }

    /// [`feed`](Self::feed) for a caller that reads its socket straight into
    /// the frame decoder's buffer (see [`FrameDecoder::feed_from`]): `fill`'s
    /// error comes back as it is, with nothing handled; otherwise the bytes
    /// read (0: end of stream) and the step.
    pub fn feed_from<E>(
        &mut self,
        fill: impl FnOnce(&mut BytesMut) -> Result<usize, E>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(usize, Step), E> {
        let mut events = Vec::new();
        let (n, decoded) = self.frames.feed_from(fill, &mut events)?;
        if n > 0 {
            self.take_frames(decoded, events);
        }
        Ok((n, self.handle_inbox(ctx)))
    }

    /// The peer has nothing more to send for now: let go of the read buffer
    /// if it holds no partial frame.
    pub fn release_input(&mut self) {
        self.frames.release_input();
    }

    fn take_frames(&mut self, decoded: Result<(), Error>, events: Vec<WsEvent>) {
        if let Err(err) = decoded {
            self.frame_error.get_or_insert_with(|| Box::new(err));
        }
        self.received += events
            .iter()
            .filter(|e| matches!(e, WsEvent::Message { .. } | WsEvent::TooLarge { .. }))
            .count() as u64;
        self.inbox.extend(events);
    }

    /// Handle every message decoded, up to the first stop.
    fn handle_inbox(&mut self, ctx: &mut Ctx<'_>) -> Step {
        let mut step = Step::default();
        while let Some(event) = self.inbox.pop_front() {
            let outcome = match event {
                WsEvent::Message { text, data } => {
                    let outcome = self.message(text, &data, ctx, &mut step);
                    if let Outcome::Retry(_) = outcome {
                        self.inbox.push_front(WsEvent::Message { text, data });
                    }
                    outcome
                }
                WsEvent::Ping(payload) => {
                    // Pongs go out at once, ahead of acks waiting for
                    // storage (and in the order of their pings).
                    let mut frame = Vec::with_capacity(payload.len() + 2);
                    encode_frame(OpCode::Pong, &payload, true, &mut frame);
                    let at = self
                        .replies
                        .iter()
                        .position(|r| r.generation > 0)
                        .unwrap_or(self.replies.len());
                    self.replies.insert(
                        at,
                        Reply {
                            generation: 0,
                            frame,
                            received: None,
                        },
                    );
                    Outcome::Done
                }
                WsEvent::Pong(_) => Outcome::Done,
                WsEvent::Close { code, reason } => Outcome::Stop(Stop::Close { code, reason }),
                WsEvent::TooLarge { size, prefix, .. } => {
                    self.too_large(size, &prefix, &mut step);
                    Outcome::Done
                }
            };
            match outcome {
                Outcome::Done => {}
                Outcome::Stop(stop) | Outcome::Retry(stop) => {
                    step.stop = Some(stop);
                    return step;
                }
            }
        }
        if let Some(err) = self.frame_error.take() {
            let (close_code, message) = match *err {
                Error::WebSocket {
                    close_code,
                    message,
                } => (close_code, message),
                // The frame decoder raises only the above; anything else
                // is a protocol error all the same.
                other => (1002, other.to_string()),
            };
            step.stop = Some(Stop::Failed {
                close_code,
                message,
            });
        }
        self.shed();
        step
    }

    /// The replies that may go now that `committed` is the last committed
    /// flush, in order, as one buffer of frames; acks among them are
    /// counted in `state`'s histogram as released at `mono`.
    pub fn release(&mut self, committed: u64, mono: f64, state: &mut IngestState) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(reply) = self.replies.front() {
            if reply.generation > committed {
                break;
            }
            let reply = self.replies.pop_front().expect("front exists");
            if let Some(received) = reply.received {
                state.observe_ack((mono - received).max(0.0));
            }
            if out.is_empty() {
                out = reply.frame;
            } else {
                out.extend_from_slice(&reply.frame);
            }
        }
        self.shed();
        out
    }

    /// The server opened (or resumed) the session of a `session_start`
    /// this engine stopped on: answer `session_started`.
    pub fn started(&mut self, client_id: &str, key: &str, state: &IngestState) -> bool {
        let Some((key, live)) = state.sessions.get_key_value(key) else {
            return false;
        };
        let id_json: Arc<[u8]> = serde_json::to_vec(client_id)
            .expect("a str serialises")
            .into();
        let next_index = state.buffers.session(key).map_or(0, |r| r.next_index());
        let body = StartedMessage {
            kind: "session_started",
            data: StartedData {
                session_id: client_id,
                next_seq: live.seqs.next_seq(),
                next_index,
                limits: Limits {
                    max_event_bytes: self.cfg.max_event_bytes,
                    max_message_bytes: self.cfg.max_message_bytes,
                    max_events_per_batch: self.cfg.max_events_per_batch,
                },
            },
        };
        self.sessions.insert(
            client_id.to_owned(),
            Started {
                client_id: Arc::from(client_id),
                key: key.clone(),
                open_id: live.open_id,
                id_json,
            },
        );
        self.push_json(&body, 0, None);
        true
    }

    /// The server ended the session of a `session_end` this engine
    /// stopped on: answer `session_ended`.
    pub fn ended(&mut self, client_id: &str) {
        self.sessions.remove(client_id);
        let body = Envelope {
            kind: "session_ended",
            data: SessionIdOnly {
                session_id: client_id,
            },
        };
        self.push_json(&body, 0, None);
    }

    /// Answer the message the engine stopped on with an error the server
    /// raised while acting on it.
    pub fn refuse(
        &mut self,
        code: &str,
        message: &str,
        seq: Option<i64>,
        retry_after_ms: Option<i64>,
    ) {
        self.push_error(code, message, seq, retry_after_ms);
    }

    // --- messages --------------------------------------------------------

    fn message(&mut self, text: bool, data: &Bytes, ctx: &mut Ctx<'_>, step: &mut Step) -> Outcome {
        let decoded = self.decode(text, data);
        // A batch has limits of its own. Every other well-formed message, a
        // viewer's too, first counts against the message rate limit.
        let admitted = match &decoded {
            Ok(TrackerMessage::EventsBatch(_)) => Ok(()),
            Ok(_) => self.admit(None, 0, None, ctx),
            Err(refusal) if refusal.code == MessageCode::NotAllowed.as_str() => {
                self.admit(None, 0, None, ctx)
            }
            Err(_) => Ok(()),
        };
        let refusal = match (decoded, admitted) {
            (Ok(message), Ok(())) => return self.dispatch(message, ctx, step),
            (_, Err(refusal)) | (Err(refusal), Ok(())) => refusal,
        };
        self.refused(refusal, None, step);
        Outcome::Done
    }

    /// One method per tracker message.
    fn dispatch(&mut self, message: TrackerMessage, ctx: &mut Ctx<'_>, step: &mut Step) -> Outcome {
        match message {
            TrackerMessage::EventsBatch(batch) => self.batch(batch, ctx, step),
            TrackerMessage::SessionStart(start) => self.session_start(start, ctx, step),
            TrackerMessage::SessionEnd(end) => self.session_end(&end, ctx, step),
            TrackerMessage::SnapshotMissing(notice) => self.snapshot_missing(notice, ctx, step),
        }
    }

    fn decode(&self, text: bool, data: &Bytes) -> Result<TrackerMessage, Refusal> {
        let inflated;
        let data = if text {
            data
        } else {
            inflated = Bytes::from(self.inflate(data)?);
            &inflated
        };
        let decoded = if data.len() >= SHARE_MIN_BYTES {
            self.decoder.decode_tracker_bytes(data)
        } else {
            self.decoder.decode_tracker(data)
        };
        decoded.map_err(|err| match err {
            Error::Message { code, message, seq } => Refusal {
                code: code.as_str(),
                message,
                seq,
                retry_after_ms: None,
                limit: None,
            },
            // A frame-level or codec fault is not what the protocol decoder
            // raises, but would mean the same: the message is not valid.
            other => Refusal::new("invalid_message", other.to_string(), None),
        })
    }

    /// A compressed binary message (docs/protocol.md, "Compressed tracker
    /// messages"): header, then the message's JSON compressed.
    fn inflate(&self, frame: &[u8]) -> Result<Vec<u8>, Refusal> {
        if frame.len() < COMPRESSED_HEADER {
            return Err(Refusal::new(
                "invalid_message",
                "binary frame shorter than its header",
                None,
            ));
        }
        let (version, codec_id) = (frame[0], frame[1]);
        let raw_length = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        let codec = match (version, codec_id) {
            (1, 1) => Codec::Deflate { level: 6 },
            (1, 2) => Codec::Zstd { level: 3 },
            _ => {
                return Err(Refusal::new(
                    "invalid_message",
                    "unknown binary frame version or codec",
                    None,
                ))
            }
        };
        let limit = self.cfg.max_message_bytes;
        if raw_length > limit {
            return Err(Refusal::new(
                "payload_too_large",
                format!("message of {raw_length} bytes; the limit is {limit}"),
                None,
            ));
        }
        let data = codec::decompress(codec, &frame[COMPRESSED_HEADER..], raw_length, None)
            .map_err(|err| match err {
                // More than the announced length (already checked against
                // the limit) is a header that lies, not a message to cut.
                Error::TooLarge { .. } => Refusal::new(
                    "invalid_compression",
                    format!("data decompresses to more than the announced {raw_length} bytes"),
                    None,
                ),
                other => Refusal::new(
                    other.codec_code().unwrap_or("invalid_compression"),
                    other.to_string(),
                    None,
                ),
            })?;
        if data.len() != raw_length {
            return Err(Refusal::new(
                "invalid_compression",
                "length differs from the header's",
                None,
            ));
        }
        Ok(data)
    }

    fn batch(&mut self, batch: EventsBatch, ctx: &mut Ctx<'_>, step: &mut Step) -> Outcome {
        let seq = batch.seq();
        // Counted already when this is a retry after backpressure; a retry
        // that ends any other way clears it.
        let counted = std::mem::take(&mut self.counted);
        if !counted {
            ctx.state.counters.messages[TrackerMessage::EVENTS_BATCH] += 1;
        }
        let session = match self.session(batch.session_id(), seq, ctx.state) {
            Ok(s) => s,
            Err(refusal) => {
                self.refused(refusal, None, step);
                return Outcome::Done;
            }
        };
        if !counted {
            if let Err(refusal) = self.admit(Some(&session.key), batch.count(), seq, ctx) {
                self.refused(refusal, Some(session.key.clone()), step);
                return Outcome::Done;
            }
        }
        let state = &mut *ctx.state;
        let live = state
            .sessions
            .get_mut(&session.key)
            .expect("session() checked it is live");
        let seq = seq.unwrap_or_else(|| live.seqs.next_seq());
        if live.seqs.seen(seq) {
            state.counters.batches_duplicate += 1;
            let generation = if self.cfg.durable {
                ctx.queue.pending_generation(&session.key, seq).unwrap_or(0)
            } else {
                0
            };
            self.ack(&session.id_json, seq, generation, ctx.mono);
            return Outcome::Done;
        }
        if !live.seqs.fits(seq) {
            let message = format!(
                "seq {seq} is more than {} ahead of {}",
                live.seqs.max_ahead(),
                live.seqs.next_seq()
            );
            let refusal = Refusal::new("seq_out_of_window", message, Some(seq));
            self.refused(refusal, Some(session.key.clone()), step);
            return Outcome::Done;
        }
        if !ctx.queue.offer(batch.nbytes()) {
            let mut refusal = Refusal::new(
                "storage_unavailable",
                "storage is unreachable and the local spool is full; retry later",
                Some(seq),
            );
            refusal.retry_after_ms = Some(STORAGE_RETRY_AFTER_MS);
            self.refused(refusal, Some(session.key.clone()), step);
            return Outcome::Done;
        }
        if !ctx.queue.has_room() {
            self.counted = true;
            return Outcome::Retry(Stop::Backpressure);
        }
        let key = session.key.clone();
        accept(&key, seq, &batch, ctx, step);
        let generation = if self.cfg.durable {
            ctx.queue.generation()
        } else {
            0
        };
        self.ack(&session.id_json, seq, generation, ctx.mono);
        Outcome::Done
    }

    fn session_start(
        &mut self,
        start: SessionStart,
        ctx: &mut Ctx<'_>,
        step: &mut Step,
    ) -> Outcome {
        ctx.state.counters.messages[TrackerMessage::SESSION_START] += 1;
        if let Some(refusal) = self.start_problem(&start) {
            self.refused(refusal, None, step);
            return Outcome::Done;
        }
        Outcome::Stop(Stop::Start(start))
    }

    fn session_end(&mut self, end: &SessionEnd, ctx: &mut Ctx<'_>, step: &mut Step) -> Outcome {
        ctx.state.counters.messages[TrackerMessage::SESSION_END] += 1;
        match self.session(end.session_id.as_deref(), None, ctx.state) {
            Ok(session) => Outcome::Stop(Stop::End {
                client_id: session.client_id.to_string(),
                key: session.key,
            }),
            Err(refusal) => {
                self.refused(refusal, None, step);
                Outcome::Done
            }
        }
    }

    fn snapshot_missing(
        &mut self,
        notice: SnapshotMissing,
        ctx: &mut Ctx<'_>,
        step: &mut Step,
    ) -> Outcome {
        ctx.state.counters.messages[TrackerMessage::SNAPSHOT_MISSING] += 1;
        match self.session(notice.session_id.as_deref(), None, ctx.state) {
            Ok(session) => step.notices.push(Notice::SnapshotMissing {
                key: session.key,
                notice,
            }),
            Err(refusal) => self.refused(refusal, None, step),
        }
        Outcome::Done
    }

    fn start_problem(&self, start: &SessionStart) -> Option<Refusal> {
        let fields = [
            ("session_id", Some(start.session_id.as_str())),
            ("user_id", start.user_id.as_deref()),
            ("url", start.url.as_deref()),
            ("user_agent", start.user_agent.as_deref()),
            ("referrer", start.referrer.as_deref()),
            ("time_zone", start.time_zone.as_deref()),
        ];
        for (name, value) in fields {
            // Valid JSON, but no SQL text column can hold it: refused here,
            // or one tracker could make every flush fail.
            if value.is_some_and(|v| v.contains('\0')) {
                return Some(Refusal::new(
                    "invalid_message",
                    format!("{name} contains a NUL character"),
                    None,
                ));
            }
        }
        let max = self.cfg.max_sessions;
        if !self.sessions.contains_key(&start.session_id) && self.sessions.len() >= max {
            return Some(Refusal::new(
                "session_limit",
                format!("at most {max} sessions per connection"),
                None,
            ));
        }
        None
    }

    /// The live session a message names (or the connection's only one).
    fn session(
        &mut self,
        session_id: Option<&str>,
        seq: Option<u64>,
        state: &IngestState,
    ) -> Result<Started, Refusal> {
        // A clone is two reference counts: no allocation per batch.
        let session = match session_id {
            None => {
                if self.sessions.len() != 1 {
                    return Err(Refusal::new(
                        "unknown_session",
                        "sessionId is required when the connection has no or several sessions",
                        seq,
                    ));
                }
                self.sessions.values().next().expect("one session").clone()
            }
            Some(id) => match self.sessions.get(id) {
                Some(s) => s.clone(),
                None => {
                    return Err(Refusal::new(
                        "unknown_session",
                        format!("session {} was not started on this connection", py_repr(id)),
                        seq,
                    ))
                }
            },
        };
        let live = state
            .sessions
            .get(&session.key)
            .is_some_and(|l| l.open_id == session.open_id && !l.ended);
        if !live {
            self.sessions.remove(&*session.client_id);
            return Err(Refusal::new(
                "unknown_session",
                "session has ended; send session_start",
                seq,
            ));
        }
        Ok(session)
    }

    /// Count one message of `events` events against the rate limits, or
    /// refuse it; all or nothing.
    fn admit(
        &mut self,
        key: Option<&Arc<str>>,
        events: usize,
        seq: Option<u64>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Refusal> {
        let now_ms = (ctx.now * 1000.0) as i64;
        let n = i64::try_from(events).unwrap_or(i64::MAX);
        let refuse = |limit: &'static str, retry: i64| Refusal {
            code: "rate_limited",
            message: format!("over the {limit} rate limit; resend after retryAfterMs"),
            seq: seq.map(seq_i64),
            retry_after_ms: Some(retry),
            limit: Some(limit),
        };
        if let Some(rate) = self.cfg.messages {
            let w = self.messages.get_or_insert_with(|| rate.window(now_ms));
            let (retry, _) = rate.retry_after(w, 1, now_ms);
            if retry > 0 {
                return Err(refuse("messages", retry));
            }
        }
        if events > 0 {
            if let Some(rate) = self.cfg.events {
                let w = self.events.get_or_insert_with(|| rate.window(now_ms));
                let (retry, _) = rate.retry_after(w, n, now_ms);
                if retry > 0 {
                    return Err(refuse("events", retry));
                }
            }
            if let (Some(table), Some(key)) = (ctx.session_limit.as_deref_mut(), key) {
                match table.retry_after(key, n, now_ms) {
                    None => return Err(refuse("keys_full", 1000)),
                    Some(retry) if retry > 0 => return Err(refuse("session_events", retry)),
                    Some(_) => table.take(key, n),
                }
            }
        }
        if let Some(w) = &mut self.messages {
            w.unsynced += 1;
        }
        if events > 0 {
            if let Some(w) = &mut self.events {
                w.unsynced += n;
            }
        }
        Ok(())
    }

    fn too_large(&mut self, size: u64, prefix: &[u8], step: &mut Step) {
        let seq = prefix_seq(prefix);
        let key =
            prefix_session(prefix).and_then(|id| self.sessions.get(&id).map(|s| s.key.clone()));
        let message = format!(
            "message of {size} bytes is over the limit of {} bytes (an event may be at most {} \
             bytes); it was not stored: resend this seq without the oversized event and take a \
             new full snapshot",
            self.cfg.max_message_bytes, self.cfg.max_event_bytes
        );
        self.refused(Refusal::new("payload_too_large", message, seq), key, step);
    }

    // --- replies ---------------------------------------------------------

    fn refused(&mut self, refusal: Refusal, key: Option<Arc<str>>, step: &mut Step) {
        self.push_error(
            refusal.code,
            &refusal.message,
            refusal.seq,
            refusal.retry_after_ms,
        );
        let key = key.or_else(|| {
            (self.sessions.len() == 1).then(|| {
                self.sessions
                    .values()
                    .next()
                    .expect("one session")
                    .key
                    .clone()
            })
        });
        step.notices.push(Notice::Error {
            code: refusal.code.to_owned(),
            message: refusal.message,
            seq: refusal.seq,
            key,
            limit: refusal.limit,
        });
    }

    fn push_error(
        &mut self,
        code: &str,
        message: &str,
        seq: Option<i64>,
        retry_after_ms: Option<i64>,
    ) {
        let body = Envelope {
            kind: "error",
            data: ErrorData {
                code,
                message,
                seq,
                retry_after_ms,
            },
        };
        self.push_json(&body, 0, None);
    }

    fn ack(&mut self, id_json: &[u8], seq: u64, generation: u64, mono: f64) {
        let mut payload = Vec::with_capacity(48 + id_json.len());
        payload.extend_from_slice(b"{\"type\":\"ack\",\"data\":{\"sessionId\":");
        payload.extend_from_slice(id_json);
        payload.extend_from_slice(b",\"seq\":");
        payload.extend_from_slice(seq.to_string().as_bytes());
        payload.extend_from_slice(b"}}");
        self.push_frame(&payload, generation, Some(mono));
    }

    fn push_json<T: Serialize>(&mut self, body: &T, generation: u64, received: Option<f64>) {
        let payload = serde_json::to_vec(body).expect("replies serialise");
        self.push_frame(&payload, generation, received);
    }

    fn push_frame(&mut self, payload: &[u8], generation: u64, received: Option<f64>) {
        // Replies after one that waits for a later flush wait behind it.
        let generation = generation.max(self.replies.back().map_or(0, |r| r.generation));
        let mut frame = Vec::with_capacity(payload.len() + 4);
        encode_frame(OpCode::Text, payload, true, &mut frame);
        self.replies.push_back(Reply {
            generation,
            frame,
            received,
        });
    }
}

/// Accept a batch for a live session that has room: queue its chunk, append
/// its events to the ring and update the hot counters. Returns the index of
/// its first event.
fn accept(key: &Arc<str>, seq: u64, batch: &EventsBatch, ctx: &mut Ctx<'_>, step: &mut Step) {
    let state = &mut *ctx.state;
    let buffers: &mut SessionBuffers = &mut state.buffers;
    let first_index = buffers.session(key).map_or(0, |r| r.next_index());
    let chunk = PendingChunk::from_events(
        key.clone(),
        seq,
        first_index,
        batch.events().iter().map(|e| e.raw().clone()).collect(),
        batch.min_timestamp(),
        batch.max_timestamp(),
        Some(ctx.now),
    );
    if let Put::Queued { first, full } = ctx.queue.put(chunk) {
        step.queue_started |= first;
        step.queue_full |= full;
    }
    buffers.append(key, batch);
    ctx.queue.touch(key);
    let live = state.sessions.get_mut(key).expect("checked live");
    live.seqs.add(seq);
    let keyframe = batch
        .meta_before_full_snapshot()
        .or(batch.last_full_snapshot());
    if let Some(offset) = keyframe {
        live.keyframe_index = Some(first_index + offset as u64);
    }
    live.event_count += batch.count() as u64;
    live.byte_count += batch.nbytes() as u64;
    live.last_event_at = Some(ctx.now);
    live.clock_skew_ms = live.skew.add(batch.max_timestamp(), ctx.now);
    state.counters.events_ingested += batch.count() as u64;
    state.counters.bytes_ingested += batch.nbytes() as u64;
    if !step.woken.iter().any(|k| Arc::ptr_eq(k, key)) {
        step.woken.push(key.clone());
    }
}

/// Python's `repr` of a str, as the server's messages quote ids.
fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// The `seq` of a skipped message, read from its first bytes.
fn prefix_seq(prefix: &[u8]) -> Option<u64> {
    let mut rest = prefix;
    while let Some(at) = find(rest, b"\"seq\"") {
        rest = &rest[at + 5..];
        let value = skip_ws(rest);
        let Some(value) = value.strip_prefix(b":") else {
            continue;
        };
        let value = skip_ws(value);
        let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
        let boundary = value
            .get(digits)
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
        if (1..=18).contains(&digits) && boundary {
            return std::str::from_utf8(&value[..digits]).ok()?.parse().ok();
        }
    }
    None
}

/// The `sessionId` of a skipped message, read from its first bytes.
fn prefix_session(prefix: &[u8]) -> Option<String> {
    let at = find(prefix, b"\"sessionId\"")?;
    let value = skip_ws(&prefix[at + 11..]).strip_prefix(b":")?;
    let value = skip_ws(value);
    let mut stream = serde_json::Deserializer::from_slice(value).into_iter::<String>();
    let id = stream.next()?.ok()?;
    (id.chars().count() <= 512).then_some(id)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b" \t\r\n".contains(b)).count();
    &s[n..]
}

#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: T,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<i64>,
}

#[derive(Serialize)]
struct SessionIdOnly<'a> {
    #[serde(rename = "sessionId")]
    session_id: &'a str,
}

#[derive(Serialize)]
struct StartedMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: StartedData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartedData<'a> {
    session_id: &'a str,
    next_seq: u64,
    next_index: u64,
    limits: Limits,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Limits {
    max_event_bytes: usize,
    max_message_bytes: usize,
    max_events_per_batch: usize,
}
