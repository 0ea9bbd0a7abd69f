"""The hub: every live session, and the rules of their lifecycle.

Batches never pass through here: each tracker connection's engine
(:class:`replaywire._core.TrackerEngine`) accepts them in Rust against the
state this hub shares with every engine (:attr:`Hub.ingest`: seq windows,
hot counters, ring buffers, the storage queue). The hub opens, resumes and
ends sessions, which needs storage reads and flushes, and wakes the
viewers of the sessions an engine reports as changed.

Instances share storage, and a session's tracker may reconnect to any of
them (a new page load behind a load balancer that is not sticky). An
instance whose live session has no tracker connected (*detached*) cannot
tell from its ring whether the session went on elsewhere, so it checks
storage: when the session is started here again, and every
``DETACHED_CHECK_INTERVAL`` while viewers watch it here. If storage is
ahead, the session is reopened where storage left it (:meth:`Hub.catch_up`)
and its broadcaster sends the events written elsewhere from storage, so
viewers here see them in order, once, and a resume answers the true
``nextSeq``. History reads of a detached session skip the ring.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
import trio

from .. import _core
from ..auth.tenants import session_key
from ..config import Config
from ..observability.metrics import LATENCY_BUCKETS, SNAPSHOT_MISSING_REASONS, Metrics
from ..storage import ResumeState, SessionError, SessionRecord, Storage, StorageWriter
from .history import EventsPage, read_history
from .live import LiveSession, TrackerHandle

log = structlog.get_logger("replaywire.sessions")

DETACHED_CHECK_INTERVAL = 1.0  # seconds between storage checks of a watched detached session


class Hub:
    """Owns the live sessions, their ring buffers and the storage writer's
    inputs. Not thread-safe: used from the trio loop only."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        writer: StorageWriter,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.storage = storage
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        # The engines' shared state; viewers and history reads read the
        # rings through it too.
        self.ingest = _core.Ingest(
            writer.chunks,
            max_events_per_session=config.max_events_per_session,
            max_session_bytes=config.max_session_buffer_bytes,
            max_total_bytes=config.max_buffer_bytes,
            max_seq_window=config.max_seq_window,
            ack_buckets=[b for b in LATENCY_BUCKETS if b != float("inf")],
        )
        self.live: dict[str, LiveSession] = {}
        self._start_lock = trio.Lock()
        self._catch_up_lock = trio.Lock()
        # Whether anyone follows a session live from here: its viewers, or
        # (set by the cross-instance fan-out) other instances' through a relay.
        self.watched: Callable[[LiveSession], bool] = lambda session: session.viewers > 0
        self._seen = _Scraped()
        writer.records = self._record
        metrics.add_collect_hook(self._collect)

    # -- lifecycle --------------------------------------------------------

    async def start_session(self, start: _core.SessionStart, key: str | None = None) -> LiveSession:
        """Open a session, or resume it after a reconnect or a restart.
        ``key`` is the session's key, its id namespaced by tenant
        (:func:`replaywire.auth.session_key`); the id itself by default.

        A resumed session continues its event indices and seq watermark from
        what storage (and the writer's queue) already holds, so a tracker
        that resends unacked batches gets no duplicates."""
        sid = key if key is not None else start.session_id
        async with self._start_lock:
            session = self.live.get(sid)
            if session is not None and not session.ended and not session.trackers:
                await self.catch_up(session)
            if session is None or session.ended:
                session = await self._open(sid)
            _apply_start(session.record, start)
            session.last_activity = trio.current_time()
            self.writer.put_session(session.record)
            return session

    async def _open(self, sid: str) -> LiveSession:
        record = self.writer.pending_session(sid)
        if record is None:
            record = await self.writer.read(self.storage.get_session, sid)
        resume = await self.writer.read(self.storage.resume_state, sid)
        new = record is None
        if record is None:
            record = SessionRecord(session_id=sid, started_at=self.clock())
            self.metrics.sessions_started_total.inc()
        else:
            record = record.copy()
        record.status, record.ended_at = "active", None
        next_seq, next_index = self._open_ingest(sid, record, resume)
        if new:
            log.info("session_started", session_id=sid)
        else:
            log.info("session_resumed", session_id=sid, next_index=next_index, next_seq=next_seq)
        session = LiveSession(record, self.ingest.counters, trio.current_time())
        self.live[sid] = session
        self.metrics.sessions_active.set(len(self.live))
        return session

    def _open_ingest(
        self, sid: str, record: SessionRecord, resume: ResumeState | None
    ) -> tuple[int, int]:
        """Open the session in Rust: the seq window and index continue from
        storage, the writer's queue (counted in Rust) and the spool during
        an outage. Returns ``(next_seq, next_index)``."""
        return self.ingest.open(
            sid,
            next_index=resume.next_index if resume is not None else 0,
            next_seq=resume.next_seq if resume is not None else 0,
            seqs_above=list(resume.seqs_above) if resume is not None else [],
            spooled=[(seq, end) for seq, (_, end) in self.writer.spooled_spans(sid).items()],
            event_count=record.event_count,
            byte_count=record.byte_count,
            last_event_at=record.last_event_at,
            keyframe_index=record.keyframe_index,
            clock_skew_ms=record.clock_skew_ms,
        )

    def _reopen(
        self, session: LiveSession, stored: SessionRecord | None, resume: ResumeState
    ) -> None:
        """Reopen a live session (closed in Rust) where storage left it."""
        record = stored.copy() if stored is not None else session.record.copy()
        record.status, record.ended_at = "active", None
        self._open_ingest(session.id, record, resume)
        # Not written back: the instance writing the session now keeps
        # its record in storage.
        session.replace_record(record)

    def attach(self, session: LiveSession, tracker: TrackerHandle) -> list[TrackerHandle]:
        """``tracker`` started ``session`` here. It takes the session over
        from the connections that had it: returned, for the caller to close
        them (docs/protocol.md, "Two connections of one session")."""
        older = [t for t in session.trackers if t is not tracker]
        session.trackers = [tracker]
        session.held_elsewhere = False
        if older:
            log.info("tracker_taken_over", session_id=session.id, connections=len(older))
        return older

    def release(self, session: LiveSession) -> list[TrackerHandle]:
        """Another instance took ``session`` over: it is detached here;
        the connections that had it are returned, for the caller to close."""
        older, session.trackers = session.trackers, []
        return older

    def detach(self, session: LiveSession, tracker: TrackerHandle) -> None:
        """``tracker``, which started ``session`` here, is gone."""
        if tracker in session.trackers:
            session.trackers.remove(tracker)

    async def catch_up(self, session: LiveSession) -> bool:
        """Bring a detached ``session`` up to what storage holds (another
        instance may have gone on with it): if storage has more events
        than its ring, reopen it where storage left it (its ring restarts
        there, empty, and its broadcaster reads what it missed from
        storage); if storage says it ended, end it here too. True if
        either happened."""
        async with self._catch_up_lock:
            if not self._detached(session):
                return False
            sid = session.id
            resume = await self.writer.read(self.storage.resume_state, sid)
            record = await self.writer.read(self.storage.get_session, sid)
            if not self._detached(session):
                return False  # a tracker started it while storage was read
            before = self.ingest.next_index(sid)
            ahead = resume is not None and resume.next_index > before
            if ahead:
                assert resume is not None
                self.ingest.close(sid)
                self._reopen(session, record, resume)
                log.info(
                    "session_caught_up",
                    session_id=sid,
                    next_index=self.ingest.next_index(sid),
                    ring_next_index=before,
                )
                session.notify()
            if record is not None and record.status == "ended":
                await self.end_session(session, "client")  # its tracker ended it elsewhere
                return True
            return ahead

    def _detached(self, session: LiveSession) -> bool:
        """Live here, with no tracker connected here."""
        return (
            not session.ended
            and not session.trackers
            and self.live.get(session.id) is session
            and session.id in self.ingest
        )

    async def run_detached_checks(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Every DETACHED_CHECK_INTERVAL, catch up the detached sessions
        that are watched from here: their events may be arriving elsewhere."""
        task_status.started()
        while True:
            await trio.sleep(DETACHED_CHECK_INTERVAL)
            watched = [s for s in self.live.values() if not s.trackers and self.watched(s)]
            for session in watched:
                if not session.ended:
                    await self.catch_up(session)

    def wake(self, keys: list[str]) -> None:
        """The engines appended events to these sessions: wake their viewers."""
        now = trio.current_time()
        live = self.live
        for key in keys:
            session = live.get(key)
            if session is not None:
                session.last_activity = now
                session.notify()

    def _record(self, key: str) -> SessionRecord | None:
        """The record of a live session (the writer's view of it)."""
        session = self.live.get(key)
        return session.record if session is not None else None

    def record_error(self, session_id: str, code: str, message: str, seq: int | None) -> None:
        """Keep a client error in ``session_errors`` (bounded by the writer)."""
        self.writer.put_error(SessionError(session_id, self.clock(), code, message, seq))

    def snapshot_missing(self, session: LiveSession, notice: _core.SnapshotMissing) -> None:
        """The tracker could not deliver the page's full snapshot: flag the
        session's record (the latest notice wins), keep an error a person
        can read in ``session_errors``, and count it. The session goes on
        with incremental events; viewers cannot replay it from the start."""
        at = self.clock()
        record = session.record
        record.mark_snapshot_missing(notice.reason, notice.bytes, notice.limit_bytes, at)
        self.writer.put_session(record)
        code, message = snapshot_error(notice.reason, notice.bytes, notice.limit_bytes)
        self.writer.put_error(SessionError(session.id, at, code, message, None))
        # Reasons come from clients: any other than the known ones is
        # counted as "other", so that a label cannot grow without bound.
        known = notice.reason if notice.reason in SNAPSHOT_MISSING_REASONS else "other"
        self.metrics.snapshots_missing_total.labels(known).inc()
        log.info(
            "snapshot_missing",
            session_id=session.id,
            reason=notice.reason,
            bytes=notice.bytes,
            limit_bytes=notice.limit_bytes,
        )

    async def end_session(self, session: LiveSession, reason: str) -> None:
        """End a session: mark it, flush it to storage, free its memory,
        and tell its viewers. Safe to call twice."""
        if session.ended:
            return
        session.ended = True
        self.ingest.end(session.id)  # the engines refuse its batches from now on
        session.end_index = self.ingest.next_index(session.id)
        record = session.record
        record.status, record.ended_at = "ended", self.clock()
        self.writer.put_session(record)
        session.notify()
        await self.writer.flush()
        if self.live.get(session.id) is session:
            del self.live[session.id]
            self.ingest.close(session.id)
        self.metrics.sessions_ended_total.labels(reason).inc()
        self.metrics.sessions_active.set(len(self.live))
        log.info(
            "session_ended",
            session_id=session.id,
            reason=reason,
            events=record.event_count,
            bytes=record.byte_count,
        )

    async def end_idle(
        self, max_idle: float, reason: str, *, tenant: str | None = None
    ) -> list[str]:
        """End every session (of ``tenant`` only, if given) without events
        for ``max_idle`` seconds; return their keys."""
        cutoff = trio.current_time() - max_idle
        prefix = session_key(tenant, "") if tenant is not None else ""
        idle = [
            s
            for s in self.live.values()
            if s.last_activity <= cutoff and not s.ended and s.id.startswith(prefix)
        ]
        ended = []
        for session in idle:
            if not session.trackers and await self.catch_up(session):
                session.last_activity = trio.current_time()  # it went on elsewhere
                continue
            await self.end_session(session, reason)
            ended.append(session.id)
        return ended

    async def run_idle_sweeper(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.config.idle_sweep_interval)
            await self.end_idle(self.config.session_idle_timeout, "idle")

    # -- reads ------------------------------------------------------------

    async def history(
        self, session_id: str, from_index: int, limit: int, codec: str = "none"
    ) -> EventsPage:
        return await read_history(self, session_id, from_index, limit, codec)

    async def get_record(self, session_id: str) -> SessionRecord | None:
        session = self.live.get(session_id)
        if session is not None:
            return session.record
        record = self.writer.pending_session(session_id)
        if record is not None:
            return record
        return await self.writer.read(self.storage.get_session, session_id)

    def _collect(self) -> None:
        """Before a scrape: the counters the engines keep in Rust, advanced
        by what changed since the last scrape."""
        m, seen = self.metrics, self._seen
        stats = self.ingest.stats()
        m.buffer_bytes.set(stats.bytes)
        m.buffer_events.set(stats.events)
        m.buffer_trimmed_events_total.inc(stats.trimmed_events - seen.trimmed)
        seen.trimmed = stats.trimmed_events
        events, nbytes, duplicates, acked, messages, buckets, ack_sum = self.ingest.scrape()
        m.events_ingested_total.inc(events - seen.events)
        m.bytes_ingested_total.inc(nbytes - seen.bytes)
        m.batches_duplicate_total.inc(duplicates - seen.duplicates)
        m.batches_acked_total.inc(acked - seen.acked)
        for kind, count in messages:
            m.messages_total.labels("tracker", kind).inc(count - seen.messages.get(kind, 0))
            seen.messages[kind] = count
        before = seen.buckets or [0] * len(buckets)
        fresh = [b - s for b, s in zip(buckets, before, strict=True)]
        m.add_ack_latencies(fresh, ack_sum - seen.ack_sum)
        seen.events, seen.bytes, seen.duplicates, seen.acked = events, nbytes, duplicates, acked
        seen.buckets, seen.ack_sum = buckets, ack_sum


class _Scraped:
    """What :meth:`Hub._collect` exported last time (Rust counters only grow)."""

    def __init__(self) -> None:
        self.trimmed = self.events = self.bytes = self.duplicates = self.acked = 0
        self.messages: dict[str, int] = {}
        self.buckets: list[int] = []
        self.ack_sum = 0.0


def snapshot_error(reason: str, size: int, limit: int | None) -> tuple[str, str]:
    """The ``session_errors`` code and message for a ``snapshot_missing``
    notice: ``snapshot_too_large`` for ``too_large``, else
    ``snapshot_missing``."""
    if reason == "too_large":
        over = f"over the limit of {human_bytes(limit)}" if limit is not None else "too large"
        return (
            "snapshot_too_large",
            f"the page's full snapshot of {human_bytes(size)} is {over};"
            " the session records incremental events without it",
        )
    return (
        "snapshot_missing",
        f"the page's full snapshot ({human_bytes(size)}) was not delivered ({reason});"
        " the session records incremental events without it",
    )


def human_bytes(n: int) -> str:
    """``64 MiB`` for whole mebibytes (limits are set so), else decimal
    units with one decimal: ``71.6 MB``, ``2.5 kB``, ``512 bytes``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _apply_start(record: SessionRecord, start: _core.SessionStart) -> None:
    """Copy the tracker's metadata onto the record (a reconnect may refresh it)."""
    for name in ("user_id", "url", "user_agent", "referrer", "time_zone"):
        value = getattr(start, name)
        if value is not None:
            setattr(record, name, value)
    if start.start_time is not None:
        record.client_start_time = start.start_time
    viewport = start.viewport
    if viewport is not None:
        record.viewport_width = viewport.width
        record.viewport_height = viewport.height
        record.device_pixel_ratio = viewport.device_pixel_ratio
