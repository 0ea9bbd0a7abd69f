//! The state every tracker connection of one server shares: live sessions'
//! seq windows and hot counters, their ring buffers, and the counters that
//! metrics read when scraped.

use std::collections::HashMap;
use std::sync::Arc;

use crate::buffer::SessionBuffers;
use crate::protocol::TrackerMessage;

use super::seqs::SeqWindow;
use super::skew::ClockSkew;

/// One live session as the hot path sees it. The rest of its record (the
/// tracker's metadata) stays in Python.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// Tells apart successive openings of one key: a connection that
    /// started an opening that has since ended must not feed the next.
    pub open_id: u64,
    pub seqs: SeqWindow,
    pub skew: ClockSkew,
    pub event_count: u64,
    pub byte_count: u64,
    pub last_event_at: Option<f64>,
    pub keyframe_index: Option<u64>,
    pub clock_skew_ms: Option<f64>,
    /// Ended: batches are refused (`unknown_session`), the ring is kept
    /// until the hub closes the session.
    pub ended: bool,
}

/// Where a session starts or resumes.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    pub next_index: u64,
    pub next_seq: u64,
    pub seqs_above: Vec<u64>,
    pub event_count: u64,
    pub byte_count: u64,
    pub last_event_at: Option<f64>,
    pub keyframe_index: Option<u64>,
    pub clock_skew_ms: Option<f64>,
}

/// Counters read at scrape time (monotonic; Python exports the deltas).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub events_ingested: u64,
    pub bytes_ingested: u64,
    pub batches_duplicate: u64,
    pub batches_acked: u64,
    /// Tracker messages by type: events_batch, session_start, session_end,
    /// snapshot_missing.
    pub messages: [u64; TrackerMessage::TYPES.len()],
    /// Acks by how long after their batch was read they were released:
    /// one count per bucket of `ack_buckets`, then the ones above them.
    pub ack_counts: Vec<u64>,
    pub ack_sum: f64,
}

/// Sessions, rings and counters of one server.
#[derive(Debug)]
pub struct IngestState {
    pub sessions: HashMap<Arc<str>, LiveSession>,
    pub buffers: SessionBuffers,
    pub counters: Counters,
    /// Upper bounds of the ack-latency histogram, seconds.
    pub ack_buckets: Vec<f64>,
    pub max_seq_window: u64,
    next_open_id: u64,
}

impl IngestState {
    pub fn new(buffers: SessionBuffers, max_seq_window: u64, ack_buckets: Vec<f64>) -> Self {
        let counters = Counters {
            ack_counts: vec![0; ack_buckets.len() + 1],
            ..Counters::default()
        };
        IngestState {
            sessions: HashMap::new(),
            buffers,
            counters,
            ack_buckets,
            max_seq_window,
            next_open_id: 1,
        }
    }

    /// Open (or reopen) a session from `resume`: its ring starts at
    /// `next_index`. An opening that is live already is kept as it is.
    /// Returns the opening's id.
    pub fn open(&mut self, key: &str, resume: Resume) -> u64 {
        if let Some(live) = self.sessions.get(key) {
            if !live.ended {
                return live.open_id;
            }
        }
        let open_id = self.next_open_id;
        self.next_open_id += 1;
        self.buffers.close(key);
        self.buffers.open(key, resume.next_index);
        self.sessions.insert(
            Arc::from(key),
            LiveSession {
                open_id,
                seqs: SeqWindow::new(resume.next_seq, resume.seqs_above, self.max_seq_window),
                skew: ClockSkew::new(resume.clock_skew_ms),
                event_count: resume.event_count,
                byte_count: resume.byte_count,
                last_event_at: resume.last_event_at,
                keyframe_index: resume.keyframe_index,
                clock_skew_ms: resume.clock_skew_ms,
                ended: false,
            },
        );
        open_id
    }

    /// Stop accepting batches for the session (its ring stays readable).
    pub fn end(&mut self, key: &str) -> bool {
        match self.sessions.get_mut(key) {
            Some(live) if !live.ended => {
                live.ended = true;
                true
            }
            _ => false,
        }
    }

    /// Forget the session and free its ring.
    pub fn close(&mut self, key: &str) -> bool {
        self.buffers.close(key);
        self.sessions.remove(key).is_some()
    }

    /// Count one ack released `seconds` after its batch was read.
    pub fn observe_ack(&mut self, seconds: f64) {
        let c = &mut self.counters;
        c.batches_acked += 1;
        c.ack_sum += seconds;
        let bucket = self
            .ack_buckets
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.ack_buckets.len());
        c.ack_counts[bucket] += 1;
    }
}
