//! The server-side frame decoder: bytes in, [`WsEvent`]s out.
//!
//! # Buffering
//!
//! Input is appended to one `BytesMut`. A frame's payload is unmasked in
//! place as its bytes arrive (so text can be validated as it arrives), and a
//! complete single-frame message is handed out with `split_to(..).freeze()`:
//! the event shares the input buffer, no copy. Fragments of a multi-frame
//! message are copied once into the message buffer. When `feed` returns,
//! the decoder holds at most one partial frame (header plus the payload bytes
//! seen so far, never more than the frame's declared length, itself checked
//! against the limits when the header arrived) and the fragments of at most
//! one message (at most `max_message_bytes`, together with that frame).
//!
//! # Compression
//!
//! With permessage-deflate negotiated (`DecoderConfig::deflate`), RSV1 on
//! the first frame of a data message marks it compressed. Each frame of such
//! a message is inflated when it completes (see [`Inflater`]), into the
//! message buffer, whose size `max_message_bytes` then bounds while
//! inflating; the wire bytes of the message count against the same limit
//! when its headers arrive. A compressed message may so hold up to twice
//! `max_message_bytes`: its inflated part and the frame being received.
//! Text is validated on the inflated bytes, as they come out. Without the
//! extension the decoder has no inflater and does no extra work.
//!
//! # Oversized messages
//!
//! By default a data message (or frame) over the limits fails the decoder
//! with 1009. With `DecoderConfig::skip_oversized` it is skipped instead:
//! its payload is discarded as it arrives (only the first
//! [`TOO_LARGE_PREFIX`] bytes are kept, so that the caller can tell the
//! peer which message it refused) and one [`WsEvent::TooLarge`] is emitted
//! when its last frame ends; the connection goes on. A compressed message
//! can only be skipped when the peer resets its compression context after
//! every message (`client_no_context_takeover`): otherwise the skipped data
//! is part of the context the next message needs, and the decoder fails
//! with 1009 as without the option. Skipping has a ceiling too: a message
//! whose frame headers announce more than [`SKIP_CEILING_FACTOR`] times
//! `max_message_bytes` fails with 1009 at the header that says so, rather
//! than be read and discarded for as long as the peer keeps sending (a
//! header may announce up to 2^63 bytes).
//!
//! # The close frame
//!
//! Once the peer's close frame is decoded, whatever follows it, in the same
//! read or a later one, is discarded unread: RFC 6455 §5.5.1 lets nothing
//! follow a close, and an endpoint that has received one answers it and is
//! done, whether the peer broke that rule or not. The answer so does not
//! depend on how TCP happened to split the bytes.
//!
//! # Errors
//!
//! Every violation is an [`Error::WebSocket`] carrying the close code to send
//! (1002, 1007 or 1009; an invalid DEFLATE stream is 1002). Checks run as
//! early as the bytes allow: header rules on the first header byte that shows
//! them, limits on the header (before any payload is buffered), UTF-8 on every
//! payload byte as it arrives (for a compressed message, on every byte as it
//! is inflated). After an
//! error the decoder is spent: buffers are released and every later `feed`
//! returns the same error.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{close_code, Error, Result};

use super::deflate::{InflateConfig, Inflater};
use super::frame::{self, OpCode, MAX_CONTROL_PAYLOAD};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Limits and rules of one connection, fixed when the decoder is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest payload of one frame; a header announcing more fails with 1009.
    pub max_frame_bytes: usize,
    /// Largest data message, all fragments together; fails with 1009.
    pub max_message_bytes: usize,
    /// Reject unmasked frames (1002). Clients must mask (§5.1); turn off only
    /// to decode frames written by a server.
    pub require_mask: bool,
    /// permessage-deflate as negotiated (the peer's window and context
    /// takeover), or `None`: then RSV1 is a protocol error (1002).
    pub deflate: Option<InflateConfig>,
    /// Skip data messages over the limits (see the module docs) instead of
    /// failing with 1009.
    pub skip_oversized: bool,
}

/// Input buffer capacity above which a mostly empty buffer is reallocated
/// (see `FrameDecoder::feed`).
const SHRINK_ABOVE: usize = 1 << 20;

