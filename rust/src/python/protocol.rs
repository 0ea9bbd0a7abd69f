//! Bindings for the protocol room: `ProtocolDecoder`, the message classes,
//! `split_events` and `join_events`.
//!
//! Message objects are frozen wrappers around the core structs; their
//! properties convert on access. `EventsBatch` keeps the core batch (and so
//! the events' shared bytes) for `SessionBuffers.append` to take without a
//! copy.

use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::marker::Ungil;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::protocol::{
    self, DecoderLimits, EventsBatch, GetSessionEvents, ProtocolDecoder, SessionEnd, SessionStart,
    SnapshotMissing, TrackerMessage, ViewerJoin, ViewerLeave, ViewerMessage, Viewport,
};
use crate::python::to_pyerr;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyViewport>()?;
    m.add_class::<PySessionStart>()?;
    m.add_class::<PyEventsBatch>()?;
    m.add_class::<PySessionEnd>()?;
    m.add_class::<PyViewerJoin>()?;
    m.add_class::<PyViewerLeave>()?;
    m.add_class::<PyGetSessionEvents>()?;
    m.add_class::<PySnapshotMissing>()?;
    m.add_class::<PyProtocolDecoder>()?;
    // The stub's `TrackerMessage` and `ViewerMessage` aliases, real at
    // runtime so that `isinstance(msg, ViewerMessage)` works: each a
    // `types.UnionType`.
    let py = m.py();
    let tracker_message = py
        .get_type::<PySessionStart>()
        .into_any()
        .bitor(py.get_type::<PyEventsBatch>())?
        .bitor(py.get_type::<PySessionEnd>())?
        .bitor(py.get_type::<PySnapshotMissing>())?;
    m.add("TrackerMessage", tracker_message)?;
    let viewer_message = py
        .get_type::<PyViewerJoin>()
        .into_any()
        .bitor(py.get_type::<PyViewerLeave>())?
        .bitor(py.get_type::<PyGetSessionEvents>())?;
    m.add("ViewerMessage", viewer_message)?;
    m.add_function(wrap_pyfunction!(split_events, m)?)?;
    m.add_function(wrap_pyfunction!(join_events, m)?)?;
    Ok(())
}

/// A limit given from Python: a positive int.
pub(super) fn positive(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| PyValueError::new_err(format!("{name} must be >= 1, got {value}")))
}

/// Messages at least this large are decoded with the GIL released; below
/// it, releasing and taking it back costs more than it frees.
const DETACH_MIN_BYTES: usize = 4096;

/// `decode` of a message of `len` bytes, with the GIL released when that
/// pays (see [`DETACH_MIN_BYTES`]).
fn detach_if_large<T: Ungil>(py: Python<'_>, len: usize, decode: impl Ungil + FnOnce() -> T) -> T {
    if len >= DETACH_MIN_BYTES {
        py.detach(decode)
    } else {
        decode()
    }
}

/// Messages at least this large are decoded in place (see `decode_tracker`); below
/// it, copying the events' span is cheaper than keeping the whole message
/// alive for as long as any of its events is buffered.
const SHARE_MIN_BYTES: usize = 1 << 20;

#[pyclass(module = "replaywire._core", name = "ProtocolDecoder")]
struct PyProtocolDecoder {
    inner: ProtocolDecoder,
}

#[pymethods]
impl PyProtocolDecoder {
    #[new]
    #[pyo3(signature = (*, max_events_per_batch = 10_000, max_event_bytes = 67_108_864))]
    fn new(max_events_per_batch: i64, max_event_bytes: i64) -> PyResult<Self> {
        Ok(PyProtocolDecoder {
            inner: ProtocolDecoder::new(DecoderLimits {
                max_events_per_batch: positive("max_events_per_batch", max_events_per_batch)?,
                max_event_bytes: positive("max_event_bytes", max_event_bytes)?,
            }),
        })
    }

