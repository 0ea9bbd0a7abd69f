//! Fixed-window rate counters, counted on the hot path.
//!
//! The same rules as `replaywire.limits.windows` (read its docstring for
//! why fixed windows): a subject is over its limit when its synced count
//! (`remote`) plus what this instance added since (`unsynced`) plus `n`
//! passes the limit; a window with nothing in it always admits (so one
//! batch larger than the limit is not refused for ever); and a window
//! that ended starts afresh, dropping what was not synced. `remote` is the
//! count over all instances as Redis last answered it. Python's
//! `CounterSync` reads the unsynced increments with [`WindowTable::collect`]
//! and hands the totals back with [`WindowTable::apply`], so the
//! documented overshoot bound is unchanged.
//!
//! Bounds: a table holds at most `max_keys` windows; ended ones are evicted
//! oldest first, and a new subject is refused (`None`) while it is full.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// One subject's count in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub remote: i64,
    pub unsynced: i64,
    /// Last check: windows checked lately are refreshed by every sync.
    pub last_ms: i64,
}

/// A limit of `limit` per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: i64,
    pub window_ms: i64,
}

impl Rate {
    pub fn new(limit: i64, window_ms: i64) -> Self {
        Rate {
            limit,
            window_ms: window_ms.max(1),
        }
    }

    fn start(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.window_ms)
    }

    /// A fresh window holding `now_ms`.
    pub fn window(&self, now_ms: i64) -> Window {
        Window {
            start_ms: self.start(now_ms),
            remote: 0,
            unsynced: 0,
            last_ms: now_ms,
        }
    }

    /// 0 if `n` more fit in `w` now, else the milliseconds until it ends
    /// (at least 1). Rolls a window that ended (returns true then).
    pub fn retry_after(&self, w: &mut Window, n: i64, now_ms: i64) -> (i64, bool) {
        let mut rolled = false;
        if now_ms >= w.start_ms + self.window_ms {
            *w = self.window(now_ms);
            rolled = true;
        }
        w.last_ms = now_ms;
        let used = w.remote + w.unsynced;
        if used == 0 || used + n <= self.limit {
            (0, rolled)
        } else {
            ((w.start_ms + self.window_ms - now_ms).max(1), rolled)
        }
    }
}

/// What a sync sends for one window: its key, start and increments.
pub type SyncRow = (Arc<str>, i64, i64);

/// Every subject's window for one limit.
#[derive(Debug)]
pub struct WindowTable {
    pub name: String,
    pub rate: Rate,
    pub max_keys: usize,
    pub shared: bool,
    windows: HashMap<Arc<str>, Window>,
    /// (window start, key) in the order windows started; stale entries
    /// (the window rolled since) are skipped when evicting.
    order: VecDeque<(i64, Arc<str>)>,
    dirty: HashSet<Arc<str>>,
    recent: HashSet<Arc<str>>,
}

