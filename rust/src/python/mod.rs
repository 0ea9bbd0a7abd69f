//! PyO3 bindings: the `replaywire._core` extension module.
//!
//! Only this folder knows about Python. Each file wraps one room of the core
//! and registers its classes and functions; `python/replaywire/_core.pyi`
//! documents the result and is checked against it by `mypy.stubtest`.

use pyo3::prelude::*;

mod buffers;
mod codec;
mod errors;
mod ingest;
mod pgcopy;
mod protocol;
mod socket;
mod ws;

pub(crate) use errors::to_pyerr;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    ws::register(m)?;
    protocol::register(m)?;
    buffers::register(m)?;
    ingest::register(m)?;
    pgcopy::register(m)?;
    codec::register(m)?;
    Ok(())
}
