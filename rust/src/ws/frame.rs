//! Frame headers (RFC 6455 §5.2): parsing and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! [`parse_header`] enforces what is wrong with a header whatever the
//! connection: the most significant bit of a 64-bit length must be 0, and a
//! length must use its shortest form (RFC 6455 §5.2: "the minimal number of
//! bytes MUST be used"; wsproto, the other WebSocket codec the server runs
//! on, refuses longer forms too, so both answer 1002 alike). The rules that
//! depend on the connection (masking, reserved bits, opcodes,
//! fragmentation, limits) belong to the decoder.
//!
//! The encoders write server frames (never masked, §5.1) and, for tests, fuzz
//! seeds and load generators, masked client frames.

use crate::error::{Error, Result};

use super::mask::apply_mask;

/// Frame opcodes defined by RFC 6455 (§5.2). The others are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for a reserved one (3-7, 11-15).
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(OpCode::Continuation),
            1 => Some(OpCode::Text),
            2 => Some(OpCode::Binary),
            8 => Some(OpCode::Close),
            9 => Some(OpCode::Ping),
            10 => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Close, ping and pong: never fragmented, payload at most 125 bytes.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x08 != 0
    }
}

/// Largest payload a control frame may carry (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest possible header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame header as it appeared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three reserved bits, RSV1 as 0b100.
    pub rsv: u8,
    /// The raw 4-bit opcode, possibly reserved.
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// Parses the frame header at the start of `buf`.
///
/// Returns `Ok(None)` if `buf` does not hold the whole header yet, else the
/// header and its length in bytes. Errors (1002): a 64-bit length with its
/// most significant bit set, and a length not in its shortest form.
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    let (payload_len, rest) = match b1 & 0x7F {
        126 => match rest {
            [a, b, rest @ ..] => {
                let len = u16::from_be_bytes([*a, *b]);
                if len < 126 {
                    return Err(Error::protocol(
                        "16-bit payload length below 126: not the shortest form",
                    ));
                }
                (u64::from(len), rest)
            }
            _ => return Ok(None),
        },
        127 => match rest.split_first_chunk::<8>() {
            Some((len, rest)) => {
                let len = u64::from_be_bytes(*len);
                if len >> 63 != 0 {
                    return Err(Error::protocol(
                        "64-bit payload length has its most significant bit set",
                    ));
                }
                if len <= 0xFFFF {
                    return Err(Error::protocol(
                        "64-bit payload length below 65536: not the shortest form",
                    ));
                }
                (len, rest)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), rest),
    };
    let mask = if b1 & 0x80 != 0 {
        match rest.first_chunk::<4>() {
            Some(key) => Some(*key),
            None => return Ok(None),
        }
    } else {
        None
    };
    let header = FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x07,
        opcode: b0 & 0x0F,
        mask,
        payload_len,
    };
    let len = buf.len() - rest.len() + if mask.is_some() { 4 } else { 0 };
    Ok(Some((header, len)))
}

/// Bytes a header takes for this payload length (shortest length form).
#[inline]
pub fn header_len(payload_len: usize, masked: bool) -> usize {
    let len = match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if masked {
        len + 4
    } else {
        len
    }
}

