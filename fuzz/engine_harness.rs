//! The property behind the `engine_feed` fuzz target, shared with the
//! `fuzz_seeds` and `fuzz_random` cargo tests so that it runs on every
//! `cargo test`.
//!
//! Structure-aware: the input is a script, not the wire bytes. Byte 0
//! picks the settings (bit 0: durable acks; bit 1: a tiny storage queue,
//! so backpressure stops are frequent; bits 2-3: the seq window; bit 4:
//! reads go straight into the frame buffer, `feed_from`). Then
//! each op takes a byte and a few operands: `session_start`,
//! `events_batch` (random session, seq, events: valid, without a
//! timestamp, over `max_event_bytes`, or making the message oversized),
//! `session_end`, garbage JSON, a ping, raw garbage bytes (a framing
//! violation), a storage flush; any message may be fragmented into up to
//! 3 frames or sent as a compressed binary message (docs/protocol.md),
//! sometimes with a lying header. The frames are concatenated and fed to
//! [`TrackerEngine::feed`] in pieces whose sizes come from the input too,
//! with the stops handled as the server does: `Start` opens the session
//! (`Resume::default()`) and calls `started`, `End` ends, flushes and
//! closes it and calls `ended`, `Backpressure` takes and commits a flush.
//!
//! Checked after every feed: no panic; with no stop, nothing is held; the
//! replies decode as server text frames (or pongs) of known types; every
//! ack is for a seq the session's window has seen; every chunk taken from
//! the queue continues its session's indices where the previous one
//! ended (contiguous, never overlapping); every live ring's `next_index`
//! is the sum of the events of the chunks accepted for it, as is its
//! `event_count`; after `release(u64::MAX)` nothing waits.

use std::collections::HashMap;
use std::sync::Arc;

use _core::buffer::{BufferLimits, SessionBuffers};
use _core::codec::{self, Codec};
use _core::ingest::{ChunkQueue, Ctx, IngestState, Resume, Stop, TrackerConfig, TrackerEngine};
use _core::protocol::{DecoderLimits, ProtocolDecoder};
use _core::ws::frame::encode_client_frame;
use _core::ws::{DecoderConfig, FrameDecoder, WsEvent};

const MAX_MESSAGE: usize = 1024;
const MAX_EVENT: usize = 256;
const MAX_EVENTS: usize = 4;
const SIDS: [&str; 3] = ["a", "b", "c"];
const NOW: f64 = 1_700_000_000.0;

/// What one run reached, for the random tests' outcome counts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub acks: usize,
    pub errors: usize,
    pub chunks: usize,
    pub starts: usize,
    pub ends: usize,
    pub backpressure: usize,
    /// The connection ended with a close or a framing violation.
    pub closed: bool,
}

/// Reads the script; zeros once it is used up.
struct Script<'a> {
    data: &'a [u8],
    at: usize,
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn below(&mut self, n: u8) -> u8 {
        self.byte() % n
    }
}

fn event(kind: u8, pad: usize, ts: Option<u64>) -> String {
    let ts = ts.map_or(String::new(), |t| format!(",\"timestamp\":{t}"));
    format!(
        "{{\"type\":{kind}{ts},\"data\":{{\"x\":\"{}\"}}}}",
        "p".repeat(pad)
    )
}

/// One message's frames: text in 1-3 fragments, or compressed binary.
fn frames(s: &mut Script<'_>, json: &[u8], out: &mut Vec<u8>) {
    let how = s.byte();
    let mask = [s.byte(), 0x5a, 0xa5, how];
    let payload: Vec<u8> = if how & 0x30 == 0x30 {
        let (id, codec) = if how & 0x40 == 0 {
            (1u8, Codec::Deflate { level: 1 })
        } else {
            (2u8, Codec::Zstd { level: 1 })
        };
        let data = codec::compress(codec, json).expect("compresses");
        let mut raw_len = json.len() as u32;
        let mut version = 1u8;
        let mut id = id;
        match s.below(16) {
            0 => raw_len += 5,
            1 => id = 9,
            2 => version = 2,
            3 => raw_len = u32::MAX,
            _ => {}
        }
        let mut p = vec![version, id, 0, 0];
        p.extend_from_slice(&raw_len.to_be_bytes());
        p.extend_from_slice(&data);
        p
    } else {
        json.to_vec()
    };
    let text = how & 0x30 != 0x30;
    let pieces = 1 + usize::from(how % 3);
    for i in 0..pieces {
        let part = &payload[payload.len() * i / pieces..payload.len() * (i + 1) / pieces];
        let opcode = match (i, text) {
            (0, true) => 1,
            (0, false) => 2,
            _ => 0,
        };
        encode_client_frame(opcode, part, mask, i + 1 == pieces, 0, out);
    }
}

