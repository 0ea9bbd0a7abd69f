//! WebSocket framing (RFC 6455, section 5), only as much as the generator
//! and the sink need: masked client frames out, unmasked server frames in
//! (and the reverse for the sink). Sans-IO: bytes in, bytes out.

use std::fmt;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A frame header the peer should not have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// RSV bits set: no extension was negotiated.
    Reserved(u8),
    /// A 64-bit length with its most significant bit set.
    Length(u64),
    /// A control frame that is fragmented or longer than 125 bytes.
    Control(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Reserved(bits) => write!(f, "reserved bits set ({bits:#x})"),
            FrameError::Length(len) => write!(f, "invalid 64-bit frame length {len}"),
            FrameError::Control(op) => write!(f, "bad control frame (opcode {op:#x})"),
        }
    }
}

/// A parsed frame header: the payload follows `header_len` bytes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub header_len: usize,
    pub payload_len: u64,
}

/// The header at the start of `buf`, or `Ok(None)` when more bytes are
/// needed to tell (an ordinary answer, not an error).
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved(b0 & 0x70));
    }
    let opcode = b0 & 0x0F;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut at) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(bytes.try_into().expect("eight bytes"));
            if len >> 63 != 0 {
                return Err(FrameError::Length(len));
            }
            (len, 10)
        }
        len => (u64::from(len), 2),
    };
    if opcode >= OP_CLOSE && (!fin || payload_len > 125) {
        return Err(FrameError::Control(opcode));
    }
    let mask = if masked {
        let Some(key) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some(key.try_into().expect("four bytes"))
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        header_len: at,
        payload_len,
    }))
}

fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize, mask_bit: u8) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends the header of a final, masked client frame whose payload is
/// `len` bytes; the payload must follow, masked with `mask` from offset 0
/// (see [`put_masked`]).
pub fn put_client_header(out: &mut Vec<u8>, opcode: u8, len: usize, mask: [u8; 4]) {
    put_header(out, opcode, len, 0x80);
    out.extend_from_slice(&mask);
}

/// Appends `data` XOR-ed with `mask`, as the payload bytes from `offset`
/// on: a payload can be written in pieces without building it first.
pub fn put_masked(out: &mut Vec<u8>, data: &[u8], mask: [u8; 4], offset: usize) {
    let start = out.len();
    out.extend_from_slice(data);
    apply_mask(&mut out[start..], mask, offset);
}

/// XORs `buf` with `mask` in place, `buf[0]` being payload byte `offset`.
/// Eight bytes at a time: as fast as the copy next to it.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    let m = [
        mask[r],
        mask[(r + 1) % 4],
        mask[(r + 2) % 4],
        mask[(r + 3) % 4],
    ];
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("eight bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so at mask position 0 again.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= m[i % 4];
    }
}

/// A whole masked client frame.
pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    put_client_header(&mut out, opcode, payload.len(), mask);
    put_masked(&mut out, payload, mask, 0);
    out
}

/// A whole unmasked server frame.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    put_header(&mut out, opcode, payload.len(), 0);
    out.extend_from_slice(payload);
    out
}

/// What a server's text message says, judged by its first bytes (no JSON
/// is parsed on the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Ack,
    Error,
    Other,
}

pub fn classify(payload: &[u8]) -> Reply {
    if payload.starts_with(br#"{"type":"ack""#) {
        Reply::Ack
    } else if payload.starts_with(br#"{"type":"error""#) {
        Reply::Error
    } else {
        Reply::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn unmask(frame: &[u8]) -> (Header, Vec<u8>) {
        let header = parse_header(frame).unwrap().unwrap();
        let mut payload = frame[header.header_len..].to_vec();
        assert_eq!(payload.len() as u64, header.payload_len);
        apply_mask(&mut payload, header.mask.unwrap(), 0);
        (header, payload)
    }

    #[test]
    fn rfc6455_masked_hello() {
        // RFC 6455, section 5.7: a single-frame masked text message.
        let frame = client_frame(OP_TEXT, b"Hello", MASK);
        assert_eq!(
            frame,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn client_frames_round_trip_at_every_length_form() {
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let frame = client_frame(OP_BINARY, &payload, MASK);
            let (header, back) = unmask(&frame);
            assert!(header.fin);
            assert_eq!(header.opcode, OP_BINARY);
            assert_eq!(back, payload, "length {len}");
        }
    }

    #[test]
    fn a_payload_masked_in_pieces_equals_one_masked_whole() {
        let payload =
            br#"{"type":"events_batch","data":{"sessionId":"s","seq":12345,"events":[]}}"#;
        let whole = client_frame(OP_TEXT, payload, MASK);
        for cut in [1, 3, 4, 5, 9, 17, 40] {
            let mut pieces = Vec::new();
            put_client_header(&mut pieces, OP_TEXT, payload.len(), MASK);
            put_masked(&mut pieces, &payload[..cut], MASK, 0);
            put_masked(&mut pieces, &payload[cut..], MASK, cut);
            assert_eq!(pieces, whole, "cut at {cut}");
        }
    }

    #[test]
    fn server_frames_parse_and_split_anywhere() {
        let ack = server_frame(
            OP_TEXT,
            br#"{"type":"ack","data":{"sessionId":"s","seq":0}}"#,
        );
        for cut in 0..ack.len() {
            let header = parse_header(&ack[..cut]).unwrap();
            if cut < 2 {
                assert_eq!(header, None);
            } else {
                let header = header.unwrap();
                assert_eq!((header.opcode, header.mask), (OP_TEXT, None));
                assert_eq!(header.header_len, 2);
            }
        }
        let long = server_frame(OP_TEXT, &[b'x'; 300]);
        assert_eq!(parse_header(&long[..3]).unwrap(), None);
        let header = parse_header(&long).unwrap().unwrap();
        assert_eq!((header.header_len, header.payload_len), (4, 300));
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(parse_header(&[0xC1, 0x00]), Err(FrameError::Reserved(0x40)));
        assert_eq!(
            parse_header(&[0x09, 0x00]),
            Err(FrameError::Control(OP_PING))
        );
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert!(matches!(parse_header(&huge), Err(FrameError::Length(_))));
    }

    #[test]
    fn replies_are_told_apart_by_their_type() {
        assert_eq!(
            classify(br#"{"type":"ack","data":{"sessionId":"s","seq":3}}"#),
            Reply::Ack
        );
        assert_eq!(
            classify(br#"{"type":"error","data":{"code":"rate_limited"}}"#),
            Reply::Error
        );
        assert_eq!(
            classify(br#"{"type":"session_started","data":{}}"#),
            Reply::Other
        );
    }
}
