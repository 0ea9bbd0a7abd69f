//! Bindings for the ingest room: `TrackerEngine`, `Ingest`, `ChunkQueue`,
//! `Flush` and `RateTable`.
//!
//! The shared objects are frozen wrappers around `Arc<Mutex<..>>`, so that
//! every tracker connection's engine, the hub and the storage writer hold
//! the same state. They are used from the trio loop; the writer's thread
//! only touches a `Flush`, which owns its chunks. A lock is never held
//! across a release of the GIL, so no thread can wait for one while
//! holding the GIL that its holder needs.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyEOFError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::buffers::{read_ring, PyBufferSlice, PyBufferStats};
use super::protocol::{positive, PySessionStart, PySnapshotMissing};
use super::socket;
use super::ws::PyFrameDecoder;
use crate::buffer::{BufferLimits, SessionBuffers};
use crate::codec::{Codec, Compressor};
use crate::ingest::{
    self, ChunkQueue, Ctx, IngestState, Notice, PendingChunk, Rate, Resume, Step, Stop,
    TrackerConfig, WindowTable,
};
use crate::pgcopy::Timestamptz;
use crate::protocol::{Bytes, DecoderLimits, ProtocolDecoder, TrackerMessage};
use crate::ws::{FrameDecoder, WsEvent};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyChunkQueue>()?;
    m.add_class::<PyFlush>()?;
    m.add_class::<PyChunkPayload>()?;
    m.add_class::<PyRateTable>()?;
    m.add_class::<PyIngest>()?;
    m.add_class::<PyTrackerEngine>()?;
    m.add_class::<PyClockSkew>()?;
    m.add("TRACKER_MESSAGE_TYPES", TrackerMessage::TYPES.to_vec())?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock is a bug already reported; the state
    // it protects is plain counters and maps, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn nonneg(name: &str, value: i64) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {value}")))
}

// --- the storage queue -------------------------------------------------------

/// Accepted chunks waiting for storage, numbered by flush generation.
#[pyclass(frozen, module = "replaywire._core", name = "ChunkQueue")]
pub struct PyChunkQueue {
    inner: Arc<Mutex<ChunkQueue>>,
}

fn chunk_tuple<'py>(py: Python<'py>, c: &PendingChunk) -> PyResult<Bound<'py, PyTuple>> {
    // Written once, straight into the Python bytes.
    let payload = PyBytes::new_with(py, c.nbytes, |out| {
        c.write_payload(out);
        Ok(())
    })?;
    (
        &*c.key,
        c.seq,
        c.first_index,
        c.count,
        c.first_ts,
        c.last_ts,
        c.codec(),
        payload,
        c.received_at,
    )
        .into_pyobject(py)
}

#[pymethods]
impl PyChunkQueue {
    #[new]
    #[pyo3(signature = (*, batch_size, max_pending_bytes))]
    fn new(batch_size: i64, max_pending_bytes: i64) -> PyResult<Self> {
        Ok(PyChunkQueue {
            inner: Arc::new(Mutex::new(ChunkQueue::new(
                positive("batch_size", batch_size)?,
                positive("max_pending_bytes", max_pending_bytes)?,
            ))),
        })
    }

    /// The generation chunks queued now belong to.
    #[getter]
    fn generation(&self) -> u64 {
        lock(&self.inner).generation()
    }

    /// Chunks queued for the next flush.
    #[getter]
    fn queued(&self) -> usize {
        lock(&self.inner).queued_len()
    }

    /// Sessions whose counters changed since the last flush was taken.
    #[getter]
    fn touched(&self) -> usize {
        lock(&self.inner).dirty_len()
    }

    /// Chunks queued or in flight.
    #[getter]
    fn pending_count(&self) -> usize {
        lock(&self.inner).pending_count()
    }

    /// Their payload bytes.
    #[getter]
    fn pending_bytes(&self) -> usize {
        lock(&self.inner).pending_bytes()
    }

    #[getter]
    fn max_pending_bytes(&self) -> usize {
        lock(&self.inner).max_pending_bytes
    }

    fn has_room(&self) -> bool {
        lock(&self.inner).has_room()
    }

    /// While spooling, the bytes the spool can still take (None: not
    /// spooling); a batch that would not fit is refused with
    /// `storage_unavailable`.
    fn set_spool_room(&self, room: Option<u64>) {
        let mut queue = lock(&self.inner);
        queue.spool_room = room;
        if room.is_none() {
            queue.refusing = false;
        }
    }

