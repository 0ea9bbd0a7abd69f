//! Per-session ring buffers of raw events under a global byte budget.
//!
//! The buffers hold what live viewers are sent and what a late viewer
//! catches up from; storage holds everything. Events are the decoder's
//! [`bytes::Bytes`] slices, shared with the batch they came in, so appending
//! copies no event bytes.
//!
//! - [`ring`]: one session's events, indices and keyframe.
//! - [`sessions`]: all sessions, per-session and global limits, LRU trimming.

pub mod ring;
pub mod sessions;

pub use ring::{SessionRing, Slice, Trimmed};
pub use sessions::{BufferLimits, BufferStats, SessionBuffers};