/// [`FrameDecoder::feed_from`]: the least spare capacity a read is offered,
/// and the size of a new input buffer when the spare runs below it.
pub const READ_MIN: usize = 64 * 1024;
pub const READ_BLOCK: usize = 256 * 1024;

/// How much of a skipped message [`WsEvent::TooLarge`] keeps: enough for
/// the envelope of a protocol message (its type, session id and seq).
pub const TOO_LARGE_PREFIX: usize = 4096;

/// With `skip_oversized`, a data message may announce up to this many times
/// `max_message_bytes` in its frame headers and still be skipped; past it
/// the decoder fails with 1009 at once (see the module docs). Large enough
/// for a message a little over the limit, which a tracker may send by
/// mistake and should hear about; small enough that a header announcing
/// terabytes is refused before its payload.
pub const SKIP_CEILING_FACTOR: u64 = 4;

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_frame_bytes: 16 * 1024 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            require_mask: true,
            deflate: None,
            skip_oversized: false,
        }
    }
}

/// What a peer sent: a whole data message or a control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A complete data message, all fragments joined. Text is valid UTF-8.
    Message {
        text: bool,
        data: Bytes,
    },
    /// The caller should answer with a pong carrying the same payload.
    Ping(Bytes),
    Pong(Bytes),
    /// The peer's close frame; `code` is `None` for an empty body. It is the
    /// decoder's last event: what follows it is discarded.
    Close {
        code: Option<u16>,
        reason: String,
    },
    /// A data message over the limits was skipped (only with
    /// `skip_oversized`). `size` is its length as far as known: the sum of
    /// its frames' lengths, or, when it only grew too large while being
    /// inflated, one byte over the limit. `prefix` is its first bytes
    /// (inflated if compressed; empty when a compressed message was too
    /// large on the wire already).
    TooLarge {
        text: bool,
        size: u64,
        prefix: Bytes,
    },
}

/// The frame whose payload is being received.
#[derive(Debug)]
struct Frame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Part of an uncompressed text message: validate the payload as it
    /// arrives.
    text: bool,
    /// Part of a compressed message: inflate the payload once complete.
    compressed: bool,
    /// Payload bytes at the front of the buffer already unmasked (and
    /// validated, for text). Only data frames are processed piecewise;
    /// control frames (≤ 125 bytes) are handled once complete. For a
    /// skipped frame: payload bytes consumed (and dropped) so far.
    done: usize,
    /// Part of a skipped message: drop the payload as it arrives.
    skip: bool,
}

/// A data message over the limits, being skipped.
#[derive(Debug)]
struct Skip {
    text: bool,
    compressed: bool,
    size: u64,
    prefix: Vec<u8>,
}

/// A data message whose first fragment arrived and last has not.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    /// Payload of the fragments completed so far (inflated, if compressed).
    data: Vec<u8>,
    /// Declared payload length of every fragment so far, including the one
    /// being received; checked against `max_message_bytes` on each header.
    len: usize,
}

/// Decodes the frames a client sends on one connection.
///
/// Sans-IO: [`feed`](Self::feed) takes whatever bytes the socket returned and
/// appends every event they complete. "Need more data" is just an empty
/// result. Replying to pings and closes is the caller's job.
#[derive(Debug)]
pub struct FrameDecoder {
    cfg: DecoderConfig,
    buf: BytesMut,
    frame: Option<Frame>,
    partial: Option<Partial>,
    skip: Option<Skip>,
    utf8: Utf8Validator,
    /// Boxed: most connections have none, and the decoder lives as long as
    /// its connection (an idle one keeps it too).
    inflater: Option<Box<Inflater>>,
    close_received: bool,
    failed: Option<Box<Error>>,
}

