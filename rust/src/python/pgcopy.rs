//! Binding for the PostgreSQL `COPY` encoder: `encode_chunks_copy`.
//!
//! One call per flush. The chunks' fields are read with the GIL held, the
//! strings and payloads as `PyBacked*` views of the Python objects (no
//! copy); the stream is then sized exactly, allocated once as the `bytes`
//! object returned, and filled with the GIL released, so the trio loop runs
//! while tens of MB of payload are copied.
//!
//! `PyBytes::new_with` zero-fills the new object before handing it over,
//! with the GIL held: about 1 ms for 30 MB when malloc reuses memory, more
//! when a fresh mapping must be faulted in (glibc maps anew every block
//! over 32 MB). That is the one pass over the output made under the GIL;
//! building a `Vec` without the GIL and copying it into `bytes` would make
//! it a full copy instead, and skipping the zeroing needs raw FFI.

use pyo3::exceptions::{PyKeyError, PyOverflowError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::PyBytes;

use crate::pgcopy::{ChunkCopy, ChunkRow, RowError, Timestamptz};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_chunks_copy, m)?)?;
    Ok(())
}

/// Streams at least this large are written with the GIL released; below it
/// the copy takes less time than handing the GIL over and back.
const DETACH_MIN_BYTES: usize = 64 * 1024;

/// A chunk's fields, read from Python and range-checked.
struct Fields {
    session_id: PyBackedStr,
    session_started_at: Timestamptz,
    seq: i64,
    first_index: i64,
    event_count: i32,
    first_ts: Option<f64>,
    last_ts: Option<f64>,
    codec: PyBackedStr,
    received_at: Option<Timestamptz>,
    payload: PyBackedBytes,
}

impl Fields {
    fn row(&self) -> ChunkRow<'_> {
        ChunkRow {
            session_id: &self.session_id,
            session_started_at: self.session_started_at,
            seq: self.seq,
            first_index: self.first_index,
            event_count: self.event_count,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            codec: &self.codec,
            received_at: self.received_at,
            payload: &self.payload,
        }
    }
}

/// One PostgreSQL binary COPY stream of chunk rows, for
/// `COPY chunks (...) FROM STDIN (FORMAT BINARY)`; the columns are listed in
/// replaywire/_core.pyi.
#[pyfunction]
fn encode_chunks_copy<'py>(
    py: Python<'py>,
    chunks: &Bound<'py, PyAny>,
    started_at: &Bound<'py, PyAny>,
    stored_at: f64,
) -> PyResult<Bound<'py, PyBytes>> {
    let stored_at = Timestamptz::from_epoch_seconds(stored_at)
        .map_err(|e| PyValueError::new_err(format!("stored_at: {e}")))?;
    let mut fields = Vec::with_capacity(chunks.len().unwrap_or(0));
    for (index, chunk) in chunks.try_iter()?.enumerate() {
        fields.push(read_chunk(index, &chunk?, started_at)?);
    }
    let rows: Vec<ChunkRow<'_>> = fields.iter().map(Fields::row).collect();
    let copy = ChunkCopy::new(&rows, stored_at).map_err(|e| row_error(&rows, e))?;
    PyBytes::new_with(py, copy.encoded_len(), |out| {
        // Sound without the GIL: `out` belongs to a bytes object no other
        // thread can see yet, and the rows borrow immutable str and bytes
        // objects that `fields` keeps alive.
        if out.len() >= DETACH_MIN_BYTES {
            py.detach(|| copy.write_into(out));
        } else {
            copy.write_into(out);
        }
        Ok(())
    })
}

fn read_chunk(
    index: usize,
    chunk: &Bound<'_, PyAny>,
    started_at: &Bound<'_, PyAny>,
) -> PyResult<Fields> {
    let py = chunk.py();
    let session_id: PyBackedStr = chunk.getattr(intern!(py, "session_id"))?.extract()?;
    let context = |message: String| {
        PyValueError::new_err(format!(
            "chunk {index} (session {:?}): {message}",
            &*session_id
        ))
    };
    let start = match started_at.get_item(session_id.as_py_str()) {
        Ok(start) => start.extract::<f64>()?,
        Err(e) if e.is_instance_of::<PyKeyError>(py) => {
            return Err(PyKeyError::new_err(session_id.as_py_str().clone_ref(py)))
        }
        Err(e) => return Err(e),
    };
    let session_started_at = Timestamptz::from_epoch_seconds(start)
        .map_err(|e| context(format!("session_started_at: {e}")))?;
    let int = |name: &'static str, pg_type: &str| -> PyResult<i64> {
        let value = chunk.getattr(name)?;
        value.extract::<i64>().map_err(|e| {
            if e.is_instance_of::<PyOverflowError>(py) {
                context(format!("{name} {value} does not fit in {pg_type}"))
            } else {
                e
            }
        })
    };
    let seq = int("seq", "int8")?;
    let first_index = int("first_index", "int8")?;
    let event_count = int("event_count", "int4")?;
    let event_count = i32::try_from(event_count)
        .map_err(|_| context(format!("event_count {event_count} does not fit in int4")))?;
    let received_at = chunk
        .getattr(intern!(py, "received_at"))?
        .extract::<Option<f64>>()?
        .map(Timestamptz::from_epoch_seconds)
        .transpose()
        .map_err(|e| context(format!("received_at: {e}")))?;
    Ok(Fields {
        session_started_at,
        seq,
        first_index,
        event_count,
        first_ts: chunk.getattr(intern!(py, "first_timestamp"))?.extract()?,
        last_ts: chunk.getattr(intern!(py, "last_timestamp"))?.extract()?,
        codec: chunk.getattr(intern!(py, "codec"))?.extract()?,
        received_at,
        payload: chunk.getattr(intern!(py, "payload"))?.extract()?,
        session_id,
    })
}

fn row_error(rows: &[ChunkRow<'_>], e: RowError) -> PyErr {
    let session_id = rows[e.index].session_id;
    PyValueError::new_err(format!(
        "chunk {} (session {session_id:?}): {}",
        e.index, e.error
    ))
}
