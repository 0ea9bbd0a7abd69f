"""Live fan-out: one broadcaster per watched session, one bounded feed per viewer.

A session's new events are coalesced over a short tick
(``VIEWER_FLUSH_INTERVAL``, or sooner once ``VIEWER_FLUSH_BYTES`` wait),
encoded **once per tick and codec**, and the same frame bytes are queued to
every viewer of that codec. The broadcaster never waits for a viewer:
pushing to a feed is a deque append. A viewer whose feed holds more than
``VIEWER_BACKLOG_BYTES`` (its socket is slower than the session) has its
backlog dropped and is *resynchronised*: it gets a fresh snapshot from the
latest full snapshot onwards (``resync: true``), then deltas again. So a
slow viewer costs neither memory nor the tracker anything.

Budget: writing a tick to a thousand sockets takes milliseconds of the one
event loop that also reads every tracker. :class:`Broadcasts` measures the share
of wall time ticks take; above ``VIEWER_FANOUT_BUDGET`` (20%) every
session's tick interval is stretched by the excess, so a crowd of viewers
costs ingest at most about that share and sees deltas a little later
(``replaywire_viewer_tick_stretch`` shows the factor).

Ordering: ``Broadcaster.position`` is the index of the first event not yet
in a tick. A viewer subscribes and reads the position in one synchronous
step; its snapshot covers everything before that position and its feed
receives every tick from it on, so it sees no gap and no duplicate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import structlog
import trio

from .. import _core, codecs
from ..config import Config
from ..redis import wire
from ..sessions import LiveSession
from ..ws import WebSocket
from . import dictionary, frames

if TYPE_CHECKING:
    from ..observability.metrics import Metrics
    from ..redis.relay import RemoteSession
    from ..sessions import Hub

    # A feed already subscribed to the broadcaster a viewer continues with.
    Handover = tuple["Broadcaster | RemoteSession", "Feed"]

log = structlog.get_logger("replaywire.broadcast")

THREAD_COMPRESS_BYTES = 256 * 1024  # larger payloads are compressed off the event loop
TICK_MAX_EVENTS = 1_000_000  # a tick's message is bounded by VIEWER_BATCH_BYTES instead
PMD_PREFIX = "pmd"  # feed key "pmd15": text frames deflated for a 15-bit window
RELAY = "relay"  # feed key of another instance's viewers: the tick as relayed over Redis


def feed_key(codec: str, ws_deflate_window_bits: int | None) -> str:
    """What a viewer's frames are keyed by: its codec, except that ``none``
    viewers whose connection negotiated permessage-deflate share frames
    deflated for their window (one encoding per tick and window size)."""
    if codec == "none" and ws_deflate_window_bits is not None:
        return f"{PMD_PREFIX}{ws_deflate_window_bits}"
    return codec


@dataclass(frozen=True, slots=True)
class Tick:
    """Events ``first_index .. first_index + count`` as ready frames per
    codec key; ``end`` marks the session's last tick (then ``next_index``
    is where it ended)."""

    first_index: int
    count: int
    frames: Mapping[str, bytes] = field(default_factory=dict)
    end: bool = False
    # With ``end``: the stream goes on in another broadcaster, from this
    # tick's index (the session moved between instances, see
    # replaywire.redis.relay): the viewer continues with this feed of it.
    moved: Handover | None = None

    @property
    def next_index(self) -> int:
        return self.first_index + self.count


class Feed:
    """One viewer's subscription to one session: a bounded queue of ticks."""

    def __init__(self, codec: str, max_bytes: int, ws: WebSocket | None = None) -> None:
        self.codec = codec
        self.max_bytes = max_bytes
        self.ws = ws  # written to directly while its viewer waits with nothing queued
        self.waiting = False
        self.written_directly = 0
        self.backlog: deque[Tick] = deque()
        self.nbytes = 0
        self.overflowed = False  # backlog dropped: the viewer must resync
        self.resyncs = 0
        self.end: Tick | None = None  # kept apart: never dropped with the backlog
        self._wake = trio.Event()

    def push(self, tick: Tick) -> None:
        if tick.end:
            self.end = tick
            self._wake.set()
            return
        if self.overflowed:
            return
        frame = tick.frames.get(self.codec, b"")
        if self.waiting and not self.backlog and self.ws is not None:
            # The viewer keeps up: write now, one syscall, no task switch.
            written = self.ws.write_now(frame)
            if written == len(frame):
                self.written_directly += 1
                return
            if written > 0:  # the socket took part: the viewer's task flushes the rest
                self.written_directly += 1
                self.backlog.append(Tick(tick.first_index, 0, {self.codec: b""}))
                self._wake.set()
                return
        size = len(frame)
        if self.backlog and self.nbytes + size > self.max_bytes:
            self.backlog.clear()
            self.nbytes = 0
            self.overflowed = True
            self.resyncs += 1
        else:
            self.backlog.append(tick)
            self.nbytes += size
        self._wake.set()

    def drop(self) -> None:
        """Drop the backlog and have the viewer resynchronised (its stream
        has a hole it cannot fill from the ticks: see redis/relay.py)."""
        self.backlog.clear()
        self.nbytes = 0
        self.overflowed = True
        self.resyncs += 1
        self._wake.set()

    async def get(self) -> Tick | None:
        """The next tick, or None when the backlog overflowed (resync); the
        end tick comes after everything else."""
        while not self.backlog and not self.overflowed and self.end is None:
            self._wake = trio.Event()
            self.waiting = True
            try:
                await self._wake.wait()
            finally:
                self.waiting = False
        if self.overflowed:
            return None
        if not self.backlog:
            assert self.end is not None
            return self.end
        tick = self.backlog.popleft()
        self.nbytes -= len(tick.frames.get(self.codec, b""))
        return tick


