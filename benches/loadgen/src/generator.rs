//! The tracker load: C connections on one epoll loop (one thread, one
//! core), closed loop (each keeps W batches unacked) or open loop (batches
//! due on a fixed schedule, latency from when each was due).
//!
//! Resource handling: every socket is owned by its `Conn` and closed when
//! the run returns, after at most warm-up + duration (+ grace in the open
//! loop); the timer fd likewise. Errors: a connection the server closes or
//! breaks is counted in `connection_errors` and left out from then on; an
//! `error` answer is counted in `errors`; both keep the first message, so
//! the caller can refuse a run that measured something else.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use serde_json::{json, Value};

use crate::frame::{self, classify, parse_header, Reply, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::handshake;
use crate::workload::Workload;

/// How batches are offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Each connection keeps `window` batches unacked: throughput.
    Closed { window: usize },
    /// `rate` events/s over all connections on a fixed schedule, whatever
    /// the acks do: latency at a given load.
    Open { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub port: u16,
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop: how long to wait for the last acks after the schedule ends.
    pub grace: Duration,
}

const TIMER: u64 = u64::MAX;
const READ_CHUNK: usize = 256 * 1024;
/// Open loop: a connection whose socket takes no more keeps at most this
/// much queued; batches due meanwhile wait (and their lateness counts).
const MAX_QUEUED: usize = 4 << 20;
/// Open loop: the timer never ticks faster than this; batches due in
/// between go out together at the next tick, late by less than this.
const MIN_TICK_NS: u64 = 25_000;
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

struct Conn {
    stream: TcpStream,
    sid_json: Vec<u8>,
    mask: [u8; 4],
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    /// Closed loop: when each unacked batch was queued, oldest first.
    queued_at: VecDeque<u64>,
    /// Batches encoded so far (the next one's seq).
    sent: u64,
    /// Open loop: batches due so far.
    due: u64,
    /// Answers to batches received so far (acks and errors).
    replies: u64,
    alive: bool,
    dirty: bool,
}

impl Conn {
    fn queued(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

#[derive(Default)]
struct Faults {
    errors: u64,
    unexpected_frames: u64,
    connection_errors: u64,
    first_error: Option<String>,
}

impl Faults {
    fn note(&mut self, what: String) {
        self.first_error.get_or_insert(what);
    }
}

struct Tally {
    acks: u64,
    events: u64,
    bytes: u64,
    latency_ns: Histogram<u64>,
    lag_ns: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        let hist = || Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds");
        Tally {
            acks: 0,
            events: 0,
            bytes: 0,
            latency_ns: hist(),
            lag_ns: hist(),
        }
    }
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn percentiles(hist: &Histogram<u64>) -> Value {
    if hist.is_empty() {
        return json!({"p50": null, "p99": null, "p999": null, "max": null, "mean": null});
    }
    json!({
        "p50": ms(hist.value_at_quantile(0.50)),
        "p99": ms(hist.value_at_quantile(0.99)),
        "p999": ms(hist.value_at_quantile(0.999)),
        "max": ms(hist.max()),
        "mean": ms(hist.mean() as u64),
    })
}

/// Random bytes for WebSocket keys and masks.
pub fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// One tracker connection, upgraded, its session started (blocking, with
/// a timeout), then switched to non-blocking.
fn open(port: u16, path: &str, start: &[u8], key: &[u8], mask: [u8; 4]) -> io::Result<Conn> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
    (&stream).write_all(&handshake::request(path, &handshake::base64(key)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = handshake::head_end(&buf) {
            break end;
        }
        let n = (&stream).read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("server closed during the handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if !buf.starts_with(b"HTTP/1.1 101 ") {
        let head = String::from_utf8_lossy(&buf[..end]);
        return Err(io::Error::other(format!(
            "upgrade refused: {}",
            head.trim()
        )));
    }
    buf.drain(..end);
    (&stream).write_all(&frame::client_frame(OP_TEXT, start, mask))?;
    loop {
        if let Some(h) = parse_header(&buf).map_err(|e| io::Error::other(e.to_string()))? {
            let total = h.header_len + h.payload_len as usize;
            if buf.len() >= total {
                let payload = &buf[h.header_len..total];
                if h.opcode != OP_TEXT || classify(payload) == Reply::Error {
                    let text = String::from_utf8_lossy(payload).into_owned();
                    return Err(io::Error::other(format!("session_start answered {text}")));
                }
                buf.drain(..total);
                break;
            }
        }
        let n = (&stream).read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("server closed after session_start"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok(Conn {
        stream,
        sid_json: Vec::new(),
        mask,
        out: Vec::with_capacity(1 << 16),
        out_pos: 0,
        inbuf: buf,
        queued_at: VecDeque::new(),
        sent: 0,
        due: 0,
        replies: 0,
        alive: true,
        dirty: false,
    })
}

struct Run<'a> {
    workload: &'a Workload,
    opts: &'a Options,
    clock: Instant,
    conns: Vec<Conn>,
    faults: Faults,
    tally: Tally,
    scratch: Vec<u8>,
}

impl Run<'_> {
    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn encode(&mut self, i: usize) {
        let c = &mut self.conns[i];
        self.workload
            .put_batch_frame(&mut c.out, &c.sid_json, c.sent, c.mask);
        c.sent += 1;
    }

    fn fail(&mut self, i: usize, what: String) {
        let c = &mut self.conns[i];
        if c.alive {
            c.alive = false;
            self.faults.connection_errors += 1;
            self.faults.note(format!("connection {i}: {what}"));
        }
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while c.alive && c.out_pos < c.out.len() {
            match c.stream.write(&c.out[c.out_pos..]) {
                Ok(0) => return self.fail(i, "write returned 0".into()),
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, e.to_string()),
            }
        }
        let c = &mut self.conns[i];
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        } else if c.out_pos >= 1 << 20 {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
    }

    /// Reads what the socket has (edge-triggered: until it would block)
    /// and returns the answers to batches in order: true for an ack,
    /// false for an error.
    fn read(&mut self, i: usize, answers: &mut Vec<bool>) {
        answers.clear();
        loop {
            let c = &mut self.conns[i];
            if !c.alive {
                return;
            }
            match c.stream.read(&mut self.scratch) {
                Ok(0) => return self.fail(i, "server closed the connection".into()),
                Ok(n) => c.inbuf.extend_from_slice(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, e.to_string()),
            }
        }
        let mut at = 0;
        let mut closed = None;
        let c = &mut self.conns[i];
        loop {
            let h = match parse_header(&c.inbuf[at..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    closed = Some(format!("bad frame from the server: {e}"));
                    break;
                }
            };
            let total = h.header_len + h.payload_len as usize;
            let Some(payload) = c.inbuf.get(at + h.header_len..at + total) else {
                break;
            };
            match (h.opcode, classify(payload)) {
                (OP_TEXT, Reply::Ack) if h.fin => answers.push(true),
                (OP_TEXT, Reply::Error) if h.fin => {
                    answers.push(false);
                    self.faults.errors += 1;
                    self.faults
                        .note(format!("server: {}", String::from_utf8_lossy(payload)));
                }
                (OP_PING, _) => {
                    let pong = frame::client_frame(OP_PONG, payload, c.mask);
                    c.out.extend_from_slice(&pong);
                }
                (OP_CLOSE, _) => {
                    closed = Some(format!(
                        "server sent close {}",
                        String::from_utf8_lossy(payload.get(2..).unwrap_or_default())
                    ));
                    break;
                }
                _ => self.faults.unexpected_frames += 1,
            }
            at += total;
        }
        c.inbuf.drain(..at);
        if let Some(what) = closed {
            self.fail(i, what);
        }
    }

    fn setup(&mut self) -> io::Result<()> {
        let sessions = &self.workload.sessions;
        let random = random_bytes(20 * sessions.len())?;
        for (n, session) in sessions.iter().enumerate() {
            let key = &random[20 * n..20 * n + 16];
            let mask = random[20 * n + 16..20 * n + 20].try_into().expect("four");
            let mut conn = open(
                self.opts.port,
                &self.workload.path,
                &session.start,
                key,
                mask,
            )
            .map_err(|e| io::Error::other(format!("connection {n}: {e}")))?;
            conn.sid_json.clone_from(&session.id_json);
            self.conns.push(conn);
        }
        Ok(())
    }

    fn register(&self, epoll: &Epoll) -> io::Result<()> {
        let flags = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        for (n, c) in self.conns.iter().enumerate() {
            epoll.add(&c.stream, EpollEvent::new(flags, n as u64))?;
        }
        Ok(())
    }

    fn cpu_seconds() -> f64 {
        use nix::sys::resource::{getrusage, UsageWho};
        getrusage(UsageWho::RUSAGE_SELF)
            .map(|u| {
                let t =
                    |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
                t(u.user_time()) + t(u.system_time())
            })
            .unwrap_or(f64::NAN)
    }

    fn common(&self, wall_ns: u64) -> Value {
        let cpu = Self::cpu_seconds();
        let batches: u64 = self.conns.iter().map(|c| c.sent).sum();
        json!({
            "generator": "rust",
            "connections": self.conns.len(),
            "batch": self.workload.batch,
            "errors": self.faults.errors,
            "unexpected_frames": self.faults.unexpected_frames,
            "connection_errors": self.faults.connection_errors,
            "first_error": self.faults.first_error,
            "generator_cpu_seconds": (cpu * 100.0).round() / 100.0,
            "generator_cpu_share": (cpu / (wall_ns as f64 / 1e9) * 100.0).round() / 100.0,
            // What a batch costs the generator, kernel included: unlike the
            // share, it does not depend on what else runs on its core.
            "generator_cpu_us_per_batch": (cpu * 1e7 / batches.max(1) as f64).round() / 10.0,
        })
    }

    fn closed(&mut self, window: usize) -> io::Result<Value> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        self.register(&epoll)?;
        let batch = self.workload.batch as u64;
        let start = self.now();
        for i in 0..self.conns.len() {
            for _ in 0..window {
                self.encode(i);
                self.conns[i].queued_at.push_back(start);
            }
            self.flush(i);
        }
        let measure_from = start + self.opts.warmup.as_nanos() as u64;
        let end = measure_from + self.opts.duration.as_nanos() as u64;
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut answers = Vec::new();
        let mut now = start;
        while now < end {
            let timeout = ((end - now) / 1_000_000 + 1).min(100) as u16;
            let n = match epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e.into()),
            };
            now = self.now();
            let counting = now >= measure_from && now < end;
            for ev in &events[..n] {
                let i = ev.data() as usize;
                self.read(i, &mut answers);
                for &ok in &answers {
                    let c = &mut self.conns[i];
                    let Some(queued) = c.queued_at.pop_front() else {
                        self.faults.unexpected_frames += 1;
                        continue;
                    };
                    let seq = c.replies;
                    c.replies += 1;
                    if ok && counting {
                        self.tally.acks += 1;
                        self.tally.events += batch;
                        self.tally.bytes += self.workload.event_bytes(seq) as u64;
                        self.tally
                            .latency_ns
                            .saturating_record(now.saturating_sub(queued));
                    }
                    self.encode(i);
                    self.conns[i].queued_at.push_back(now);
                }
                self.flush(i);
            }
            if self.conns.iter().all(|c| !c.alive) {
                break;
            }
        }
        let elapsed = (now.max(measure_from + 1) - measure_from) as f64 / 1e9;
        let mut out = self.common(now - start);
        let t = &self.tally;
        let extra = json!({
            "mode": "closed",
            "window": window,
            "seconds": (elapsed * 100.0).round() / 100.0,
            "events": t.events,
            "acks": t.acks,
            "events_per_s": (t.events as f64 / elapsed).round() as u64,
            "mb_per_s": (t.bytes as f64 / elapsed / 1e4).round() / 100.0,
            "acks_per_s": (t.acks as f64 / elapsed).round() as u64,
            "ack_latency_ms": percentiles(&t.latency_ns),
        });
        merge(&mut out, extra);
        Ok(out)
    }

    fn open(&mut self, rate: f64) -> io::Result<Value> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        self.register(&epoll)?;
        let conns = self.conns.len() as u64;
        let batch = self.workload.batch as u64;
        // Batch k over all connections is due at start_at + k * period and
        // goes to connection k % C: each connection sends every C periods,
        // the connections staggered evenly (openloop.py's schedule).
        let period = batch as f64 * 1e9 / rate;
        let start_at = self.now() + 200_000_000;
        let measure_from = start_at + self.opts.warmup.as_nanos() as u64;
        let deadline = measure_from + self.opts.duration.as_nanos() as u64;
        let give_up = deadline + self.opts.grace.as_nanos() as u64;
        let total = ((deadline - start_at) as f64 / period).ceil() as u64;
        let due_at = |k: u64| start_at + (k as f64 * period) as u64;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)?;
        let tick = Duration::from_nanos((period as u64).max(MIN_TICK_NS));
        let first = Duration::from_nanos(start_at - self.now());
        timer.set(
            Expiration::IntervalDelayed(
                TimeSpec::from_duration(first),
                TimeSpec::from_duration(tick),
            ),
            TimerSetTimeFlags::empty(),
        )?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
        let mut events = vec![EpollEvent::empty(); 1024];
        let mut answers = Vec::new();
        let mut scheduled = 0u64;
        let mut dirty: Vec<usize> = Vec::new();
        let mut measured = 0u64;
        let mut now = self.now();
        loop {
            let settled = self.conns.iter().all(|c| !c.alive || c.replies >= c.due);
            if now >= give_up || (now >= deadline && settled && scheduled == total) {
                break;
            }
            let timeout = ((give_up - now) / 1_000_000 + 1).min(100) as u16;
            let n = match epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e.into()),
            };
            now = self.now();
            for ev in &events[..n] {
                if ev.data() == TIMER {
                    let _ = timer.wait(); // non-blocking: clears the expirations
                    continue;
                }
                let i = ev.data() as usize;
                self.read(i, &mut answers);
                for &ok in &answers {
                    let c = &mut self.conns[i];
                    if c.replies >= c.sent {
                        self.faults.unexpected_frames += 1;
                        continue;
                    }
                    let seq = c.replies;
                    c.replies += 1;
                    let due = due_at(seq * conns + i as u64);
                    if ok && due >= measure_from {
                        measured += 1;
                        self.tally.events += batch;
                        self.tally.bytes += self.workload.event_bytes(seq) as u64;
                        self.tally
                            .latency_ns
                            .saturating_record(now.saturating_sub(due));
                    }
                }
                if !self.conns[i].dirty {
                    self.conns[i].dirty = true;
                    dirty.push(i);
                }
            }
            // What the schedule says is due by now.
            let due_now = if now < start_at {
                0
            } else {
                (((now - start_at) as f64 / period) as u64 + 1).min(total)
            };
            while scheduled < due_now {
                let i = (scheduled % conns) as usize;
                let c = &mut self.conns[i];
                c.due += 1;
                if !c.dirty {
                    c.dirty = true;
                    dirty.push(i);
                }
                scheduled += 1;
            }
            for i in dirty.drain(..) {
                let c = &mut self.conns[i];
                c.dirty = false;
                while c.alive && c.sent < c.due && c.queued() < MAX_QUEUED {
                    let lag = now.saturating_sub(due_at(c.sent * conns + i as u64));
                    self.tally.lag_ns.saturating_record(lag);
                    self.workload
                        .put_batch_frame(&mut c.out, &c.sid_json, c.sent, c.mask);
                    c.sent += 1;
                }
                self.flush(i);
            }
        }
        timer.unset()?;
        let lost: u64 = self
            .conns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (c.replies..c.due)
                    .filter(|&s| due_at(s * conns + i as u64) >= measure_from)
                    .count() as u64
            })
            .sum();
        let seconds = self.opts.duration.as_secs_f64();
        let mut out = self.common(now);
        let lag = &self.tally.lag_ns;
        let extra = json!({
            "mode": "open",
            "offered_events_per_s": rate.round() as u64,
            "acked_events_per_s": (measured as f64 * batch as f64 / seconds).round() as u64,
            "batches_measured": measured,
            "batches_lost": lost,
            "mb_per_s": (self.tally.bytes as f64 / seconds / 1e4).round() / 100.0,
            "ack_latency_ms": percentiles(&self.tally.latency_ns),
            "schedule_lag_ms": {
                "p99": ms(lag.value_at_quantile(0.99)),
                "max": ms(lag.max()),
            },
        });
        merge(&mut out, extra);
        Ok(out)
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// Connects, runs the load `opts` describe, and returns the result as
/// the JSON object the Python side reads.
pub fn run(workload: &Workload, opts: &Options) -> io::Result<Value> {
    let mut run = Run {
        workload,
        opts,
        clock: Instant::now(),
        conns: Vec::new(),
        faults: Faults::default(),
        tally: Tally::new(),
        scratch: vec![0; READ_CHUNK],
    };
    run.setup()?;
    match opts.mode {
        Mode::Closed { window } => run.closed(window),
        Mode::Open { rate } => run.open(rate),
    }
}
