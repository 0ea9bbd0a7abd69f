"""The batching writer between the event loop and blocking storage.

Trackers' batches are acknowledged once they are queued here, not once they
are on disk: queueing is a few dict operations on the loop, and the disk work
happens in one worker thread, one transaction per flush. Two buffers: the
*queued* one collects new items while the *in-flight* one is being written.

Resource handling: :meth:`StorageWriter.run` owns the flushing; start it with
``nursery.start(writer.run)`` and stop it with :meth:`StorageWriter.close`,
which writes everything still pending before ``run`` returns. Cancelling
``run`` instead abandons what is pending (``close`` and ``flush`` callers
then get :class:`StorageError`). The storage itself is opened and closed by
whoever created it, not by the writer.

Error handling: a failed write is logged (``storage_write_failed``) and
retried with capped exponential backoff, forever; items are never dropped.
While it fails, pending bytes grow until :meth:`StorageWriter.put_chunk`
makes trackers wait (backpressure), and ``stats.healthy`` is False so the
readiness probe can say so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
import trio

from .base import Chunk, SessionError, SessionRecord, Storage, StorageError

T = TypeVar("T")

MAX_PENDING_ERRORS = 10_000  # queued errors kept; beyond that the newest are dropped
RETRY_MIN = 0.05  # seconds before the first retry of a failed write
RETRY_MAX = 5.0  # cap of the doubling backoff
READ_THREADS = 16  # concurrent blocking reads (each may hold a connection)

log = structlog.get_logger("replaywire.storage")


@dataclass(frozen=True, slots=True)
class WriterStats:
    pending_chunks: int  # queued or in flight
    pending_bytes: int  # their payload bytes
    flushes: int  # successful writes
    chunks_written: int  # chunks handed to successful writes (duplicates included)
    last_flush_seconds: float  # wall time of the last successful write
    write_failures: int
    errors_dropped: int  # put_error calls beyond MAX_PENDING_ERRORS
    healthy: bool  # False while writes are failing
    closed: bool  # close() was called: no new items accepted


@dataclass(slots=True)
class _Batch:
    generation: int  # batches are numbered in the order they are written
    chunks: list[Chunk] = field(default_factory=list)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)  # latest per id
    errors: list[SessionError] = field(default_factory=list)
    since: float = math.inf  # trio time of the oldest item

    def __bool__(self) -> bool:
        return bool(self.chunks or self.sessions or self.errors)


class StorageWriter:
    """Batches accepted chunks, session updates and errors, and writes them
    from a worker thread, one transaction per flush
    (``trio.to_thread.run_sync``; the loop is never blocked and no message
    waits on a thread hop). Double-buffered: while one flush is in flight,
    new items collect in the next buffer.

    A flush starts when ``batch_size`` chunks are queued, ``batch_interval``
    seconds after the oldest queued item, when :meth:`flush` or :meth:`close`
    asks, or when :meth:`put_chunk` is held back by ``max_pending_bytes``.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        batch_size: int,
        batch_interval: float,
        max_pending_bytes: int,
    ) -> None:
        if batch_size < 1 or batch_interval < 0 or max_pending_bytes < 1:
            raise ValueError("need batch_size >= 1, batch_interval >= 0, max_pending_bytes >= 1")
        self._storage = storage
        self._batch_size = batch_size
        self._interval = batch_interval
        self._max_pending_bytes = max_pending_bytes
        self._queued = _Batch(generation=1)
        self._inflight: _Batch | None = None
        self._written = 0  # generation of the last committed batch
        # Per-session index of chunks not yet committed (queued or in flight).
        self._pending: dict[str, dict[int, Chunk]] = {}
        self._pending_count = 0
        self._pending_bytes = 0
        self._closed = False
        self._flush_now = False
        self._running = False
        self._wake = trio.Event()  # the run loop sleeps on it
        self._progress = trio.Event()  # set and replaced after each commit and at close
        self._stopped = trio.Event()
        self._write_limiter = trio.CapacityLimiter(1)  # reads never delay a flush
        self._read_limiter = trio.CapacityLimiter(READ_THREADS)
        self._flushes = 0
        self._chunks_written = 0
        self._last_flush_seconds = 0.0
        self._write_failures = 0
        self._errors_dropped = 0
        self._healthy = True

    # --- producers -------------------------------------------------------------

    async def put_chunk(self, chunk: Chunk) -> None:
        """Queue a chunk, first waiting while pending payload bytes are at or
        above ``max_pending_bytes`` (backpressure; waiting also starts a
        flush). Either returns with the chunk queued, or raises (Cancelled
        while waiting, :class:`StorageError` once closed) with it not queued.

        A caller that derives the chunk from state that may change while it
        waits (its ``first_index``) should use :meth:`try_put_chunk` and
        :meth:`wait_for_room` instead and rebuild the chunk after waiting."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.try_put_chunk(chunk):
            await self.wait_for_room()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def try_put_chunk(self, chunk: Chunk) -> bool:
        """Queue a chunk if pending payload bytes are below
        ``max_pending_bytes`` and return True; else start a flush and return
        False. A chunk whose (session_id, seq) is already pending is ignored
        (True), as storage would ignore it. Raises :class:`StorageError`
        once closed."""
        if self._closed:
            raise StorageError("writer closed")
        if self._pending_bytes >= self._max_pending_bytes:
            self._request_flush()
            return False
        by_seq = self._pending.setdefault(chunk.session_id, {})
        if chunk.seq not in by_seq:
            by_seq[chunk.seq] = chunk
            self._pending_count += 1
            self._pending_bytes += len(chunk.payload)
            self._note_item()
            self._queued.chunks.append(chunk)
            if len(self._queued.chunks) >= self._batch_size:
                self._wake.set()
        return True

    async def wait_for_room(self) -> None:
        """Wait until pending payload bytes are below ``max_pending_bytes``
        (starting a flush if they are not). Raises :class:`StorageError`
        once closed."""
        while True:
            if self._closed:
                raise StorageError("writer closed")
            if self._pending_bytes < self._max_pending_bytes:
                await trio.lowlevel.checkpoint()
                return
            progress = self._progress
            self._request_flush()
            await progress.wait()

    def put_session(self, record: SessionRecord) -> None:
        """Queue ``record`` to be written with the next flush; the state it
        has *when the flush starts* is written (it is copied then, once per
        flush rather than once per batch, which matters at thousands of
        batches a second). A later put for the same session replaces it.
        Raises :class:`StorageError` once closed."""
        if self._closed:
            raise StorageError("writer closed")
        self._note_item()
        self._queued.sessions[record.session_id] = record

    def put_error(self, error: SessionError) -> None:
        """Queue an error record. Best effort: with MAX_PENDING_ERRORS queued
        the new one is dropped and counted in ``stats.errors_dropped``.
        Raises :class:`StorageError` once closed."""
        if self._closed:
            raise StorageError("writer closed")
        if len(self._queued.errors) >= MAX_PENDING_ERRORS:
            self._errors_dropped += 1
            return
        self._note_item()
        self._queued.errors.append(error)

    def _note_item(self) -> None:
        if not self._queued:  # first item: the run loop must start the interval clock
            self._queued.since = trio.current_time()
            self._wake.set()

    def _request_flush(self) -> None:
        self._flush_now = True
        self._wake.set()

    # --- consumers ---------------------------------------------------------------

    async def flush(self) -> None:
        """Return when everything queued before the call is durable. Starts
        a flush at once rather than waiting for the interval. Safe to call
        from many tasks at once. Waits through write failures (bound it with
        a timeout); raises :class:`StorageError` if ``run`` stops first."""
        if self._queued:
            target = self._queued.generation
            self._request_flush()
        elif self._inflight is not None:
            target = self._inflight.generation
        else:
            await trio.lowlevel.checkpoint()
            return
        while self._written < target:
            if self._stopped.is_set():
                raise StorageError("writer stopped before the flush completed")
            await self._progress.wait()

    def pending_chunks(self, session_id: str) -> list[Chunk]:
        """The session's chunks not yet committed (queued or in flight),
        ordered by first_index. A chunk leaves this view only after its
        transaction committed, so a history read that takes this snapshot
        *first* and then reads storage sees every chunk at least once (the
        other order can miss a chunk committed in between); deduplicate by
        seq when merging."""
        by_seq = self._pending.get(session_id)
        if not by_seq:
            return []
        return sorted(by_seq.values(), key=lambda c: (c.first_index, c.seq))

    def pending_session(self, session_id: str) -> SessionRecord | None:
        """A copy of the newest not yet committed record of the session."""
        record = self._queued.sessions.get(session_id)
        if record is None and self._inflight is not None:
            record = self._inflight.sessions.get(session_id)
        return None if record is None else record.copy()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage read in a worker thread (at most
        READ_THREADS at once; never competing with the writer's thread)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._read_limiter)

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            pending_chunks=self._pending_count,
            pending_bytes=self._pending_bytes,
            flushes=self._flushes,
            chunks_written=self._chunks_written,
            last_flush_seconds=self._last_flush_seconds,
            write_failures=self._write_failures,
            errors_dropped=self._errors_dropped,
            healthy=self._healthy,
            closed=self._closed,
        )

    # --- lifecycle -----------------------------------------------------------------

    async def close(self) -> None:
        """Stop accepting, write everything pending, and return once ``run``
        has returned. Idempotent; concurrent calls all wait. Needs ``run``
        to be running. Raises :class:`StorageError` if ``run`` was cancelled
        with items still unwritten."""
        if not self._closed:
            self._closed = True
            self._wake.set()
            self._progress.set()  # put_chunk calls held by backpressure now raise
            self._progress = trio.Event()
        await self._stopped.wait()
        if self._queued or self._inflight is not None:
            raise StorageError(f"writer stopped with {self.stats.pending_chunks} chunks unwritten")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The flush loop: call with ``nursery.start(writer.run)``. Returns
        after :meth:`close` once everything is written."""
        if self._running or self._stopped.is_set():
            raise RuntimeError("StorageWriter.run() can only run once")
        self._running = True
        task_status.started()
        try:
            while True:
                batch = self._queued
                if batch and (
                    self._closed
                    or self._flush_now
                    or len(batch.chunks) >= self._batch_size
                    or trio.current_time() >= batch.since + self._interval
                ):
                    await self._write(batch)
                    continue
                if self._closed:
                    return
                self._flush_now = False
                wake = self._wake = trio.Event()
                with trio.move_on_at(batch.since + self._interval):  # inf when empty
                    await wake.wait()
        finally:
            self._stopped.set()
            self._progress.set()

    async def _write(self, batch: _Batch) -> None:
        """Write ``batch`` until it commits, then forget it."""
        self._queued = _Batch(generation=batch.generation + 1)
        self._inflight = batch
        self._flush_now = False
        # Copy the records now, on the loop: the hub keeps updating them.
        sessions = [record.copy() for record in batch.sessions.values()]
        batch.sessions = {record.session_id: record for record in sessions}
        delay = RETRY_MIN
        failures = 0
        while True:
            started = time.perf_counter()
            try:
                await trio.to_thread.run_sync(
                    self._storage.write,
                    sessions,
                    batch.chunks,
                    batch.errors,
                    limiter=self._write_limiter,
                )
                break
            except Exception as exc:  # a bug in a backend must not drop data either
                failures += 1
                self._write_failures += 1
                self._healthy = False
                log.warning(
                    "storage_write_failed",
                    storage=self._storage.name,
                    error=str(exc),
                    retryable=getattr(exc, "retryable", None),
                    attempt=failures,
                    retry_in=delay,
                    chunks=len(batch.chunks),
                    sessions=len(sessions),
                    errors=len(batch.errors),
                    exc_info=not isinstance(exc, StorageError),
                )
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        if failures:
            log.info("storage_write_recovered", storage=self._storage.name, attempts=failures + 1)
        self._last_flush_seconds = time.perf_counter() - started
        self._flushes += 1
        self._chunks_written += len(batch.chunks)
        self._healthy = True
        for chunk in batch.chunks:
            by_seq = self._pending[chunk.session_id]
            del by_seq[chunk.seq]
            if not by_seq:
                del self._pending[chunk.session_id]
            self._pending_bytes -= len(chunk.payload)
        self._pending_count -= len(batch.chunks)
        self._inflight = None
        self._written = batch.generation
        self._progress.set()
        self._progress = trio.Event()