class Encoder:
    """Encodes runs of events for one codec: text frames for ``none``,
    binary frames with the compressed JSON array otherwise (``zstd-dict``:
    zstd with ``VIEWER_DICTIONARY``). Keeps one
    compressor (and so its context) per codec; not shared across threads.
    Every message is stamped with ``clock()`` (epoch seconds) as it is
    built: its ``serverTime``."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._config = config
        self._dictionary = dictionary.load(config.viewer_dictionary)
        self._compressors: dict[str, _core.Compressor] = {}
        # Inside sharing_zstd(): the events zstd-compressed last, and their
        # compression, which the relay and local zstd viewers share.
        self._sharing = False
        self._last_zstd: tuple[bytes, bytes] | None = None

    async def frame(
        self,
        codec: str,
        kind: bytes,
        session_id_json: bytes,
        first: int,
        count: int,
        events_json: bytes,
        *,
        resync: bool = False,
    ) -> bytes:
        server_time_ms = round(self._clock() * 1000)
        if codec == "none" or codec.startswith(PMD_PREFIX):
            # A text frame; deflated for its window on a permessage-deflate
            # connection (feed key "pmd15": codec=none there).
            bits = None if codec == "none" else int(codec.removeprefix(PMD_PREFIX))
            text = partial(
                frames.events,
                kind,
                session_id_json,
                first,
                count,
                events_json,
                server_time_ms=server_time_ms,
                resync=resync,
                deflate_window_bits=bits,
            )
            if bits is not None and len(events_json) >= THREAD_COMPRESS_BYTES:
                return await trio.to_thread.run_sync(text)
            return text()
        if codec == RELAY:  # for other instances' viewers (redis/wire.py)
            relayed = partial(wire.delta_payload, self._zstd_once, events_json)
            if len(events_json) >= THREAD_COMPRESS_BYTES:
                return await trio.to_thread.run_sync(relayed)
            return relayed()
        compress = self._zstd_once if codec == "zstd" else self._compressor(codec).compress
        if len(events_json) >= THREAD_COMPRESS_BYTES:
            # Do not hold the loop: the compressor is used by this task only.
            compressed = await trio.to_thread.run_sync(compress, events_json)
        else:
            compressed = compress(events_json)
        return frames.events_binary(
            kind,
            session_id_json,
            first,
            count,
            codec,
            compressed,
            len(events_json),
            server_time_ms=server_time_ms,
            resync=resync,
        )

    @contextmanager
    def sharing_zstd(self) -> Iterator[None]:
        """While building one tick for several codecs: the same events are
        zstd-compressed once for local ``codec=zstd`` viewers and the relay
        to other instances (``RELAY``). Nothing is kept afterwards."""
        self._sharing = True
        try:
            yield
        finally:
            self._sharing, self._last_zstd = False, None

    def _zstd_once(self, events_json: bytes) -> bytes:
        last = self._last_zstd
        if last is not None and last[0] is events_json:
            return last[1]
        compressed = self._compressor("zstd").compress(events_json)
        if self._sharing:
            self._last_zstd = (events_json, compressed)
        return compressed

    def _compressor(self, codec: str) -> _core.Compressor:
        compressor = self._compressors.get(codec)
        if compressor is None:
            row = codecs.BY_NAME[codec]
            assert row.level is not None, f"{codec} frames are not compressed"
            level: int = getattr(self._config, row.level)
            if row.dictionary:  # refused at the upgrade without one
                assert self._dictionary is not None
                compressor = _core.Compressor(row.compressor, level, self._dictionary.data)
            else:
                compressor = _core.Compressor(row.compressor, level)
            self._compressors[codec] = compressor
        return compressor


class Broadcaster:
    """Turns one live session's new events into ticks for its feeds."""

    def __init__(self, broadcasts: Broadcasts, session: LiveSession) -> None:
        self.broadcasts = broadcasts  # its dependencies, and the budget it reports to
        self.session = session
        self.position = broadcasts.hub.ingest.next_index(session.id)
        self.feeds: set[Feed] = set()
        self.encoder = Encoder(broadcasts.config, broadcasts.hub.clock)
        self.ticks = 0
        # Snapshot frames built for a viewer that joined (or resynced) since
        # the last tick, reused by the others: a crowd joining at once, or
        # resyncing after the same burst, costs one encoding.
        self._snapshots: dict[tuple[int, int, str, bool], list[bytes]] = {}

    async def run(self) -> None:
        broadcasts, session = self.broadcasts, self.session
        config = broadcasts.config
        base_interval = config.viewer_flush_interval / 1000
        try:
            while self.feeds:
                changed = session.changed
                head = self._head()
                if head is not None and head <= self.position and not session.ended:
                    await changed.wait()
                    continue
                if not session.ended:
                    # Coalesce: a tick per interval, or sooner once enough
                    # bytes wait (a burst, or a full snapshot arriving).
                    base = session.record.byte_count
                    with trio.move_on_after(base_interval * broadcasts.stretch):
                        while (
                            not session.ended
                            and session.record.byte_count - base < config.viewer_flush_bytes
                        ):
                            await session.changed.wait()
                await self._tick()
                if session.ended and self.position >= self._end_index():
                    end = Tick(self.position, 0, end=True)
                    for feed in list(self.feeds):
                        feed.push(end)
                    return
        finally:
            broadcasts.forget(self)

    def cached_snapshot(self, key: tuple[int, int, str, bool]) -> list[bytes] | None:
        """Frames of snapshot ``(start, end, codec, resync)`` built since the last tick."""
        return self._snapshots.get(key)

    def cache_snapshot(self, key: tuple[int, int, str, bool], frames_: list[bytes]) -> None:
        if key[1] == self.position:  # still current: no tick went out meanwhile
            self._snapshots[key] = frames_

    def _head(self) -> int | None:
        buffers = self.broadcasts.hub.ingest
        return buffers.next_index(self.session.id) if self.session.id in buffers else None

    def _end_index(self) -> int:
        end = self.session.end_index
        return self.position if end is None else end

    async def _tick(self) -> None:
        """Send every event from ``position`` to the head, in as many ticks as
        the per-message limits require."""
        broadcasts, session = self.broadcasts, self.session
        hub, config = broadcasts.hub, broadcasts.config
        while self.feeds:
            head = self._head()
            target = head if head is not None else self._end_index()
            if self.position >= target:
                return
            buffers = hub.ingest
            building = time.perf_counter()
            inline = True  # built without awaiting (no storage read, no thread)
            if head is not None and self.position >= buffers.first_index(session.id):
                # One message per tick whenever it fits in VIEWER_BATCH_BYTES:
                # every message costs a send per viewer, so fewer is cheaper.
                part = buffers.read(
                    session.id, self.position, TICK_MAX_EVENTS, config.viewer_batch_bytes
                )
                first, count, events = part.first_index, part.count, part.json()
            else:  # trimmed before it was broadcast, or the session just ended
                page = await hub.history(session.id, self.position, config.viewer_batch_events)
                first, count, events = page.first_index, page.count, page.events
                inline = False
            if count == 0:
                return
            # Once per codec in use; feeds that join while we compress may
            # bring a codec not built yet, so loop until none is missing.
            built: dict[str, bytes] = {}
            with self.encoder.sharing_zstd():
                while missing := sorted({feed.codec for feed in self.feeds} - built.keys()):
                    for codec in missing:
                        built[codec] = await self.encoder.frame(
                            codec, b"delta", session.id_json, first, count, events
                        )
            tick = Tick(first, count, built)
            self.position = first + count
            self._snapshots.clear()
            self.ticks += 1
            started = time.perf_counter()
            direct, direct_bytes, resyncs = _push_all(self.feeds, tick)
            done = time.perf_counter()
            # The loop's time this tick took: building it (when nothing was
            # awaited meanwhile) and writing it to every viewer.
            inline = inline and len(events) < THREAD_COMPRESS_BYTES
            broadcasts.spent(done - (building if inline else started))
            metrics = broadcasts.metrics
            metrics.viewer_ticks_total.inc()
            if direct:
                metrics.viewer_messages_total.inc(direct)
                metrics.viewer_bytes_total.inc(direct_bytes)
            for feed in resyncs:
                metrics.viewer_resyncs_total.inc()
                broadcasts.warn(
                    "viewer_resync", session_id=session.id, backlog_limit=feed.max_bytes
                )


