//! WebSocket-aware inputs for the `frame_decoder` property: streams cut
//! into frames and edited frame by frame (header bits, opcodes, length
//! fields and their encodings, fragments, interleaved control frames), and
//! streams built from scratch, compressed messages included.
//!
//! The input layout is the harness's: a settings byte, then the stream
//! (see `fuzz/harness.rs`).

use _core::ws::{apply_mask, parse_header};
use flate2::{Compress, Compression, FlushCompress};

use super::bytes;
use super::driver::Rng;

/// Settings bits, as `fuzz/harness.rs` reads them.
const TIGHT: u8 = 0x80;
const UNMASKED_OK: u8 = 0x40;
const DEFLATE: u8 = 0x20;
const NO_TAKEOVER: u8 = 0x10;
const SKIP_OVERSIZED: u8 = 0x08;

/// The harness's limits: tight, then default (frame, message).
const TIGHT_LIMITS: [u64; 2] = [64, 200];
const LIMIT: u64 = 1 << 20;

/// One frame as it will be written; the payload unmasked.
#[derive(Clone, Debug)]
pub struct Frame {
    b0: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
    /// Length the header states, when it is not the payload's.
    declared: Option<u64>,
    /// Length encoding at least: 0 in the second byte, 1 as 16 bits, 2 as
    /// 64 bits (a longer form than needed is legal on the wire).
    form: u8,
}

impl Frame {
    fn new(b0: u8, payload: Vec<u8>, mask: Option<[u8; 4]>) -> Self {
        Frame {
            b0,
            mask,
            payload,
            declared: None,
            form: 0,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let len = self.declared.unwrap_or(self.payload.len() as u64);
        let needed = match len {
            0..=125 => 0,
            126..=0xffff => 1,
            _ => 2,
        };
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        out.push(self.b0);
        match self.form.max(needed) {
            0 => out.push(mask_bit | len as u8),
            1 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        let start = out.len() + if self.mask.is_some() { 4 } else { 0 };
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
        out.extend_from_slice(&self.payload);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }
}

/// A stream cut into frames, and what follows the last whole header.
#[derive(Clone, Debug)]
pub struct Stream {
    pub settings: u8,
    pub frames: Vec<Frame>,
    pub tail: Vec<u8>,
}

impl Stream {
    /// Reads an input (settings byte, stream) frame by frame; a last frame
    /// whose payload is cut short keeps its declared length.
    pub fn parse(input: &[u8]) -> Stream {
        let (settings, mut rest) = input.split_first().map_or((0, &[][..]), |(s, r)| (*s, r));
        let mut frames = Vec::new();
        while let Ok(Some((header, n))) = parse_header(rest) {
            let available = (rest.len() - n) as u64;
            let take = header.payload_len.min(available) as usize;
            let mut payload = rest[n..n + take].to_vec();
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key, 0);
            }
            frames.push(Frame {
                b0: rest[0],
                mask: header.mask,
                payload,
                declared: (take as u64 != header.payload_len).then_some(header.payload_len),
                form: match rest[1] & 0x7f {
                    126 => 1,
                    127 => 2,
                    _ => 0,
                },
            });
            rest = &rest[n + take..];
        }
        Stream {
            settings,
            frames,
            tail: rest.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.settings];
        for frame in &self.frames {
            frame.encode(&mut out);
        }
        out.extend_from_slice(&self.tail);
        out
    }

    /// A masking key, or none when the settings allow it and a coin says so.
    fn key(&self, rng: &mut Rng) -> Option<[u8; 4]> {
        if self.settings & UNMASKED_OK != 0 && rng.one_in(3) {
            None
        } else {
            let k = rng.next_u64().to_le_bytes();
            Some([k[0], k[1], k[2], k[3]])
        }
    }

    fn limits(&self) -> [u64; 2] {
        if self.settings & TIGHT != 0 {
            TIGHT_LIMITS
        } else {
            [LIMIT; 2]
        }
    }
}