    /// While spooling, the last batch offered was refused for want of room.
    #[getter]
    fn refusing(&self) -> bool {
        lock(&self.inner).refusing
    }

    /// Whether `nbytes` more fit in the spool on top of what is pending
    /// (always, when not spooling); remembered in `refusing`.
    fn offer(&self, nbytes: usize) -> bool {
        lock(&self.inner).offer(nbytes)
    }

    /// Queue a chunk built in Python (a `storage.Chunk`'s fields); False if
    /// its (session, seq) is pending already.
    #[pyo3(signature = (session_id, seq, first_index, event_count, first_timestamp, last_timestamp, codec, payload, received_at))]
    #[allow(clippy::too_many_arguments, reason = "a Chunk's fields")]
    fn put(
        &self,
        session_id: &str,
        seq: i64,
        first_index: i64,
        event_count: i64,
        first_timestamp: Option<f64>,
        last_timestamp: Option<f64>,
        codec: &str,
        payload: &[u8],
        received_at: Option<f64>,
    ) -> PyResult<bool> {
        let chunk = PendingChunk {
            key: Arc::from(session_id),
            seq: nonneg("seq", seq)?,
            first_index: nonneg("first_index", first_index)?,
            count: u32::try_from(event_count).map_err(|_| {
                PyValueError::new_err(format!("event_count {event_count} out of range"))
            })?,
            first_ts: first_timestamp,
            last_ts: last_timestamp,
            received_at,
            generation: 0,
            body: ingest::Body::Encoded {
                codec: Arc::from(codec),
                payload: Bytes::copy_from_slice(payload),
            },
            nbytes: payload.len(),
        };
        let mut queue = lock(&self.inner);
        let key = chunk.key.clone();
        let queued = matches!(queue.put(chunk), ingest::Put::Queued { .. });
        queue.touch(&key);
        Ok(queued)
    }

    /// Take everything queued as the flush of the current generation.
    fn take(&self) -> PyFlush {
        PyFlush {
            inner: Mutex::new(lock(&self.inner).take()),
        }
    }

    /// A flush committed (or spooled): its chunks stop being pending.
    fn commit(&self, flush: &PyFlush) {
        let flush = lock(&flush.inner);
        lock(&self.inner).commit(&flush);
    }

    /// The generation holding the pending chunk, or None.
    fn pending_generation(&self, session_id: &str, seq: i64) -> Option<u64> {
        let seq = u64::try_from(seq).ok()?;
        lock(&self.inner).pending_generation(session_id, seq)
    }

    /// The session's pending chunks as `Chunk` field tuples, by first index.
    fn pending_chunks<'py>(
        &self,
        py: Python<'py>,
        session_id: &str,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let chunks = lock(&self.inner).pending_for(session_id);
        chunks.iter().map(|c| chunk_tuple(py, c)).collect()
    }

    fn __repr__(&self) -> String {
        let q = lock(&self.inner);
        format!(
            "ChunkQueue(generation={}, queued={}, pending_count={}, pending_bytes={})",
            q.generation(),
            q.queued_len(),
            q.pending_count(),
            q.pending_bytes()
        )
    }
}

/// One flush: the chunks queued since the previous one. Owned by the
/// writer; encoded in its thread with the GIL released.
#[pyclass(frozen, module = "replaywire._core", name = "Flush")]
pub struct PyFlush {
    inner: Mutex<ingest::Flush>,
}

#[pymethods]
impl PyFlush {
    #[getter]
    fn generation(&self) -> u64 {
        lock(&self.inner).generation
    }

    /// Keys of the sessions whose counters changed in this flush.
    #[getter]
    fn sessions(&self) -> Vec<String> {
        lock(&self.inner)
            .sessions
            .iter()
            .map(|k| k.to_string())
            .collect()
    }

