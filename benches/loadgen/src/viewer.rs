//! The sans-IO side of one fan-out viewer: the 101 head, then the
//! server's frames, turned into what `benches/fanout.py` counts. Bytes in,
//! events out; "need more bytes" is the ordinary answer.
//!
//! Payloads are skipped as they arrive, never buffered whole: of a binary
//! event frame only the first 8 bytes are kept (the event count, bytes 4..8
//! of the header `>BBBBIQIQH`, docs/protocol.md "Codecs"), of a text
//! message only its first bytes, until its type and, for a `snapshot` or
//! `delta`, its `count` are known. Control frames (at most 125 bytes) are kept whole.
//! Fragmented messages are handled (the server does not send them), with
//! control frames between the fragments.

use std::fmt;

use crate::frame::{
    parse_header, FrameError, Header, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG,
    OP_TEXT,
};
use crate::handshake;

const MAX_HEAD: usize = 16 * 1024;
/// Frame headers are at most 14 bytes (2 + 8 length + 4 mask).
const MAX_HEADER: usize = 14;
/// The bytes of a binary message kept: the header up to its event count.
const BINARY_PREFIX: usize = 8;
/// The most of a text message kept while looking for its `count`: the
/// server bounds session ids at 512 JSON bytes, and `count` comes after
/// `sessionId` and `firstIndex` (`protocol/frames.py`, `events`).
const TEXT_PREFIX: usize = 2048;
/// Text bytes copied at a time while the message is still undecided.
const TEXT_STEP: usize = 128;

const DELTA: &[u8] = br#"{"type":"delta""#;
const SNAPSHOT: &[u8] = br#"{"type":"snapshot""#;
const JOINED: &[u8] = br#"{"type":"viewer_joined""#;
const ERROR: &[u8] = br#"{"type":"error""#;
/// Inside a JSON string a quote is escaped, so this is the key `count` of
/// the `data` object (the message's first `,"count":`), never a value.
const COUNT_KEY: &[u8] = br#","count":"#;

/// What the server said, in the order it said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The 101 head is complete: the viewer may send its join.
    Upgraded,
    /// `viewer_joined`.
    Joined,
    /// An `error` answer (the session may not be started yet).
    Error,
    /// Events delivered by one message: a binary event frame's count, or a
    /// text `snapshot`'s or `delta`'s `data.count` (as `fanout.py` counts).
    Delivered(u64),
    /// A ping, to be answered with a pong carrying this payload.
    Ping(Vec<u8>),
    /// A close frame, with its payload (code and reason).
    Close(Vec<u8>),
}

/// Something the server should not have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The answer to the upgrade was not 101 (its head), or too long.
    Refused(String),
    Frame(FrameError),
    /// A masked server frame, an unknown opcode, or a fragmentation error.
    Protocol(&'static str),
    /// A binary message shorter than the header's event count.
    ShortBinary(usize),
    /// A `snapshot` or `delta` whose `count` was not found in its first bytes.
    NoCount(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Refused(head) => write!(f, "upgrade refused: {head}"),
            ReadError::Frame(e) => write!(f, "bad frame: {e}"),
            ReadError::Protocol(what) => write!(f, "protocol error: {what}"),
            ReadError::ShortBinary(len) => write!(f, "binary message of only {len} bytes"),
            ReadError::NoCount(prefix) => write!(f, "events message without a count: {prefix}"),
        }
    }
}

impl From<FrameError> for ReadError {
    fn from(e: FrameError) -> Self {
        ReadError::Frame(e)
    }
}

/// Where the payload of the current frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Data,
    Control(u8),
}

#[derive(Debug)]
struct Frame {
    route: Route,
    fin: bool,
    left: u64,
}

/// What a data message says, once its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Count(u64),
    Joined,
    Error,
    /// Anything else: nothing to count.
    Other,
}

/// A data message being received, possibly over several frames.
#[derive(Debug)]
struct Message {
    binary: bool,
    prefix: Vec<u8>,
    verdict: Option<Verdict>,
}