/// Writes a header with the shortest length form into the start of `buf`
/// (at least [`header_len`] bytes) and returns its length. `first_byte`
/// holds FIN, RSV and the opcode.
#[inline]
pub fn write_header(
    buf: &mut [u8],
    first_byte: u8,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> usize {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    buf[0] = first_byte;
    let mut n = match payload_len {
        0..=125 => {
            buf[1] = mask_bit | payload_len as u8;
            2
        }
        126..=0xFFFF => {
            buf[1] = mask_bit | 126;
            buf[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            buf[1] = mask_bit | 127;
            buf[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        buf[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    n
}

/// The first header byte of a server frame.
#[inline]
pub fn first_byte(opcode: OpCode, fin: bool) -> u8 {
    (if fin { 0x80 } else { 0 }) | opcode as u8
}

/// Appends one unmasked server frame to `out`.
///
/// The caller keeps to the rules for control frames (`fin` set, payload at
/// most 125 bytes); the Python binding checks them and raises `ValueError`.
pub fn encode_frame(opcode: OpCode, payload: &[u8], fin: bool, out: &mut Vec<u8>) {
    debug_assert!(!opcode.is_control() || (fin && payload.len() <= MAX_CONTROL_PAYLOAD));
    let start = out.len();
    let hlen = header_len(payload.len(), false);
    out.reserve(hlen + payload.len());
    out.resize(start + hlen, 0);
    write_header(
        &mut out[start..],
        first_byte(opcode, fin),
        None,
        payload.len(),
    );
    out.extend_from_slice(payload);
}

/// Longest close reason that fits a control frame after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// `reason` cut to at most 123 bytes at a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Appends a close frame to `out`. With `code` `None` the body is empty and
/// `reason` is ignored (a reason cannot be sent without a code, §5.5.1).
/// The reason is cut to 123 bytes at a character boundary.
pub fn encode_close(code: Option<u16>, reason: &str, out: &mut Vec<u8>) {
    let mut body = [0u8; MAX_CONTROL_PAYLOAD];
    let len = match code {
        None => 0,
        Some(code) => {
            let reason = truncate_reason(reason);
            body[..2].copy_from_slice(&code.to_be_bytes());
            body[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        }
    };
    encode_frame(OpCode::Close, &body[..len], true, out);
}

/// Whether a close frame may carry `code` (§7.4): 1000-1003, 1007-1014 and
/// the registered/private range 3000-4999. 1004-1006 and 1015 are reserved
/// or must never be sent; the rest is unassigned.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Appends a masked client frame to `out`. For tests, fuzz seeds and load
/// generators: `opcode` (low 4 bits) and `rsv` (low 3 bits) are written as
/// given, reserved or not, and control-frame rules are not checked.
pub fn encode_client_frame(
    opcode: u8,
    payload: &[u8],
    mask: [u8; 4],
    fin: bool,
    rsv: u8,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let hlen = header_len(payload.len(), true);
    out.reserve(hlen + payload.len());
    out.resize(start + hlen, 0);
    let b0 = (if fin { 0x80 } else { 0 }) | ((rsv & 0x07) << 4) | (opcode & 0x0F);
    write_header(&mut out[start..], b0, Some(mask), payload.len());
    let body = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[body..], mask, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip_and_reserved_are_none() {
        for v in 0u8..16 {
            match OpCode::from_u8(v) {
                Some(op) => assert_eq!(op as u8, v),
                None => assert!(matches!(v, 3..=7 | 11..=15)),
            }
        }
        assert!(OpCode::Close.is_control());
        assert!(OpCode::Ping.is_control());
        assert!(OpCode::Pong.is_control());
        assert!(!OpCode::Continuation.is_control());
        assert!(!OpCode::Text.is_control());
        assert!(!OpCode::Binary.is_control());
    }

    #[test]
    fn parses_rfc_examples() {
        // §5.7: single-frame unmasked text "Hello".
        let (h, n) = parse_header(b"\x81\x05Hello").unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, 1);
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 5);

        // Masked "Hello".
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = parse_header(&frame).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));

        // 256 bytes binary, 16-bit length; 64 KiB binary, 64-bit length.
        let (h, n) = parse_header(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        let (h, n) = parse_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_headers_need_more() {
        let frame = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..frame.len() {
            assert_eq!(parse_header(&frame[..cut]), Ok(None), "cut {cut}");
        }
        assert!(parse_header(&frame).unwrap().is_some());
    }

    #[test]
    fn non_minimal_lengths_are_protocol_errors() {
        for header in [
            &[0x82, 0x7E, 0x00, 0x05][..],
            &[0x82, 0x7E, 0x00, 0x7D],
            &[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
        ] {
            let err = parse_header(header).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::WebSocket {
                        close_code: 1002,
                        ..
                    }
                ),
                "{header:?}"
            );
        }
        // The smallest length of each form is accepted.
        let (h, n) = parse_header(&[0x82, 0x7E, 0x00, 0x7E]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (126, 4));
        let (h, n) = parse_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn msb_of_64_bit_length_must_be_zero() {
        let err = parse_header(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(
            err,
            Error::WebSocket {
                close_code: 1002,
                ..
            }
        ));
        let (h, _) = parse_header(&[0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            .unwrap()
            .unwrap();
        assert_eq!(h.payload_len, i64::MAX as u64);
    }

    #[test]
    fn rsv_bits_are_reported() {
        let (h, _) = parse_header(&[0xF1, 0x00]).unwrap().unwrap();
        assert_eq!(h.rsv, 0b111);
        let (h, _) = parse_header(&[0xC1, 0x00]).unwrap().unwrap();
        assert_eq!(h.rsv, 0b100);
    }

    #[test]
    fn server_frames_use_shortest_length_and_no_mask() {
        for (len, hlen) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let payload = vec![b'x'; len];
            let mut out = Vec::new();
            encode_frame(OpCode::Binary, &payload, true, &mut out);
            assert_eq!(out.len(), hlen + len);
            assert_eq!(header_len(len, false), hlen);
            let (h, n) = parse_header(&out).unwrap().unwrap();
            assert_eq!(n, hlen);
            assert_eq!(h.payload_len, len as u64);
            assert_eq!(h.mask, None);
            assert_eq!(&out[n..], &payload[..]);
        }
    }

    #[test]
    fn client_frames_are_masked() {
        let mut out = Vec::new();
        encode_client_frame(1, b"Hello", [0x37, 0xfa, 0x21, 0x3d], true, 0, &mut out);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.clear();
        encode_client_frame(0x3, b"", [0; 4], false, 0b101, &mut out);
        assert_eq!(out[0], 0b0101_0011);
    }

    #[test]
    fn close_frames() {
        let mut out = Vec::new();
        encode_close(None, "ignored", &mut out);
        assert_eq!(out, [0x88, 0x00]);
        out.clear();
        encode_close(Some(1000), "bye", &mut out);
        assert_eq!(out, [0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e']);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes, 2 per char
        let cut = truncate_reason(&reason);
        assert_eq!(cut.len(), 122);
        let mut out = Vec::new();
        encode_close(Some(1001), &reason, &mut out);
        assert_eq!(out.len(), 2 + 2 + 122);
        assert_eq!(truncate_reason("short"), "short");
        assert_eq!(truncate_reason(&"a".repeat(200)).len(), 123);
    }

    #[test]
    fn close_code_validity() {
        for code in [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999] {
            assert!(is_valid_close_code(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_close_code(code), "{code}");
        }
    }
}