/// Text that is mostly valid UTF-8: ASCII, two- to four-byte characters,
/// and now and then a byte sequence that is not UTF-8.
pub fn text(rng: &mut Rng, max: usize) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"a",
        b"{\"type\":3}",
        b" ",
        "é".as_bytes(),
        "€".as_bytes(),
        "😀".as_bytes(),
        "\u{10ffff}".as_bytes(),
        "\u{fffd}".as_bytes(),
    ];
    const BAD: &[&[u8]] = &[
        b"\xff",
        b"\x80",
        b"\xc0\x80",         // overlong
        b"\xed\xa0\x80",     // surrogate
        b"\xf4\x90\x80\x80", // over U+10FFFF
        b"\xe2\x82",         // cut short
        b"\xf0\x9f",
    ];
    let n = rng.size(max);
    let mut out = Vec::with_capacity(n + 4);
    while out.len() < n {
        if rng.one_in(60) {
            out.extend_from_slice(rng.pick(BAD));
        } else {
            out.extend_from_slice(rng.pick(PIECES));
        }
    }
    out
}

/// A client's compressor: one per chain of messages, reset before each
/// message for a peer that promised no context takeover.
struct Deflater {
    inner: Compress,
    reset_each: bool,
}

impl Deflater {
    /// One message's payload as permessage-deflate sends it: raw DEFLATE,
    /// sync-flushed, `00 00 ff ff` removed.
    fn message(&mut self, data: &[u8]) -> Vec<u8> {
        if self.reset_each {
            self.inner.reset();
        }
        let mut out = Vec::with_capacity(data.len() + 64);
        let start = self.inner.total_in();
        loop {
            let done = (self.inner.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(64));
            }
            self.inner
                .compress_vec(&data[done..], &mut out, FlushCompress::Sync)
                .expect("deflate");
            if (self.inner.total_in() - start) as usize == data.len() && out.len() < out.capacity()
            {
                break;
            }
        }
        if out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.truncate(out.len() - 4);
        }
        out
    }
}

/// A message compressed as a client would send it.
#[derive(Clone, Debug)]
struct Compressed {
    text: bool,
    payload: Vec<u8>,
}

/// Compressed messages made once per run (compressing costs far more than
/// decoding in a debug build): chains of messages from one compressor,
/// which either kept its context from message to message (the chain is
/// valid only in order, under context takeover) or was reset before each
/// (every message is valid anywhere).
pub struct Pool {
    chains: Vec<(bool, Vec<Compressed>)>,
}

impl Pool {
    pub fn new(rng: &mut Rng) -> Pool {
        let chains = (0..40)
            .map(|i| {
                let level = rng.range(0, 9) as u32;
                let bits = rng.range(9, 15) as u8;
                let mut deflater = Deflater {
                    inner: Compress::new_with_window_bits(Compression::new(level), false, bits),
                    reset_each: rng.one_in(2),
                };
                let messages = (0..rng.range(1, 5))
                    .map(|j| {
                        let limits = if rng.one_in(2) {
                            TIGHT_LIMITS
                        } else {
                            [LIMIT; 2]
                        };
                        let (text, data) = match (i, j) {
                            // Inflates past the default limit: a bomb.
                            (0, 0) => (false, vec![0; LIMIT as usize + rng.range(1, 9000)]),
                            // Past the tight limit.
                            _ if rng.one_in(6) => (true, vec![b'x'; rng.range(200, 2200)]),
                            _ => data_payload(rng, limits),
                        };
                        let payload = deflater.message(&data);
                        Compressed { text, payload }
                    })
                    .collect();
                (deflater.reset_each, messages)
            })
            .collect();
        Pool { chains }
    }
}

/// Where a stream takes its compressed messages: a chain in order, then
/// messages compressed alone.
struct Source<'p> {
    pool: &'p Pool,
    chain: usize,
    next: usize,
}

impl<'p> Source<'p> {
    fn new(rng: &mut Rng, pool: &'p Pool, settings: u8) -> Option<Self> {
        if settings & DEFLATE == 0 {
            return None;
        }
        // Ignoring the promise of no context takeover now and then is the
        // peer's fault to find.
        let reset_each = settings & NO_TAKEOVER != 0 && !rng.one_in(8);
        let fitting: Vec<usize> = (0..pool.chains.len())
            .filter(|&i| pool.chains[i].0 == reset_each || !reset_each)
            .collect();
        Some(Source {
            pool,
            chain: rng.pick(&fitting),
            next: 0,
        })
    }