impl Message {
    fn new(binary: bool) -> Self {
        Message {
            binary,
            prefix: Vec::new(),
            verdict: None,
        }
    }

    /// Keeps what is needed of the next payload bytes, skips the rest.
    fn take(&mut self, mut bytes: &[u8]) -> Result<(), ReadError> {
        while self.verdict.is_none() && !bytes.is_empty() {
            let cap = if self.binary {
                BINARY_PREFIX
            } else {
                TEXT_PREFIX
            };
            let n = bytes.len().min(cap - self.prefix.len()).min(TEXT_STEP);
            self.prefix.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            self.verdict = self.judge(self.prefix.len() == cap)?;
        }
        Ok(())
    }

    /// What the message says, once its prefix tells; `complete`: no more
    /// bytes will come (the message ended, or the prefix is full).
    fn judge(&self, complete: bool) -> Result<Option<Verdict>, ReadError> {
        let p = &self.prefix;
        if self.binary {
            return match p.get(4..8) {
                Some(count) => Ok(Some(Verdict::Count(u64::from(u32::from_be_bytes(
                    count.try_into().expect("four bytes"),
                ))))),
                None if complete => Err(ReadError::ShortBinary(p.len())),
                None => Ok(None),
            };
        }
        if p.len() < JOINED.len() && !complete {
            return Ok(None); // too short to tell the types apart
        }
        if p.starts_with(DELTA) || p.starts_with(SNAPSHOT) {
            return match delta_count(p) {
                Some(count) => Ok(Some(Verdict::Count(count))),
                None if complete => Err(ReadError::NoCount(
                    String::from_utf8_lossy(&p[..p.len().min(200)]).into_owned(),
                )),
                None => Ok(None),
            };
        }
        Ok(Some(if p.starts_with(JOINED) {
            Verdict::Joined
        } else if p.starts_with(ERROR) {
            Verdict::Error
        } else {
            Verdict::Other
        }))
    }
}