/// The client's byte stream and the points where the server flushes.
fn client_stream(s: &mut Script<'_>) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut flushes = Vec::new();
    let mut ops = 0;
    while !s.done() && ops < 64 {
        ops += 1;
        let sid = SIDS[usize::from(s.below(3))];
        let json = match s.below(16) {
            0..=2 => format!("{{\"type\":\"session_start\",\"data\":{{\"sessionId\":\"{sid}\"}}}}"),
            3..=9 => {
                let b = s.byte();
                let mut data = String::from("{");
                if b & 0x80 == 0 {
                    data += &format!("\"sessionId\":\"{sid}\",");
                }
                if b & 0x40 == 0 {
                    data += &format!("\"seq\":{},", b % 12);
                }
                let n = usize::from(s.below(MAX_EVENTS as u8 + 2));
                let events: Vec<String> = (0..n)
                    .map(|i| {
                        let e = s.byte();
                        let ts = (e & 0x07 != 0).then_some(1_700_000_000_000 + u64::from(e));
                        let pad = match e >> 5 {
                            7 => MAX_MESSAGE + 100,
                            6 => MAX_EVENT + 10,
                            _ => usize::from(e & 0x1f),
                        };
                        event([2, 3, 4, 3][i % 4], pad, ts)
                    })
                    .collect();
                data += &format!("\"events\":[{}]}}", events.join(","));
                format!("{{\"type\":\"events_batch\",\"data\":{data}}}")
            }
            10 => format!("{{\"type\":\"session_end\",\"data\":{{\"sessionId\":\"{sid}\"}}}}"),
            11 => "{\"type\":\"session_end\"}".to_owned(),
            12 => {
                let junk: Vec<u8> = (0..s.below(12)).map(|_| b'!' + s.below(90)).collect();
                format!("{{\"type\":{}", String::from_utf8(junk).expect("ascii"))
            }
            13 => {
                let payload = [s.byte(); 3];
                encode_client_frame(
                    9,
                    &payload[..usize::from(s.below(4))],
                    [1, 2, 3, 4],
                    true,
                    0,
                    &mut out,
                );
                continue;
            }
            14 => {
                flushes.push(out.len());
                continue;
            }
            _ => {
                if s.below(8) == 0 {
                    // Raw bytes: most likely a framing violation.
                    for _ in 0..s.below(8) {
                        out.push(s.byte());
                    }
                }
                continue;
            }
        };
        frames(s, json.as_bytes(), &mut out);
    }
    (out, flushes)
}

/// The engine's world: shared state, queue, and what the checks track.
struct World {
    engine: TrackerEngine,
    state: IngestState,
    queue: ChunkQueue,
    replies: FrameDecoder,
    committed: u64,
    /// Reads go through `feed_from` (the socket path) rather than `feed`.
    direct: bool,
    /// Per session key: where its next chunk must start.
    next_chunk: HashMap<Arc<str>, u64>,
    summary: Summary,
}

impl World {
    fn feed(&mut self, data: &[u8]) -> Option<Stop> {
        let mut ctx = Ctx {
            state: &mut self.state,
            queue: &mut self.queue,
            session_limit: None,
            now: NOW,
            mono: 1.0,
        };
        let step = if self.direct && !data.is_empty() {
            // Read straight into the decoder's buffer, as the server does
            // from its sockets (reads here are far below the spare it offers).
            let fill = |buf: &mut bytes::BytesMut| -> Result<usize, ()> {
                assert!(buf.capacity() - buf.len() >= data.len());
                buf.extend_from_slice(data);
                Ok(data.len())
            };
            let (n, step) = self
                .engine
                .feed_from(fill, &mut ctx)
                .expect("reads do not fail");
            assert_eq!(n, data.len());
            step
        } else {
            self.engine.feed(data, &mut ctx)
        };
        if step.stop.is_none() {
            assert_eq!(self.engine.held(), 0, "messages held without a stop");
        }
        self.release(self.committed);
        step.stop
    }

