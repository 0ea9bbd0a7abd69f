//! Bindings for the session ring buffers: `SessionBuffers`, `BufferSlice`,
//! `BufferStats`.
//!
//! `append` takes the `EventsBatch` object itself and reads its core batch
//! in place: the events' bytes are reference-counted, never copied.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::protocol::{positive, PyEventsBatch};
use crate::buffer::{BufferLimits, BufferStats, SessionBuffers, SessionRing, Slice};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBufferSlice>()?;
    m.add_class::<PyBufferStats>()?;
    m.add_class::<PySessionBuffers>()?;
    Ok(())
}

fn index(name: &str, value: i64) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {value}")))
}

fn unknown(session_id: &str) -> PyErr {
    PyKeyError::new_err(session_id.to_owned())
}

#[pyclass(frozen, module = "replaywire._core", name = "BufferSlice")]
pub(super) struct PyBufferSlice(pub(super) Slice);

#[pymethods]
impl PyBufferSlice {
    #[getter]
    fn first_index(&self) -> u64 {
        self.0.first_index()
    }

    #[getter]
    fn count(&self) -> usize {
        self.0.count()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.0.nbytes()
    }

    /// The events as one JSON array, byte-for-byte as received.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        PyBytes::new_with(py, self.0.json_len(), |out| {
            self.0.write_json(out);
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "BufferSlice(first_index={}, count={}, nbytes={})",
            self.0.first_index(),
            self.0.count(),
            self.0.nbytes()
        )
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "BufferStats")]
pub(super) struct PyBufferStats(pub(super) BufferStats);

#[pymethods]
impl PyBufferStats {
    #[getter]
    fn sessions(&self) -> usize {
        self.0.sessions
    }

    #[getter]
    fn events(&self) -> usize {
        self.0.events
    }

    #[getter]
    fn bytes(&self) -> usize {
        self.0.bytes
    }

    #[getter]
    fn trimmed_events(&self) -> u64 {
        self.0.trimmed_events
    }

    fn __repr__(&self) -> String {
        let s = &self.0;
        format!(
            "BufferStats(sessions={}, events={}, bytes={}, trimmed_events={})",
            s.sessions, s.events, s.bytes, s.trimmed_events
        )
    }
}

/// `read`'s arguments checked, then the ring read (shared with `Ingest.read`).
pub(super) fn read_ring(
    ring: &SessionRing,
    from_index: i64,
    max_events: i64,
    max_bytes: i64,
) -> PyResult<PyBufferSlice> {
    let from_index = index("from_index", from_index)?;
    let max_events = positive("max_events", max_events)?;
    let max_bytes = positive("max_bytes", max_bytes)?;
    Ok(PyBufferSlice(ring.read(from_index, max_events, max_bytes)))
}

#[pyclass(module = "replaywire._core", name = "SessionBuffers")]
struct PySessionBuffers {
    inner: SessionBuffers,
}

impl PySessionBuffers {
    fn ring(&self, session_id: &str) -> PyResult<&SessionRing> {
        self.inner
            .session(session_id)
            .ok_or_else(|| unknown(session_id))
    }
}

#[pymethods]
impl PySessionBuffers {
    #[new]
    #[pyo3(signature = (
        *,
        max_events_per_session = 20_000,
        max_session_bytes = 33_554_432,
        max_total_bytes = 1_073_741_824,
    ))]
    fn new(
        max_events_per_session: i64,
        max_session_bytes: i64,
        max_total_bytes: i64,
    ) -> PyResult<Self> {
        Ok(PySessionBuffers {
            inner: SessionBuffers::new(BufferLimits {
                max_events_per_session: positive("max_events_per_session", max_events_per_session)?,
                max_session_bytes: positive("max_session_bytes", max_session_bytes)?,
                max_total_bytes: positive("max_total_bytes", max_total_bytes)?,
            }),
        })
    }

    #[pyo3(signature = (session_id, next_index = 0))]
    fn open(&mut self, session_id: &str, next_index: i64) -> PyResult<bool> {
        let next_index = index("next_index", next_index)?;
        Ok(self.inner.open(session_id, next_index))
    }

    fn close(&mut self, session_id: &str) -> bool {
        self.inner.close(session_id)
    }

    fn __contains__(&self, session_id: &str) -> bool {
        self.inner.contains(session_id)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn append(&mut self, session_id: &str, batch: &Bound<'_, PyEventsBatch>) -> PyResult<u64> {
        self.inner
            .append(session_id, &batch.get().inner)
            .ok_or_else(|| unknown(session_id))
    }

    fn next_index(&self, session_id: &str) -> PyResult<u64> {
        Ok(self.ring(session_id)?.next_index())
    }

    fn first_index(&self, session_id: &str) -> PyResult<u64> {
        Ok(self.ring(session_id)?.first_index())
    }

    fn keyframe_index(&self, session_id: &str) -> PyResult<Option<u64>> {
        Ok(self.ring(session_id)?.keyframe_index())
    }

    #[pyo3(signature = (session_id, from_index, max_events = 1_000_000, max_bytes = 67_108_864))]
    fn read(
        &self,
        session_id: &str,
        from_index: i64,
        max_events: i64,
        max_bytes: i64,
    ) -> PyResult<PyBufferSlice> {
        read_ring(self.ring(session_id)?, from_index, max_events, max_bytes)
    }

    fn stats(&self) -> PyBufferStats {
        PyBufferStats(self.inner.stats())
    }

    fn __repr__(&self) -> String {
        let s = self.inner.stats();
        format!(
            "<SessionBuffers sessions={} events={} bytes={}>",
            s.sessions, s.events, s.bytes
        )
    }
}