    /// Decode one message of a tracker connection; raises `MessageError`
    /// when it is invalid, or `not_allowed` for a viewer message.
    fn decode_tracker<'py>(
        &self,
        py: Python<'py>,
        data: PyBackedBytes,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Decoding a batch takes tens of microseconds: let the storage
        // writer's thread run meanwhile.
        let inner = &self.inner;
        let message = if data.len() >= SHARE_MIN_BYTES {
            // A large message (a full snapshot of tens of MB) is not copied:
            // its events are slices of the caller's `bytes`, kept alive by
            // the batch (and the ring buffer) rather than duplicated.
            let shared = Bytes::from_owner(data);
            py.detach(|| inner.decode_tracker_bytes(&shared))
        } else {
            detach_if_large(py, data.len(), || inner.decode_tracker(&data))
        }
        .map_err(|e| to_pyerr(py, e))?;
        Ok(match message {
            TrackerMessage::SessionStart(m) => Bound::new(py, PySessionStart(m))?.into_any(),
            TrackerMessage::EventsBatch(m) => {
                Bound::new(py, PyEventsBatch { inner: m })?.into_any()
            }
            TrackerMessage::SessionEnd(m) => Bound::new(py, PySessionEnd(m))?.into_any(),
            TrackerMessage::SnapshotMissing(m) => Bound::new(py, PySnapshotMissing(m))?.into_any(),
        })
    }

    /// Decode one message of a viewer connection; raises `MessageError`
    /// when it is invalid, or `not_allowed` for a tracker message.
    fn decode_viewer<'py>(
        &self,
        py: Python<'py>,
        data: PyBackedBytes,
    ) -> PyResult<Bound<'py, PyAny>> {
        // Viewer messages are small; a large one is a tracker's batch,
        // validated (to answer as before) and then refused.
        let inner = &self.inner;
        let message = detach_if_large(py, data.len(), || inner.decode_viewer(&data))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(match message {
            ViewerMessage::ViewerJoin(m) => Bound::new(py, PyViewerJoin(m))?.into_any(),
            ViewerMessage::ViewerLeave(m) => Bound::new(py, PyViewerLeave(m))?.into_any(),
            ViewerMessage::GetSessionEvents(m) => Bound::new(py, PyGetSessionEvents(m))?.into_any(),
        })
    }

    fn __repr__(&self) -> String {
        let l = self.inner.limits();
        format!(
            "ProtocolDecoder(max_events_per_batch={}, max_event_bytes={})",
            l.max_events_per_batch, l.max_event_bytes
        )
    }
}

/// Split a stored chunk (a JSON array of events) into the events' raw bytes.
#[pyfunction]
fn split_events<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let events = protocol::split_events(payload)
        .map_err(|e| PyValueError::new_err(format!("not a JSON array of events: {e}")))?;
    Ok(events
        .iter()
        .map(|e| PyBytes::new(py, e.get().as_bytes()))
        .collect())
}

/// Concatenate JSON arrays of events into one array.
#[pyfunction]
fn join_events<'py>(
    py: Python<'py>,
    parts: Vec<Bound<'py, PyBytes>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    let joined = protocol::join_events(&parts).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &joined))
}

#[pyclass(frozen, module = "replaywire._core", name = "Viewport")]
struct PyViewport(Viewport);

#[pymethods]
impl PyViewport {
    #[getter]
    fn width(&self) -> Option<i64> {
        self.0.width
    }

    #[getter]
    fn height(&self) -> Option<i64> {
        self.0.height
    }

    #[getter]
    fn device_pixel_ratio(&self) -> Option<f64> {
        self.0.device_pixel_ratio
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "SessionStart")]
pub(super) struct PySessionStart(pub(super) SessionStart);

#[pymethods]
impl PySessionStart {
    #[getter]
    fn session_id(&self) -> &str {
        &self.0.session_id
    }

    #[getter]
    fn user_id(&self) -> Option<&str> {
        self.0.user_id.as_deref()
    }

