//! How far a tracker's clock is off the server's, measured from its batches.
//!
//! For a batch whose newest event was stamped `max_timestamp` (tracker ms)
//! and that the server accepted at `received_at` (server seconds),
//! `max_timestamp - received_at * 1000 = skew - delay`, where the delay
//! (batching, network, reconnects, resends) is never negative: every batch
//! gives a lower bound of the skew and the shortest delay gives the best.
//! So the estimate is the largest sample, except that one outlier (an event
//! stamped far in the future) must not move it for good: it is the *second*
//! largest sample once there are two. O(1) per batch, two floats per
//! session. A tracker clock that changes mid-session keeps the larger
//! offset; sessions are short compared with how rarely that happens.

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClockSkew {
    best: Option<f64>,
    second: Option<f64>,
}

impl ClockSkew {
    /// Seeded with a resumed session's stored estimate, which counts as two
    /// samples (it already was a second-largest one).
    pub fn new(estimate: Option<f64>) -> Self {
        ClockSkew {
            best: estimate,
            second: estimate,
        }
    }

    /// Add one accepted batch; returns the estimate. Non-finite timestamps
    /// and batches without events (`None`) change nothing.
    pub fn add(&mut self, max_timestamp: Option<f64>, received_at: f64) -> Option<f64> {
        let Some(ts) = max_timestamp.filter(|t| t.is_finite()) else {
            return self.estimate();
        };
        let sample = ts - received_at * 1000.0;
        match self.best {
            None => self.best = Some(sample),
            Some(best) if sample > best => {
                self.second = Some(best);
                self.best = Some(sample);
            }
            _ if self.second.is_none_or(|s| sample > s) => self.second = Some(sample),
            _ => {}
        }
        self.estimate()
    }

    /// The second largest sample, or the only one; None before any.
    pub fn estimate(&self) -> Option<f64> {
        self.second.or(self.best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outlier_is_ignored() {
        let mut s = ClockSkew::new(None);
        assert_eq!(s.add(Some(1_000.0), 0.5), Some(500.0));
        assert_eq!(s.add(Some(1_000_000.0), 0.5), Some(500.0));
        assert_eq!(s.add(Some(1_200.0), 0.5), Some(700.0));
        assert_eq!(s.add(Some(f64::NAN), 0.5), Some(700.0));
    }
}
