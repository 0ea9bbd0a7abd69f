//! `loadgen viewers`: N live viewers of one session on one epoll loop, for
//! `benches/fanout.py`, which used to run them in a Python process of its
//! own (`viewers_process`) that took the CPU the generator needed.
//!
//! Each viewer connects to 127.0.0.1, upgrades on `/ws?type=viewer&codec=C`,
//! and once the 101 head is in sends `viewer_join_session` (again 100 ms
//! after an `error`: the session may not be started yet). Incoming frames
//! are read by [`ViewerReader`]; pings are answered with masked pongs, as
//! the server's heartbeat pings a viewer that sends nothing. Stdout, as
//! `viewers_process` prints it: `joined` once every viewer got its
//! `viewer_joined`, then the cumulative count of delivered events every
//! 100 ms.
//!
//! Connections are opened at most [`HANDSHAKES`] at a time (a new one as
//! soon as an earlier one is upgraded), so a thousand viewers never
//! overflow the server's listen backlog. `connect` itself blocks: std has
//! no non-blocking connect and nix's would add a crate; on loopback it
//! returns as soon as the kernel has done the TCP handshake, without the
//! server, which cannot be held up while the backlog has room. All reads
//! and writes are non-blocking.
//!
//! Resource handling: every socket is owned by its `Viewer` and closed
//! when `run` returns: after `max_seconds`, when stdout is closed (the
//! reader went away), or on the first error. Errors: a viewer the server
//! refuses, closes, or sends a bad frame fails the whole run with a
//! message naming the viewer (the counts would no longer be N viewers').

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::frame::{client_frame, OP_TEXT};
use crate::generator::random_bytes;
use crate::handshake;
use crate::viewer::{pong, Event, ViewerReader};

#[derive(Debug, Clone)]
pub struct Options {
    pub port: u16,
    pub session: String,
    pub count: usize,
    pub codec: String,
    pub max_seconds: Duration,
}

/// Upgrades in flight at most: connected, 101 not yet received.
const HANDSHAKES: usize = 64;
const RETRY: Duration = Duration::from_millis(100);
const REPORT: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 256 * 1024;

struct Viewer {
    stream: TcpStream,
    reader: ViewerReader,
    mask: [u8; 4],
    out: Vec<u8>,
    out_pos: usize,
}

struct Run<'a> {
    opts: &'a Options,
    epoll: Epoll,
    path: String,
    join: Vec<u8>,
    random: Vec<u8>,
    viewers: Vec<Viewer>,
    handshakes: usize,
    joined: usize,
    delivered: u64,
    /// Viewers to send their join again, and when; in time order, as
    /// every retry waits the same.
    retries: VecDeque<(Instant, usize)>,
    scratch: Vec<u8>,
    seen: Vec<Event>,
}

