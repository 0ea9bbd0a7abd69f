//! Python face of `crate::ws`: the frame decoder, its event classes and the
//! frame encoders.
//!
//! One `FrameDecoder.feed` per socket read returns a list of every event the
//! read completed; each payload becomes a Python `bytes` exactly once, when
//! the event object is built. Encoders build the finished frame directly in
//! the returned `bytes` (header written in place, payload copied once); the
//! compressing encoders deflate first, with the GIL released for payloads
//! of `DETACH_MIN_BYTES` or more.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::ws::deflate::{check_deflate_settings, deflate_message, deflated_first_byte};
use crate::ws::frame::{self, first_byte, header_len, write_header, MAX_CONTROL_PAYLOAD};
use crate::ws::{apply_mask, DecoderConfig, FrameDecoder, InflateConfig, OpCode, WsEvent};

use super::to_pyerr;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for (name, op) in [
        ("OP_CONTINUATION", OpCode::Continuation),
        ("OP_TEXT", OpCode::Text),
        ("OP_BINARY", OpCode::Binary),
        ("OP_CLOSE", OpCode::Close),
        ("OP_PING", OpCode::Ping),
        ("OP_PONG", OpCode::Pong),
    ] {
        m.add(name, op as u8)?;
    }
    m.add_class::<WsMessage>()?;
    m.add_class::<WsPing>()?;
    m.add_class::<WsPong>()?;
    m.add_class::<WsClose>()?;
    m.add_class::<WsTooLarge>()?;
    m.add_class::<PyFrameDecoder>()?;
    // `WsEvent = WsMessage | WsPing | WsPong | WsClose | WsTooLarge`, as in the stub, so
    // that `isinstance(x, WsEvent)` and `match` work at runtime too.
    let py = m.py();
    let event_union = py
        .get_type::<WsMessage>()
        .bitor(py.get_type::<WsPing>())?
        .bitor(py.get_type::<WsPong>())?
        .bitor(py.get_type::<WsClose>())?
        .bitor(py.get_type::<WsTooLarge>())?;
    m.add("WsEvent", event_union)?;
    m.add_function(wrap_pyfunction!(encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(encode_text, m)?)?;
    m.add_function(wrap_pyfunction!(encode_binary, m)?)?;
    m.add_function(wrap_pyfunction!(encode_ping, m)?)?;
    m.add_function(wrap_pyfunction!(encode_pong, m)?)?;
    m.add_function(wrap_pyfunction!(encode_close, m)?)?;
    m.add_function(wrap_pyfunction!(encode_client_frame, m)?)?;
    m.add_function(wrap_pyfunction!(encode_text_deflated, m)?)?;
    m.add_function(wrap_pyfunction!(encode_binary_deflated, m)?)?;
    Ok(())
}

// --- events ------------------------------------------------------------------

/// A complete data message (all fragments joined).
#[pyclass(frozen, module = "replaywire._core")]
pub struct WsMessage {
    #[pyo3(get)]
    is_text: bool,
    #[pyo3(get)]
    data: Py<PyBytes>,
}

#[pymethods]
impl WsMessage {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "WsMessage(is_text={}, data={})",
            if self.is_text { "True" } else { "False" },
            bytes_preview(self.data.bind(py))?
        ))
    }
}

#[pyclass(frozen, module = "replaywire._core")]
pub struct WsPing {
    #[pyo3(get)]
    data: Py<PyBytes>,
}

#[pymethods]
impl WsPing {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "WsPing(data={})",
            bytes_preview(self.data.bind(py))?
        ))
    }
}

#[pyclass(frozen, module = "replaywire._core")]
pub struct WsPong {
    #[pyo3(get)]
    data: Py<PyBytes>,
}

#[pymethods]
impl WsPong {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "WsPong(data={})",
            bytes_preview(self.data.bind(py))?
        ))
    }
}

/// The peer's close frame. `code` is None when the frame had no body.
#[pyclass(frozen, module = "replaywire._core")]
pub struct WsClose {
    #[pyo3(get)]
    code: Option<u16>,
    #[pyo3(get)]
    reason: String,
}

