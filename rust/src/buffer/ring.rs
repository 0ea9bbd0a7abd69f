//! One session's in-memory events.
//!
//! A [`SessionRing`] is a queue of raw events with stable indices: the event
//! at the front has index `first_index`, and every appended event gets the
//! next one. Trimming pops from the front only, so an index, once given,
//! always names the same event (or one that is no longer in memory).
//!
//! The ring also remembers where the latest keyframe starts: the latest full
//! snapshot (rrweb type 2) and the meta event (type 4) before it, which a
//! late viewer needs to render anything. Limits on the ring itself trim the
//! oldest events first, so they keep that span whenever it fits; the global
//! budget (see [`super::SessionBuffers`]) asks explicitly to stop before it.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::protocol::chunks;
use crate::protocol::EventsBatch;

/// Events and bytes dropped by one trim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub events: usize,
    pub bytes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct SessionRing {
    /// Only the raw bytes: an event's type and time are read once, at
    /// append (16 bytes less per event, 10 MB per 640,000 events).
    events: VecDeque<Bytes>,
    first_index: u64,
    nbytes: usize,
    /// Index of the latest meta event ever appended (may be trimmed).
    last_meta: Option<u64>,
    /// Index of the latest full snapshot ever appended (may be trimmed).
    full_snapshot: Option<u64>,
    /// Index of the latest meta event before `full_snapshot` (may be trimmed).
    snapshot_meta: Option<u64>,
}

impl SessionRing {
    /// An empty ring whose next event gets index `next_index`.
    pub fn new(next_index: u64) -> Self {
        SessionRing {
            first_index: next_index,
            ..SessionRing::default()
        }
    }

    /// Index of the oldest event in memory (`== next_index()` when empty).
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Index the next appended event will get.
    pub fn next_index(&self) -> u64 {
        self.first_index + self.events.len() as u64
    }

    /// Events in memory.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Raw bytes of the events in memory.
    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// Where a late viewer should start: the meta event before the latest
    /// full snapshot, or the snapshot itself if that meta is not in memory;
    /// None when the snapshot is not in memory either.
    pub fn keyframe_index(&self) -> Option<u64> {
        let snapshot = self.full_snapshot.filter(|&s| s >= self.first_index)?;
        Some(
            self.snapshot_meta
                .filter(|&m| m >= self.first_index)
                .unwrap_or(snapshot),
        )
    }

    /// Whether the ring holds events a late viewer can do without: events
    /// before the keyframe, or any event when there is no keyframe.
    pub fn has_spare(&self) -> bool {
        match self.keyframe_index() {
            Some(k) => self.first_index < k,
            None => !self.events.is_empty(),
        }
    }

    /// Append a batch's events (sharing their bytes); returns the index of
    /// the first one. Does not trim.
    pub fn push(&mut self, batch: &EventsBatch) -> u64 {
        let first = self.next_index();
        let at = |pos: usize| first + pos as u64;
        if let Some(snapshot) = batch.last_full_snapshot() {
            self.full_snapshot = Some(at(snapshot));
            // The meta before it is in this batch, or is the latest one before.
            self.snapshot_meta = batch.meta_before_full_snapshot().map(at).or(self.last_meta);
        }
        if let Some(meta) = batch.last_meta() {
            self.last_meta = Some(at(meta));
        }
        self.events
            .extend(batch.events().iter().map(|e| e.raw().clone()));
        self.nbytes += batch.nbytes();
        first
    }

    fn pop_front(&mut self, trimmed: &mut Trimmed) -> bool {
        match self.events.pop_front() {
            Some(event) => {
                self.first_index += 1;
                self.nbytes -= event.len();
                trimmed.events += 1;
                trimmed.bytes += event.len();
                true
            }
            None => false,
        }
    }

    /// Drop the oldest events until at most `max_events` events and
    /// `max_bytes` bytes remain. Oldest-first trimming to the fewest events
    /// keeps the keyframe span whenever that span alone fits the limits.
    pub fn trim_to(&mut self, max_events: usize, max_bytes: usize) -> Trimmed {
        let mut trimmed = Trimmed::default();
        while self.events.len() > max_events || self.nbytes > max_bytes {
            self.pop_front(&mut trimmed);
        }
        trimmed
    }

