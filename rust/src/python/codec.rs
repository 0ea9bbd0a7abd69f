//! Bindings for the codec room: `Compressor`, `compress`, `decompress`,
//! `train_dictionary` and `CODECS`.
//!
//! Inputs are borrowed from the caller's `bytes` (immutable, kept alive by
//! the call), so large ones are worked on with the GIL released and no copy
//! in. Outputs are built in Rust and copied once into the returned `bytes`,
//! with the GIL held: a compressed size is not known before compressing,
//! and `bytes` cannot be shrunk with the safe API.
//!
//! `Compressor` is a plain (not frozen) pyclass: its methods take
//! `&mut self`, and PyO3 checks the borrow at run time. A second thread
//! calling it while a call runs (for instance while that call has released
//! the GIL) gets `RuntimeError: Already borrowed` instead of sharing the
//! context: wrong use fails loudly and stays sound. A mutex would make the
//! second thread wait instead, but waiting on it with the GIL held while the
//! first thread waits for the GIL to return its result would deadlock.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyTuple};

use super::to_pyerr;
use crate::codec::{self, Codec, Compressor};
use crate::error::Error;
use crate::protocol;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CODECS", PyTuple::new(m.py(), Codec::NAMES)?)?;
    m.add_class::<PyCompressor>()?;
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    m.add_function(wrap_pyfunction!(train_dictionary, m)?)?;
    Ok(())
}

/// Inputs at least this large are compressed with the GIL released (zstd 3
/// takes 100-200 µs for 64 KiB of events); below it, handing the GIL over
/// and back costs more than it frees.
const COMPRESS_DETACH_MIN_BYTES: usize = 64 * 1024;

/// Decompression works on compressed input: 16 KiB of it is ~80 KiB of
/// events, ~150 µs to decode.
const DECOMPRESS_DETACH_MIN_BYTES: usize = 16 * 1024;

fn codec_from(py: Python<'_>, name: &str, level: Option<i64>) -> PyResult<Codec> {
    Codec::new(name, level).map_err(|e| to_pyerr(py, e))
}

/// Runs `f` with the GIL released when `detach` is true.
fn run<T: Send>(py: Python<'_>, detach: bool, f: impl FnOnce() -> T + Send) -> T {
    if detach {
        py.detach(f)
    } else {
        f()
    }
}

/// A codec with its compression context kept from call to call; see
/// replaywire/_core.pyi.
#[pyclass(module = "replaywire._core", name = "Compressor")]
struct PyCompressor {
    inner: Compressor,
}

#[pymethods]
impl PyCompressor {
    #[new]
    #[pyo3(signature = (codec, level = None, dictionary = None))]
    fn new(
        py: Python<'_>,
        codec: &str,
        level: Option<i64>,
        dictionary: Option<&[u8]>,
    ) -> PyResult<Self> {
        let codec = codec_from(py, codec, level)?;
        let inner = match dictionary {
            None => Compressor::new(codec),
            // Loading a trained dictionary builds its tables: ~1 ms for
            // 100 KB, not worth releasing the GIL for once per compressor.
            Some(dict) => Compressor::with_dictionary(codec, dict),
        }
        .map_err(|e| to_pyerr(py, e))?;
        Ok(PyCompressor { inner })
    }

    #[getter]
    fn codec(&self) -> &'static str {
        self.inner.codec().name()
    }

    #[getter]
    fn level(&self) -> i32 {
        self.inner.codec().level()
    }

    #[getter]
    fn dictionary_id(&self) -> Option<u32> {
        self.inner.dictionary_id()
    }

    fn compress<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let inner = &mut self.inner;
        let out = run(py, data.len() >= COMPRESS_DETACH_MIN_BYTES, || {
            inner.compress(data)
        })
        .map_err(|e| to_pyerr(py, e))?;
        Ok(PyBytes::new(py, out))
    }

    /// Every item compressed on its own, in one crossing: the outputs are
    /// gathered in one buffer with the GIL released (when the items total
    /// 64 KiB or more), then cut into `bytes`. With `array_contents`, each
    /// item is a JSON array and only what lies between its brackets is
    /// compressed, so that compressed items can be concatenated (zstd
    /// frames decode to the concatenation of their contents).
    #[pyo3(signature = (items, *, array_contents = false))]
    fn compress_many<'py>(
        &mut self,
        py: Python<'py>,
        items: Vec<PyBackedBytes>,
        array_contents: bool,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            parts.push(if array_contents {
                protocol::array_contents(item).ok_or_else(|| {
                    PyValueError::new_err(format!("item {index} is not a JSON array"))
                })?
            } else {
                item
            });
        }
        let total: usize = parts.iter().map(|part| part.len()).sum();
        let inner = &mut self.inner;
        // Each output in a buffer of its own, moved rather than gathered: a
        // multi-MB snapshot is then held twice at most (its compressed
        // bytes here and in the returned `bytes`), never three times.
        let outputs = run(py, total >= COMPRESS_DETACH_MIN_BYTES, || {
            parts
                .iter()
                .map(|part| {
                    let mut out = Vec::new();
                    inner.compress_to(part, &mut out)?;
                    Ok(out)
                })
                .collect::<Result<Vec<_>, Error>>()
        })
        .map_err(|e| to_pyerr(py, e))?;
        Ok(outputs
            .into_iter()
            .map(|out| PyBytes::new(py, &out))
            .collect())
    }

    fn __repr__(&self) -> String {
        let codec = self.inner.codec();
        match self.inner.dictionary_id() {
            Some(id) => format!(
                "Compressor(codec='{}', level={}, dictionary_id={id})",
                codec.name(),
                codec.level()
            ),
            None => format!(
                "Compressor(codec='{}', level={})",
                codec.name(),
                codec.level()
            ),
        }
    }
}

/// `data` compressed with a context made for this call.
#[pyfunction]
#[pyo3(signature = (codec, data, level = None))]
fn compress<'py>(
    py: Python<'py>,
    codec: &str,
    data: &[u8],
    level: Option<i64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let codec = codec_from(py, codec, level)?;
    let out = run(py, data.len() >= COMPRESS_DETACH_MIN_BYTES, || {
        codec::compress(codec, data)
    })
    .map_err(|e| to_pyerr(py, e))?;
    Ok(PyBytes::new(py, &out))
}

/// `data` decompressed, refused past `max_size` bytes of output.
#[pyfunction]
#[pyo3(signature = (codec, data, max_size, dictionary = None))]
fn decompress<'py>(
    py: Python<'py>,
    codec: &str,
    data: &[u8],
    max_size: i64,
    dictionary: Option<&[u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let codec = codec_from(py, codec, None)?;
    let max_size = usize::try_from(max_size)
        .map_err(|_| PyValueError::new_err(format!("max_size must be >= 0, got {max_size}")))?;
    let out = run(py, data.len() >= DECOMPRESS_DETACH_MIN_BYTES, || {
        codec::decompress(codec, data, max_size, dictionary)
    })
    .map_err(|e| to_pyerr(py, e))?;
    Ok(PyBytes::new(py, &out))
}

/// A zstd dictionary trained on `samples`, with the GIL released.
#[pyfunction]
fn train_dictionary<'py>(
    py: Python<'py>,
    samples: Vec<PyBackedBytes>,
    max_size: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let max_size = usize::try_from(max_size)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| PyValueError::new_err(format!("max_size must be >= 1, got {max_size}")))?;
    let dictionary = py
        .detach(|| codec::train_dictionary(&samples, max_size))
        .map_err(|e| to_pyerr(py, e))?;
    Ok(PyBytes::new(py, &dictionary))
}