#[pymethods]
impl WsClose {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let code = self
            .code
            .map_or_else(|| "None".to_owned(), |c| c.to_string());
        let reason = PyString::new(py, &self.reason).repr()?;
        Ok(format!("WsClose(code={code}, reason={reason})"))
    }
}

/// A data message over the limits that the decoder skipped (only with
/// `skip_oversized=True`): its size as far as known and its first bytes.
#[pyclass(frozen, module = "replaywire._core")]
pub struct WsTooLarge {
    #[pyo3(get)]
    is_text: bool,
    #[pyo3(get)]
    size: u64,
    #[pyo3(get)]
    prefix: Py<PyBytes>,
}

#[pymethods]
impl WsTooLarge {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "WsTooLarge(is_text={}, size={}, prefix={})",
            if self.is_text { "True" } else { "False" },
            self.size,
            bytes_preview(self.prefix.bind(py))?
        ))
    }
}

/// `repr()` of a payload, cut after 64 bytes with the full length added, so
/// that logging a 16 MB message stays readable.
fn bytes_preview(data: &Bound<'_, PyBytes>) -> PyResult<String> {
    const PREVIEW: usize = 64;
    let bytes = data.as_bytes();
    if bytes.len() <= PREVIEW {
        return Ok(data.repr()?.to_string());
    }
    let head = PyBytes::new(data.py(), &bytes[..PREVIEW]).repr()?;
    Ok(format!("{head}... ({} bytes)", bytes.len()))
}

