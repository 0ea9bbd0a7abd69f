"""The hub: every live session, and the rules of their lifecycle.

A batch is accepted in one synchronous step (no checkpoint in between):
duplicate check, index assignment, queueing of the chunk for storage
(stamped with the server's receive time), append to the ring buffer, the
session's clock skew estimate, and waking of viewers. Only when the storage
queue is full does a tracker wait (backpressure), and then before anything
is changed, so a cancelled wait leaves no half-accepted batch behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
import trio

from .. import _core
from ..auth.tenants import session_key
from ..config import Config
from ..errors import ProtocolError
from ..observability.metrics import SNAPSHOT_MISSING_REASONS, Metrics
from ..storage import Chunk, SessionError, SessionRecord, Storage, StorageWriter
from .history import EventsPage, read_history
from .live import LiveSession
from .seqs import SeqWindow

log = structlog.get_logger("replaywire.sessions")

STORAGE_RETRY_AFTER_MS = 5000  # what a tracker refused for a full spool is told to wait


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
        self.buffers = _core.SessionBuffers(
            max_events_per_session=config.max_events_per_session,
            max_session_bytes=config.max_session_buffer_bytes,
            max_total_bytes=config.max_buffer_bytes,
        )
        self.live: dict[str, LiveSession] = {}
        self._start_lock = trio.Lock()
        self._trimmed_seen = 0
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
        next_index, seqs = 0, SeqWindow(max_ahead=self.config.max_seq_window)
        if resume is not None:
            next_index = resume.next_index
            seqs = SeqWindow(
                resume.next_seq, resume.seqs_above, max_ahead=self.config.max_seq_window
            )
        for chunk in self.writer.pending_chunks(sid):
            next_index = max(next_index, chunk.end_index)
            seqs.add(chunk.seq)
        for seq, (_, end) in self.writer.spooled_spans(sid).items():  # during an outage
            next_index = max(next_index, end)
            seqs.add(seq)
        if record is None:
            record = SessionRecord(session_id=sid, started_at=self.clock())
            self.metrics.sessions_started_total.inc()
            log.info("session_started", session_id=sid)
        else:
            record = record.copy()
            log.info(
                "session_resumed", session_id=sid, next_index=next_index, next_seq=seqs.next_seq
            )
        record.status, record.ended_at = "active", None
        self.buffers.close(sid)
        self.buffers.open(sid, next_index)
        session = LiveSession(record, seqs, trio.current_time())
        self.live[sid] = session
        self.metrics.sessions_active.set(len(self.live))
        return session

    async def accept_batch(self, session: LiveSession, batch: _core.EventsBatch) -> tuple[int, int]:
        """Accept a batch; return its seq and the writer's ticket for it
        (0 when it is already stored): with durable acks, the caller acks
        once ``writer.wait_committed(ticket)`` returned. A duplicate seq is
        not stored again (the caller acks it all the same).

        Raises :class:`ProtocolError` (``unknown_session`` once the session
        has ended, ``seq_out_of_window`` for a seq too far ahead,
        ``storage_unavailable`` while storage is down and the spool full)."""
        while True:
            if session.ended:
                raise ProtocolError(
                    "unknown_session", "session has ended; send session_start", batch.seq
                )
            seq = batch.seq if batch.seq is not None else session.seqs.assign()
            if session.seqs.seen(seq):
                self.metrics.batches_duplicate_total.inc()
                pending = self.writer.is_pending(session.id, seq)
                return seq, self.writer.ticket if pending else 0
            if not session.seqs.fits(seq):
                raise ProtocolError(
                    "seq_out_of_window",
                    f"seq {seq} is more than {session.seqs.max_ahead} ahead"
                    f" of {session.seqs.next_seq}",
                    seq,
                )
            if not self.writer.has_room(batch.nbytes):
                raise ProtocolError(
                    "storage_unavailable",
                    "storage is unreachable and the local spool is full; retry later",
                    seq,
                    retry_after_ms=STORAGE_RETRY_AFTER_MS,
                )
            received_at = self.clock()
            chunk = Chunk(
                session_id=session.id,
                seq=seq,
                first_index=self.buffers.next_index(session.id),
                event_count=batch.count,
                first_timestamp=batch.min_timestamp,
                last_timestamp=batch.max_timestamp,
                codec="none",
                payload=batch.payload(),
                received_at=received_at,
            )
            if self.writer.try_put_chunk(chunk):
                break
            # Storage is behind: wait for room, then decide again from scratch
            # (another connection may have delivered this seq meanwhile).
            await self.writer.wait_for_room()
        self.buffers.append(session.id, batch)
        session.seqs.add(seq)
        record = session.record
        if (offset := batch.keyframe_offset) is not None:
            record.keyframe_index = chunk.first_index + offset
        record.event_count += batch.count
        record.byte_count += batch.nbytes
        record.last_event_at = received_at
        record.clock_skew_ms = session.skew.add(batch.max_timestamp, received_at)
        session.last_activity = trio.current_time()
        self.writer.put_session(record)
        self.metrics.events_ingested_total.inc(batch.count)
        self.metrics.bytes_ingested_total.inc(batch.nbytes)
        session.notify()
        return seq, self.writer.ticket

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
        session.end_index = self.buffers.next_index(session.id)
        session.end_reason = reason
        record = session.record
        record.status, record.ended_at = "ended", self.clock()
        self.writer.put_session(record)
        session.notify()
        await self.writer.flush()
        if self.live.get(session.id) is session:
            del self.live[session.id]
            self.buffers.close(session.id)
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
        for session in idle:
            await self.end_session(session, reason)
        return [s.id for s in idle]

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
        stats = self.buffers.stats()
        self.metrics.buffer_bytes.set(stats.bytes)
        self.metrics.buffer_events.set(stats.events)
        self.metrics.buffer_trimmed_events_total.inc(stats.trimmed_events - self._trimmed_seen)
        self._trimmed_seen = stats.trimmed_events


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
