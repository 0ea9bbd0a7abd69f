"""SessionBuffers: indices, reads, keyframes, limits and the global budget.

The model-based test drives the buffers and a plain Python model of the
documented behaviour with the same random operations and compares indices,
keyframes, reads and byte totals after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from replaywire import _core
from rrweb import batch_message, session_events

decoder = _core.ProtocolDecoder()
META, FULL_SNAPSHOT, INCREMENTAL = 4, 2, 3


def event(kind: int, size: int = 60, ts: int = 1) -> bytes:
    """An event of rrweb type ``kind`` that is exactly ``size`` bytes (>= 40)."""
    head = b'{"type":%d,"timestamp":%d,"p":"' % (kind, ts)
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


def batch(events: list[bytes]) -> _core.EventsBatch:
    m = decoder.decode_tracker(batch_message("s", None, events))
    assert isinstance(m, _core.EventsBatch)
    return m


def kinds(*ks: int, size: int = 60) -> _core.EventsBatch:
    return batch([event(k, size) for k in ks])


# --- basics ---------------------------------------------------------------------


def test_open_close_contains_len() -> None:
    b = _core.SessionBuffers()
    assert len(b) == 0 and "s" not in b
    assert b.open("s") is True
    assert b.open("s", 10) is False
    assert b.next_index("s") == 0
    assert "s" in b and len(b) == 1
    assert b.close("s") is True
    assert b.close("s") is False
    assert "s" not in b


def test_unknown_sessions_raise_key_error() -> None:
    b = _core.SessionBuffers()
    for call in (
        lambda: b.append("nope", kinds(INCREMENTAL)),
        lambda: b.next_index("nope"),
        lambda: b.first_index("nope"),
        lambda: b.keyframe_index("nope"),
        lambda: b.read("nope", 0),
    ):
        with pytest.raises(KeyError):
            call()


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(TypeError):
        _core.SessionBuffers(10)  # type: ignore[misc]
    for bad in ({"max_events_per_session": 0}, {"max_session_bytes": -1}, {"max_total_bytes": 0}):
        with pytest.raises(ValueError):
            _core.SessionBuffers(**bad)
    b = _core.SessionBuffers()
    with pytest.raises(ValueError):
        b.open("s", -1)
    b.open("s")
    for args in ((-1,), (0, 0), (0, 10, 0)):
        with pytest.raises(ValueError):
            b.read("s", *args)


def test_indices_and_reads_of_a_recorded_session() -> None:
    events = list(session_events(300, seed=5, checkout_every=100))
    b = _core.SessionBuffers(max_events_per_session=150)
    b.open("s", 1000)
    first = 0
    for i in range(0, 300, 50):
        assert b.append("s", batch(events[i : i + 50])) == 1000 + i
        first = max(0, i + 50 - 150)
        assert b.first_index("s") == 1000 + first
    assert b.next_index("s") == 1300
    # 150 kept: 1150..1300; the latest checkout (meta, snapshot) is at 1200.
    assert b.keyframe_index("s") == 1200
    part = b.read("s", 0)
    assert (part.first_index, part.count) == (1150, 150)
    assert part.nbytes == sum(map(len, events[150:]))
    assert part.json() == b"[" + b",".join(events[150:]) + b"]"
    assert _core.split_events(b.read("s", 1290).json()) == events[290:]
    stats = b.stats()
    assert (stats.sessions, stats.events, stats.trimmed_events) == (1, 150, 150)
    assert stats.bytes == part.nbytes


def test_reads_past_the_end_and_caps() -> None:
    b = _core.SessionBuffers()
    b.open("s")
    b.append("s", kinds(*[INCREMENTAL] * 10, size=100))
    empty = b.read("s", 50)
    assert (empty.first_index, empty.count, empty.nbytes, empty.json()) == (10, 0, 0, b"[]")
    assert b.read("s", 0, max_events=4).count == 4
    assert b.read("s", 0, max_bytes=350).count == 3
    assert b.read("s", 0, 100, 400).count == 4
    assert b.read("s", 0, max_bytes=1).count == 1
    assert b.read("s", 7).first_index == 7


def test_keyframe_survives_trimming_while_it_fits() -> None:
    b = _core.SessionBuffers(max_events_per_session=6)
    b.open("s")
    assert b.keyframe_index("s") is None
    b.append("s", kinds(INCREMENTAL, INCREMENTAL, META, FULL_SNAPSHOT))
    assert b.keyframe_index("s") == 2
    b.append("s", kinds(INCREMENTAL, INCREMENTAL, INCREMENTAL))  # 7 events: index 0 goes
    assert (b.first_index("s"), b.keyframe_index("s")) == (1, 2)
    b.append("s", kinds(INCREMENTAL))  # the span 2.. is exactly 6
    assert (b.first_index("s"), b.keyframe_index("s")) == (2, 2)
    b.append("s", kinds(INCREMENTAL))  # limits win: the meta goes, the snapshot stays
    assert (b.first_index("s"), b.keyframe_index("s")) == (3, 3)
    b.append("s", kinds(INCREMENTAL))
    assert b.keyframe_index("s") is None


def test_global_budget_keeps_keyframes_and_trims_least_recent_first() -> None:
    b = _core.SessionBuffers(max_total_bytes=2200)
    for s in "abc":
        b.open(s)
    b.append("a", kinds(*[INCREMENTAL] * 5, META, FULL_SNAPSHOT, *[INCREMENTAL] * 3, size=100))
    b.append("b", kinds(*[INCREMENTAL] * 10, size=100))
    b.append("c", kinds(*[INCREMENTAL] * 10, size=100))
    # 800 over: `a` (oldest) drops only what precedes its keyframe, then `b` its oldest.
    assert (b.first_index("a"), b.keyframe_index("a")) == (5, 5)
    assert (b.first_index("b"), b.first_index("c")) == (3, 0)
    assert b.stats().bytes == 2200


# --- model-based ----------------------------------------------------------------


@dataclass
class ModelSession:
    first: int
    events: list[tuple[int, bytes]] = field(default_factory=list)
    tick: int = 0
    last_meta: int | None = None
    snapshot: int | None = None
    snapshot_meta: int | None = None

    @property
    def next(self) -> int:
        return self.first + len(self.events)

    @property
    def nbytes(self) -> int:
        return sum(len(raw) for _, raw in self.events)

    def keyframe(self) -> int | None:
        if self.snapshot is None or self.snapshot < self.first:
            return None
        if self.snapshot_meta is not None and self.snapshot_meta >= self.first:
            return self.snapshot_meta
        return self.snapshot

    def spare(self) -> bool:
        k = self.keyframe()
        return bool(self.events) and (k is None or self.first < k)

    def pop(self) -> None:
        self.events.pop(0)
        self.first += 1


class Model:
    """The documented behaviour, written as plainly as possible."""

    def __init__(self, max_events: int, max_session_bytes: int, max_total: int) -> None:
        self.max_events = max_events
        self.max_session_bytes = max_session_bytes
        self.max_total = max_total
        self.sessions: dict[str, ModelSession] = {}
        self.tick = 0
        self.trimmed = 0

    def total(self) -> int:
        return sum(s.nbytes for s in self.sessions.values())

    def append(self, sid: str, events: list[tuple[int, bytes]]) -> int:
        s = self.sessions[sid]
        self.tick += 1
        s.tick = self.tick
        first = s.next
        for kind, raw in events:
            if kind == FULL_SNAPSHOT:
                s.snapshot, s.snapshot_meta = s.next, s.last_meta
            elif kind == META:
                s.last_meta = s.next
            s.events.append((kind, raw))
        while len(s.events) > self.max_events or s.nbytes > self.max_session_bytes:
            s.pop()
            self.trimmed += 1
        by_age = sorted(self.sessions.values(), key=lambda x: x.tick)
        for only_spare in (True, False):
            for victim in by_age:
                while self.total() > self.max_total and (
                    victim.spare() if only_spare else victim.events
                ):
                    victim.pop()
                    self.trimmed += 1
        return first

    def read(
        self, sid: str, from_index: int, max_events: int, max_bytes: int
    ) -> tuple[int, list[bytes]]:
        s = self.sessions[sid]
        start = min(max(from_index, s.first), s.next)
        out: list[bytes] = []
        nbytes = 0
        for _, raw in s.events[start - s.first :]:
            if out and (len(out) >= max_events or nbytes + len(raw) > max_bytes):
                break
            out.append(raw)
            nbytes += len(raw)
        return start, out


SESSION_IDS = st.sampled_from(["a", "b", "c", "d"])
KINDS = st.sampled_from([INCREMENTAL, INCREMENTAL, INCREMENTAL, META, FULL_SNAPSHOT, 0, 5])


class BuffersMatchModel(RuleBasedStateMachine):
    @initialize(
        max_events=st.integers(1, 30),
        max_session_bytes=st.integers(40, 3000),
        max_total=st.integers(40, 6000),
    )
    def setup(self, max_events: int, max_session_bytes: int, max_total: int) -> None:
        self.real = _core.SessionBuffers(
            max_events_per_session=max_events,
            max_session_bytes=max_session_bytes,
            max_total_bytes=max_total,
        )
        self.model = Model(max_events, max_session_bytes, max_total)
        self.ts = 0

    @rule(sid=SESSION_IDS, next_index=st.integers(0, 10**12))
    def open(self, sid: str, next_index: int) -> None:
        opened = self.real.open(sid, next_index)
        assert opened == (sid not in self.model.sessions)
        if opened:
            self.model.sessions[sid] = ModelSession(first=next_index)

    @rule(sid=SESSION_IDS)
    def close(self, sid: str) -> None:
        assert self.real.close(sid) == (self.model.sessions.pop(sid, None) is not None)

    @precondition(lambda self: self.model.sessions)
    @rule(data=st.data(), events=st.lists(st.tuples(KINDS, st.integers(40, 400)), max_size=15))
    def append(self, data: st.DataObject, events: list[tuple[int, int]]) -> None:
        sid = data.draw(st.sampled_from(sorted(self.model.sessions)))
        raws = []
        for kind, size in events:
            self.ts += 1
            raws.append((kind, event(kind, size, self.ts)))
        first = self.real.append(sid, batch([raw for _, raw in raws]))
        assert first == self.model.append(sid, raws)

    @precondition(lambda self: self.model.sessions)
    @rule(
        data=st.data(),
        offset=st.integers(-5, 40),
        max_events=st.integers(1, 50),
        max_bytes=st.integers(1, 5000),
    )
    def read(self, data: st.DataObject, offset: int, max_events: int, max_bytes: int) -> None:
        sid = data.draw(st.sampled_from(sorted(self.model.sessions)))
        from_index = max(0, self.model.sessions[sid].first + offset)
        part = self.real.read(sid, from_index, max_events, max_bytes)
        start, raws = self.model.read(sid, from_index, max_events, max_bytes)
        assert (part.first_index, part.count) == (start, len(raws))
        assert part.nbytes == sum(map(len, raws))
        assert part.json() == b"[" + b",".join(raws) + b"]"

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        assert len(self.real) == len(self.model.sessions)
        for sid, s in self.model.sessions.items():
            assert sid in self.real
            assert self.real.first_index(sid) == s.first
            assert self.real.next_index(sid) == s.next
            assert self.real.keyframe_index(sid) == s.keyframe()
        stats = self.real.stats()
        assert stats.sessions == len(self.model.sessions)
        assert stats.events == sum(len(s.events) for s in self.model.sessions.values())
        assert stats.bytes == self.model.total() <= self.model.max_total
        assert stats.trimmed_events == self.model.trimmed


BuffersMatchModel.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
test_buffers_match_the_model = BuffersMatchModel.TestCase
