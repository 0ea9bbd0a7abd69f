//! A discard sink in Rust: the cheapest server the generator can talk to,
//! for the calibration when `benches/sink.py` (Python) would be the limit.
//! It upgrades `/ws` connections, reads frame headers only (payloads are
//! skipped, never unmasked or copied), and answers every complete data
//! message with one canned ack, the same bytes `benches/sink.py` sends.
//!
//! Resource handling: one epoll loop on one thread; a connection is
//! dropped (its socket closed) when the client closes it, sends a close
//! frame or a bad frame, or fails a write. The process stops by itself
//! after `max_seconds`, or earlier when terminated.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::frame::{parse_header, server_frame, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_TEXT};
use crate::handshake;

pub const ACK: &[u8] = br#"{"type":"ack","data":{"sessionId":"sink","seq":0}}"#;
const LISTENER: u64 = u64::MAX;
const MAX_HEAD: usize = 16 * 1024;

/// What a connection wants after its bytes were read.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

/// The sans-IO part of one sink connection: bytes in, answer bytes out.
#[derive(Debug, Default)]
pub struct SinkState {
    head: Vec<u8>,
    upgraded: bool,
    /// The start of a frame header split across reads (at most 14 bytes).
    partial: Vec<u8>,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    pub acks: u64,
}

impl SinkState {
    /// Takes bytes from the client; appends the answers to `out`.
    fn feed(&mut self, mut data: &[u8], ack: &[u8], out: &mut Vec<u8>) -> Next {
        if !self.upgraded {
            self.head.extend_from_slice(data);
            let Some(end) = handshake::head_end(&self.head) else {
                return if self.head.len() > MAX_HEAD {
                    Next::Close
                } else {
                    Next::Continue
                };
            };
            let Some(key) = handshake::header(&self.head[..end], "sec-websocket-key") else {
                return Next::Close;
            };
            out.extend_from_slice(&handshake::response(key));
            self.upgraded = true;
            let rest = std::mem::take(&mut self.head).split_off(end);
            return self.frames(&rest, ack, out);
        }
        if !self.partial.is_empty() {
            let have = self.partial.len();
            let take = data.len().min(14 - have);
            self.partial.extend_from_slice(&data[..take]);
            match parse_header(&self.partial) {
                Ok(None) if take == data.len() => return Next::Continue,
                Ok(None) => return Next::Close, // 14 bytes always hold a header
                Ok(Some(h)) => {
                    data = &data[h.header_len - have..];
                    self.partial.clear();
                    if self.on_header(h.fin, h.opcode, h.payload_len, ack, out) == Next::Close {
                        return Next::Close;
                    }
                }
                Err(_) => return Next::Close,
            }
        }
        self.frames(data, ack, out)
    }

    fn frames(&mut self, data: &[u8], ack: &[u8], out: &mut Vec<u8>) -> Next {
        let mut at = 0;
        while at < data.len() {
            if self.skip > 0 {
                let n = self.skip.min((data.len() - at) as u64);
                self.skip -= n;
                at += n as usize;
                continue;
            }
            match parse_header(&data[at..]) {
                Ok(None) => {
                    self.partial.extend_from_slice(&data[at..]);
                    break;
                }
                Ok(Some(h)) => {
                    at += h.header_len;
                    if self.on_header(h.fin, h.opcode, h.payload_len, ack, out) == Next::Close {
                        return Next::Close;
                    }
                }
                Err(_) => return Next::Close,
            }
        }
        Next::Continue
    }

    fn on_header(
        &mut self,
        fin: bool,
        opcode: u8,
        len: u64,
        ack: &[u8],
        out: &mut Vec<u8>,
    ) -> Next {
        self.skip = len;
        match opcode {
            OP_CLOSE => Next::Close,
            OP_TEXT | OP_BINARY | OP_CONTINUATION if fin => {
                out.extend_from_slice(ack);
                self.acks += 1;
                Next::Continue
            }
            _ => Next::Continue,
        }
    }
}

struct SinkConn {
    stream: TcpStream,
    state: SinkState,
    out: Vec<u8>,
    out_pos: usize,
}