    /// Keys of the sessions that have chunks in it.
    fn chunk_sessions(&self) -> Vec<String> {
        let flush = lock(&self.inner);
        let mut keys: Vec<String> = flush.chunks.iter().map(|c| c.key.to_string()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    #[getter]
    fn payload_bytes(&self) -> usize {
        lock(&self.inner).payload_bytes()
    }

    fn __len__(&self) -> usize {
        lock(&self.inner).chunks.len()
    }

    /// Every chunk as a tuple of `storage.Chunk`'s fields, in order.
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let flush = lock(&self.inner);
        flush.chunks.iter().map(|c| chunk_tuple(py, c)).collect()
    }

    /// `rows()` with each payload left in Rust, as a `ChunkPayload` (the
    /// ring's own event bytes, shared, not copied): for the memory
    /// backend, which keeps them.
    fn shared_rows<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let flush = lock(&self.inner);
        flush
            .chunks
            .iter()
            .map(|c| {
                (
                    &*c.key,
                    c.seq,
                    c.first_index,
                    c.count,
                    c.first_ts,
                    c.last_ts,
                    c.codec(),
                    Bound::new(py, PyChunkPayload(c.clone()))?,
                    c.received_at,
                )
                    .into_pyobject(py)
            })
            .collect()
    }

    /// Compress every raw chunk's array contents with `codec` (GIL released),
    /// with the calling thread's storage compressor (see
    /// `STORAGE_COMPRESSOR`).
    #[pyo3(signature = (codec, level = None))]
    fn compress(&self, py: Python<'_>, codec: &str, level: Option<i64>) -> PyResult<()> {
        let codec = Codec::new(codec, level).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut compressor = match STORAGE_COMPRESSOR.take() {
            Some(kept) if kept.codec() == codec => kept,
            _ => Compressor::new(codec).map_err(|e| PyValueError::new_err(e.to_string()))?,
        };
        let name = codec.name();
        let mut flush = std::mem::take(&mut *lock(&self.inner));
        let largest = flush.chunks.iter().map(|c| c.nbytes).max().unwrap_or(0);
        let result = py.detach(|| flush.compress(&mut compressor, name));
        *lock(&self.inner) = flush;
        if largest <= KEPT_COMPRESSOR_MAX_INPUT {
            STORAGE_COMPRESSOR.set(Some(compressor));
        }
        result.map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// The chunks as a PostgreSQL binary COPY stream (see `pgcopy`);
    /// `started_at` maps each session key to its start (epoch seconds).
    fn encode_copy<'py>(
        &self,
        py: Python<'py>,
        started_at: &Bound<'py, PyDict>,
        stored_at: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let stored_at = Timestamptz::from_epoch_seconds(stored_at)
            .map_err(|e| PyValueError::new_err(format!("stored_at: {e}")))?;
        let mut starts = std::collections::HashMap::new();
        for (k, v) in started_at.iter() {
            starts.insert(k.extract::<String>()?, v.extract::<f64>()?);
        }
        let flush = std::mem::take(&mut *lock(&self.inner));
        let encoded = py.detach(|| flush.encode_copy(&|key| starts.get(key).copied(), stored_at));
        *lock(&self.inner) = flush;
        let data = encoded.map_err(PyValueError::new_err)?;
        Ok(PyBytes::new(py, &data))
    }

    fn __repr__(&self) -> String {
        let f = lock(&self.inner);
        format!(
            "Flush(generation={}, chunks={})",
            f.generation,
            f.chunks.len()
        )
    }
}

thread_local! {
    /// The compressor of the last flush this thread compressed, kept for
    /// the next: a zstd context's tables cost about as much to set up as
    /// compressing one chunk does. Freed with the thread (the writer's are
    /// trio's cached worker threads), or replaced when the codec changes.
    static STORAGE_COMPRESSOR: std::cell::Cell<Option<Compressor>> =
        const { std::cell::Cell::new(None) };
}

/// A flush with a chunk larger than this does not keep its compressor: the
/// context grows with the largest input (~3.5 MiB after a multi-MB
/// snapshot at zstd 3) and would stay that size in the thread.
const KEPT_COMPRESSOR_MAX_INPUT: usize = 256 * 1024;

/// A stored chunk's payload kept in Rust: `len()` is its size, `bytes()`
/// builds it (the events' JSON array, or the encoded bytes).
#[pyclass(frozen, module = "replaywire._core", name = "ChunkPayload")]
pub struct PyChunkPayload(Arc<PendingChunk>);

#[pymethods]
impl PyChunkPayload {
    fn __len__(&self) -> usize {
        self.0.nbytes
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        PyBytes::new_with(py, self.0.nbytes, |out| {
            self.0.write_payload(out);
            Ok(())
        })
    }
}

// --- rate limits ---------------------------------------------------------------

