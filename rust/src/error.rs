//! The one error type of the core.
//!
//! Every failure the core can report is a variant here, and each variant
//! carries what the caller must answer with: a WebSocket close code for
//! frame-level faults (the peer broke RFC 6455, the connection is over), or a
//! protocol error code (and the batch `seq`, when known) for a bad
//! application message, which is answered with an error frame while the
//! connection stays open. The Python mapping lives in `python/errors.rs`.

use thiserror::Error;

/// WebSocket close codes the core asks the caller to send (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Protocol error codes sent to clients in `{"type":"error","data":{"code":..}}`.
/// The list is documented in `docs/protocol.md`; keep the two in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageCode {
    /// Not JSON, not an object, or a field missing or of the wrong type.
    InvalidMessage,
    /// An event in a batch is not an object with integer `type` and numeric `timestamp`.
    InvalidEvent,
    /// The `type` of the message is not one the endpoint knows.
    UnknownMessageType,
    /// A batch or an event is over a configured size limit.
    PayloadTooLarge,
    /// The named session is not live (in the buffers) or not open on this connection.
    UnknownSession,
}

impl MessageCode {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageCode::InvalidMessage => "invalid_message",
            MessageCode::InvalidEvent => "invalid_event",
            MessageCode::UnknownMessageType => "unknown_message_type",
            MessageCode::PayloadTooLarge => "payload_too_large",
            MessageCode::UnknownSession => "unknown_session",
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The peer broke the WebSocket framing rules; close with `close_code`.
    #[error("{message}")]
    WebSocket { close_code: u16, message: String },

    /// An application message is invalid; answer with an error frame.
    #[error("{message}")]
    Message {
        code: MessageCode,
        message: String,
        seq: Option<i64>,
    },
}

impl Error {
    pub fn ws(close_code: u16, message: impl Into<String>) -> Self {
        Error::WebSocket {
            close_code,
            message: message.into(),
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self::ws(close_code::PROTOCOL_ERROR, message)
    }

    pub fn message(code: MessageCode, message: impl Into<String>, seq: Option<i64>) -> Self {
        Error::Message {
            code,
            message: message.into(),
            seq,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