    /// Send what may go and check it.
    fn release(&mut self, committed: u64) {
        let out = self.engine.release(committed, 2.0, &mut self.state);
        let mut events = Vec::new();
        self.replies
            .feed(&out, &mut events)
            .expect("replies are valid server frames");
        for event in events {
            let data = match event {
                WsEvent::Message { text: true, data } => data,
                WsEvent::Pong(_) => continue,
                other => panic!("not a reply: {other:?}"),
            };
            let body: serde_json::Value = serde_json::from_slice(&data).expect("replies are JSON");
            let kind = body["type"].as_str().expect("a reply has a type");
            match kind {
                "ack" => {
                    self.summary.acks += 1;
                    let sid = body["data"]["sessionId"].as_str().expect("ack sessionId");
                    let seq = body["data"]["seq"].as_u64().expect("ack seq");
                    let key = format!("t/{sid}");
                    if let Some(live) = self.state.sessions.get(key.as_str()) {
                        assert!(
                            live.seqs.seen(seq),
                            "ack for seq {seq} the window has not seen"
                        );
                    }
                }
                "error" => {
                    self.summary.errors += 1;
                    assert!(body["data"]["code"].is_string(), "{body}");
                }
                "session_started" | "session_ended" => {}
                other => panic!("unknown reply {other}"),
            }
        }
    }

    /// Take and commit a flush, checking its chunks' indices.
    fn flush(&mut self) {
        let flush = self.queue.take();
        for chunk in &flush.chunks {
            let next = self.next_chunk.entry(chunk.key.clone()).or_insert(0);
            assert_eq!(
                chunk.first_index, *next,
                "chunk {} of {:?} does not continue at {next}",
                chunk.seq, chunk.key
            );
            *next = chunk.end_index();
            self.summary.chunks += 1;
        }
        self.queue.commit(&flush);
        self.committed = flush.generation;
    }

    /// Every live ring holds exactly the events of its chunks.
    fn check_rings(&self) {
        for (key, live) in &self.state.sessions {
            let ring = self
                .state
                .buffers
                .session(key)
                .expect("a live session has a ring");
            let queued: u64 = self
                .queue
                .pending_for(key)
                .iter()
                .map(|c| u64::from(c.count))
                .sum();
            let stored = self.next_chunk.get(key).copied().unwrap_or(0);
            let queued_start = self
                .queue
                .pending_for(key)
                .first()
                .map_or(stored, |c| c.first_index);
            assert_eq!(queued_start, stored, "queued chunks of {key:?} leave a gap");
            assert_eq!(ring.next_index(), stored + queued, "ring of {key:?}");
            assert_eq!(
                live.event_count,
                ring.next_index(),
                "event_count of {key:?}"
            );
        }
    }

    fn stop(&mut self, stop: Stop) -> bool {
        match stop {
            Stop::Start(start) => {
                self.summary.starts += 1;
                let key = format!("t/{}", start.session_id);
                if self
                    .state
                    .sessions
                    .get(key.as_str())
                    .is_none_or(|l| l.ended)
                {
                    // Its chunks of an earlier opening are stored first, so
                    // the new opening's indices start afresh at 0.
                    self.flush();
                    self.release(self.committed);
                    self.state.close(&key);
                    self.state.open(&key, Resume::default());
                    self.next_chunk.remove(key.as_str());
                }
                assert!(self.engine.started(&start.session_id, &key, &self.state));
            }
            Stop::End { client_id, key } => {
                self.summary.ends += 1;
                self.state.end(&key);
                self.flush();
                self.state.close(&key);
                self.engine.ended(&client_id);
            }
            Stop::Backpressure => {
                self.summary.backpressure += 1;
                self.flush();
                assert!(self.queue.has_room(), "a committed flush frees the queue");
            }
            Stop::Close { .. } | Stop::Failed { .. } => {
                self.summary.closed = true;
                return false;
            }
        }
        true
    }
}