fn event_to_py(py: Python<'_>, event: WsEvent) -> PyResult<Bound<'_, PyAny>> {
    Ok(match event {
        WsEvent::Message { text, data } => Bound::new(
            py,
            WsMessage {
                is_text: text,
                data: PyBytes::new(py, &data).unbind(),
            },
        )?
        .into_any(),
        WsEvent::Ping(data) => Bound::new(
            py,
            WsPing {
                data: PyBytes::new(py, &data).unbind(),
            },
        )?
        .into_any(),
        WsEvent::Pong(data) => Bound::new(
            py,
            WsPong {
                data: PyBytes::new(py, &data).unbind(),
            },
        )?
        .into_any(),
        WsEvent::Close { code, reason } => Bound::new(py, WsClose { code, reason })?.into_any(),
        WsEvent::TooLarge { text, size, prefix } => Bound::new(
            py,
            WsTooLarge {
                is_text: text,
                size,
                prefix: PyBytes::new(py, &prefix).unbind(),
            },
        )?
        .into_any(),
    })
}

// --- decoder -----------------------------------------------------------------

/// Server-side RFC 6455 frame decoder for one connection.
///
/// `feed` takes whatever bytes the socket returned and gives back every
/// event completed by them; an incomplete frame stays buffered. On a
/// violation `feed` raises `WebSocketError` (with `close_code`); when the
/// same call completed events before the violation, it returns those
/// instead, `failed` turns true and the next call (`feed(b"")` will do)
/// raises. Either way the decoder then refuses all further input. What
/// follows the peer's close frame is discarded. Buffers are released with
/// the object.
#[pyclass(name = "FrameDecoder", module = "replaywire._core")]
pub struct PyFrameDecoder {
    inner: FrameDecoder,
    /// Reused across calls so a feed does not allocate its event list.
    events: Vec<WsEvent>,
}

impl PyFrameDecoder {
    /// The decoder's rules, for a tracker engine that takes its place.
    pub(super) fn config(&self) -> &DecoderConfig {
        self.inner.config()
    }
}

#[pymethods]
impl PyFrameDecoder {
    // The defaults must match `DecoderConfig::default()` and the stub.
    #[new]
    #[pyo3(
        signature = (
            *,
            max_frame_bytes = 16_777_216,
            max_message_bytes = 16_777_216,
            require_mask = true,
            deflate_window_bits = None,
            deflate_no_context_takeover = false,
            skip_oversized = false,
        ),
        text_signature = "(*, max_frame_bytes=16777216, max_message_bytes=16777216, \
                          require_mask=True, deflate_window_bits=None, \
                          deflate_no_context_takeover=False, skip_oversized=False)"
    )]
    fn new(
        max_frame_bytes: usize,
        max_message_bytes: usize,
        require_mask: bool,
        deflate_window_bits: Option<i64>,
        deflate_no_context_takeover: bool,
        skip_oversized: bool,
    ) -> PyResult<Self> {
        let deflate = match deflate_window_bits {
            None if deflate_no_context_takeover => {
                return Err(PyValueError::new_err(
                    "deflate_no_context_takeover needs deflate_window_bits \
                     (permessage-deflate negotiated)",
                ));
            }
            None => None,
            Some(bits) => {
                let window_bits = u8::try_from(bits).map_err(|_| {
                    PyValueError::new_err(format!("deflate_window_bits must be 8..15, not {bits}"))
                })?;
                let cfg = InflateConfig {
                    window_bits,
                    no_context_takeover: deflate_no_context_takeover,
                };
                cfg.validate()
                    .map_err(|e| PyValueError::new_err(format!("deflate_window_bits: {e}")))?;
                Some(cfg)
            }
        };
        Ok(PyFrameDecoder {
            inner: FrameDecoder::new(DecoderConfig {
                max_frame_bytes,
                max_message_bytes,
                require_mask,
                deflate,
                skip_oversized,
            }),
            events: Vec::new(),
        })
    }

    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        self.events.clear();
        if let Err(err) = self.inner.feed(data, &mut self.events) {
            // Messages the peer completed before the violation are
            // delivered first (the decoder keeps the error for the next
            // call): the caller answers them, then fails the connection.
            if self.events.is_empty() {
                return Err(to_pyerr(py, err));
            }
        }
        let objects = self
            .events
            .drain(..)
            .map(|event| event_to_py(py, event))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, objects)
    }

    /// Bytes held for incomplete frames and messages.
    #[getter]
    fn buffered_bytes(&self) -> usize {
        self.inner.buffered_bytes()
    }

    /// Payload bytes of the frame in progress still to arrive.
    #[getter]
    fn frame_remaining(&self) -> usize {
        self.inner.frame_remaining()
    }

    #[getter]
    fn skip_oversized(&self) -> bool {
        self.inner.config().skip_oversized
    }

    #[getter]
    fn close_received(&self) -> bool {
        self.inner.close_received()
    }

    /// True once the decoder has failed: the next `feed` raises.
    #[getter]
    fn failed(&self) -> bool {
        self.inner.error().is_some()
    }

    /// The peer's agreed window when permessage-deflate was negotiated.
    #[getter]
    fn deflate_window_bits(&self) -> Option<u8> {
        self.inner.config().deflate.map(|d| d.window_bits)
    }

    #[getter]
    fn deflate_no_context_takeover(&self) -> bool {
        self.inner
            .config()
            .deflate
            .is_some_and(|d| d.no_context_takeover)
    }

    fn __repr__(&self) -> String {
        let cfg = self.inner.config();
        let deflate = match cfg.deflate {
            None => String::new(),
            Some(d) => format!(
                ", deflate_window_bits={}, deflate_no_context_takeover={}",
                d.window_bits,
                if d.no_context_takeover {
                    "True"
                } else {
                    "False"
                }
            ),
        };
        format!(
            "FrameDecoder(max_frame_bytes={}, max_message_bytes={}, require_mask={}{deflate}, \
             buffered_bytes={}, close_received={})",
            cfg.max_frame_bytes,
            cfg.max_message_bytes,
            if cfg.require_mask { "True" } else { "False" },
            self.inner.buffered_bytes(),
            if self.inner.close_received() {
                "True"
            } else {
                "False"
            },
        )
    }
}

// --- encoders ----------------------------------------------------------------

/// One frame built straight into a Python `bytes`: header, then payload,
/// masked in place when `mask` is given.
fn build_frame<'py>(
    py: Python<'py>,
    first: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> PyResult<Bound<'py, PyBytes>> {
    let hlen = header_len(payload.len(), mask.is_some());
    PyBytes::new_with(py, hlen + payload.len(), |buf| {
        write_header(buf, first, mask, payload.len());
        let body = &mut buf[hlen..];
        body.copy_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(body, key, 0);
        }
        Ok(())
    })
}

