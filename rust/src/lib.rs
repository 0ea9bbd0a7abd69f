//! replaywire's sans-IO core.
//!
//! Everything here works on bytes and in-memory state only: no sockets, no
//! clocks, no threads of its own, no runtime. The trio server owns I/O and
//! calls in once per socket read or per flush (see `python/`).
//!
//! - [`ws`]: RFC 6455 frame decoding (server side) and frame encoding.
//! - [`protocol`]: decoding of tracker/viewer JSON messages and event validation.
//! - [`buffer`]: per-session ring buffers of raw events under a global byte budget.
//! - [`ingest`]: the tracker hot path: one engine per connection, fed once per read.
//! - [`pgcopy`]: PostgreSQL binary `COPY` streams of stored chunk rows.
//! - [`codec`]: compression of stored chunks and live deltas (zstd, deflate).

pub mod buffer;
pub mod codec;
pub mod error;
pub mod ingest;
pub mod pgcopy;
pub mod protocol;
pub mod ws;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, MessageCode, Result};
