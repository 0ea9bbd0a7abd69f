//! The single place where core errors become Python exceptions.

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

pyo3::create_exception!(
    _core,
    CoreError,
    PyException,
    "Base of every error the core raises."
);
pyo3::create_exception!(
    _core,
    WebSocketError,
    CoreError,
    "The peer broke RFC 6455; close with `close_code`."
);
pyo3::create_exception!(
    _core,
    MessageError,
    CoreError,
    "An application message is invalid; answer with an error frame carrying `code`."
);
pyo3::create_exception!(
    _core,
    CodecError,
    CoreError,
    "Compressed data was refused (`code` payload_too_large or invalid_compression), \
     or compression failed (compression_failed)."
);

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("WebSocketError", py.get_type::<WebSocketError>())?;
    m.add("MessageError", py.get_type::<MessageError>())?;
    m.add("CodecError", py.get_type::<CodecError>())?;
    Ok(())
}

/// Turn a core error into the matching exception, with the attributes the
/// caller needs to answer (`close_code`, or `code` and `seq`) set on it. A
/// codec's refused data becomes `CodecError` with `code`; a codec's wrong
/// arguments (a bad codec name, level or dictionary) become `ValueError`.
pub(crate) fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    let result = match err {
        Error::WebSocket {
            close_code,
            message,
        } => {
            let e = WebSocketError::new_err(message.clone());
            let v = e.value(py);
            v.setattr("message", message)
                .and_then(|_| v.setattr("close_code", close_code))
                .map(|_| e)
        }
        Error::Message { code, message, seq } => {
            let e = MessageError::new_err(message.clone());
            let v = e.value(py);
            v.setattr("message", message)
                .and_then(|_| v.setattr("code", code.as_str()))
                .and_then(|_| v.setattr("seq", seq))
                .map(|_| e)
        }
        err @ (Error::UnknownCodec(_)
        | Error::LevelOutOfRange { .. }
        | Error::InvalidDictionary(_)
        | Error::TooLarge { .. }
        | Error::WindowTooLarge { .. }
        | Error::Corrupt { .. }
        | Error::CompressFailed { .. }) => {
            let message = err.to_string();
            let Some(code) = err.codec_code() else {
                return PyValueError::new_err(message);
            };
            let e = CodecError::new_err(message.clone());
            let v = e.value(py);
            v.setattr("message", message)
                .and_then(|_| v.setattr("code", code))
                .map(|_| e)
        }
    };
    result.unwrap_or_else(|e| e)
}