/// Fixed-window counters of one limit, counted by the tracker engines and
/// synced to Redis by `CounterSync` through `collect`/`apply`/`restore`.
#[pyclass(frozen, module = "replaywire._core", name = "RateTable")]
pub struct PyRateTable {
    inner: Arc<Mutex<WindowTable>>,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    window_ms: i64,
    #[pyo3(get)]
    limit: i64,
    #[pyo3(get)]
    shared: bool,
}

#[pymethods]
impl PyRateTable {
    #[new]
    #[pyo3(signature = (name, limit, window_ms, *, max_keys, shared))]
    fn new(
        name: String,
        limit: i64,
        window_ms: i64,
        max_keys: i64,
        shared: bool,
    ) -> PyResult<Self> {
        let rate = Rate::new(limit, window_ms);
        let table = WindowTable::new(&name, rate, positive("max_keys", max_keys)?, shared);
        Ok(PyRateTable {
            inner: Arc::new(Mutex::new(table)),
            window_ms: rate.window_ms,
            name,
            limit,
            shared,
        })
    }

    fn __len__(&self) -> usize {
        lock(&self.inner).len()
    }

    /// 0 if `n` more fit for `key` now, else ms to wait; None when full.
    fn retry_after(&self, key: &str, n: i64, now_ms: i64) -> Option<i64> {
        lock(&self.inner).retry_after(key, n, now_ms)
    }

    fn take(&self, key: &str, n: i64) {
        lock(&self.inner).take(key, n);
    }

    /// `(remote, unsynced, start_ms)` of `key`'s window, or None.
    fn window(&self, key: &str) -> Option<(i64, i64, i64)> {
        lock(&self.inner)
            .get(key)
            .map(|w| (w.remote, w.unsynced, w.start_ms))
    }

    fn evict(&self, now_ms: i64) -> usize {
        lock(&self.inner).evict(now_ms)
    }

    /// `(key, start_ms, delta)` of every window to sync now.
    fn collect(&self, hot_since_ms: i64) -> Vec<(String, i64, i64)> {
        lock(&self.inner)
            .collect(hot_since_ms)
            .into_iter()
            .map(|(k, s, d)| (k.to_string(), s, d))
            .collect()
    }

    /// A failed sync: these windows stay dirty.
    fn restore(&self, keys: Vec<String>) {
        lock(&self.inner).restore(keys.into_iter().map(Arc::from));
    }

    /// A sync's answers: `(key, start_ms, delta, total)` per window.
    fn apply(&self, rows: Vec<(String, i64, i64, i64)>) {
        let mut table = lock(&self.inner);
        for (key, start, delta, total) in rows {
            table.apply(&key, start, delta, total);
        }
    }
}

// --- shared ingest state --------------------------------------------------------

/// What every tracker connection shares: live sessions (seq windows, hot
/// counters), their ring buffers, the storage queue, scrape-time counters.
/// It also answers the ring reads `SessionBuffers` answers.
#[pyclass(frozen, module = "replaywire._core", name = "Ingest")]
pub struct PyIngest {
    state: Arc<Mutex<IngestState>>,
    queue: Arc<Mutex<ChunkQueue>>,
    /// Events per session, counted by every engine made after it is set.
    session_limit: Mutex<Option<Arc<Mutex<WindowTable>>>>,
}