    /// Drop the oldest events until at least `bytes` bytes are freed, but
    /// never the event at index `stop_at` or later.
    pub fn trim_bytes(&mut self, bytes: usize, stop_at: Option<u64>) -> Trimmed {
        let stop_at = stop_at.unwrap_or(u64::MAX);
        let mut trimmed = Trimmed::default();
        while trimmed.bytes < bytes && self.first_index < stop_at && self.pop_front(&mut trimmed) {}
        trimmed
    }

    /// Events from `max(from_index, first_index)` on, stopping before
    /// `max_events` or `max_bytes` would be passed, but always at least one
    /// event when there is one. Past the end: an empty slice at `next_index`.
    pub fn read(&self, from_index: u64, max_events: usize, max_bytes: usize) -> Slice {
        let start = from_index.clamp(self.first_index, self.next_index());
        let skip = (start - self.first_index) as usize;
        let mut events = Vec::new();
        let mut nbytes = 0;
        for event in self.events.range(skip..) {
            let fits = events.len() < max_events && nbytes + event.len() <= max_bytes;
            if !fits && !events.is_empty() {
                break;
            }
            nbytes += event.len();
            events.push(event.clone());
        }
        Slice {
            first_index: start,
            events,
            nbytes,
        }
    }
}

/// Consecutive events of one session, sharing the ring's bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slice {
    first_index: u64,
    events: Vec<Bytes>,
    nbytes: usize,
}

impl Slice {
    /// Index of the first event in the slice.
    pub fn first_index(&self) -> u64 {
        self.first_index
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

    /// The events' raw bytes.
    pub fn events(&self) -> &[Bytes] {
        &self.events
    }

    /// Length of [`Self::json`] without building it.
    pub fn json_len(&self) -> usize {
        chunks::array_len(self.events.len(), self.nbytes)
    }

    /// The events as one JSON array, `[e0,e1,...]`, byte-for-byte as received.
    pub fn json(&self) -> Vec<u8> {
        let mut out = vec![0; self.json_len()];
        self.write_json(&mut out);
        out
    }

    /// Write [`Self::json`] into `out`, which must be [`Self::json_len`] long.
    pub fn write_json(&self, out: &mut [u8]) {
        chunks::write_array(self.events.iter().map(|e| &e[..]), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(kinds: &[i64]) -> EventsBatch {
        crate::buffer::test_batch(kinds, 0)
    }

    #[test]
    fn trimmed_meta_falls_back_to_the_snapshot() {
        let mut ring = SessionRing::new(0);
        ring.push(&batch(&[4, 3, 3, 2, 3]));
        assert_eq!(ring.keyframe_index(), Some(0));
        assert!(!ring.has_spare());
        ring.trim_to(4, usize::MAX);
        assert_eq!(ring.keyframe_index(), Some(3));
        assert!(ring.has_spare());
        ring.trim_bytes(usize::MAX, ring.keyframe_index());
        assert_eq!((ring.first_index(), ring.len()), (3, 2));
        assert!(!ring.has_spare());
        ring.trim_bytes(1, None);
        assert_eq!(ring.keyframe_index(), None);
        assert!(ring.has_spare());
    }

    #[test]
    fn trim_bytes_frees_at_least_what_was_asked() {
        let mut ring = SessionRing::new(7);
        ring.push(&batch(&[3, 3, 3]));
        let size = ring.nbytes() / 3;
        let t = ring.trim_bytes(size + 1, None);
        assert_eq!(
            t,
            Trimmed {
                events: 2,
                bytes: 2 * size
            }
        );
        assert_eq!((ring.first_index(), ring.next_index()), (9, 10));
        let t = ring.trim_bytes(usize::MAX, None);
        assert_eq!((t.events, ring.is_empty(), ring.nbytes()), (1, true, 0));
        assert!(!ring.has_spare());
    }

    #[test]
    fn read_before_first_index_starts_at_it() {
        let mut ring = SessionRing::new(10);
        ring.push(&batch(&[3, 3]));
        assert_eq!(ring.read(0, 10, usize::MAX).first_index(), 10);
        assert_eq!(ring.read(11, 10, usize::MAX).count(), 1);
    }
}