impl FrameDecoder {
    /// # Panics
    ///
    /// If `cfg.deflate` has a window outside 8..=15 bits
    /// ([`InflateConfig::validate`]).
    pub fn new(cfg: DecoderConfig) -> Self {
        FrameDecoder {
            inflater: cfg.deflate.map(|c| Box::new(Inflater::new(c))),
            cfg,
            buf: BytesMut::new(),
            frame: None,
            partial: None,
            skip: None,
            utf8: Utf8Validator::new(),
            close_received: false,
            failed: None,
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// Appends every event completed by `data` to `out`.
    ///
    /// On error, events pushed earlier in this call stay in `out`: they were
    /// complete and valid before the violation, and the caller should
    /// handle them before failing the connection. The decoder then refuses
    /// all input, returning the same error on every later call. After the
    /// close frame, input is discarded.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<WsEvent>) -> Result<()> {
        if let Some(err) = &self.failed {
            return Err((**err).clone());
        }
        if data.is_empty() || self.close_received {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        self.decode_buffered(out, true)
    }

    /// [`feed`](Self::feed) for a caller that reads from its socket straight
    /// into the input buffer, which saves copying every byte once more:
    /// `fill` appends at most the buffer's spare capacity (at least
    /// [`READ_MIN`] bytes) and returns how many bytes it appended (0: the
    /// peer sent nothing more), or its own error, which is returned as it
    /// is with nothing decoded. Otherwise the result is `fill`'s count and
    /// what `feed` would have returned.
    ///
    /// The buffer keeps its spare capacity between reads, so consecutive
    /// reads fill one allocation (the messages handed out share it) rather
    /// than one allocation each: call [`release_input`](Self::release_input)
    /// when the peer has nothing more to send for now.
    pub fn feed_from<E>(
        &mut self,
        fill: impl FnOnce(&mut BytesMut) -> std::result::Result<usize, E>,
        out: &mut Vec<WsEvent>,
    ) -> std::result::Result<(usize, Result<()>), E> {
        if self.failed.is_some() || self.close_received {
            // What follows a close or a violation is read and discarded.
            let mut scratch = BytesMut::with_capacity(READ_MIN);
            let n = fill(&mut scratch)?;
            let decoded = self
                .failed
                .as_ref()
                .map_or(Ok(()), |err| Err((**err).clone()));
            return Ok((n, decoded));
        }
        if self.buf.capacity() - self.buf.len() < READ_MIN {
            self.buf.reserve(READ_BLOCK);
        }
        let n = fill(&mut self.buf)?;
        if n == 0 {
            return Ok((0, Ok(())));
        }
        Ok((n, self.decode_buffered(out, false)))
    }

    /// Let go of the input buffer if it holds no partial frame: what a
    /// connection does once its peer has nothing more to send, so that an
    /// idle connection holds no buffer (see [`feed_from`](Self::feed_from)).
    pub fn release_input(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Decode what the input buffer holds; `release_when_empty`: drop the
    /// buffer if every byte of it was handed out.
    fn decode_buffered(&mut self, out: &mut Vec<WsEvent>, release_when_empty: bool) -> Result<()> {
        let result = self.process(out);
        // A large frame handed out with `split_to` leaves `buf` on the tail
        // of the same allocation, which would stay alive (and resident) as
        // long as the connection: start afresh once little is left in it.
        if self.buf.capacity() > SHRINK_ABOVE && self.buf.len() <= SHRINK_ABOVE / 4 {
            self.buf = BytesMut::from(&self.buf[..]);
        } else if release_when_empty {
            // Every frame read was handed out: let go of the allocation
            // (the next read makes one of its own size), so that a
            // connection between messages, idle most of its life, holds
            // none.
            self.release_input();
        }
        if let Err(err) = &result {
            self.failed = Some(Box::new(err.clone()));
            self.buf = BytesMut::new();
            self.partial = None;
            self.skip = None;
            self.frame = None;
        }
        result
    }

    /// Bytes allocated for the input buffer: zero between frames.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes held for incomplete frames and messages.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
            + self.partial.as_ref().map_or(0, |p| p.data.len())
            + self.skip.as_ref().map_or(0, |s| s.prefix.len())
    }

    /// Payload bytes of the frame in progress that have not arrived yet (0
    /// between frames and while skipping): what the caller will buffer
    /// before this frame completes, known as soon as its header arrived.
    pub fn frame_remaining(&self) -> usize {
        match &self.frame {
            Some(frame) if !frame.skip => frame.len.saturating_sub(self.buf.len()),
            _ => 0,
        }
    }

    /// True once the peer's close frame has been decoded.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// The error the decoder failed with, if it did: every `feed` from
    /// then on returns it.
    pub fn error(&self) -> Option<&Error> {
        self.failed.as_deref()
    }

    /// The most a skipped message may announce (see the module docs).
    fn skip_ceiling(&self) -> u64 {
        (self.cfg.max_message_bytes as u64).saturating_mul(SKIP_CEILING_FACTOR)
    }

    fn process(&mut self, out: &mut Vec<WsEvent>) -> Result<()> {
        loop {
            if self.close_received {
                self.buf = BytesMut::new();
                return Ok(());
            }
            if self.frame.is_none() {
                match self.read_header()? {
                    Some(frame) => self.frame = Some(frame),
                    None => return Ok(()),
                }
            }
            let Some(frame) = self.frame.as_mut() else {
                unreachable!("set just above");
            };
            if frame.skip {
                if !self.skip_payload(out) {
                    return Ok(());
                }
                continue;
            }
            let available = self.buf.len().min(frame.len);
            if available > frame.done && !frame.opcode.is_control() {
                let fresh = &mut self.buf[frame.done..available];
                if let Some(key) = frame.mask {
                    apply_mask(fresh, key, frame.done);
                }
                if frame.text && self.utf8.feed(fresh).is_err() {
                    return Err(invalid_text());
                }
                frame.done = available;
            }
            if self.buf.len() < frame.len {
                return Ok(());
            }
            let Some(frame) = self.frame.take() else {
                unreachable!("a frame is in progress here");
            };
            let payload = self.buf.split_to(frame.len);
            self.complete(frame, payload, out)?;
        }
    }

    /// Validates and consumes the next frame header, if all of it is here.
    /// Rules are checked from the first byte that shows them.
    fn read_header(&mut self) -> Result<Option<Frame>> {
        let Some(&b0) = self.buf.first() else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            self.check_reserved_bits(b0)?;
        }
        let opcode = self.opcode_in_order(b0)?;
        let Some(&b1) = self.buf.get(1) else {
            return Ok(None);
        };
        if self.cfg.require_mask && b1 & 0x80 == 0 {
            return Err(Error::protocol("client frame is not masked"));
        }
        if opcode.is_control() && usize::from(b1 & 0x7F) > MAX_CONTROL_PAYLOAD {
            return Err(Error::protocol("control frame payload over 125 bytes"));
        }
        let Some((header, header_len)) = frame::parse_header(&self.buf)? else {
            return Ok(None);
        };
        let oversized = header.payload_len > self.cfg.max_frame_bytes as u64;
        if oversized && (opcode.is_control() || !self.cfg.skip_oversized) {
            return Err(self.frame_too_big(header.payload_len));
        }
        // A frame that is not skipped is at most max_frame_bytes; one that
        // is skipped is only counted down, and so may be as large as the
        // platform's usize (a u64 on the 64-bit targets we build for).
        let len = usize::try_from(header.payload_len)
            .map_err(|_| too_big(format!("frame of {} bytes", header.payload_len)))?;
        let mut frame = Frame {
            opcode,
            fin: b0 & 0x80 != 0,
            mask: header.mask,
            len,
            text: false,
            compressed: false,
            done: 0,
            skip: false,
        };
        match opcode {
            // RSV1 marks a compressed message; allowed only when
            // negotiated (see check_reserved_bits).
            OpCode::Text | OpCode::Binary => {
                self.start_message(&mut frame, b0 & 0x40 != 0, oversized)?;
            }
            OpCode::Continuation => self.continue_message(&mut frame, oversized)?,
            _ => {}
        }
        self.buf.advance(header_len);
        // Room for the whole payload at once: growing by doubling as it
        // arrives would copy it several times and leave up to twice its
        // size allocated. A skipped payload is dropped as it arrives.
        if !frame.skip && len > self.buf.len() {
            self.buf.reserve(len - self.buf.len());
        }
        Ok(Some(frame))
    }

    /// The opcode of first byte `b0`, if a frame of it may come now
    /// (§5.4): control frames are not fragmented, a continuation needs a
    /// message in progress, and a new data message waits for the end of
    /// the one in progress.
    fn opcode_in_order(&self, b0: u8) -> Result<OpCode> {
        let Some(opcode) = OpCode::from_u8(b0 & 0x0F) else {
            return Err(Error::protocol(format!("reserved opcode {:#x}", b0 & 0x0F)));
        };
        let in_progress = self.partial.is_some() || self.skip.is_some();
        match opcode {
            _ if opcode.is_control() && b0 & 0x80 == 0 => {
                Err(Error::protocol("fragmented control frame"))
            }
            OpCode::Continuation if !in_progress => Err(Error::protocol(
                "continuation frame without a message in progress",
            )),
            OpCode::Text | OpCode::Binary if in_progress => Err(Error::protocol(
                "new data frame while a fragmented message is in progress",
            )),
            _ => Ok(opcode),
        }
    }

    /// The first frame of a data message: read, or skipped with the rest
    /// of its message when it is over a limit and may be skipped.
    fn start_message(
        &mut self,
        frame: &mut Frame,
        compressed: bool,
        oversized: bool,
    ) -> Result<()> {
        let text = frame.opcode == OpCode::Text;
        let size = frame.len as u64;
        if oversized || frame.len > self.cfg.max_message_bytes {
            self.check_skippable(compressed, oversized, size, size)?;
            self.skip = Some(Skip {
                text,
                compressed,
                size,
                prefix: Vec::new(),
            });
            frame.skip = true;
            return Ok(());
        }
        if text {
            self.utf8.reset();
        }
        if !frame.fin {
            self.partial = Some(Partial {
                text,
                compressed,
                data: Vec::new(),
                len: frame.len,
            });
        }
        frame.text = text && !compressed;
        frame.compressed = compressed;
        Ok(())
    }

    /// A continuation frame: counted down when its message is being
    /// skipped; else read, or the message turned into a skipped one when
    /// this frame takes it over a limit and it may be skipped.
    fn continue_message(&mut self, frame: &mut Frame, oversized: bool) -> Result<()> {
        let frame_len = frame.len as u64;
        if let Some(size) = self.skip.as_ref().map(|s| s.size.saturating_add(frame_len)) {
            if size > self.skip_ceiling() {
                return Err(self.over_skip_ceiling(size));
            }
            if let Some(skip) = self.skip.as_mut() {
                skip.size = size;
            }
            frame.skip = true;
            return Ok(());
        }
        let Some(partial) = self.partial.as_ref() else {
            unreachable!("checked on the first byte");
        };
        let total = partial.len as u64 + frame_len;
        if oversized || total > self.cfg.max_message_bytes as u64 {
            self.check_skippable(partial.compressed, oversized, frame_len, total)?;
            self.start_skipping(total);
            frame.skip = true;
            return Ok(());
        }
        let Some(partial) = self.partial.as_mut() else {
            unreachable!("checked on the first byte");
        };
        partial.len += frame.len;
        frame.text = partial.text && !partial.compressed;
        frame.compressed = partial.compressed;
        Ok(())
    }

    /// For a data frame that takes its message over a limit (the frame
    /// `oversized`, or the message `total` bytes long): the error that
    /// fails the decoder, unless the message may be skipped.
    fn check_skippable(
        &self,
        compressed: bool,
        oversized: bool,
        frame_len: u64,
        total: u64,
    ) -> Result<()> {
        if !self.can_skip(compressed) {
            return Err(if oversized {
                self.frame_too_big(frame_len)
            } else {
                self.message_too_big(total)
            });
        }
        if total > self.skip_ceiling() {
            return Err(self.over_skip_ceiling(total));
        }
        Ok(())
    }

    /// Whether an oversized message may be skipped rather than fail the
    /// decoder: only when asked to, and for a compressed message only when
    /// the peer does not carry its compression context over.
    fn can_skip(&self, compressed: bool) -> bool {
        self.cfg.skip_oversized
            && (!compressed
                || self
                    .inflater
                    .as_ref()
                    .is_some_and(|i| i.config().no_context_takeover))
    }

    /// Turns the fragmented message in progress into one being skipped,
    /// keeping the start of what it delivered so far.
    fn start_skipping(&mut self, size: u64) {
        let Some(partial) = self.partial.take() else {
            unreachable!("only called with a message in progress");
        };
        let mut prefix = partial.data;
        prefix.truncate(TOO_LARGE_PREFIX);
        prefix.shrink_to_fit();
        self.skip = Some(Skip {
            text: partial.text,
            compressed: partial.compressed,
            size,
            prefix,
        });
    }

    /// Drops the payload of the skipped frame in progress as it arrives,
    /// keeping the message's first bytes. Returns true once the frame is
    /// consumed (then the message's last frame emits `TooLarge`).
    fn skip_payload(&mut self, out: &mut Vec<WsEvent>) -> bool {
        let (Some(frame), Some(skip)) = (self.frame.as_mut(), self.skip.as_mut()) else {
            unreachable!("a skipped frame belongs to a skipped message");
        };
        let n = self.buf.len().min(frame.len - frame.done);
        // The wire bytes of a compressed message say nothing readable.
        let room = if skip.compressed {
            0
        } else {
            TOO_LARGE_PREFIX.saturating_sub(skip.prefix.len()).min(n)
        };
        if room > 0 {
            let start = skip.prefix.len();
            skip.prefix.extend_from_slice(&self.buf[..room]);
            if let Some(key) = frame.mask {
                apply_mask(&mut skip.prefix[start..], key, frame.done);
            }
        }
        self.buf.advance(n);
        frame.done += n;
        if frame.done < frame.len {
            return false;
        }
        let fin = frame.fin;
        self.frame = None;
        if fin {
            self.finish_skipping(out);
        }
        true
    }

    fn finish_skipping(&mut self, out: &mut Vec<WsEvent>) {
        let Some(skip) = self.skip.take() else {
            unreachable!("only called while skipping");
        };
        if skip.compressed {
            // The peer starts its next message with a fresh context.
            if let Some(inflater) = self.inflater.as_mut() {
                inflater.reset();
            }
        }
        out.push(WsEvent::TooLarge {
            text: skip.text,
            size: skip.size,
            prefix: Bytes::from(skip.prefix),
        });
    }

    /// Rules for a first byte with reserved bits set (§5.2, RFC 7692 §6):
    /// RSV1 marks the first frame of a compressed data message when
    /// permessage-deflate was negotiated; anything else is a protocol error.
    #[cold]
    fn check_reserved_bits(&self, b0: u8) -> Result<()> {
        if b0 & 0x30 != 0 {
            return Err(Error::protocol(
                "RSV2 or RSV3 set but no extension that uses them was negotiated",
            ));
        }
        if self.inflater.is_none() {
            return Err(Error::protocol(
                "RSV1 set but permessage-deflate was not negotiated",
            ));
        }
        match OpCode::from_u8(b0 & 0x0F) {
            Some(OpCode::Continuation) => Err(Error::protocol("RSV1 set on a continuation frame")),
            Some(op) if op.is_control() => Err(Error::protocol("RSV1 set on a control frame")),
            // Text, binary, or a reserved opcode refused just after.
            _ => Ok(()),
        }
    }

    /// A frame over `max_frame_bytes` that is not skipped. Named apart
    /// from a message over its limit: "message of 91 bytes is over the
    /// 200 byte limit" for a 91-byte frame over a 64-byte frame limit
    /// would send a peer (and a log reader) looking at the wrong limit.
    fn frame_too_big(&self, len: u64) -> Error {
        too_big(format!(
            "frame of {len} bytes is over the {} byte limit",
            self.cfg.max_frame_bytes
        ))
    }

    /// A message announcing more than a skipped one may (1009, even with
    /// `skip_oversized`).
    #[cold]
    fn over_skip_ceiling(&self, len: u64) -> Error {
        too_big(format!(
            "message of {len} bytes is over the {} byte limit (more than {SKIP_CEILING_FACTOR} \
             times it: not skipped)",
            self.cfg.max_message_bytes
        ))
    }

    fn message_too_big(&self, len: u64) -> Error {
        too_big(format!(
            "message of {len} bytes is over the {} byte limit",
            self.cfg.max_message_bytes
        ))
    }

    /// Handles a frame whose whole payload is `payload`. Data frames arrive
    /// here unmasked and validated; control frames still masked.
    fn complete(
        &mut self,
        frame: Frame,
        mut payload: BytesMut,
        out: &mut Vec<WsEvent>,
    ) -> Result<()> {
        if frame.opcode.is_control() {
            if let Some(key) = frame.mask {
                apply_mask(&mut payload, key, 0);
            }
        }
        match frame.opcode {
            OpCode::Text | OpCode::Binary if frame.fin => {
                let text = frame.opcode == OpCode::Text;
                let data = if frame.compressed {
                    match self.inflate_or_skip(Vec::new(), &payload, text, true, out)? {
                        Some(data) => Bytes::from(data),
                        None => return Ok(()),
                    }
                } else {
                    payload.freeze()
                };
                if text && self.utf8.finish().is_err() {
                    return Err(invalid_text());
                }
                out.push(WsEvent::Message { text, data });
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                let Some(partial) = self.partial.as_mut() else {
                    unreachable!("set when the header arrived");
                };
                if partial.compressed {
                    let (data, text) = (std::mem::take(&mut partial.data), partial.text);
                    match self.inflate_or_skip(data, &payload, text, frame.fin, out)? {
                        Some(data) => {
                            if let Some(partial) = self.partial.as_mut() {
                                partial.data = data;
                            }
                        }
                        None => return Ok(()),
                    }
                } else {
                    // Copy rather than keep `payload`: it shares the input
                    // buffer, which the partial message must not pin.
                    partial.data.extend_from_slice(&payload);
                }
                if frame.fin {
                    if let Some(partial) = self.partial.take() {
                        if partial.text && self.utf8.finish().is_err() {
                            return Err(invalid_text());
                        }
                        out.push(WsEvent::Message {
                            text: partial.text,
                            data: Bytes::from(partial.data),
                        });
                    }
                }
            }
            OpCode::Ping => out.push(WsEvent::Ping(payload.freeze())),
            OpCode::Pong => out.push(WsEvent::Pong(payload.freeze())),
            OpCode::Close => {
                let (code, reason) = parse_close(&payload)?;
                self.close_received = true;
                out.push(WsEvent::Close { code, reason });
            }
        }
        Ok(())
    }

    /// Inflates one frame of a compressed message onto `data` (and, with
    /// `last`, the end of the message) and gives `data` back. A message
    /// that grows over `max_message_bytes` is skipped instead when it may
    /// be: its inflated start kept as the prefix, `TooLarge` pushed if this
    /// was its last frame, and `None` returned.
    fn inflate_or_skip(
        &mut self,
        mut data: Vec<u8>,
        payload: &[u8],
        text: bool,
        last: bool,
        out: &mut Vec<WsEvent>,
    ) -> Result<Option<Vec<u8>>> {
        let limit = self.cfg.max_message_bytes;
        let Err(err) = inflate(
            &mut self.inflater,
            &mut self.utf8,
            limit,
            payload,
            &mut data,
            text,
            last,
        ) else {
            return Ok(Some(data));
        };
        if !(is_too_big(&err) && self.can_skip(true)) {
            return Err(err);
        }
        data.truncate(TOO_LARGE_PREFIX);
        data.shrink_to_fit();
        self.partial = None;
        self.skip = Some(Skip {
            text,
            compressed: true,
            size: limit as u64 + 1,
            prefix: data,
        });
        if last {
            self.finish_skipping(out);
        }
        Ok(None)
    }
}

/// Inflates one frame of a compressed message onto `data` (and, with
/// `last`, the end of the message), within `limit` bytes; text is validated
/// as it comes out. A free function so that the decoder's fields can be
/// borrowed one by one.
fn inflate(
    inflater: &mut Option<Box<Inflater>>,
    utf8: &mut Utf8Validator,
    limit: usize,
    payload: &[u8],
    data: &mut Vec<u8>,
    text: bool,
    last: bool,
) -> Result<()> {
    let Some(inflater) = inflater.as_mut() else {
        unreachable!("RSV1 is refused unless permessage-deflate was negotiated");
    };
    inflater.inflate(payload, data, limit, text.then_some(&mut *utf8))?;
    if last {
        inflater.finish(data, limit, text.then_some(utf8))?;
    }
    Ok(())
}

/// Reads a close body (§5.5.1): empty, or a valid code and a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<(Option<u16>, String)> {
    match payload {
        [] => Ok((None, String::new())),
        [_] => Err(Error::protocol("close frame body of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !frame::is_valid_close_code(code) {
                return Err(Error::protocol(format!("invalid close code {code}")));
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => Ok((Some(code), reason.to_owned())),
                Err(_) => Err(Error::ws(
                    close_code::INVALID_PAYLOAD,
                    "close reason is not valid UTF-8",
                )),
            }
        }
    }
}

