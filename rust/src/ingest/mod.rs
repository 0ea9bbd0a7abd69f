//! The ingest hot path: tracker connections' bytes in, acks, ring appends
//! and storage chunks out, with one call per socket read.
//!
//! - [`engine`]: one tracker connection, sans-IO ([`TrackerEngine`]).
//! - [`state`]: what all connections share: live sessions' seq windows and
//!   hot counters, the ring buffers, the scrape-time counters.
//! - [`queue`]: accepted chunks by flush generation, the storage writer's
//!   input ([`ChunkQueue`], [`Flush`]).
//! - [`seqs`], [`skew`]: a session's seq window and clock-skew estimate.
//! - [`windows`]: fixed-window rate counters, synced to Redis by Python.

pub mod engine;
pub mod queue;
pub mod seqs;
pub mod skew;
pub mod state;
pub mod windows;

pub use engine::{Ctx, Notice, Step, Stop, TrackerConfig, TrackerEngine};
pub use queue::{Body, ChunkQueue, Flush, PendingChunk, Put};
pub use seqs::SeqWindow;
pub use skew::ClockSkew;
pub use state::{Counters, IngestState, LiveSession, Resume};
pub use windows::{Rate, Window, WindowTable};
