//! Which batch seqs of a session have been accepted.
//!
//! Trackers number their batches 0, 1, 2, ... per session and resend unacked
//! ones after a reconnect, so a seq may arrive twice or out of order. A
//! duplicate must be acked again but not stored twice. The window keeps the
//! contiguous watermark (every seq below `next_seq` is accepted) plus the
//! few accepted seqs above it; it never tracks more than `max_ahead` seqs
//! above the watermark, so its memory is bounded whatever a tracker sends.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqWindow {
    next_seq: u64,
    above: BTreeSet<u64>,
    max_ahead: u64,
}

impl SeqWindow {
    /// A window whose seqs below `next_seq` and in `above` are accepted.
    pub fn new(next_seq: u64, above: impl IntoIterator<Item = u64>, max_ahead: u64) -> Self {
        let mut window = SeqWindow {
            next_seq,
            above: above.into_iter().filter(|&s| s >= next_seq).collect(),
            max_ahead: max_ahead.max(1),
        };
        window.advance();
        window
    }

    /// The lowest seq not accepted yet: what a resumed tracker continues from.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn max_ahead(&self) -> u64 {
        self.max_ahead
    }

    pub fn seen(&self, seq: u64) -> bool {
        seq < self.next_seq || self.above.contains(&seq)
    }

    /// False when `seq` is too far ahead of the watermark to track.
    pub fn fits(&self, seq: u64) -> bool {
        seq < self.next_seq.saturating_add(self.max_ahead)
    }

    pub fn add(&mut self, seq: u64) {
        if seq == self.next_seq {
            self.next_seq += 1;
            self.advance();
        } else if seq > self.next_seq {
            self.above.insert(seq);
        }
    }

    fn advance(&mut self) {
        while self.above.remove(&self.next_seq) {
            self.next_seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_seqs_close_the_gap() {
        let mut w = SeqWindow::new(0, [], 8);
        w.add(1);
        w.add(2);
        assert_eq!(w.next_seq(), 0);
        assert!(w.seen(2) && !w.seen(0));
        w.add(0);
        assert_eq!(w.next_seq(), 3);
        assert!(w.fits(10) && !w.fits(11));
    }

    #[test]
    fn a_pending_seq_at_the_watermark_moves_it() {
        let w = SeqWindow::new(0, [0], 8);
        assert_eq!(w.next_seq(), 1);
    }

    #[test]
    fn resume_state_is_normalised() {
        let w = SeqWindow::new(2, [1, 2, 3, 5], 8);
        assert_eq!(w.next_seq(), 4);
        assert!(w.seen(5) && !w.seen(4));
    }
}