#[pymethods]
impl PyIngest {
    #[new]
    #[pyo3(signature = (
        queue,
        *,
        max_events_per_session = 20_000,
        max_session_bytes = 33_554_432,
        max_total_bytes = 1_073_741_824,
        max_seq_window = 4096,
        ack_buckets = Vec::new(),
        session_limit = None,
    ))]
    fn new(
        queue: &PyChunkQueue,
        max_events_per_session: i64,
        max_session_bytes: i64,
        max_total_bytes: i64,
        max_seq_window: i64,
        ack_buckets: Vec<f64>,
        session_limit: Option<&PyRateTable>,
    ) -> PyResult<Self> {
        let buffers = SessionBuffers::new(BufferLimits {
            max_events_per_session: positive("max_events_per_session", max_events_per_session)?,
            max_session_bytes: positive("max_session_bytes", max_session_bytes)?,
            max_total_bytes: positive("max_total_bytes", max_total_bytes)?,
        });
        let window = positive("max_seq_window", max_seq_window)? as u64;
        Ok(PyIngest {
            state: Arc::new(Mutex::new(IngestState::new(buffers, window, ack_buckets))),
            queue: queue.inner.clone(),
            session_limit: Mutex::new(session_limit.map(|t| t.inner.clone())),
        })
    }

    /// Open a session (or reopen an ended one) where storage left it; the
    /// storage queue's pending chunks of it and `spooled` spans
    /// (`(seq, end_index)`) count as stored. An opening that is live
    /// already is kept. Returns `(next_seq, next_index)`.
    #[pyo3(signature = (
        key, *, next_index = 0, next_seq = 0, seqs_above = Vec::new(), spooled = Vec::new(),
        event_count = 0, byte_count = 0, last_event_at = None, keyframe_index = None,
        clock_skew_ms = None,
    ))]
    #[allow(clippy::too_many_arguments, reason = "a resume point's fields")]
    fn open(
        &self,
        key: &str,
        next_index: u64,
        next_seq: u64,
        seqs_above: Vec<u64>,
        spooled: Vec<(u64, u64)>,
        event_count: u64,
        byte_count: u64,
        last_event_at: Option<f64>,
        keyframe_index: Option<u64>,
        clock_skew_ms: Option<f64>,
    ) -> (u64, u64) {
        let mut resume = Resume {
            next_index,
            next_seq,
            seqs_above,
            event_count,
            byte_count,
            last_event_at,
            keyframe_index,
            clock_skew_ms,
        };
        for chunk in lock(&self.queue).pending_for(key) {
            resume.next_index = resume.next_index.max(chunk.end_index());
            resume.seqs_above.push(chunk.seq);
        }
        for (seq, end) in spooled {
            resume.next_index = resume.next_index.max(end);
            resume.seqs_above.push(seq);
        }
        let mut state = lock(&self.state);
        state.open(key, resume);
        let live = &state.sessions[key];
        let next_index = state.buffers.session(key).map_or(0, |r| r.next_index());
        (live.seqs.next_seq(), next_index)
    }

    /// Count events per session in `table` (set it before any engine is
    /// made: an engine keeps the table it was made with).
    fn set_session_limit(&self, table: Option<&PyRateTable>) {
        *lock(&self.session_limit) = table.map(|t| t.inner.clone());
    }

    /// Refuse further batches of the session (its ring stays readable).
    fn end(&self, key: &str) -> bool {
        lock(&self.state).end(key)
    }

    /// Forget the session and free its ring.
    fn close(&self, key: &str) -> bool {
        lock(&self.state).close(key)
    }

    /// Whether the session is open and not ended.
    fn is_live(&self, key: &str) -> bool {
        lock(&self.state)
            .sessions
            .get(key)
            .is_some_and(|l| !l.ended)
    }

    /// The session's hot counters: `(event_count, byte_count,
    /// last_event_at, keyframe_index, clock_skew_ms, next_seq)`, or None.
    #[allow(clippy::type_complexity, reason = "a record's fields")]
    fn counters(
        &self,
        key: &str,
    ) -> Option<(u64, u64, Option<f64>, Option<u64>, Option<f64>, u64)> {
        let state = lock(&self.state);
        state.sessions.get(key).map(|l| {
            (
                l.event_count,
                l.byte_count,
                l.last_event_at,
                l.keyframe_index,
                l.clock_skew_ms,
                l.seqs.next_seq(),
            )
        })
    }

    /// Scrape-time counters: `(events, bytes, duplicates, acked,
    /// {message type: count}, ack bucket counts, ack seconds sum)`.
    #[allow(clippy::type_complexity, reason = "one tuple per scrape")]
    fn scrape(&self) -> (u64, u64, u64, u64, Vec<(&'static str, u64)>, Vec<u64>, f64) {
        let state = lock(&self.state);
        let c = &state.counters;
        (
            c.events_ingested,
            c.bytes_ingested,
            c.batches_duplicate,
            c.batches_acked,
            TrackerMessage::TYPES
                .iter()
                .copied()
                .zip(c.messages)
                .collect(),
            c.ack_counts.clone(),
            c.ack_sum,
        )
    }

    // The ring reads of `SessionBuffers`.

    fn __contains__(&self, session_id: &str) -> bool {
        lock(&self.state).buffers.contains(session_id)
    }

    fn __len__(&self) -> usize {
        lock(&self.state).buffers.len()
    }

    fn next_index(&self, session_id: &str) -> PyResult<u64> {
        ring_value(&self.state, session_id, |r| r.next_index())
    }

    fn first_index(&self, session_id: &str) -> PyResult<u64> {
        ring_value(&self.state, session_id, |r| r.first_index())
    }

    fn keyframe_index(&self, session_id: &str) -> PyResult<Option<u64>> {
        ring_value(&self.state, session_id, |r| r.keyframe_index())
    }

    #[pyo3(signature = (session_id, from_index, max_events = 1_000_000, max_bytes = 67_108_864))]
    fn read(
        &self,
        session_id: &str,
        from_index: i64,
        max_events: i64,
        max_bytes: i64,
    ) -> PyResult<PyBufferSlice> {
        ring_value(&self.state, session_id, |r| {
            read_ring(r, from_index, max_events, max_bytes)
        })?
    }

    fn stats(&self) -> PyBufferStats {
        PyBufferStats(lock(&self.state).buffers.stats())
    }

    fn __repr__(&self) -> String {
        let state = lock(&self.state);
        format!(
            "<Ingest sessions={} buffered_events={}>",
            state.sessions.len(),
            state.buffers.stats().events
        )
    }
}