/// Run the script in `data`; None for empty input.
pub fn run(data: &[u8]) -> Option<Summary> {
    let (&settings, rest) = data.split_first()?;
    let mut s = Script { data: rest, at: 0 };
    let (stream, flushes) = client_stream(&mut s);
    let limits = DecoderLimits {
        max_events_per_batch: MAX_EVENTS,
        max_event_bytes: MAX_EVENT,
    };
    let frames = FrameDecoder::new(DecoderConfig {
        max_message_bytes: MAX_MESSAGE,
        skip_oversized: true,
        ..DecoderConfig::default()
    });
    let cfg = TrackerConfig {
        max_sessions: 2,
        max_message_bytes: MAX_MESSAGE,
        max_event_bytes: MAX_EVENT,
        max_events_per_batch: MAX_EVENTS,
        durable: settings & 1 != 0,
        messages: None,
        events: None,
    };
    let buffers = SessionBuffers::new(BufferLimits {
        max_events_per_session: 64,
        max_session_bytes: 1 << 20,
        max_total_bytes: 1 << 22,
    });
    let max_pending = if settings & 2 != 0 { 64 } else { 1 << 20 };
    let mut world = World {
        engine: TrackerEngine::new(frames, ProtocolDecoder::new(limits), cfg),
        state: IngestState::new(buffers, 1 + u64::from(settings >> 2 & 3) * 3, vec![0.1]),
        queue: ChunkQueue::new(4, max_pending),
        replies: FrameDecoder::new(DecoderConfig {
            require_mask: false,
            ..DecoderConfig::default()
        }),
        committed: 0,
        direct: settings & 16 != 0,
        next_chunk: HashMap::new(),
        summary: Summary::default(),
    };
    // Cut the stream into reads whose sizes come from the input.
    let mut at = 0;
    let mut i = 0;
    'reads: while at < stream.len() {
        let size = 1 + usize::from(data[i % data.len()]) * (1 + i % 5);
        i += 1;
        let mut end = (at + size).min(stream.len());
        if let Some(&flush) = flushes.iter().find(|&&f| f > at && f < end) {
            end = flush;
        }
        let mut stop = world.feed(&stream[at..end]);
        world.check_rings();
        while let Some(s) = stop {
            if !world.stop(s) {
                break 'reads;
            }
            stop = world.feed(b"");
            world.check_rings();
        }
        if flushes.contains(&end) {
            world.flush();
            world.release(world.committed);
        }
        at = end;
    }
    world.flush();
    world.release(u64::MAX);
    assert_eq!(
        world.engine.waiting(),
        0,
        "replies left after release(u64::MAX)"
    );
    world.check_rings();
    Some(world.summary)
}

/// Hand-made scripts that reach every kind of step: the seeds the cargo
/// tests replay and mutate (no corpus files needed).
pub fn seeds() -> Vec<Vec<u8>> {
    // Ops: 0 start, 3 batch, 10 end, 11 end without id, 12 junk, 13 ping,
    // 14 flush, 15 raw bytes. Each op: [sid, op, operands...].
    let start = |sid: u8| vec![sid, 0, 0, 7];
    let batch = |sid: u8, b: u8, events: &[u8]| {
        let mut v = vec![sid, 3, b, events.len() as u8];
        v.extend_from_slice(events);
        v.extend_from_slice(&[1, 9]); // frames: how, mask
        v
    };
    let compressed = |mut v: Vec<u8>, how: u8| {
        let n = v.len();
        v[n - 2] = how;
        v.push(4); // no lie
        v
    };
    let end = |sid: u8| vec![sid, 10, 2, 3];
    let flush = vec![0, 14];
    vec![
        // One session, seqs 0, 1, a duplicate, one out of the window, no seq.
        [
            vec![0],
            start(0),
            batch(0, 0, &[1, 2]),
            batch(0, 1, &[3]),
            batch(0, 1, &[3]),
            batch(0, 11, &[4]),
            batch(0, 0x40, &[5, 6]),
            end(0),
        ]
        .concat(),
        // Two sessions interleaved, durable acks, a tiny queue (backpressure),
        // invalid and oversized events, compressed and fragmented messages.
        [
            vec![0x0f],
            start(0),
            start(1),
            batch(0, 0, &[1, 1, 1]),
            batch(1, 0, &[8]),
            batch(0, 1, &[0xc1]),
            batch(1, 1, &[0xe1]),
            compressed(batch(0, 2, &[1, 2]), 0x30),
            compressed(batch(1, 2, &[3]), 0x72),
            flush.clone(),
            batch(0, 3, &[1]),
            start(2),
            end(1),
            start(2),
            batch(2, 0, &[1]),
        ]
        .concat(),
        // End and restart, junk, a ping, a batch for no session, then garbage.
        [
            vec![4],
            batch(0, 0x80, &[1]),
            start(0),
            batch(0, 0, &[1]),
            vec![0, 11, 2, 3],
            start(0),
            batch(0, 0, &[1]),
            vec![0, 12, 5, 40, 41, 42, 43, 44, 1, 3],
            vec![0, 13, 9, 2],
            vec![0, 15, 0, 4, 0xff, 0xff, 0xff, 0xff],
        ]
        .concat(),
    ]
}