impl WindowTable {
    pub fn new(name: &str, rate: Rate, max_keys: usize, shared: bool) -> Self {
        WindowTable {
            name: name.to_owned(),
            rate,
            max_keys: max_keys.max(1),
            shared,
            windows: HashMap::new(),
            order: VecDeque::new(),
            dirty: HashSet::new(),
            recent: HashSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Window> {
        self.windows.get(key)
    }

    /// 0 if `n` more fit for `key` now, else the ms to wait; `None` when
    /// the table is full of windows that have not ended (refuse).
    pub fn retry_after(&mut self, key: &str, n: i64, now_ms: i64) -> Option<i64> {
        if !self.windows.contains_key(key) {
            if self.windows.len() >= self.max_keys {
                self.evict(now_ms);
                if self.windows.len() >= self.max_keys {
                    return None;
                }
            }
            let key: Arc<str> = Arc::from(key);
            let w = self.rate.window(now_ms);
            self.order.push_back((w.start_ms, key.clone()));
            self.windows.insert(key, w);
        }
        let rate = self.rate;
        let w = self.windows.get_mut(key)?;
        let (retry, rolled) = rate.retry_after(w, n, now_ms);
        if rolled {
            let start = w.start_ms;
            let (key_arc, _) = self.windows.get_key_value(key)?;
            let key_arc = key_arc.clone();
            self.dirty.remove(&key_arc);
            self.recent.remove(&key_arc);
            self.order.push_back((start, key_arc));
        }
        Some(retry)
    }

    /// Count `n` for `key` (after `retry_after` said 0 for this `now`).
    pub fn take(&mut self, key: &str, n: i64) {
        if let Some(w) = self.windows.get_mut(key) {
            w.unsynced += n;
        }
        if self.shared && !self.dirty.contains(key) {
            if let Some((k, _)) = self.windows.get_key_value(key) {
                let k = k.clone();
                self.dirty.insert(k);
            }
        }
    }

    /// Remove the windows that ended (oldest first); returns how many.
    pub fn evict(&mut self, now_ms: i64) -> usize {
        let mut removed = 0;
        while let Some((start, key)) = self.order.front() {
            if start + self.rate.window_ms > now_ms {
                break;
            }
            let (start, key) = (*start, key.clone());
            self.order.pop_front();
            if self.windows.get(&key).is_some_and(|w| w.start_ms == start) {
                self.windows.remove(&key);
                self.dirty.remove(&key);
                self.recent.remove(&key);
                removed += 1;
            }
        }
        removed
    }

    /// The windows to sync: those counted in since the last sync and those
    /// checked since `hot_since_ms` (their view of the total is refreshed
    /// even when this instance adds nothing). Clears the dirty set; give
    /// the keys back with [`Self::restore`] when the sync fails.
    pub fn collect(&mut self, hot_since_ms: i64) -> Vec<SyncRow> {
        let touched: Vec<Arc<str>> = self.dirty.drain().chain(self.recent.drain()).collect();
        let mut out = Vec::with_capacity(touched.len());
        let mut seen = HashSet::with_capacity(touched.len());
        for key in touched {
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some(w) = self.windows.get(&key) else {
                continue;
            };
            if w.last_ms >= hot_since_ms {
                self.recent.insert(key.clone());
            } else if w.unsynced <= 0 {
                continue;
            }
            out.push((key, w.start_ms, w.unsynced));
        }
        out
    }

    /// A failed sync: its windows stay dirty, increments kept.
    pub fn restore<I: IntoIterator<Item = Arc<str>>>(&mut self, keys: I) {
        for key in keys {
            if self.windows.contains_key(&key) {
                self.dirty.insert(key);
            }
        }
    }

    /// A sync's answer for one window: `delta` of its increments reached
    /// Redis, whose total over all instances is `total`. A window that
    /// rolled meanwhile ignores it (old news).
    pub fn apply(&mut self, key: &str, start_ms: i64, delta: i64, total: i64) {
        if let Some(w) = self.windows.get_mut(key) {
            if w.start_ms == start_ms {
                w.unsynced -= delta;
                w.remote = total;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_the_limit_until_the_window_ends() {
        let mut t = WindowTable::new("e", Rate::new(10, 1000), 10, true);
        assert_eq!(t.retry_after("s", 8, 5), Some(0));
        t.take("s", 8);
        assert_eq!(t.retry_after("s", 3, 10), Some(990));
        assert_eq!(t.retry_after("s", 3, 1000), Some(0));
        // A lone batch over the limit is admitted in an empty window.
        assert_eq!(t.retry_after("t", 50, 1000), Some(0));
    }

    #[test]
    fn full_table_refuses_new_subjects_until_eviction() {
        let mut t = WindowTable::new("e", Rate::new(10, 1000), 1, false);
        assert_eq!(t.retry_after("a", 1, 0), Some(0));
        assert_eq!(t.retry_after("b", 1, 10), None);
        assert_eq!(t.retry_after("b", 1, 1000), Some(0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn sync_moves_increments_to_remote() {
        let mut t = WindowTable::new("e", Rate::new(100, 1000), 10, true);
        t.retry_after("s", 5, 0);
        t.take("s", 5);
        let rows = t.collect(10_000);
        assert_eq!(rows.len(), 1);
        let (key, start, delta) = rows[0].clone();
        t.take("s", 2);
        t.apply(&key, start, delta, 40);
        let w = t.get("s").unwrap();
        assert_eq!((w.remote, w.unsynced), (40, 2));
    }
}