fn ring_value<T>(
    state: &Mutex<IngestState>,
    session_id: &str,
    f: impl FnOnce(&crate::buffer::SessionRing) -> T,
) -> PyResult<T> {
    let state = lock(state);
    state
        .buffers
        .session(session_id)
        .map(f)
        .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(session_id.to_owned()))
}

// --- one connection ----------------------------------------------------------------

/// One tracker connection's hot path (see `ingest::engine`): `feed` once
/// per socket read.
#[pyclass(module = "replaywire._core", name = "TrackerEngine")]
pub struct PyTrackerEngine {
    inner: ingest::TrackerEngine,
    state: Arc<Mutex<IngestState>>,
    queue: Arc<Mutex<ChunkQueue>>,
    session_limit: Option<Arc<Mutex<WindowTable>>>,
    bytes_read: u64,
}

impl PyTrackerEngine {
    /// Run `f` on the engine with the state every engine shares locked.
    fn with_ctx<R>(
        &mut self,
        now: f64,
        mono: f64,
        f: impl FnOnce(&mut ingest::TrackerEngine, &mut Ctx<'_>) -> R,
    ) -> R {
        let mut state = lock(&self.state);
        let mut queue = lock(&self.queue);
        let mut limit = self.session_limit.as_ref().map(|t| lock(t));
        let mut ctx = Ctx {
            state: &mut state,
            queue: &mut queue,
            session_limit: limit.as_deref_mut(),
            now,
            mono,
        };
        f(&mut self.inner, &mut ctx)
    }

    fn step<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        now: f64,
        mono: f64,
        committed: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (step, ready) = self.with_ctx(now, mono, |engine, ctx| {
            let step = engine.feed(data, ctx);
            (step, engine.release(committed, mono, ctx.state))
        });
        step_to_py(py, step, &ready)
    }
}

/// A step as Python sees it: `(replies, stop, notices, woken, flags)`.
fn step_to_py<'py>(py: Python<'py>, step: Step, ready: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    let stop = match step.stop {
        None => py.None().into_bound(py),
        Some(stop) => stop_to_py(py, stop)?,
    };
    let notices = if step.notices.is_empty() {
        py.None().into_bound(py)
    } else {
        let items = step
            .notices
            .into_iter()
            .map(|n| notice_to_py(py, n))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)?.into_any()
    };
    let woken = if step.woken.is_empty() {
        py.None().into_bound(py)
    } else {
        PyList::new(py, step.woken.iter().map(|k| &**k))?.into_any()
    };
    let flags = u8::from(step.queue_started) | (u8::from(step.queue_full) << 1);
    (PyBytes::new(py, ready), stop, notices, woken, flags).into_pyobject(py)
}

