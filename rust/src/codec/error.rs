//! The codec room's error type.
//!
//! Two kinds of fault share it, told apart by [`CodecError::code`]:
//!
//! - the caller's arguments are wrong (an unknown codec name, a level out of
//!   range, a dictionary where the codec takes none or one zstd refuses):
//!   a local bug or a bad configuration, `code()` is `None` and Python gets a
//!   `ValueError`;
//! - the data is refused: it would decompress to more than the caller's
//!   `max_size` (`payload_too_large`), it is not valid compressed data
//!   (`invalid_compression`), or the library failed to compress
//!   (`compression_failed`, out of memory in practice). Python gets
//!   `CodecError` carrying the code.
//!
//! Whether a data fault is local (a corrupt stored chunk) or remote (bytes
//! a client sent) only the caller knows; the codes are named like the
//! protocol's error codes so that a caller decoding client data can answer
//! with them.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// Not one of [`super::Codec::NAMES`].
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

    /// The output would be over `max_size` bytes. Found before the output
    /// gets that large: from the sizes zstd frames declare, or as soon as
    /// the decoder produces byte `max_size + 1`.
    #[error("{codec} data decompresses to {}, over max_size {max_size}", describe_size(*.size))]
    TooLarge {
        codec: &'static str,
        max_size: usize,
        /// The size the data declares, when it declares one.
        size: Option<u64>,
    },

    /// A zstd frame that records no content size (made by a streaming
    /// encoder) and asks for a window larger than `max_size` allows; see
    /// [`super::zstandard::window_log_limit`].
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

impl CodecError {
    /// The error code of a data fault; `None` when the caller's arguments
    /// are wrong.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            CodecError::UnknownCodec(_)
            | CodecError::LevelOutOfRange { .. }
            | CodecError::InvalidDictionary(_) => None,
            CodecError::TooLarge { .. } | CodecError::WindowTooLarge { .. } => {
                Some("payload_too_large")
            }
            CodecError::Corrupt { .. } => Some("invalid_compression"),
            CodecError::CompressFailed { .. } => Some("compression_failed"),
        }
    }

    pub(crate) fn corrupt(codec: &'static str, reason: impl Into<String>) -> Self {
        CodecError::Corrupt {
            codec,
            reason: reason.into(),
        }
    }
}