    fn take(&mut self, rng: &mut Rng) -> &'p Compressed {
        let messages = &self.pool.chains[self.chain].1;
        if let Some(m) = messages.get(self.next) {
            self.next += 1;
            return m;
        }
        let alone: Vec<&(bool, Vec<Compressed>)> =
            self.pool.chains.iter().filter(|c| c.0).collect();
        let chain = rng.pick(&alone);
        rng.pick_ref(&chain.1)
    }
}

/// A payload size: mostly small, often at the edges of the limits.
fn payload_size(rng: &mut Rng, limits: [u64; 2]) -> usize {
    match rng.below(6) {
        0 => {
            let edge = rng.pick(&limits) as usize;
            (edge + rng.range(0, 4)).saturating_sub(2).min(2048)
        }
        1 => rng.range(120, 130),
        _ => rng.size(300),
    }
}

/// A data message's payload: text, random bytes or a run of one byte.
fn data_payload(rng: &mut Rng, limits: [u64; 2]) -> (bool, Vec<u8>) {
    let size = payload_size(rng, limits);
    match rng.below(3) {
        0 => (true, text(rng, size)),
        1 => (false, rng.bytes(size)),
        _ => (false, vec![rng.byte(); size]),
    }
}

/// Appends one message: a data message (text or binary, compressed or
/// not, in one frame or several with control frames between them), or a
/// control frame.
fn push_message(rng: &mut Rng, stream: &mut Stream, source: &mut Option<Source<'_>>) {
    let limits = stream.limits();
    let control = match rng.below(10) {
        0 => 0x9,
        1 => 0xA,
        2 if rng.one_in(3) => 0x8,
        _ => 0,
    };
    if control != 0 {
        let payload = if control == 0x8 {
            close_body(rng)
        } else {
            let n = rng.size(125);
            rng.bytes(n)
        };
        let key = stream.key(rng);
        stream.frames.push(Frame::new(0x80 | control, payload, key));
        return;
    }
    let (text, data, rsv1) = match source.as_mut().filter(|_| rng.below(3) != 0) {
        Some(source) => {
            let m = source.take(rng);
            (m.text, m.payload.clone(), 0x40)
        }
        None => {
            let (text, data) = data_payload(rng, limits);
            (text, data, 0)
        }
    };
    let opcode = if text { 0x1 } else { 0x2 };
    let pieces = if rng.one_in(3) { rng.range(2, 5) } else { 1 };
    let mut cuts: Vec<usize> = (1..pieces).map(|_| rng.below(data.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(data.len());
    let mut from = 0;
    for (i, &to) in cuts.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == cuts.len();
        let b0 = if last { 0x80 } else { 0 } | if first { rsv1 | opcode } else { 0 };
        let key = stream.key(rng);
        stream
            .frames
            .push(Frame::new(b0, data[from..to].to_vec(), key));
        from = to;
        if !last && rng.one_in(3) {
            let key = stream.key(rng);
            let n = rng.size(125);
            let ping = rng.bytes(n);
            stream.frames.push(Frame::new(0x89, ping, key));
        }
    }
}

/// A close body: empty, or a code (valid or not) and a reason (UTF-8 or
/// not, within the control limit or not).
fn close_body(rng: &mut Rng) -> Vec<u8> {
    const CODES: &[u16] = &[
        0, 999, 1000, 1001, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 1016, 2999, 3000, 4999,
        5000, 0xffff,
    ];
    match rng.below(8) {
        0 => Vec::new(),
        1 => vec![rng.byte()],
        _ => {
            let mut body = rng.pick(CODES).to_be_bytes().to_vec();
            body.extend(text(rng, 130));
            body.truncate(if rng.one_in(10) { 126 } else { 125 });
            body
        }
    }
}

/// A stream of 1..8 messages under random settings.
pub fn generate(rng: &mut Rng, pool: &Pool) -> Stream {
    let mut stream = Stream {
        settings: rng.byte(),
        frames: Vec::new(),
        tail: Vec::new(),
    };
    let mut source = Source::new(rng, pool, stream.settings);
    for _ in 0..rng.range(1, 8) {
        push_message(rng, &mut stream, &mut source);
    }
    if stream.settings & (SKIP_OVERSIZED | TIGHT) == SKIP_OVERSIZED && rng.one_in(3) {
        // Over the default limits: skipped as it arrives, so the stream
        // may end inside it.
        let size = rng.size(2000);
        let mut frame = Frame::new(0x82, rng.bytes(size), stream.key(rng));
        frame.declared = Some(LIMIT + rng.range(1, 1 << 16) as u64);
        stream.frames.push(frame);
    }
    stream
}

/// Lengths a header may claim: around the payload, the limits, the length
/// encodings and the 64-bit edge (the most significant bit is refused).
fn length(rng: &mut Rng, actual: usize, limits: [u64; 2]) -> u64 {
    let base = rng.pick(&[
        actual as u64,
        limits[0],
        limits[1],
        LIMIT,
        125,
        126,
        127,
        0xffff,
        0x1_0000,
        u64::from(u32::MAX),
        (1 << 63) - 1,
        1 << 63,
        u64::MAX,
    ]);
    base.wrapping_add(rng.range(0, 2) as u64).wrapping_sub(1)
}

/// Applies one frame-level edit; `donors` are other streams to take
/// frames from.
pub fn mutate(rng: &mut Rng, stream: &mut Stream, donors: &[Stream], pool: &Pool) {
    let n = stream.frames.len();
    let limits = stream.limits();
    let at = rng.below(n);
    match rng.below(16) {
        0 if n > 0 => stream.frames[at].b0 ^= 0x80, // FIN
        1 if n > 0 => stream.frames[at].b0 ^= rng.pick(&[0x40, 0x40, 0x20, 0x10]),
        2 if n > 0 => {
            let f = &mut stream.frames[at];
            f.b0 = (f.b0 & 0xf0) | rng.below(16) as u8;
        }
        3 if n > 0 => {
            let key = stream.key(rng).or(Some([1, 2, 3, 4]));
            let f = &mut stream.frames[at];
            f.mask = if f.mask.is_some() { None } else { key };
        }
        4 if n > 0 => {
            let f = &mut stream.frames[at];
            f.declared = Some(length(rng, f.payload.len(), limits));
            if rng.one_in(2) {
                // Stop here: the stream ends inside this frame.
                stream.frames.truncate(at + 1);
                stream.tail.clear();
            }
        }
        5 if n > 0 => stream.frames[at].form = rng.range(1, 2) as u8,
        6 if n > 0 => bytes::havoc(rng, &mut stream.frames[at].payload, &[], 3),
        7 if n > 0 => {
            // Cut a frame in two: the first half keeps opcode and RSV.
            let f = stream.frames[at].clone();
            let cut = rng.below(f.payload.len() + 1);
            let head = Frame::new(f.b0 & 0x7f, f.payload[..cut].to_vec(), f.mask);
            let tail = Frame::new(0x80 & f.b0, f.payload[cut..].to_vec(), f.mask);
            stream.frames.splice(at..=at, [head, tail]);
        }
        8 => {
            let opcode = rng.pick(&[0x89u8, 0x8A, 0x88, 0x09]);
            let size = if rng.one_in(4) { 126 } else { rng.size(125) };
            let f = Frame::new(opcode, rng.bytes(size), stream.key(rng));
            stream.frames.insert(rng.below(n + 1), f);
        }
        9 if n > 0 => {
            stream.frames.remove(at);
        }
        10 if n > 0 => {
            let f = stream.frames[at].clone();
            stream.frames.insert(at, f);
        }
        11 if n > 1 => {
            let other = rng.below(n);
            stream.frames.swap(at, other);
        }
        12 => {
            // A fresh message (compressed, when negotiated, maybe with a
            // context the stream never had) somewhere in the stream.
            let mut fresh = Stream {
                frames: Vec::new(),
                ..stream.clone()
            };
            let mut source = Source::new(rng, pool, stream.settings);
            push_message(rng, &mut fresh, &mut source);
            let pos = rng.below(n + 1);
            stream.frames.splice(pos..pos, fresh.frames);
        }
        13 if !donors.is_empty() => {
            let donor = rng.pick_ref(donors);
            if !donor.frames.is_empty() {
                let from = rng.below(donor.frames.len());
                let count = rng.range(1, donor.frames.len() - from);
                let pos = rng.below(n + 1);
                let taken = donor.frames[from..from + count].iter().cloned();
                stream.frames.splice(pos..pos, taken);
            }
        }
        14 => {
            let f = Frame::new(0x88, close_body(rng), stream.key(rng));
            stream.frames.insert(rng.below(n + 1), f);
        }
        _ => stream.settings ^= 1 << rng.below(8),
    }
}