#[pymethods]
impl PyTrackerEngine {
    #[new]
    #[pyo3(signature = (
        ingest,
        frames = None,
        *,
        max_sessions = 16,
        max_message_bytes = 67_108_864,
        max_event_bytes = 67_108_864,
        max_events_per_batch = 10_000,
        durable = false,
        limit_messages = 0,
        limit_events = 0,
        window_ms = 10_000,
    ))]
    #[allow(clippy::too_many_arguments, reason = "the connection's limits")]
    fn new(
        ingest: &PyIngest,
        frames: Option<PyRef<'_, PyFrameDecoder>>,
        max_sessions: usize,
        max_message_bytes: usize,
        max_event_bytes: i64,
        max_events_per_batch: i64,
        durable: bool,
        limit_messages: i64,
        limit_events: i64,
        window_ms: i64,
    ) -> PyResult<Self> {
        // The connection's frame rules (limits, permessage-deflate) as the
        // handshake set them; without a decoder, frames come decoded
        // (`feed_messages`).
        let frames = FrameDecoder::new(frames.map(|f| *f.config()).unwrap_or_default());
        let limits = DecoderLimits {
            max_events_per_batch: positive("max_events_per_batch", max_events_per_batch)?,
            max_event_bytes: positive("max_event_bytes", max_event_bytes)?,
        };
        let rate = |limit: i64| (limit > 0).then(|| Rate::new(limit, window_ms));
        let cfg = TrackerConfig {
            max_sessions,
            max_message_bytes,
            max_event_bytes: limits.max_event_bytes,
            max_events_per_batch: limits.max_events_per_batch,
            durable,
            messages: rate(limit_messages),
            events: rate(limit_events),
        };
        Ok(PyTrackerEngine {
            inner: ingest::TrackerEngine::new(frames, ProtocolDecoder::new(limits), cfg),
            state: ingest.state.clone(),
            queue: ingest.queue.clone(),
            session_limit: lock(&ingest.session_limit).clone(),
            bytes_read: 0,
        })
    }

    /// Handle the bytes of one read (`b""`: go on after a stop). Returns
    /// `(replies, stop, notices, woken, flags)`: the frames that may be
    /// sent now (`committed` is the last committed flush), why it stopped
    /// (None: it needs more bytes), what to log or record, the session
    /// keys that got events, and bit 1 "the storage queue was empty", bit
    /// 2 "it holds a full batch".
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        now: f64,
        mono: f64,
        committed: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.bytes_read += data.len() as u64;
        self.step(py, data, now, mono, committed)
    }

    /// `feed` with the bytes read from the socket `fd` (non-blocking) into
    /// the engine's own buffer, which saves making them a bytes object and
    /// copying them: the step, or None when the socket had nothing to read
    /// (the engine then lets go of an empty read buffer). Raises `EOFError`
    /// at the end of the stream and `OSError` if the read fails.
    fn feed_from<'py>(
        &mut self,
        py: Python<'py>,
        fd: i32,
        now: f64,
        mono: f64,
        committed: u64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let read = self.with_ctx(now, mono, |engine, ctx| {
            match engine.feed_from(|buf| socket::recv_into(fd, buf), ctx) {
                Ok((0, _)) => Err(PyEOFError::new_err("the peer closed the connection")),
                Ok((n, step)) => Ok(Some((n, step, engine.release(committed, mono, ctx.state)))),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    engine.release_input();
                    Ok(None)
                }
                Err(err) => Err(err.into()),
            }
        })?;
        let Some((n, step, ready)) = read else {
            return Ok(None);
        };
        self.bytes_read += n as u64;
        step_to_py(py, step, &ready).map(Some)
    }

    /// Bytes fed: those `feed_from` read from the socket and those given
    /// to `feed`.
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// `feed` for messages another frame codec decoded (the wsproto
    /// backend): objects with `is_text` and `data`, or with `is_text`,
    /// `size` and `prefix` for a skipped oversized one.
    fn feed_messages<'py>(
        &mut self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        now: f64,
        mono: f64,
        committed: u64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        for message in messages.iter() {
            let text: bool = message.getattr(intern!(py, "is_text"))?.extract()?;
            let event = if message.hasattr(intern!(py, "prefix"))? {
                let prefix: Vec<u8> = message.getattr(intern!(py, "prefix"))?.extract()?;
                WsEvent::TooLarge {
                    text,
                    size: message.getattr(intern!(py, "size"))?.extract()?,
                    prefix: Bytes::from(prefix),
                }
            } else {
                let data: Vec<u8> = message.getattr(intern!(py, "data"))?.extract()?;
                WsEvent::Message {
                    text,
                    data: Bytes::from(data),
                }
            };
            self.inner.push_message(event);
        }
        self.step(py, b"", now, mono, committed)
    }

    /// The replies that may go now that `committed` is the last committed
    /// flush (durable acks), as one buffer of frames.
    fn release<'py>(&mut self, py: Python<'py>, committed: u64, mono: f64) -> Bound<'py, PyBytes> {
        let ready = {
            let mut state = lock(&self.state);
            self.inner.release(committed, mono, &mut state)
        };
        PyBytes::new(py, &ready)
    }

    /// The session of the `session_start` the engine stopped on is open:
    /// answer `session_started`. False if `key` is not live.
    fn started(&mut self, client_id: &str, key: &str) -> bool {
        let state = lock(&self.state);
        self.inner.started(client_id, key, &state)
    }

    /// The session of the `session_end` the engine stopped on has ended:
    /// answer `session_ended`.
    fn ended(&mut self, client_id: &str) {
        self.inner.ended(client_id);
    }

    /// Answer the message the engine stopped on with an error.
    #[pyo3(signature = (code, message, seq = None, retry_after_ms = None))]
    fn refuse(&mut self, code: &str, message: &str, seq: Option<i64>, retry_after_ms: Option<i64>) {
        self.inner.refuse(code, message, seq, retry_after_ms);
    }

    /// The flush generation the first waiting reply needs (0: none waits).
    #[getter]
    fn waiting_for(&self) -> u64 {
        self.inner.waiting_for()
    }

    /// Replies not sent yet.
    #[getter]
    fn waiting(&self) -> usize {
        self.inner.waiting()
    }

    /// Data messages its frame decoder completed (not those fed decoded).
    #[getter]
    fn messages(&self) -> u64 {
        self.inner.received()
    }

    /// Messages decoded but not handled yet (after a stop).
    #[getter]
    fn held(&self) -> usize {
        self.inner.held()
    }

    #[getter]
    fn buffered_bytes(&self) -> usize {
        self.inner.frames().buffered_bytes()
    }

    /// Bytes allocated for what the connection holds between reads (frame
    /// buffer, decoded messages, replies): zero once it is idle.
    #[getter]
    fn buffer_capacity(&self) -> usize {
        self.inner.buffer_capacity()
    }

    #[getter]
    fn frame_remaining(&self) -> usize {
        self.inner.frames().frame_remaining()
    }

    #[getter]
    fn failed(&self) -> bool {
        self.inner.frames().error().is_some()
    }

    #[getter]
    fn close_received(&self) -> bool {
        self.inner.frames().close_received()
    }

    /// Keys of the sessions started on this connection.
    #[getter]
    fn session_keys(&self) -> Vec<String> {
        self.inner.session_keys().map(|k| k.to_string()).collect()
    }
}

