//! The one error type of the core.
//!
//! Every failure the core can report is a variant here, and each variant
//! carries what the caller must answer with: a WebSocket close code for
//! frame-level faults (the peer broke RFC 6455, the connection is over), a
//! protocol error code (and the batch `seq`, when known) for a bad
//! application message, which is answered with an error frame while the
//! connection stays open, or, for the codecs (`codec/`), one of two kinds:
//!
//! - the caller's arguments are wrong (an unknown codec name, a level out of
//!   range, a dictionary where the codec takes none or one zstd refuses):
//!   a local bug or a bad configuration, [`Error::codec_code`] is `None`;
//! - the data is refused: it would decompress to more than the caller's
//!   `max_size` (`payload_too_large`), it is not valid compressed data
//!   (`invalid_compression`), or the library failed to compress
//!   (`compression_failed`, out of memory in practice).
//!
//! Whether a codec's data fault is local (a corrupt stored chunk) or remote
//! (bytes a client sent) only the caller knows; the codes are named like
//! the protocol's error codes so that a caller decoding client data can
//! answer with them.
//!
//! The Python mapping lives in `python/errors.rs`.

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
    /// A well-formed message of the other side: a viewer message on a
    /// tracker connection, or the reverse.
    NotAllowed,
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
            MessageCode::NotAllowed => "not_allowed",
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

    /// Not one of [`crate::codec::Codec::NAMES`].
    #[error("unknown codec {0:?}; expected one of \"none\", \"deflate\", \"zstd\"")]
    UnknownCodec(String),

    /// A level outside the codec's range (`none` takes only `0`).
    #[error("{codec} level {level} is out of range {min}..={max}")]
    LevelOutOfRange {
        codec: &'static str,
        level: i64,
        min: i32,
        max: i32,
    },

    /// A dictionary given to a codec that takes none, or refused by zstd.
    #[error("{0}")]
    InvalidDictionary(String),

    /// Decompressed output would be over `max_size` bytes. Found before the
    /// output gets that large: from the sizes zstd frames declare, or as
    /// soon as the decoder produces byte `max_size + 1`.
    #[error("{codec} data decompresses to {}, over max_size {max_size}", describe_size(*.size))]
    TooLarge {
        codec: &'static str,
        max_size: usize,
        /// The size the data declares, when it declares one.
        size: Option<u64>,
    },

    /// A zstd frame that records no content size (made by a streaming
    /// encoder) and asks for a window larger than `max_size` allows; see
    /// [`crate::codec::zstandard::window_log_limit`].
    #[error(
        "zstd frame asks for a {window}-byte window, over the {limit} bytes \
         allowed with max_size {max_size}"
    )]
    WindowTooLarge {
        window: u64,
        limit: u64,
        max_size: usize,
    },

    /// Not valid data of the codec: garbage, truncated, trailing bytes, a
    /// failed checksum, a missing or wrong dictionary.
    #[error("invalid {codec} data: {reason}")]
    Corrupt { codec: &'static str, reason: String },

    /// The library failed to compress (out of memory in practice).
    #[error("{codec} compression failed: {reason}")]
    CompressFailed { codec: &'static str, reason: String },
}

fn describe_size(size: Option<u64>) -> String {
    match size {
        Some(size) => format!("{size} bytes"),
        None => "more bytes".to_owned(),
    }
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

    pub(crate) fn corrupt(codec: &'static str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            codec,
            reason: reason.into(),
        }
    }

    /// The error code of a codec's data fault; `None` when a codec's
    /// arguments are wrong, and for the frame and message faults (which
    /// carry their own close code or [`MessageCode`]).
    pub fn codec_code(&self) -> Option<&'static str> {
        match self {
            Error::TooLarge { .. } | Error::WindowTooLarge { .. } => Some("payload_too_large"),
            Error::Corrupt { .. } => Some("invalid_compression"),
            Error::CompressFailed { .. } => Some("compression_failed"),
            Error::WebSocket { .. }
            | Error::Message { .. }
            | Error::UnknownCodec(_)
            | Error::LevelOutOfRange { .. }
            | Error::InvalidDictionary(_) => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