    #[getter]
    fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }

    #[getter]
    fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }

    #[getter]
    fn viewport(&self) -> Option<PyViewport> {
        self.0.viewport.clone().map(PyViewport)
    }

    #[getter]
    fn start_time(&self) -> Option<f64> {
        self.0.start_time
    }

    #[getter]
    fn referrer(&self) -> Option<&str> {
        self.0.referrer.as_deref()
    }

    #[getter]
    fn time_zone(&self) -> Option<&str> {
        self.0.time_zone.as_deref()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// A validated batch. `SessionBuffers.append` reads `inner` directly.
#[pyclass(frozen, module = "replaywire._core", name = "EventsBatch")]
pub(super) struct PyEventsBatch {
    pub(super) inner: EventsBatch,
}

#[pymethods]
impl PyEventsBatch {
    #[getter]
    fn session_id(&self) -> Option<&str> {
        self.inner.session_id()
    }

    #[getter]
    fn seq(&self) -> Option<u64> {
        self.inner.seq()
    }

    #[getter]
    fn count(&self) -> usize {
        self.inner.count()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }

    #[getter]
    fn min_timestamp(&self) -> Option<f64> {
        self.inner.min_timestamp()
    }

    #[getter]
    fn max_timestamp(&self) -> Option<f64> {
        self.inner.max_timestamp()
    }

    #[getter]
    fn has_full_snapshot(&self) -> bool {
        self.inner.has_full_snapshot()
    }

    #[getter]
    fn has_meta(&self) -> bool {
        self.inner.has_meta()
    }

    /// Where in the batch a late viewer would start: the meta event before
    /// its last full snapshot, else that snapshot; None without one.
    #[getter]
    fn keyframe_offset(&self) -> Option<usize> {
        self.inner
            .meta_before_full_snapshot()
            .or(self.inner.last_full_snapshot())
    }

    /// The events as one JSON array, each byte-for-byte as received.
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        PyBytes::new_with(py, self.inner.payload_len(), |out| {
            self.inner.write_payload(out);
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "EventsBatch(session_id={:?}, seq={:?}, count={}, nbytes={})",
            self.inner.session_id(),
            self.inner.seq(),
            self.inner.count(),
            self.inner.nbytes()
        )
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "SessionEnd")]
struct PySessionEnd(SessionEnd);

#[pymethods]
impl PySessionEnd {
    #[getter]
    fn session_id(&self) -> Option<&str> {
        self.0.session_id.as_deref()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "ViewerJoin")]
struct PyViewerJoin(ViewerJoin);

#[pymethods]
impl PyViewerJoin {
    #[getter]
    fn session_id(&self) -> &str {
        &self.0.session_id
    }

    #[getter]
    #[allow(clippy::wrong_self_convention, reason = "the Python property's name")]
    fn from_index(&self) -> Option<u64> {
        self.0.from_index
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "ViewerLeave")]
struct PyViewerLeave(ViewerLeave);

#[pymethods]
impl PyViewerLeave {
    #[getter]
    fn session_id(&self) -> &str {
        &self.0.session_id
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "GetSessionEvents")]
struct PyGetSessionEvents(GetSessionEvents);

#[pymethods]
impl PyGetSessionEvents {
    #[getter]
    fn session_id(&self) -> &str {
        &self.0.session_id
    }

    #[getter]
    #[allow(clippy::wrong_self_convention, reason = "the Python property's name")]
    fn from_index(&self) -> u64 {
        self.0.from_index
    }

    #[getter]
    fn limit(&self) -> Option<u64> {
        self.0.limit
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

#[pyclass(frozen, module = "replaywire._core", name = "SnapshotMissing")]
pub(super) struct PySnapshotMissing(pub(super) SnapshotMissing);

#[pymethods]
impl PySnapshotMissing {
    #[getter]
    fn session_id(&self) -> Option<&str> {
        self.0.session_id.as_deref()
    }

    #[getter]
    fn reason(&self) -> &str {
        &self.0.reason
    }

    #[getter]
    fn bytes(&self) -> u64 {
        self.0.bytes
    }

    #[getter]
    fn limit_bytes(&self) -> Option<u64> {
        self.0.limit_bytes
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}