def _push_all(feeds: set[Feed], tick: Tick) -> tuple[int, int, list[Feed]]:
    """Push ``tick`` to every feed: the fan-out's inner loop, kept to the
    bare minimum per viewer (it runs a thousand times per tick). Returns the
    frames written directly, their bytes, and the feeds that overflowed."""
    direct = direct_bytes = 0
    resyncs: list[Feed] = []
    frames_ = tick.frames
    for feed in list(feeds):
        before, written = feed.resyncs, feed.written_directly
        feed.push(tick)
        if feed.written_directly != written:
            direct += 1
            direct_bytes += len(frames_[feed.codec])
        elif feed.resyncs != before:
            resyncs.append(feed)
    return direct, direct_bytes, resyncs


class Broadcasts:
    """The broadcasters of one server, started in its service nursery, and
    the fan-out budget they share (see the module docs)."""

    WINDOW = 0.5  # seconds over which the share of time spent is measured

    def __init__(
        self,
        config: Config,
        hub: Hub,
        metrics: Metrics,
        *,
        warn: Callable[..., None] = lambda event, **fields: None,
    ) -> None:
        # What the broadcasters use (each reads them from here).
        self.config = config
        self.hub = hub
        self.metrics = metrics
        self.warn = warn  # the server's sampled client-fault log
        self.broadcasters: dict[str, Broadcaster] = {}
        self.nursery: trio.Nursery | None = None
        self.budget = config.viewer_fanout_budget
        self.stretch = 1.0  # factor on every tick interval, >= 1
        self._window_start = time.perf_counter()
        self._window_spent = 0.0

    def spent(self, seconds: float) -> None:
        """Account one tick's time on the loop (built and pushed); at the
        end of each window, set the stretch so that ticks would have taken
        at most the budget."""
        self._window_spent += seconds
        self.metrics.viewer_fanout_seconds_total.inc(seconds)
        now = time.perf_counter()
        elapsed = now - self._window_start
        if elapsed < self.WINDOW:
            return
        share = self._window_spent / elapsed
        # Ticks per second scale as 1/stretch, so the share does too: aim
        # for the budget, relax back towards 1 when well under it.
        wanted = self.stretch * share / self.budget
        self.stretch = min(max(1.0, wanted if wanted > 1 else self.stretch * 0.8), 20.0)
        self.metrics.viewer_tick_stretch.set(self.stretch)
        self._window_start, self._window_spent = now, 0.0

    def subscribe(
        self,
        session: LiveSession,
        codec: str,
        ws: WebSocket | None = None,
        *,
        feed: Feed | None = None,
    ) -> tuple[Broadcaster, Feed]:
        """A feed of the session's ticks from ``broadcaster.position`` on;
        with ``ws``, ticks are written to it directly while it keeps up.
        ``feed`` subscribes a feed made by the caller (the Redis relay's)."""
        assert self.nursery is not None, "Broadcasts.nursery is set by Server.run"
        if feed is None:
            feed = Feed(codec, self.config.viewer_backlog_bytes, ws)
        broadcaster = self.broadcasters.get(session.id)
        if broadcaster is None or broadcaster.session is not session:
            broadcaster = Broadcaster(self, session)
            self.broadcasters[session.id] = broadcaster
            broadcaster.feeds.add(feed)
            self.nursery.start_soon(broadcaster.run)
            return broadcaster, feed
        broadcaster.feeds.add(feed)
        return broadcaster, feed

    def unsubscribe(self, broadcaster: Broadcaster, feed: Feed) -> None:
        broadcaster.feeds.discard(feed)
        if not broadcaster.feeds:
            broadcaster.session.notify()  # wake it, so that it can leave

    def forget(self, broadcaster: Broadcaster) -> None:
        if self.broadcasters.get(broadcaster.session.id) is broadcaster:
            del self.broadcasters[broadcaster.session.id]
