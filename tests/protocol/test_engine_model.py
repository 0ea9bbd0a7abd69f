"""The Rust tracker engine against a plain-Python model of the server it
replaced (``protocol/tracker.py`` and ``sessions/hub.py`` before the
engine): random tracker streams go through both, and every reply frame,
every stored chunk and every ring read must agree.

Why a model rather than examples: the engine folds the frame decoder, the
seq window, the storage queue and the ring into one call per socket read,
and the old code's behaviour lives in the order of its checks (which error
wins, when a duplicate is acked, where a restarted session resumes).
Random streams mix those orders far more than hand-written cases do:
interleaved sessions, duplicates and out-of-window seqs, batches without
seq, invalid events, oversized and compressed messages, fragmented frames,
storage backpressure, session end and restart, cut at random points.

The engine side is driven as ``replaywire.protocol.tracker`` drives it: it
stops on ``session_start`` (the "server" opens the session from its
storage, then calls ``started``), on ``session_end`` (end, maybe flush,
close, ``ended``) and on backpressure (take and commit a flush). Storage
is the list of committed flushes; ``now`` is fixed so chunks are
deterministic.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import given, note, settings
from hypothesis import strategies as st

from replaywire import _core
from replaywire.storage.base import resume_from

MAX_MESSAGE = 2048  # frame decoder and compressed messages
MAX_EVENT = 400
MAX_EVENTS = 4
MAX_SESSIONS = 2
SEQ_WINDOW = 4
NOW, MONO = 1_700_000_000.25, 10.0
LIMITS = {
    "maxEventBytes": MAX_EVENT,
    "maxMessageBytes": MAX_MESSAGE,
    "maxEventsPerBatch": MAX_EVENTS,
}
SIDS = ("a", "b", "c")
# The old tracker.py's reading of a skipped message's first bytes.
PREFIX_SEQ = re.compile(rb'"seq"\s*:\s*(\d{1,18})\b')
PREFIX_BYTES = 4096


def key_of(sid: str) -> str:
    """Session keys are namespaced by tenant, as ``principal.key`` does."""
    return "tenant/" + sid


# --- what the tracker sends ------------------------------------------------


@dataclass(frozen=True)
class Event:
    raw: bytes
    kind: int
    timestamp: float | None  # None: invalid (no numeric timestamp)


@dataclass(frozen=True)
class Msg:
    """One tracker message: what it means (``kind`` and fields, read by
    the model) and its bytes on the wire (fed to the engine)."""

    kind: str  # batch, start, end, missing, bad, ping
    wire: bytes  # the message's payload as sent (compressed: header + data)
    frames: bytes  # the client frames carrying it
    text: bool = True
    sid: str | None = None
    seq: int | None = None
    events: tuple[Event, ...] = ()
    nul: bool = False
    bad_code: str = ""  # the error a "bad" message gets
    header: tuple[int, int, int] | None = None  # compressed: (version, codec, raw length)
    text_length: int = 0  # the JSON's length (a compressed header may lie)

    def describe(self) -> str:
        how = "text" if self.header is None else f"compressed{self.header}"
        sizes = [len(e.raw) if e.timestamp is not None else "no_ts" for e in self.events]
        return f"{self.kind} sid={self.sid} seq={self.seq} events={sizes} {how} nul={self.nul}"


@dataclass(frozen=True)
class Action:
    """Something the server does between reads: flush storage, end a
    session for idleness, or start/stop spooling (``spool`` room)."""

    kind: str  # flush, idle_end, spool
    sid: str = ""
    room: int | None = None


def event_json(kind: int, ts: float | None, pad: int, inner_seq: bool) -> bytes:
    data: dict[str, Any] = {"source": 1, "x": "p" * pad}
    if inner_seq:
        data["seq"] = 99  # a "seq" inside an event: the prefix reader may see it
    body: dict[str, Any] = {"type": kind, "data": data}
    if ts is not None:
        body["timestamp"] = ts
    return json.dumps(body, separators=(",", ":")).encode()


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from([2, 3, 3, 3, 4]))
    ts = draw(st.one_of(st.integers(1_700_000_000_000, 1_700_000_100_000), st.just(1.5)))
    size = draw(st.sampled_from(["small"] * 80 + ["no_ts", "big", "huge", "huger"]))
    pad = {"small": draw(st.integers(0, 40)), "big": 450, "huge": 2100, "huger": 4500}.get(size, 0)
    if size == "no_ts":
        return Event(event_json(kind, None, pad, draw(st.booleans())), kind, None)
    return Event(event_json(kind, ts, pad, draw(st.booleans())), kind, float(ts))


def frames_of(payload: bytes, text: bool, pieces: int) -> bytes:
    """The payload in ``pieces`` masked frames (a fragmented message)."""
    cuts = [len(payload) * i // pieces for i in range(pieces + 1)]
    out = b""
    for i in range(pieces):
        opcode = (_core.OP_TEXT if text else _core.OP_BINARY) if i == 0 else _core.OP_CONTINUATION
        part = payload[cuts[i] : cuts[i + 1]]
        out += _core.encode_client_frame(opcode, part, b"\x11\x22\x33\x44", fin=i == pieces - 1)
    return out


@st.composite
def on_the_wire(draw: st.DrawFn, text: bytes, **fields: Any) -> Msg:
    """``text`` as a text message in 1-3 frames, or as a compressed binary
    message (docs/protocol.md), sometimes with a lying header."""
    pieces = draw(st.integers(1, 3))
    if draw(st.integers(0, 3)) > 0:
        return Msg(wire=text, frames=frames_of(text, True, pieces), **fields)
    codec = draw(st.sampled_from([1, 2]))
    data = _core.compress("deflate" if codec == 1 else "zstd", text)
    version, raw_length = 1, len(text)
    lie = draw(st.sampled_from([None] * 12 + ["length", "codec", "version"]))
    if lie == "length":
        raw_length += 5
    elif lie == "codec":
        codec = 7
    elif lie == "version":
        version = 2
    wire = struct.pack(">BBHI", version, codec, 0, raw_length) + data
    header = (version, codec, raw_length)
    frames = frames_of(wire, False, pieces)
    return Msg(wire=wire, frames=frames, text=False, header=header, text_length=len(text), **fields)


sids = st.sampled_from(SIDS)


@st.composite
def batches(draw: st.DrawFn) -> Msg:
    sid = draw(st.sampled_from(["a", "a", "a", "a", "b", "b", "c", None, "zz"]))
    seq = draw(st.sampled_from([*range(7), *range(4), None, None, 9, -1]))
    evs = tuple(draw(st.lists(events(), max_size=MAX_EVENTS + 1)))
    # Past 4 x MAX_MESSAGE the frame decoder fails (1009) rather than skip.
    while sum(len(e.raw) for e in evs) > 3 * MAX_MESSAGE:
        evs = evs[:-1]
    data = b'{"sessionId":%b,' % json.dumps(sid).encode() if sid is not None else b"{"
    joined = b",".join(e.raw for e in evs)
    if draw(st.booleans()) or seq is None:  # seq first, as trackers write it
        data += (b'"seq":%d,' % seq if seq is not None else b"") + b'"events":[%b]}' % joined
    else:
        data += b'"events":[%b],"seq":%d}' % (joined, seq)
    text = b'{"type":"events_batch","data":' + data + b"}"
    return draw(on_the_wire(text, kind="batch", sid=sid, seq=seq, events=evs))


@st.composite
def control(draw: st.DrawFn) -> Msg:
    kind = draw(st.sampled_from(["start", "start", "start", "end", "end", "missing", "bad"]))
    if kind == "start":
        sid, nul = draw(sids), draw(st.integers(0, 9)) == 0
        data = {"sessionId": sid, "url": "https://shop.example/\x00" if nul else "https://x/"}
        text = json.dumps({"type": "session_start", "data": data}).encode()
        return draw(on_the_wire(text, kind=kind, sid=sid, nul=nul))
    if kind in ("end", "missing"):
        sid = draw(st.one_of(sids, st.none()))
        data = {"sessionId": sid} if sid is not None else {}
        if kind == "end":
            text = json.dumps({"type": "session_end", "data": data}).encode()
        else:
            data.update(reason="too_large", bytes=70_000_000, limitBytes=67_108_864)
            text = json.dumps({"type": "snapshot_missing", "data": data}).encode()
        return draw(on_the_wire(text, kind=kind, sid=sid))
    text, code = draw(
        st.sampled_from(
            [
                (b"{not json", "invalid_message"),
                (b'{"type":"teleport","data":{}}', "unknown_message_type"),
                (b'{"type":"viewer_leave_session","data":{"sessionId":"a"}}', "not_allowed"),
            ]
        )
    )
    return draw(on_the_wire(text, kind="bad", bad_code=code))


pings = st.binary(max_size=8).map(
    lambda p: Msg(kind="ping", wire=p, frames=_core.encode_client_frame(_core.OP_PING, p, b"abcd"))
)
actions = st.one_of(
    st.just(Action("flush")),
    sids.map(lambda s: Action("idle_end", sid=s)),
    st.sampled_from([None, 0, 300, 5000]).map(lambda r: Action("spool", room=r)),
)
steps = st.one_of(*[batches()] * 6, control(), control(), pings, actions)
# Every stream starts "a" (and maybe "b") first, so most batches have a session.
starts = st.sampled_from([["a"], ["a", "b"]]).map(
    lambda ids: [
        Msg(kind="start", sid=sid, wire=text, frames=frames_of(text, True, 1))
        for sid in ids
        for text in [json.dumps({"type": "session_start", "data": {"sessionId": sid}}).encode()]
    ]
)
TAILS = {
    "close": _core.encode_client_frame(_core.OP_CLOSE, struct.pack(">H", 1000) + b"bye", b"abcd"),
    "unmasked": _core.encode_text(b"{}"),  # a framing violation: 1002
}


@dataclass
class Stream:
    steps: list[Msg | Action]
    tail: str | None  # close, unmasked or None
    max_pending: int  # the queue's max_pending_bytes: backpressure
    flush_on_end: bool  # whether the writer's flush ran before the close
    cuts: list[int]  # sizes the bytes of each read are cut into


streams = st.builds(
    Stream,
    st.builds(lambda first, rest: first + rest, starts, st.lists(steps, min_size=10, max_size=50)),
    st.sampled_from([None, None, None, None, "close", "unmasked"]),
    st.sampled_from([60, 200, 1 << 20]),
    st.booleans(),
    st.lists(st.integers(1, 700), min_size=1, max_size=5),
)


# --- the reference: the old Python server -----------------------------------


class SeqWindow:
    """``sessions/seqs.py`` before the engine: the watermark plus the
    accepted seqs above it."""

    def __init__(self, next_seq: int, above: tuple[int, ...]) -> None:
        self.next_seq, self.above = next_seq, {s for s in above if s > next_seq}
        self._advance()

    def seen(self, seq: int) -> bool:
        return seq < self.next_seq or seq in self.above

    def fits(self, seq: int) -> bool:
        return seq < self.next_seq + SEQ_WINDOW

    def add(self, seq: int) -> None:
        if seq == self.next_seq:
            self.next_seq += 1
            self._advance()
        elif seq > self.next_seq:
            self.above.add(seq)

    def _advance(self) -> None:
        while self.next_seq in self.above:
            self.above.remove(self.next_seq)
            self.next_seq += 1


@dataclass
class Live:
    """A live session: its seq window, ring and hot counters."""

    open_id: int
    seqs: SeqWindow
    first_index: int  # where its ring starts
    events: list[bytes] = field(default_factory=list)
    byte_count: int = 0
    keyframe: int | None = None

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.events)


class Refused(Exception):
    def __init__(self, code: str, seq: int | None = None, retry: int | None = None) -> None:
        self.code, self.seq, self.retry = code, seq, retry


def error(code: str, seq: int | None = None, retry: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"code": code}
    if seq is not None:
        data["seq"] = seq
    if retry is not None:
        data["retryAfterMs"] = retry
    return {"type": "error", "data": data}


def chunk_nbytes(row: tuple[Any, ...]) -> int:
    return len(row[7])


class Model:
    """The old tracker.py + hub.py + writer, reduced to what the wire,
    storage and the ring show. ``trace`` gets replies and the engine's
    stops in order; pongs are kept apart (they may overtake replies of the
    same read)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.live: dict[str, Live] = {}
        self.conn: dict[str, tuple[str, int]] = {}  # sessions of this connection
        self.pending: list[tuple[Any, ...]] = []  # the writer's queue
        self.stored: list[tuple[Any, ...]] = []  # committed flushes
        self.spool_room: int | None = None
        self.opened = 0
        self.trace: list[Any] = []
        self.pongs: list[bytes] = []

    def flush(self) -> None:
        self.stored += self.pending
        self.pending = []

    def act(self, action: Action) -> None:
        if action.kind == "flush":
            self.flush()
        elif action.kind == "spool":
            self.spool_room = action.room
        elif key_of(action.sid) in self.live:  # the idle sweeper ends it
            self.end_session(key_of(action.sid))

    def receive(self, msg: Msg) -> None:
        if msg.kind == "ping":
            self.pongs.append(msg.wire)
            return
        try:
            reply = self.handle(msg)
        except Refused as exc:
            reply = error(exc.code, exc.seq, exc.retry)
        if reply is not None:
            self.trace.append(reply)

    def handle(self, msg: Msg) -> dict[str, Any] | None:
        if len(msg.wire) > MAX_MESSAGE:  # skipped by the frame decoder
            found = PREFIX_SEQ.search(msg.wire[:PREFIX_BYTES])
            raise Refused("payload_too_large", int(found.group(1)) if found else None)
        if msg.header is not None:
            self.inflate(msg)
        if msg.kind == "batch":
            return self.batch(msg)
        if msg.kind == "bad":
            raise Refused(msg.bad_code)
        if msg.kind == "start":
            return self.start(msg)
        sid, key, _ = self.session(msg.sid, None)
        if msg.kind == "end":
            self.trace.append(("end", sid, key))
            self.end_session(key)
            del self.conn[sid]
            return {"type": "session_ended", "data": {"sessionId": sid}}
        return None  # snapshot_missing: no answer

    def inflate(self, msg: Msg) -> None:
        assert msg.header is not None
        version, codec, raw_length = msg.header
        if version != 1 or codec not in (1, 2):
            raise Refused("invalid_message")
        if raw_length > MAX_MESSAGE:
            raise Refused("payload_too_large")
        if raw_length != msg.text_length:
            raise Refused("invalid_compression")

    def batch(self, msg: Msg) -> dict[str, Any] | None:
        seq = msg.seq
        if len(msg.events) > MAX_EVENTS:
            raise Refused("payload_too_large", seq)
        if seq is not None and seq < 0:
            raise Refused("invalid_message", seq)
        for event in msg.events:
            if len(event.raw) > MAX_EVENT:
                raise Refused("payload_too_large", seq)
            if event.timestamp is None:
                raise Refused("invalid_event", seq)
        sid, key, live = self.session(msg.sid, seq)
        seq = seq if seq is not None else live.seqs.next_seq
        if live.seqs.seen(seq):
            return {"type": "ack", "data": {"sessionId": sid, "seq": seq}}
        if not live.seqs.fits(seq):
            raise Refused("seq_out_of_window", seq)
        nbytes = sum(len(e.raw) for e in msg.events)
        pending_bytes = sum(map(chunk_nbytes, self.pending))
        if self.spool_room is not None and pending_bytes + nbytes > self.spool_room:
            raise Refused("storage_unavailable", seq, 5000)
        if pending_bytes >= self.stream.max_pending:
            self.trace.append(("backpressure",))
            self.flush()
        self.accept(key, live, seq, msg.events)
        return {"type": "ack", "data": {"sessionId": sid, "seq": seq}}

    def accept(self, key: str, live: Live, seq: int, evs: tuple[Event, ...]) -> None:
        stamps = [e.timestamp for e in evs if e.timestamp is not None]
        payload = b"[" + b",".join(e.raw for e in evs) + b"]"
        row = (key, seq, live.next_index, len(evs), min(stamps, default=None))
        row += (max(stamps, default=None), "none", payload, NOW)
        if not any((c[0], c[1]) == (key, seq) for c in self.pending):
            self.pending.append(row)
        kinds = [e.kind for e in evs]
        if 2 in kinds:
            snap = len(kinds) - 1 - kinds[::-1].index(2)
            metas = [i for i in range(snap) if kinds[i] == 4]
            live.keyframe = live.next_index + (metas[-1] if metas else snap)
        live.events += [e.raw for e in evs]
        live.byte_count += sum(len(e.raw) for e in evs)
        live.seqs.add(seq)

    def start(self, msg: Msg) -> dict[str, Any]:
        assert msg.sid is not None
        if msg.nul:
            raise Refused("invalid_message")
        if msg.sid not in self.conn and len(self.conn) >= MAX_SESSIONS:
            raise Refused("session_limit")
        self.trace.append(("start", msg.sid))
        key = key_of(msg.sid)
        if key not in self.live:
            self.open(key)
        live = self.live[key]
        self.conn[msg.sid] = (key, live.open_id)
        data = {"sessionId": msg.sid, "nextSeq": live.seqs.next_seq}
        data.update(nextIndex=live.next_index, limits=LIMITS)
        return {"type": "session_started", "data": data}

    def open(self, key: str) -> None:
        """hub._open: resume from storage, then the writer's queue."""
        stored = sorted(c[1] for c in self.stored if c[0] == key)
        ends = [c[2] + c[3] for c in self.stored if c[0] == key]
        resume = resume_from(max(ends, default=0), stored)
        seqs, next_index = SeqWindow(resume.next_seq, resume.seqs_above), resume.next_index
        for chunk in self.pending:
            if chunk[0] == key:
                next_index = max(next_index, chunk[2] + chunk[3])
                seqs.add(chunk[1])

        self.opened += 1
        self.live[key] = Live(self.opened, seqs, next_index)

    def end_session(self, key: str) -> None:
        if self.stream.flush_on_end:
            self.flush()
        del self.live[key]

    def session(self, sid: str | None, seq: int | None) -> tuple[str, str, Live]:
        """tracker._session: the named session, or the only one."""
        if sid is None:
            if len(self.conn) != 1:
                raise Refused("unknown_session", seq)
            sid = next(iter(self.conn))
        if sid not in self.conn:
            raise Refused("unknown_session", seq)
        key, open_id = self.conn[sid]
        live = self.live.get(key)
        if live is None or live.open_id != open_id:
            del self.conn[sid]
            raise Refused("unknown_session", seq)
        return sid, key, live