impl SinkConn {
    /// Reads until the socket would block, answers, writes what it can.
    fn service(&mut self, scratch: &mut [u8], ack: &[u8]) -> Next {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Next::Close,
                Ok(n) => {
                    if self.state.feed(&scratch[..n], ack, &mut self.out) == Next::Close {
                        return Next::Close;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Next::Close,
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Next::Continue
    }
}

/// Serves on 127.0.0.1:`port` until `max_seconds` have passed.
pub fn serve(port: u16, max_seconds: f64) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))?;
    let ack = server_frame(OP_TEXT, ACK);
    let mut conns: Vec<Option<SinkConn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut scratch = vec![0u8; 256 * 1024];
    let mut events = vec![EpollEvent::empty(); 1024];
    let started = Instant::now();
    let limit = Duration::from_secs_f64(max_seconds);
    while started.elapsed() < limit {
        let n = match epoll.wait(&mut events, 100u16) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            if ev.data() == LISTENER {
                loop {
                    let stream = match listener.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    stream.set_nonblocking(true)?;
                    stream.set_nodelay(true)?;
                    let slot = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    let flags = EpollFlags::EPOLLIN
                        | EpollFlags::EPOLLOUT
                        | EpollFlags::EPOLLRDHUP
                        | EpollFlags::EPOLLET;
                    epoll.add(&stream, EpollEvent::new(flags, slot as u64))?;
                    let mut conn = SinkConn {
                        stream,
                        state: SinkState::default(),
                        out: Vec::new(),
                        out_pos: 0,
                    };
                    // Bytes may have arrived before the registration.
                    if conn.service(&mut scratch, &ack) == Next::Close {
                        let _ = epoll.delete(&conn.stream);
                        free.push(slot);
                    } else {
                        conns[slot] = Some(conn);
                    }
                }
                continue;
            }
            let slot = ev.data() as usize;
            let Some(conn) = conns[slot].as_mut() else {
                continue;
            };
            if conn.service(&mut scratch, &ack) == Next::Close {
                let _ = epoll.delete(&conn.stream);
                conns[slot] = None;
                free.push(slot);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::client_frame;

    const MASK: [u8; 4] = [9, 8, 7, 6];

    fn upgraded() -> (SinkState, Vec<u8>) {
        let mut state = SinkState::default();
        let mut out = Vec::new();
        let req = handshake::request("/ws?type=tracker", "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(state.feed(&req, ACK, &mut out), Next::Continue);
        assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(out.ends_with(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
        out.clear();
        (state, out)
    }

    #[test]
    fn every_data_message_gets_one_ack_however_the_bytes_are_split() {
        let mut stream = Vec::new();
        for len in [0, 10, 125, 126, 300, 70_000] {
            stream.extend(client_frame(OP_TEXT, &vec![b'x'; len], MASK));
        }
        stream.extend(client_frame(crate::frame::OP_PING, b"hi", MASK));
        for step in [1, 2, 3, 7, 13, 1000, stream.len()] {
            let (mut state, mut out) = upgraded();
            for piece in stream.chunks(step) {
                assert_eq!(state.feed(piece, ACK, &mut out), Next::Continue);
            }
            assert_eq!(state.acks, 6, "step {step}");
            assert_eq!(out, ACK.repeat(6));
        }
    }

    #[test]
    fn frames_right_after_the_upgrade_are_counted() {
        let mut state = SinkState::default();
        let mut out = Vec::new();
        let mut bytes = handshake::request("/ws", "abc");
        bytes.extend(client_frame(OP_TEXT, b"{}", MASK));
        state.feed(&bytes, b"A", &mut out);
        assert!(out.ends_with(b"\r\n\r\nA"));
    }

    #[test]
    fn close_and_garbage_end_the_connection() {
        let (mut state, mut out) = upgraded();
        let close = client_frame(OP_CLOSE, &1000u16.to_be_bytes(), MASK);
        assert_eq!(state.feed(&close, ACK, &mut out), Next::Close);
        let (mut state, mut out) = upgraded();
        assert_eq!(state.feed(&[0xF1, 0x80], ACK, &mut out), Next::Close);
        let mut state = SinkState::default();
        assert_eq!(
            state.feed(b"GET / HTTP/1.1\r\n\r\n", ACK, &mut out),
            Next::Close
        );
    }
}