fn server_frame<'py>(
    py: Python<'py>,
    opcode: OpCode,
    payload: &[u8],
    fin: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    if opcode.is_control() {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(PyValueError::new_err(format!(
                "control frame payload is {} bytes, the limit is {MAX_CONTROL_PAYLOAD}",
                payload.len()
            )));
        }
        if !fin {
            return Err(PyValueError::new_err("control frames cannot be fragmented"));
        }
    }
    build_frame(py, first_byte(opcode, fin), payload, None)
}

/// One unmasked server frame. Raises ValueError for an unknown opcode or a
/// control payload over 125 bytes (or a control frame with fin=False).
#[pyfunction]
#[pyo3(signature = (opcode, payload, *, fin = true))]
fn encode_frame<'py>(
    py: Python<'py>,
    opcode: i64,
    payload: &[u8],
    fin: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let op = u8::try_from(opcode)
        .ok()
        .and_then(OpCode::from_u8)
        .ok_or_else(|| PyValueError::new_err(format!("unknown opcode {opcode}")))?;
    server_frame(py, op, payload, fin)
}

/// An unmasked text frame. A `str` is sent as UTF-8; `bytes` must be valid
/// UTF-8 (checked, ValueError otherwise: a client would close with 1007).
#[pyfunction]
fn encode_text<'py>(py: Python<'py>, payload: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(text) = payload.cast::<PyString>() {
        return server_frame(py, OpCode::Text, text.to_str()?.as_bytes(), true);
    }
    if let Ok(bytes) = payload.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(PyValueError::new_err(format!(
                "text payload is not valid UTF-8: {e}"
            )));
        }
        return server_frame(py, OpCode::Text, bytes, true);
    }
    Err(PyTypeError::new_err(format!(
        "payload must be bytes or str, not {}",
        payload.get_type().name()?
    )))
}

#[pyfunction]
fn encode_binary<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    server_frame(py, OpCode::Binary, payload, true)
}

#[pyfunction]
#[pyo3(signature = (payload = b"".as_slice()), text_signature = "(payload=b'')")]
fn encode_ping<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    server_frame(py, OpCode::Ping, payload, true)
}

#[pyfunction]
#[pyo3(signature = (payload = b"".as_slice()), text_signature = "(payload=b'')")]
fn encode_pong<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    server_frame(py, OpCode::Pong, payload, true)
}

/// A close frame; `code=None` sends an empty body. The reason is cut to fit
/// 123 bytes at a character boundary. ValueError for a code that may not be
/// sent (anything but 1000-1003, 1007-1014, 3000-4999) or a reason without a
/// code.
#[pyfunction]
#[pyo3(signature = (code = Some(1000), reason = ""), text_signature = "(code=1000, reason='')")]
fn encode_close<'py>(
    py: Python<'py>,
    code: Option<i64>,
    reason: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let code = match code {
        None if !reason.is_empty() => {
            return Err(PyValueError::new_err("a close reason needs a close code"));
        }
        None => None,
        Some(c) => Some(
            u16::try_from(c)
                .ok()
                .filter(|c| frame::is_valid_close_code(*c))
                .ok_or_else(|| PyValueError::new_err(format!("invalid close code {c}")))?,
        ),
    };
    let mut out = Vec::with_capacity(2 + MAX_CONTROL_PAYLOAD);
    frame::encode_close(code, reason, &mut out);
    Ok(PyBytes::new(py, &out))
}