# --- the engine, driven as the server drives it ------------------------------


class Server:
    """The real ``TrackerEngine`` over a real ``Ingest`` and ``ChunkQueue``;
    what ``protocol/tracker.py`` and ``hub.py`` do around it is emulated."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.queue = _core.ChunkQueue(batch_size=64, max_pending_bytes=stream.max_pending)
        self.ingest = _core.Ingest(self.queue, max_seq_window=SEQ_WINDOW)
        frames = _core.FrameDecoder(max_message_bytes=MAX_MESSAGE, skip_oversized=True)
        self.engine = _core.TrackerEngine(
            self.ingest,
            frames,
            max_sessions=MAX_SESSIONS,
            max_message_bytes=MAX_MESSAGE,
            max_event_bytes=MAX_EVENT,
            max_events_per_batch=MAX_EVENTS,
        )
        self.replies = _core.FrameDecoder(require_mask=False)
        self.trace: list[Any] = []
        self.pongs: list[bytes] = []
        self.stored: list[tuple[Any, ...]] = []
        self.done = False

    def flush(self) -> None:
        flush = self.queue.take()
        self.stored += flush.rows()
        self.queue.commit(flush)

    def act(self, action: Action) -> None:
        if action.kind == "flush":
            self.flush()
        elif action.kind == "spool":
            self.queue.set_spool_room(action.room)
        elif self.ingest.is_live(key_of(action.sid)):
            self.end_session(key_of(action.sid))

    def end_session(self, key: str) -> None:
        self.ingest.end(key)
        if self.stream.flush_on_end:
            self.flush()
        self.ingest.close(key)

    def read(self, data: bytes) -> None:
        """One socket read: feed, then act on each stop and go on."""
        step = self.engine.feed(data, NOW, MONO, 0)
        while True:
            replies, stop = step[0], step[1]
            for event in self.replies.feed(replies):
                if isinstance(event, _core.WsPong):
                    self.pongs.append(event.data)
                else:
                    assert isinstance(event, _core.WsMessage) and event.is_text
                    body = json.loads(event.data)
                    if body["type"] == "error":
                        del body["data"]["message"]
                    self.trace.append(body)
            if stop is None:
                return
            self.stop(stop)
            if self.done:
                return
            step = self.engine.feed(b"", NOW, MONO, 0)

    def stop(self, stop: tuple[Any, ...]) -> None:
        kind = stop[0]
        if kind == "start":
            sid = stop[1].session_id
            self.trace.append(("start", sid))
            key = key_of(sid)
            if not self.ingest.is_live(key):
                stored = sorted(r[1] for r in self.stored if r[0] == key)
                ends = [r[2] + r[3] for r in self.stored if r[0] == key]
                resume = resume_from(max(ends, default=0), stored)
                self.ingest.open(
                    key,
                    next_index=resume.next_index,
                    next_seq=resume.next_seq,
                    seqs_above=list(resume.seqs_above),
                )
            assert self.engine.started(sid, key)
        elif kind == "end":
            self.trace.append(stop)
            self.end_session(stop[2])
            self.engine.ended(stop[1])
        elif kind == "backpressure":
            self.trace.append(stop)
            self.flush()
        else:  # close, failed: the connection is over
            self.trace.append(stop[:3] if kind == "close" else stop[:2])
            self.done = True


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at, i = [], 0, 0
    while at < len(data):
        out.append(data[at : at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        i += 1
    return out


def run(stream: Stream) -> tuple[Model, Server]:
    model, server = Model(stream), Server(stream)
    group: list[Msg] = []

    def send() -> None:
        for msg in group:
            model.receive(msg)
        for piece in cut(b"".join(m.frames for m in group), stream.cuts):
            if not server.done:
                server.read(piece)
        group.clear()

    for step in stream.steps:
        if isinstance(step, Msg):
            group.append(step)
        else:
            send()
            model.act(step)
            server.act(step)
    send()
    if stream.tail is not None:
        model.trace.append(("close", 1000, "bye") if stream.tail == "close" else ("failed", 1002))
        for piece in cut(TAILS[stream.tail], stream.cuts):
            if not server.done:
                server.read(piece)
    return model, server


def check(model: Model, server: Server) -> None:
    assert server.trace == model.trace, "replies and stops differ from the old server's"
    # Pongs go out ahead of the read's other replies, newest first (RFC
    # 6455 lets a peer answer only the latest ping): compared as a multiset.
    assert sorted(server.pongs) == sorted(model.pongs)
    server.flush()
    model.flush()
    assert server.stored == model.stored, "stored chunks differ from the old server's"
    for sid in SIDS:
        key = key_of(sid)
        live = model.live.get(key)
        if live is None:
            assert key not in server.ingest and server.ingest.counters(key) is None
            continue
        ring = server.ingest.read(key, live.first_index)
        assert (ring.first_index, ring.count) == (live.first_index, len(live.events))
        assert ring.json() == b"[" + b",".join(live.events) + b"]"
        assert server.ingest.next_index(key) == live.next_index
        counters = server.ingest.counters(key)
        assert counters is not None
        assert (counters[0], counters[1]) == (len(live.events), live.byte_count)
        assert counters[3] == live.keyframe
        assert counters[5] == live.seqs.next_seq, "next_seq differs from the old server's"


@settings(max_examples=800)
@given(streams)
def test_engine_agrees_with_the_old_server(stream: Stream) -> None:
    for step in stream.steps:  # readable in a failure report
        note(repr(step) if isinstance(step, Action) else step.describe())
    note(f"tail={stream.tail} max_pending={stream.max_pending} flush_on_end={stream.flush_on_end}")
    model, server = run(stream)
    for item in model.trace:  # what the stream reached (--hypothesis-show-statistics)
        hypothesis.event(
            item[0] if isinstance(item, tuple) else item["data"].get("code", item["type"])
        )
    check(model, server)


def test_reopened_session_counts_its_pending_chunk_at_the_watermark() -> None:
    """Minimal case: seq 0 accepted, the session ended and started again
    before its flush committed. The old hub added the queued chunk's seq
    to the window (``seqs.add``), so nextSeq is 1 and a resent seq 0 is a
    duplicate; ``Ingest.open`` passes it as a seq *above* the watermark,
    which ``SeqWindow::new`` drops when it equals ``next_seq``."""
    start = Msg(
        kind="start",
        sid="a",
        wire=b"",
        frames=frames_of(
            json.dumps({"type": "session_start", "data": {"sessionId": "a"}}).encode(), True, 1
        ),
    )
    ev = Event(event_json(3, 1.0, 0, False), 3, 1.0)
    text = b'{"type":"events_batch","data":{"sessionId":"a","seq":0,"events":[%b]}}' % ev.raw
    batch = Msg(
        kind="batch", sid="a", seq=0, events=(ev,), wire=text, frames=frames_of(text, True, 1)
    )
    end_text = b'{"type":"session_end","data":{"sessionId":"a"}}'
    end = Msg(kind="end", sid="a", wire=end_text, frames=frames_of(end_text, True, 1))
    stream = Stream([start, batch, end, start, batch], None, 1 << 20, False, [4096])
    model, server = run(stream)
    started = [r for r in server.trace if isinstance(r, dict) and r["type"] == "session_started"]
    assert started[-1]["data"]["nextSeq"] == 1, (
        "engine bug: Ingest.open drops a pending chunk whose seq is the resumed next_seq; "
        f"session_started says {started[-1]['data']}, the old hub said nextSeq 1"
    )
    check(model, server)