fn stop_to_py(py: Python<'_>, stop: Stop) -> PyResult<Bound<'_, PyAny>> {
    Ok(match stop {
        Stop::Start(start) => ("start", Bound::new(py, PySessionStart(start))?)
            .into_pyobject(py)?
            .into_any(),
        Stop::End { client_id, key } => ("end", client_id, &*key).into_pyobject(py)?.into_any(),
        Stop::Backpressure => ("backpressure",).into_pyobject(py)?.into_any(),
        Stop::Close { code, reason } => ("close", code, reason).into_pyobject(py)?.into_any(),
        Stop::Failed {
            close_code,
            message,
        } => ("failed", close_code, message)
            .into_pyobject(py)?
            .into_any(),
    })
}

fn notice_to_py(py: Python<'_>, notice: Notice) -> PyResult<Bound<'_, PyAny>> {
    Ok(match notice {
        Notice::Error {
            code,
            message,
            seq,
            key,
            limit,
        } => ("error", code, message, seq, key.as_deref(), limit)
            .into_pyobject(py)?
            .into_any(),
        Notice::SnapshotMissing { key, notice } => (
            "snapshot_missing",
            &*key,
            Bound::new(py, PySnapshotMissing(notice))?,
        )
            .into_pyobject(py)?
            .into_any(),
    })
}

/// A session's clock-skew estimate (`ingest::skew`), for tests and tools:
/// the engines keep one per live session.
#[pyclass(module = "replaywire._core", name = "ClockSkew")]
pub struct PyClockSkew(ingest::ClockSkew);

#[pymethods]
impl PyClockSkew {
    #[new]
    #[pyo3(signature = (estimate = None))]
    fn new(estimate: Option<f64>) -> Self {
        PyClockSkew(ingest::ClockSkew::new(estimate))
    }

    /// Add one accepted batch (its newest event's timestamp in tracker ms,
    /// None without events; the server's epoch seconds); the estimate.
    fn add(&mut self, max_timestamp: Option<f64>, received_at: f64) -> Option<f64> {
        self.0.add(max_timestamp, received_at)
    }

    #[getter]
    fn estimate(&self) -> Option<f64> {
        self.0.estimate()
    }
}
