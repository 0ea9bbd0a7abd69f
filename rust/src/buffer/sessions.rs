//! Every live session's ring, under one global byte budget.
//!
//! Each append gets a tick from a counter that only grows; a session's tick
//! is that of its latest append. Two ordered indexes map ticks to sessions,
//! oldest first:
//!
//! - `holding`: sessions with any event in memory;
//! - `spare`: sessions with events a late viewer can do without (before the
//!   keyframe, or all of them when there is no keyframe).
//!
//! When the total is over budget, trimming first takes spare events from the
//! least recently appended sessions, then, only if that is not enough, cuts
//! into keyframes, again least recently appended first. The session being
//! appended has the newest tick, so it is always trimmed last. Each step of
//! the loop drops at least one event or takes a session out of an index, so
//! an append costs O(log n) plus O(log n) per dropped event: no scan of all
//! sessions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ring::{SessionRing, Slice, Trimmed};
use crate::protocol::EventsBatch;

/// Memory limits of [`SessionBuffers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    pub max_events_per_session: usize,
    pub max_session_bytes: usize,
    pub max_total_bytes: usize,
}

impl Default for BufferLimits {
    fn default() -> Self {
        BufferLimits {
            max_events_per_session: 20_000,
            max_session_bytes: 32 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    pub sessions: usize,
    pub events: usize,
    /// Sum of the raw sizes of the events in memory.
    pub bytes: usize,
    /// Events dropped by trimming since the buffers were created.
    pub trimmed_events: u64,
}

#[derive(Debug)]
struct Entry {
    id: Arc<str>,
    ring: SessionRing,
    tick: u64,
}

/// Recent events of every live session. See the module docs for trimming.
#[derive(Debug, Default)]
pub struct SessionBuffers {
    limits: BufferLimits,
    sessions: HashMap<Arc<str>, Entry>,
    holding: BTreeMap<u64, Arc<str>>,
    spare: BTreeMap<u64, Arc<str>>,
    tick: u64,
    events: usize,
    bytes: usize,
    trimmed_events: u64,
}

impl SessionBuffers {
    pub fn new(limits: BufferLimits) -> Self {
        SessionBuffers {
            limits,
            ..SessionBuffers::default()
        }
    }

    pub fn limits(&self) -> &BufferLimits {
        &self.limits
    }

    /// Start buffering a session whose next event gets `next_index`.
    /// Returns false, changing nothing, if it is already open.
    pub fn open(&mut self, id: &str, next_index: u64) -> bool {
        if self.sessions.contains_key(id) {
            return false;
        }
        let id: Arc<str> = Arc::from(id);
        self.tick += 1;
        let entry = Entry {
            id: id.clone(),
            ring: SessionRing::new(next_index),
            tick: self.tick,
        };
        self.sessions.insert(id, entry);
        true
    }

    /// Drop a session's buffer; false if it was not open.
    pub fn close(&mut self, id: &str) -> bool {
        let Some(entry) = self.sessions.remove(id) else {
            return false;
        };
        self.holding.remove(&entry.tick);
        self.spare.remove(&entry.tick);
        self.events -= entry.ring.len();
        self.bytes -= entry.ring.nbytes();
        true
    }

    pub fn contains(&self, id: &str) -> bool {
        self.sessions.contains_key(id)
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// One session's ring, for its indices and reads.
    pub fn session(&self, id: &str) -> Option<&SessionRing> {
        self.sessions.get(id).map(|e| &e.ring)
    }

    /// Events of a session from `from_index` on; see [`SessionRing::read`].
    pub fn read(
        &self,
        id: &str,
        from_index: u64,
        max_events: usize,
        max_bytes: usize,
    ) -> Option<Slice> {
        self.session(id)
            .map(|ring| ring.read(from_index, max_events, max_bytes))
    }

    /// Add a batch's events to an open session (sharing, not copying, their
    /// bytes) and trim to the limits. Returns the index given to the batch's
    /// first event, or None if the session is not open.
    pub fn append(&mut self, id: &str, batch: &EventsBatch) -> Option<u64> {
        let limits = self.limits;
        let entry = self.sessions.get_mut(id)?;
        self.tick += 1;
        let tick = self.tick;
        let old_tick = std::mem::replace(&mut entry.tick, tick);
        let first = entry.ring.push(batch);
        let trimmed = entry
            .ring
            .trim_to(limits.max_events_per_session, limits.max_session_bytes);
        let id = entry.id.clone();
        let (holding, spare) = (!entry.ring.is_empty(), entry.ring.has_spare());

        self.events += batch.count();
        self.bytes += batch.nbytes();
        self.forget(trimmed);
        self.holding.remove(&old_tick);
        self.spare.remove(&old_tick);
        self.index(tick, id, holding, spare);
        self.enforce_budget();
        Some(first)
    }

    pub fn stats(&self) -> BufferStats {
        BufferStats {
            sessions: self.sessions.len(),
            events: self.events,
            bytes: self.bytes,
            trimmed_events: self.trimmed_events,
        }
    }

    fn forget(&mut self, trimmed: Trimmed) {
        self.events -= trimmed.events;
        self.bytes -= trimmed.bytes;
        self.trimmed_events += trimmed.events as u64;
    }

    /// Put a session in the indexes its state calls for (it is in neither).
    fn index(&mut self, tick: u64, id: Arc<str>, holding: bool, spare: bool) {
        if spare {
            self.spare.insert(tick, id.clone());
        }
        if holding {
            self.holding.insert(tick, id);
        }
    }

    fn enforce_budget(&mut self) {
        while self.bytes > self.limits.max_total_bytes {
            let excess = self.bytes - self.limits.max_total_bytes;
            // Spare events first, then keyframes; oldest append first.
            let (tick, keep_keyframe) =
                match (self.spare.first_key_value(), self.holding.first_key_value()) {
                    (Some((&tick, _)), _) => (tick, true),
                    (None, Some((&tick, _))) => (tick, false),
                    (None, None) => break,
                };
            let id = self
                .holding
                .remove(&tick)
                .expect("spare sessions hold events");
            self.spare.remove(&tick);
            let entry = self
                .sessions
                .get_mut(&id)
                .expect("indexed sessions are open");
            let stop_at = if keep_keyframe {
                entry.ring.keyframe_index()
            } else {
                None
            };
            let trimmed = entry.ring.trim_bytes(excess, stop_at);
            let (holding, spare) = (!entry.ring.is_empty(), entry.ring.has_spare());
            self.forget(trimmed);
            self.index(tick, id, holding, spare);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SessionBuffers {
        /// The indexes and totals agree with the sessions' state.
        fn check(&self) {
            let (mut events, mut bytes) = (0, 0);
            for (id, entry) in &self.sessions {
                events += entry.ring.len();
                bytes += entry.ring.nbytes();
                let holding = self.holding.get(&entry.tick);
                let spare = self.spare.get(&entry.tick);
                assert_eq!(holding.is_some(), !entry.ring.is_empty(), "{id}");
                assert_eq!(spare.is_some(), entry.ring.has_spare(), "{id}");
                assert!(holding.is_none_or(|h| h == id) && spare.is_none_or(|s| s == id));
                assert!(entry.ring.len() <= self.limits.max_events_per_session);
                assert!(entry.ring.nbytes() <= self.limits.max_session_bytes);
            }
            let indexed =
                |m: &BTreeMap<u64, Arc<str>>| m.values().all(|id| self.sessions.contains_key(id));
            assert!(indexed(&self.holding) && indexed(&self.spare));
            assert_eq!(
                self.holding.len(),
                self.sessions
                    .values()
                    .filter(|e| !e.ring.is_empty())
                    .count()
            );
            assert_eq!((events, bytes), (self.events, self.bytes));
            assert!(self.bytes <= self.limits.max_total_bytes);
        }
    }

    use crate::buffer::test_batch as batch;

    #[test]
    fn indexes_stay_consistent_under_random_operations() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut b = SessionBuffers::new(BufferLimits {
            max_events_per_session: 40,
            max_session_bytes: 2_000,
            max_total_bytes: 5_000,
        });
        let ids = ["a", "b", "c", "d", "e", "f"];
        for _ in 0..20_000 {
            let id = ids[next(ids.len() as u64) as usize];
            match next(20) {
                0 => {
                    b.close(id);
                }
                1 | 2 => {
                    b.open(id, next(100));
                }
                _ => {
                    let kinds: Vec<i64> = (0..next(12))
                        .map(|_| [2, 3, 3, 3, 4][next(5) as usize])
                        .collect();
                    let _ = b.append(id, &batch(&kinds, next(150) as usize));
                }
            }
            b.check();
        }
        assert!(b.stats().trimmed_events > 0);
    }
}