pub(super) fn invalid_text() -> Error {
    Error::ws(
        close_code::INVALID_PAYLOAD,
        "text message is not valid UTF-8",
    )
}

fn too_big(message: String) -> Error {
    Error::ws(close_code::MESSAGE_TOO_BIG, message)
}

fn is_too_big(err: &Error) -> bool {
    matches!(err, Error::WebSocket { close_code, .. } if *close_code == close_code::MESSAGE_TOO_BIG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::encode_client_frame;

    const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    fn client(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
        let mut out = Vec::new();
        encode_client_frame(opcode, payload, KEY, fin, 0, &mut out);
        out
    }

    fn decode(cfg: DecoderConfig, data: &[u8]) -> (Vec<WsEvent>, Result<()>) {
        let mut dec = FrameDecoder::new(cfg);
        let mut out = Vec::new();
        let r = dec.feed(data, &mut out);
        (out, r)
    }

    fn close_code_of(r: Result<()>) -> u16 {
        match r {
            Err(Error::WebSocket { close_code, .. }) => close_code,
            other => panic!("expected a WebSocket error, got {other:?}"),
        }
    }

    #[test]
    fn input_buffer_released_between_frames() {
        let mut dec = FrameDecoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        let frame = client(1, &vec![b'a'; 100_000], true);
        dec.feed(&frame[..50_000], &mut out).unwrap();
        dec.feed(&frame[50_000..], &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(dec.buffer_capacity(), 0);
        // A read that ends mid-frame keeps what the frame needs.
        let small = client(1, b"hello", true);
        dec.feed(&small[..3], &mut out).unwrap();
        assert!(dec.buffer_capacity() >= 3);
        dec.feed(&small[3..], &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(dec.buffer_capacity(), 0);
    }

    #[test]
    fn single_text_frame() {
        let (events, r) = decode(DecoderConfig::default(), &client(1, b"hello", true));
        r.unwrap();
        assert_eq!(
            events,
            [WsEvent::Message {
                text: true,
                data: Bytes::from_static(b"hello")
            }]
        );
    }

    #[test]
    fn many_frames_in_one_chunk() {
        let mut data = Vec::new();
        for i in 0..100u32 {
            data.extend(client(2, &i.to_be_bytes(), true));
        }
        let (events, r) = decode(DecoderConfig::default(), &data);
        r.unwrap();
        assert_eq!(events.len(), 100);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e,
                &WsEvent::Message {
                    text: false,
                    data: Bytes::copy_from_slice(&(i as u32).to_be_bytes())
                }
            );
        }
    }

    #[test]
    fn partial_frame_waits_and_is_counted() {
        let frame = client(2, &[7u8; 1000], true);
        let mut dec = FrameDecoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        dec.feed(&frame[..500], &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(dec.buffered_bytes(), 500 - 4 - 4);
        dec.feed(&frame[500..], &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn unmasked_allowed_when_not_required() {
        let mut data = Vec::new();
        frame::encode_frame(OpCode::Text, b"srv", true, &mut data);
        let cfg = DecoderConfig {
            require_mask: false,
            ..DecoderConfig::default()
        };
        let (events, r) = decode(cfg, &data);
        r.unwrap();
        assert_eq!(events.len(), 1);
        let (_, r) = decode(DecoderConfig::default(), &data);
        assert_eq!(close_code_of(r), 1002);
    }

    #[test]
    fn errors_poison_the_decoder() {
        let mut dec = FrameDecoder::new(DecoderConfig::default());
        let mut out = Vec::new();
        let err = dec.feed(&[0xF1], &mut out).unwrap_err();
        assert_eq!(dec.feed(&client(1, b"x", true), &mut out), Err(err));
        assert_eq!(dec.buffered_bytes(), 0);
    }

    #[test]
    fn close_parsing() {
        assert_eq!(parse_close(b""), Ok((None, String::new())));
        assert_eq!(parse_close(b"\x03\xe8bye"), Ok((Some(1000), "bye".into())));
        assert!(parse_close(b"\x03").is_err());
        assert!(parse_close(b"\x03\xed").is_err()); // 1005
        assert!(matches!(
            parse_close(b"\x03\xe8\xff"),
            Err(Error::WebSocket {
                close_code: 1007,
                ..
            })
        ));
    }
}
