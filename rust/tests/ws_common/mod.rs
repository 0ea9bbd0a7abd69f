//! Helpers shared by the `ws_*` integration tests (frame building, feeding
//! in chunks, comparing every split).
#![allow(dead_code)]

use _core::ws::{encode_client_frame, DecoderConfig, FrameDecoder, WsEvent};
use _core::Error;

pub const KEY: [u8; 4] = [0x5a, 0xc3, 0x0f, 0x96];

/// A masked client frame with RSV clear.
pub fn client(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_frame(opcode, payload, KEY, fin, 0, &mut out);
    out
}

pub fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

/// Feeds `data` in chunks of the given sizes (the rest in one last chunk);
/// returns every event and the first error, stopping there.
pub fn feed_chunks(
    cfg: DecoderConfig,
    data: &[u8],
    sizes: &[usize],
) -> (Vec<WsEvent>, Option<Error>) {
    let mut dec = FrameDecoder::new(cfg);
    let mut out = Vec::new();
    let mut rest = data;
    for &n in sizes {
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        if let Err(e) = dec.feed(chunk, &mut out) {
            return (out, Some(e));
        }
    }
    match dec.feed(rest, &mut out) {
        Ok(()) => (out, None),
        Err(e) => (out, Some(e)),
    }
}

/// As `feed_chunks`, through `feed_from`, the path of reads straight into
/// the decoder's buffer: each chunk is appended as a socket read would be,
/// at most the buffer's spare capacity at a time (a longer chunk takes
/// several reads); a read of nothing more is the end.
pub fn feed_from_chunks(
    cfg: DecoderConfig,
    data: &[u8],
    sizes: &[usize],
) -> (Vec<WsEvent>, Option<Error>) {
    let mut dec = FrameDecoder::new(cfg);
    let mut out = Vec::new();
    let mut rest = data;
    let mut sizes = sizes.iter().copied().chain(std::iter::once(data.len()));
    let mut chunk = sizes.next().unwrap_or(0).min(rest.len());
    while !rest.is_empty() {
        let read = |buf: &mut bytes::BytesMut| -> Result<usize, ()> {
            let spare = buf.capacity() - buf.len();
            assert!(
                spare >= _core::ws::READ_MIN,
                "a read is offered {spare} bytes"
            );
            let n = chunk.min(spare);
            buf.extend_from_slice(&rest[..n]);
            Ok(n)
        };
        let (n, decoded) = dec.feed_from(read, &mut out).unwrap();
        rest = &rest[n..];
        chunk -= n;
        if chunk == 0 {
            chunk = sizes.next().unwrap_or(rest.len()).min(rest.len());
        }
        if let Err(e) = decoded {
            return (out, Some(e));
        }
        if dec.buffered_bytes() == 0 {
            dec.release_input();
        }
    }
    (out, dec.error().cloned())
}

pub fn feed_all(cfg: DecoderConfig, data: &[u8]) -> (Vec<WsEvent>, Option<Error>) {
    feed_chunks(cfg, data, &[])
}

pub fn feed_bytewise(cfg: DecoderConfig, data: &[u8]) -> (Vec<WsEvent>, Option<Error>) {
    feed_chunks(cfg, data, &vec![1; data.len()])
}

/// Decodes `data` whole, byte by byte and split in two at every point, and
/// checks all give the same result; returns it.
pub fn decode_every_way(cfg: DecoderConfig, data: &[u8]) -> (Vec<WsEvent>, Option<Error>) {
    let whole = feed_all(cfg, data);
    assert_eq!(feed_bytewise(cfg, data), whole, "byte by byte");
    let ones = vec![1; data.len()];
    assert_eq!(
        feed_from_chunks(cfg, data, &ones),
        whole,
        "read byte by byte"
    );
    for cut in 0..=data.len() {
        assert_eq!(feed_chunks(cfg, data, &[cut]), whole, "split at {cut}");
        assert_eq!(
            feed_from_chunks(cfg, data, &[cut]),
            whole,
            "read split at {cut}"
        );
    }
    whole
}

pub fn close_code(err: Option<Error>) -> u16 {
    match err {
        Some(Error::WebSocket { close_code, .. }) => close_code,
        other => panic!("expected a WebSocket error, got {other:?}"),
    }
}

pub fn text(s: &str) -> WsEvent {
    WsEvent::Message {
        text: true,
        data: bytes::Bytes::copy_from_slice(s.as_bytes()),
    }
}

pub fn binary(b: &[u8]) -> WsEvent {
    WsEvent::Message {
        text: false,
        data: bytes::Bytes::copy_from_slice(b),
    }
}

pub fn cfg() -> DecoderConfig {
    DecoderConfig::default()
}

/// Small deterministic PRNG (xorshift64*) for test data and split points.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
