//! RFC 6455 WebSocket framing, server side, sans-IO.
//!
//! [`FrameDecoder`] turns the bytes a client sent into [`WsEvent`]s (whole
//! data messages, pings, pongs, the close frame), enforcing the framing rules
//! and the size limits of [`DecoderConfig`]; every violation is an
//! [`Error::WebSocket`](crate::Error::WebSocket) carrying the close code to
//! answer with. The encoders write server frames (unmasked) into a caller's
//! buffer. Nothing here does I/O or answers on its own: replying to a ping or
//! a close is the caller's job, as in h11 and wsproto.
//!
//! The opening handshake (HTTP Upgrade) is not here: the listener does it,
//! including the negotiation of permessage-deflate (RFC 7692), the one
//! extension supported. Its agreed parameters reach the decoder in
//! [`DecoderConfig::deflate`]; without it any reserved bit is a protocol
//! error.
//!
//! - [`frame`]: header parsing and encoding, opcodes, close codes.
//! - [`mask`]: (un)masking of payloads.
//! - [`utf8`]: incremental, fail-fast UTF-8 validation of text messages.
//! - [`decoder`]: the connection state machine.
//! - [`deflate`]: permessage-deflate, inflating and deflating messages.

pub mod decoder;
pub mod deflate;
pub mod frame;
pub mod mask;
pub mod utf8;

#[cfg(test)]
mod deflate_decoding_tests;

pub use decoder::{
    DecoderConfig, FrameDecoder, WsEvent, READ_BLOCK, READ_MIN, SKIP_CEILING_FACTOR,
    TOO_LARGE_PREFIX,
};
pub use deflate::{deflate_message, encode_deflated_frame, InflateConfig, Inflater};
pub use frame::{
    encode_client_frame, encode_close, encode_frame, is_valid_close_code, parse_header,
    FrameHeader, OpCode,
};
pub use mask::apply_mask;