/// A masked client frame (`mask` is 4 bytes; `rsv` the three reserved bits as
/// 0..7). The opcode may be reserved and control-frame rules are not
/// checked: this writes broken frames on purpose, for tests and fuzz seeds.
#[pyfunction]
#[pyo3(signature = (opcode, payload, mask, *, fin = true, rsv = 0))]
fn encode_client_frame<'py>(
    py: Python<'py>,
    opcode: i64,
    payload: &[u8],
    mask: &[u8],
    fin: bool,
    rsv: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let opcode = u8::try_from(opcode)
        .ok()
        .filter(|op| *op <= 0x0F)
        .ok_or_else(|| PyValueError::new_err(format!("opcode must be 0..15, not {opcode}")))?;
    let rsv = u8::try_from(rsv)
        .ok()
        .filter(|r| *r <= 0x07)
        .ok_or_else(|| PyValueError::new_err(format!("rsv must be 0..7, not {rsv}")))?;
    let key: [u8; 4] = mask
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("mask must be 4 bytes, not {}", mask.len())))?;
    let first = (if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode;
    build_frame(py, first, payload, Some(key))
}

// --- compressed messages (permessage-deflate) ----------------------------------

/// Payloads at least this large are compressed with the GIL released; below
/// it deflating takes less time than handing the GIL over and back.
const DETACH_MIN_BYTES: usize = 64 * 1024;

// The default level, 3, is written in both signatures below (a literal, so
// that Python sees it) and in the stub. Measured on rrweb-like JSON, one
// core (benches/deflate_micro.py): level 1 3.9x at 330-410 MB/s, 3 5.8x at
// 150-190 MB/s, 6 (zlib's default) 6.7x at 60-75 MB/s. Level 3 keeps most
// of the ratio at two and a half times the speed of 6; the event loop's one
// core is what the server runs out of first.

/// The window and level as the core takes them; ValueError when out of range.
fn deflate_settings(window_bits: i64, level: i64) -> PyResult<(u8, u32)> {
    let Ok(bits) = u8::try_from(window_bits) else {
        return Err(PyValueError::new_err(format!(
            "window_bits must be 9..=15, not {window_bits}"
        )));
    };
    let Ok(lvl) = u32::try_from(level) else {
        return Err(PyValueError::new_err(format!(
            "level must be 0..=9, not {level}"
        )));
    };
    check_deflate_settings(bits, lvl).map_err(|e| PyValueError::new_err(e.0))?;
    Ok((bits, lvl))
}

/// A compressed single-frame message: RSV1 set, payload deflated with a
/// fresh context (`server_no_context_takeover`).
fn deflated_frame<'py>(
    py: Python<'py>,
    opcode: OpCode,
    payload: &[u8],
    window_bits: i64,
    level: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    let (bits, lvl) = deflate_settings(window_bits, level)?;
    let mut body = Vec::new();
    if payload.len() >= DETACH_MIN_BYTES {
        py.detach(|| deflate_message(payload, bits, lvl, &mut body));
    } else {
        deflate_message(payload, bits, lvl, &mut body);
    }
    build_frame(py, deflated_first_byte(opcode), &body, None)
}

/// A compressed text message in one unmasked frame (RSV1 set). Same payload
/// rules as `encode_text`; ValueError for a window outside 9..15 or a level
/// outside 0..9.
#[pyfunction]
#[pyo3(signature = (payload, *, window_bits = 15, level = 3))]
fn encode_text_deflated<'py>(
    py: Python<'py>,
    payload: &Bound<'py, PyAny>,
    window_bits: i64,
    level: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(text) = payload.cast::<PyString>() {
        return deflated_frame(
            py,
            OpCode::Text,
            text.to_str()?.as_bytes(),
            window_bits,
            level,
        );
    }
    if let Ok(bytes) = payload.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(PyValueError::new_err(format!(
                "text payload is not valid UTF-8: {e}"
            )));
        }
        return deflated_frame(py, OpCode::Text, bytes, window_bits, level);
    }
    Err(PyTypeError::new_err(format!(
        "payload must be bytes or str, not {}",
        payload.get_type().name()?
    )))
}

/// A compressed binary message in one unmasked frame (RSV1 set).
#[pyfunction]
#[pyo3(signature = (payload, *, window_bits = 15, level = 3))]
fn encode_binary_deflated<'py>(
    py: Python<'py>,
    payload: &[u8],
    window_bits: i64,
    level: i64,
) -> PyResult<Bound<'py, PyBytes>> {
    deflated_frame(py, OpCode::Binary, payload, window_bits, level)
}