/// The number after the first `,"count":`, once a non-digit follows it.
fn delta_count(prefix: &[u8]) -> Option<u64> {
    let at = prefix
        .windows(COUNT_KEY.len())
        .position(|w| w == COUNT_KEY)?
        + COUNT_KEY.len();
    let digits = prefix[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || at + digits == prefix.len() {
        return None; // not a number, or it may go on in the next bytes
    }
    std::str::from_utf8(&prefix[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// One viewer connection's incoming bytes, from the upgrade response on.
#[derive(Debug, Default)]
pub struct ViewerReader {
    head: Vec<u8>,
    upgraded: bool,
    /// The start of a frame header split across reads.
    partial: Vec<u8>,
    frame: Option<Frame>,
    message: Option<Message>,
    control: Vec<u8>,
}

impl ViewerReader {
    /// Takes the bytes one read returned; appends what they completed to
    /// `events`. After an error the connection is unusable.
    pub fn feed(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<(), ReadError> {
        if self.upgraded {
            return self.frames(data, events);
        }
        self.head.extend_from_slice(data);
        let Some(end) = handshake::head_end(&self.head) else {
            if self.head.len() > MAX_HEAD {
                return Err(ReadError::Refused("response head too long".into()));
            }
            return Ok(());
        };
        if !self.head.starts_with(b"HTTP/1.1 101 ") {
            let head = String::from_utf8_lossy(&self.head[..end]);
            return Err(ReadError::Refused(head.trim().to_owned()));
        }
        self.upgraded = true;
        events.push(Event::Upgraded);
        let rest = std::mem::take(&mut self.head).split_off(end);
        self.frames(&rest, events)
    }

    fn frames(&mut self, mut data: &[u8], events: &mut Vec<Event>) -> Result<(), ReadError> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.left.min(data.len() as u64) as usize;
                frame.left -= n as u64;
                let (route, fin, done) = (frame.route, frame.fin, frame.left == 0);
                match route {
                    Route::Data => self
                        .message
                        .as_mut()
                        .expect("a data frame belongs to a message")
                        .take(&data[..n])?,
                    Route::Control(_) => self.control.extend_from_slice(&data[..n]),
                }
                data = &data[n..];
                if !done {
                    return Ok(()); // the rest of the payload is in later reads
                }
                self.frame = None;
                self.frame_done(route, fin, events)?;
                continue;
            }
            if data.is_empty() {
                return Ok(());
            }
            let header = if self.partial.is_empty() {
                match parse_header(data)? {
                    Some(h) => {
                        data = &data[h.header_len..];
                        h
                    }
                    None => {
                        self.partial.extend_from_slice(data);
                        return Ok(());
                    }
                }
            } else {
                let have = self.partial.len();
                let take = data.len().min(MAX_HEADER - have);
                self.partial.extend_from_slice(&data[..take]);
                match parse_header(&self.partial)? {
                    Some(h) => {
                        data = &data[h.header_len - have..];
                        self.partial.clear();
                        h
                    }
                    None if take == data.len() => return Ok(()),
                    None => unreachable!("{MAX_HEADER} bytes always hold a frame header"),
                }
            };
            self.start_frame(header)?;
        }
    }

    fn start_frame(&mut self, h: Header) -> Result<(), ReadError> {
        if h.mask.is_some() {
            return Err(ReadError::Protocol("masked frame from the server"));
        }
        let route = match h.opcode {
            OP_TEXT | OP_BINARY => {
                if self.message.is_some() {
                    return Err(ReadError::Protocol("new message inside a fragmented one"));
                }
                self.message = Some(Message::new(h.opcode == OP_BINARY));
                Route::Data
            }
            OP_CONTINUATION => {
                if self.message.is_none() {
                    return Err(ReadError::Protocol("continuation frame without a message"));
                }
                Route::Data
            }
            OP_PING | OP_PONG | OP_CLOSE => {
                self.control.clear();
                Route::Control(h.opcode)
            }
            _ => return Err(ReadError::Protocol("unknown opcode")),
        };
        self.frame = Some(Frame {
            route,
            fin: h.fin,
            left: h.payload_len,
        });
        Ok(())
    }

    fn frame_done(
        &mut self,
        route: Route,
        fin: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), ReadError> {
        match route {
            Route::Data if fin => {
                let message = self
                    .message
                    .take()
                    .expect("a data frame belongs to a message");
                let verdict = match message.verdict {
                    Some(verdict) => verdict,
                    None => message.judge(true)?.expect("a complete message is judged"),
                };
                match verdict {
                    Verdict::Count(n) => events.push(Event::Delivered(n)),
                    Verdict::Joined => events.push(Event::Joined),
                    Verdict::Error => events.push(Event::Error),
                    Verdict::Other => {}
                }
            }
            Route::Data => {}
            Route::Control(OP_PING) => events.push(Event::Ping(std::mem::take(&mut self.control))),
            Route::Control(OP_CLOSE) => {
                events.push(Event::Close(std::mem::take(&mut self.control)))
            }
            Route::Control(_) => {} // an unsolicited pong
        }
        Ok(())
    }
}

/// The masked pong that answers a ping's payload.
pub fn pong(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    crate::frame::client_frame(OP_PONG, payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{apply_mask, server_frame};

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

    /// A binary event frame as `frames.events_binary` lays it out: the
    /// header (`>BBBBIQIQH`), the session id, then `body` bytes.
    fn binary_events(count: u32, body: usize) -> Vec<u8> {
        let mut payload = vec![2, 2, 2, 0];
        payload.extend_from_slice(&count.to_be_bytes());
        payload.extend_from_slice(&7u64.to_be_bytes()); // first index
        payload.extend_from_slice(&(body as u32 * 3).to_be_bytes()); // raw length
        payload.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        payload.extend_from_slice(&1u16.to_be_bytes());
        payload.push(b's');
        payload.extend((0..body).map(|i| (i % 251) as u8));
        server_frame(OP_BINARY, &payload)
    }

    /// A text `delta` as `frames.events` builds it (`codec=none`).
    fn text_delta(sid_json: &str, count: u64, events: usize) -> Vec<u8> {
        text_events("delta", sid_json, count, events)
    }

    /// A text `snapshot` or `delta` as `frames.events` builds it.
    fn text_events(kind: &str, sid_json: &str, count: u64, events: usize) -> Vec<u8> {
        let message = format!(
            r#"{{"type":"{kind}","data":{{"sessionId":{sid_json},"firstIndex":12,"count":{count},"codec":"none","serverTime":1700000000000,"events":[{}]}}}}"#,
            vec![r#"{"type":3,"data":{"source":1,"x":10}}"#; events].join(",")
        );
        server_frame(OP_TEXT, message.as_bytes())
    }

    fn text(message: &str) -> Vec<u8> {
        server_frame(OP_TEXT, message.as_bytes())
    }

    fn feed_in_pieces(stream: &[u8], step: usize) -> Result<Vec<Event>, ReadError> {
        let mut reader = ViewerReader::default();
        let mut events = Vec::new();
        for piece in stream.chunks(step) {
            reader.feed(piece, &mut events)?;
        }
        Ok(events)
    }

    #[test]
    fn events_are_counted_however_the_bytes_are_split() {
        let mut stream = HEAD.to_vec();
        stream.extend(text(r#"{"type":"error","data":{"code":"not_found"}}"#));
        stream.extend(text(
            r#"{"type":"viewer_joined","data":{"sessionId":"s","fromIndex":0,"nextIndex":0}}"#,
        ));
        stream.extend(binary_events(0, 0)); // an empty snapshot: 7-bit length
        stream.extend(binary_events(50, 300)); // 16-bit length
        stream.extend(binary_events(70_000, 70_000)); // 64-bit length
        stream.extend(text_delta(r#""s""#, 3, 3));
        stream.extend(text_delta(r#""s""#, 1234, 400)); // 16-bit length
        stream.extend(server_frame(OP_PING, b"hb"));
        stream.extend(text_events("snapshot", r#""s""#, 9, 9));
        stream.extend(text(r#"{"type":"session_ended","data":{}}"#));
        stream.extend(server_frame(OP_PONG, b""));
        stream.extend(text("{}")); // shorter than any type it looks for
        stream.extend(server_frame(OP_CLOSE, &1001u16.to_be_bytes()));
        let expected = vec![
            Event::Upgraded,
            Event::Error,
            Event::Joined,
            Event::Delivered(0),
            Event::Delivered(50),
            Event::Delivered(70_000),
            Event::Delivered(3),
            Event::Delivered(1234),
            Event::Ping(b"hb".to_vec()),
            Event::Delivered(9),
            Event::Close(1001u16.to_be_bytes().to_vec()),
        ];
        for step in [1, 2, 3, 7, 13, 100, 1000, 65536, stream.len()] {
            assert_eq!(
                feed_in_pieces(&stream, step).unwrap(),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn frames_in_the_same_read_as_the_head_are_read() {
        let mut stream = HEAD.to_vec();
        stream.extend(binary_events(5, 10));
        let mut reader = ViewerReader::default();
        let mut events = Vec::new();
        reader.feed(&stream, &mut events).unwrap();
        assert_eq!(events, [Event::Upgraded, Event::Delivered(5)]);
    }

    #[test]
    fn a_ping_is_answered_with_its_payload_in_a_masked_pong() {
        let payload: Vec<u8> = (0..125).collect(); // the longest a control frame may be
        let mut stream = HEAD.to_vec();
        stream.extend(server_frame(OP_PING, &payload));
        let events = feed_in_pieces(&stream, 5).unwrap();
        let Some(Event::Ping(got)) = events.last() else {
            panic!("no ping in {events:?}");
        };
        let answer = pong(got, [1, 2, 3, 4]);
        let h = parse_header(&answer).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.mask),
            (true, OP_PONG, Some([1, 2, 3, 4]))
        );
        let mut back = answer[h.header_len..].to_vec();
        apply_mask(&mut back, [1, 2, 3, 4], 0);
        assert_eq!(back, payload);
    }

    #[test]
    fn fragmented_messages_are_counted_with_control_frames_between() {
        let whole = text_delta(r#""s""#, 77, 2);
        let message = &whole[parse_header(&whole).unwrap().unwrap().header_len..];
        let seven = message.windows(3).position(|w| w == b":77").unwrap() + 2;
        let (a, rest) = message.split_at(20); // inside "data"
        let (b, c) = rest.split_at(seven - 20); // between the two 7s of the count
        let mut stream = HEAD.to_vec();
        let fragment = |fin: bool, opcode: u8, part: &[u8]| {
            let mut f = server_frame(opcode, part);
            if !fin {
                f[0] &= 0x7F;
            }
            f
        };
        stream.extend(fragment(false, OP_TEXT, a));
        stream.extend(server_frame(OP_PING, b"1"));
        stream.extend(fragment(false, OP_CONTINUATION, b));
        stream.extend(fragment(false, OP_CONTINUATION, b""));
        stream.extend(fragment(true, OP_CONTINUATION, c));
        let header = binary_events(9, 0);
        stream.extend(fragment(false, OP_BINARY, &header[2..7]));
        stream.extend(fragment(true, OP_CONTINUATION, &header[7..]));
        for step in [1, 4, stream.len()] {
            assert_eq!(
                feed_in_pieces(&stream, step).unwrap(),
                [
                    Event::Upgraded,
                    Event::Ping(b"1".to_vec()),
                    Event::Delivered(77),
                    Event::Delivered(9)
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn the_count_is_the_data_objects_whatever_the_session_id_holds() {
        for sid in [
            r#""a\",\"count\":5""#,
            r#""count""#,
            r#""\u00e9,\"count\":""#,
        ] {
            let stream = [HEAD, &text_delta(sid, 42, 1)].concat();
            assert_eq!(
                feed_in_pieces(&stream, 3).unwrap(),
                [Event::Upgraded, Event::Delivered(42)],
                "{sid}"
            );
        }
    }

    #[test]
    fn what_the_server_should_not_send_is_an_error() {
        let fails = |stream: Vec<u8>| feed_in_pieces(&[HEAD, &stream].concat(), 1).unwrap_err();
        let refused = feed_in_pieces(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", 4);
        assert_eq!(
            refused,
            Err(ReadError::Refused(
                "HTTP/1.1 503 Service Unavailable".into()
            ))
        );
        let masked = crate::frame::client_frame(OP_TEXT, b"{}", [1, 2, 3, 4]);
        assert!(matches!(fails(masked), ReadError::Protocol(_)));
        let mut orphan = server_frame(OP_CONTINUATION, b"x");
        assert!(matches!(fails(orphan.clone()), ReadError::Protocol(_)));
        orphan[0] = 0x01; // text, not final ...
        orphan.extend(text("{}")); // ... then a new message
        assert!(matches!(fails(orphan), ReadError::Protocol(_)));
        assert!(matches!(fails(vec![0x83, 0]), ReadError::Protocol(_)));
        assert_eq!(
            fails(server_frame(OP_BINARY, &[2; 7])),
            ReadError::ShortBinary(7)
        );
        let long_id = format!("\"{}\"", "x".repeat(TEXT_PREFIX));
        assert!(matches!(
            fails(text_delta(&long_id, 1, 1)),
            ReadError::NoCount(_)
        ));
        let no_count = text(r#"{"type":"delta","data":{"sessionId":"s"}}"#);
        assert!(matches!(fails(no_count), ReadError::NoCount(_)));
        assert!(matches!(fails(vec![0xC1, 0]), ReadError::Frame(_)));
    }
}