impl Run<'_> {
    fn connect(&mut self) -> io::Result<()> {
        let i = self.viewers.len();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.opts.port));
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let flags = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        self.epoll.add(&stream, EpollEvent::new(flags, i as u64))?;
        let key = handshake::base64(&self.random[20 * i..20 * i + 16]);
        self.viewers.push(Viewer {
            stream,
            reader: ViewerReader::default(),
            mask: self.random[20 * i + 16..20 * i + 20]
                .try_into()
                .expect("four bytes"),
            out: handshake::request(&self.path, &key),
            out_pos: 0,
        });
        self.handshakes += 1;
        self.flush(i)
    }

    fn send_join(&mut self, i: usize) -> io::Result<()> {
        let v = &mut self.viewers[i];
        v.out.extend(client_frame(OP_TEXT, &self.join, v.mask));
        self.flush(i)
    }

    fn flush(&mut self, i: usize) -> io::Result<()> {
        let v = &mut self.viewers[i];
        while v.out_pos < v.out.len() {
            match v.stream.write(&v.out[v.out_pos..]) {
                Ok(0) => return Err(io::Error::other("write returned 0")),
                Ok(n) => v.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if v.out_pos == v.out.len() {
            v.out.clear();
            v.out_pos = 0;
        }
        Ok(())
    }

    /// Reads what the socket has (edge-triggered: until it would block),
    /// acts on it, and writes what is queued.
    fn service(&mut self, i: usize, now: Instant) -> io::Result<()> {
        loop {
            let v = &mut self.viewers[i];
            let n = match v.stream.read(&mut self.scratch) {
                Ok(0) => return Err(io::Error::other("server closed the connection")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            v.reader
                .feed(&self.scratch[..n], &mut self.seen)
                .map_err(|e| io::Error::other(e.to_string()))?;
            for event in self.seen.drain(..) {
                match event {
                    Event::Upgraded => {
                        self.handshakes -= 1;
                        v.out.extend(client_frame(OP_TEXT, &self.join, v.mask));
                    }
                    Event::Joined => self.joined += 1,
                    Event::Error => self.retries.push_back((now + RETRY, i)),
                    Event::Delivered(count) => self.delivered += count,
                    Event::Ping(payload) => v.out.extend(pong(&payload, v.mask)),
                    Event::Close(payload) => {
                        let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                        return Err(io::Error::other(format!(
                            "server sent close {code:?} {reason}"
                        )));
                    }
                }
            }
        }
        self.flush(i)
    }
}

/// Raises the open-file limit to fit `count` sockets, if it must and may.
fn fit_open_files(count: usize) -> io::Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let wanted = count as u64 + 64;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard)?;
    }
    Ok(())
}

/// One line on stdout; false once stdout is closed.
fn report(line: &str) -> bool {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// Runs the viewers until `max_seconds` have passed or stdout is closed.
pub fn run(opts: &Options) -> io::Result<()> {
    fit_open_files(opts.count)?;
    let session = serde_json::to_string(&opts.session).map_err(io::Error::other)?;
    let mut run = Run {
        opts,
        epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
        path: format!("/ws?type=viewer&codec={}", opts.codec),
        join: format!(r#"{{"type":"viewer_join_session","data":{{"sessionId":{session}}}}}"#)
            .into_bytes(),
        random: random_bytes(20 * opts.count)?,
        viewers: Vec::with_capacity(opts.count),
        handshakes: 0,
        joined: 0,
        delivered: 0,
        retries: VecDeque::new(),
        scratch: vec![0; READ_CHUNK],
        seen: Vec::new(),
    };
    let deadline = Instant::now() + opts.max_seconds;
    let mut next_report = Instant::now();
    let mut announced = false;
    let mut events = vec![EpollEvent::empty(); 1024];
    loop {
        while run.viewers.len() < opts.count && run.handshakes < HANDSHAKES {
            let i = run.viewers.len();
            run.connect()
                .map_err(|e| io::Error::other(format!("viewer {i}: {e}")))?;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        let mut wake = deadline;
        if run.joined >= opts.count {
            wake = wake.min(next_report);
        }
        if let Some(&(at, _)) = run.retries.front() {
            wake = wake.min(at);
        }
        let timeout = (wake.saturating_duration_since(now).as_millis() + 1).min(100) as u16;
        let n = match run.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        for ev in &events[..n] {
            let i = ev.data() as usize;
            run.service(i, now)
                .map_err(|e| io::Error::other(format!("viewer {i}: {e}")))?;
        }
        while let Some(&(at, i)) = run.retries.front() {
            if at > now {
                break;
            }
            run.retries.pop_front();
            run.send_join(i)
                .map_err(|e| io::Error::other(format!("viewer {i}: {e}")))?;
        }
        if run.joined >= opts.count && now >= next_report {
            if !announced && !report("joined") {
                return Ok(());
            }
            announced = true;
            if !report(&run.delivered.to_string()) {
                return Ok(());
            }
            next_report = now + REPORT;
        }
    }
}
