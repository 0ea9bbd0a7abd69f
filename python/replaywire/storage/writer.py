"""The batching writer between the event loop and blocking storage.

Items (trackers' chunks, session records, errors) are queued on the loop in
a few dict operations; the disk work happens in one worker thread, one
transaction per flush. Flushes are pipelined: while one is being written
(and committed), the next is taken from the queue and compressed in a
second thread, so a flush's commit latency does not leave the core idle;
meanwhile the *queued* buffer collects new items. At most two flushes are
in flight, and they commit in order.

Chunks live in Rust: the tracker engines queue them straight into
:attr:`StorageWriter.chunks` (a :class:`replaywire._core.ChunkQueue`), and a
flush takes them from it as one :class:`replaywire._core.Flush`, handed to
the backend inside a :class:`~replaywire.storage.base.ChunkBatch`; their
payloads never become Python objects unless a backend asks for them (the
memory backend and the spool do).

Acknowledgements: every flush is numbered (its *generation*). A caller that
queued a chunk reads :attr:`StorageWriter.ticket` and may wait for
:meth:`StorageWriter.wait_committed` -- that is how ``ACK_MODE=durable``
acks only what committed. Waiting asks for a flush at once (group commit), so
under load one transaction carries every batch that arrived while the
previous one was being written.

Outages: with a :class:`~replaywire.storage.spool.Spool`, a failed write
sends the flush to the local spool instead (fsynced; it counts as committed)
and the writer enters the *spooling* state: every later flush goes to the
spool too, so storage sees everything in the order it was accepted, while
the spool is drained into storage in slices, retried with exponential
backoff and jitter. Once the spool is empty the writer writes directly again.
Without a spool, a failed write is retried forever, and once pending bytes
reach the limit the tracker engines stop with backpressure and their
connections wait in :meth:`StorageWriter.wait_for_room`.

Resource handling: :meth:`StorageWriter.run` owns the flushing; start it with
``nursery.start(writer.run)`` and stop it with :meth:`StorageWriter.close`,
which writes (or spools) everything still pending before ``run`` returns.
Cancelling ``run`` instead abandons what is pending (``close`` and ``flush``
callers then get :class:`StorageError`). The storage and the spool are opened
and closed by whoever created them, not by the writer.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
import trio

from .. import _core
from .base import Chunk, ChunkBatch, SessionError, SessionRecord, Storage, StorageError

if TYPE_CHECKING:
    from .spool import Spool

T = TypeVar("T")

MAX_PENDING_ERRORS = 10_000  # queued errors kept; beyond that the newest are dropped
RETRY_MIN = 0.05  # seconds before the first retry of a failed write
RETRY_MAX = 5.0  # cap of the doubling backoff
READ_THREADS = 16  # concurrent blocking reads (each may hold a connection)
DRAIN_SLICE_BYTES = 16 * 1024 * 1024  # spool bytes written to storage per transaction

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
    spooling: bool  # storage failed; flushes go to the spool until it is drained
    spool_bytes: int  # bytes in the spool, not yet in storage
    spool_records: int  # flushes in the spool
    spool_full: bool  # spooling, and the last chunk offered was refused for want of room
    spooled_chunks: int  # chunks ever written to the spool
    drained_chunks: int  # chunks moved from the spool to storage


@dataclass(slots=True)
class _Batch:
    """The Python half of one flush: records and errors. Its chunks are in
    the Rust queue until the flush takes them (``chunks``)."""

    generation: int  # batches are numbered in the order they are written
    started: float = 0.0  # perf_counter when the flush was taken from the queue
    chunks: ChunkBatch | None = None  # taken from the queue when written
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
    seconds after the oldest queued item, when :meth:`flush`,
    :meth:`wait_committed` or :meth:`close` asks, or when
    :meth:`wait_for_room` finds ``max_pending_bytes`` pending.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        batch_size: int,
        batch_interval: float,
        max_pending_bytes: int,
        spool: Spool | None = None,
        drain_slice_bytes: int = DRAIN_SLICE_BYTES,
        on_flush: Callable[[float], None] | None = None,
        codec: str = "none",
        level: int | None = None,
    ) -> None:
        if batch_size < 1 or batch_interval < 0 or max_pending_bytes < 1:
            raise ValueError("need batch_size >= 1, batch_interval >= 0, max_pending_bytes >= 1")
        self._storage = storage
        self._spool = spool
        self._batch_size = batch_size
        self._interval = batch_interval
        self._drain_slice_bytes = drain_slice_bytes
        self._on_flush = on_flush  # called with each committed flush's seconds
        # Stored chunks are compressed at flush time, in the writer's thread;
        # the queue, the ring buffer and pending reads keep raw events.
        self._codec = (codec, level) if codec != "none" else None
        self.chunks = _core.ChunkQueue(batch_size=batch_size, max_pending_bytes=max_pending_bytes)
        """Accepted chunks, queued by the tracker engines (Rust)."""
        self.records: Callable[[str], SessionRecord | None] = lambda key: None
        """The live record of a session key: the hub's, set when it is
        built. A flush writes the record of every session its chunks
        touched, as it is when the flush starts."""
        self._queued = _Batch(generation=1)
        self._inflight: list[_Batch] = []  # taken, not yet committed; oldest first
        self._written = 0  # generation of the last committed batch
        # While spooling: what the spool holds that storage does not, so that
        # resumes and reads stay right (no payloads: those are on disk).
        self._spooling = False
        self._spooled: dict[str, dict[int, tuple[int, int]]] = {}  # sid -> seq -> (first, end)
        self._spooled_sessions: dict[str, SessionRecord] = {}
        self._retry_at = -math.inf  # trio time of the next drain attempt
        self._retry_delay = RETRY_MIN
        self._closed = False
        self._spool_busy = 0  # writer calls into the spool in progress (spill must not race them)
        self._spilled = 0  # chunks spill() wrote to the spool
        self._flush_now = False
        self._running = False
        self._wake = trio.Event()  # the run loop sleeps on it
        self._progress = trio.Event()  # set and replaced after each commit and at close
        self._stopped = trio.Event()
        self._write_limiter = trio.CapacityLimiter(1)  # reads never delay a flush
        self._compress_limiter = trio.CapacityLimiter(1)  # the next flush, beside the write
        self._read_limiter = trio.CapacityLimiter(READ_THREADS)
        self._flushes = 0
        self._chunks_written = 0
        self._last_flush_seconds = 0.0
        self._write_failures = 0
        self._errors_dropped = 0
        self._spooled_chunks = 0
        self._drained_chunks = 0
        self._healthy = True

    # --- producers -------------------------------------------------------------

    def chunks_queued(self, *, first: bool, full: bool) -> None:
        """The tracker engines queued chunks: ``first`` when the queue was
        empty (the interval clock starts), ``full`` when it holds
        ``batch_size`` of them (flush now). Raises :class:`StorageError`
        once closed."""
        if self._closed:
            raise StorageError("writer closed")
        if first:
            self._note_item()
        if full:
            self._wake.set()

    def has_room(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more payload can be accepted without breaking a
        promise: always while storage works (the engines apply
        backpressure); while spooling, only if the spool can still take it
        on top of everything pending. False means refuse with a retryable
        error -- accepted data must always find a place. The tracker
        engines ask the same of :attr:`chunks` in Rust, per batch."""
        return self.chunks.offer(nbytes)

    def _update_spool_room(self) -> None:
        """Tell the tracker engines how much the spool still takes (they
        refuse batches past it), or that storage is written directly."""
        spool = self._spool
        if self._spooling and spool is not None:
            self.chunks.set_spool_room(max(0, spool.max_bytes - spool.nbytes))
        else:
            self.chunks.set_spool_room(None)

    async def wait_for_room(self) -> None:
        """Wait until pending payload bytes are below ``max_pending_bytes``
        (starting a flush if they are not): what a tracker connection does
        when its engine stops with backpressure. Raises
        :class:`StorageError` once closed."""
        while True:
            if self._closed:
                raise StorageError("writer closed")
            if self.chunks.has_room():
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

    def _has_queued(self) -> bool:
        """Anything waiting for the next flush (records, errors, chunks)."""
        queue = self.chunks
        return bool(self._queued) or queue.queued > 0 or queue.touched > 0

    def _note_item(self) -> None:
        if self._queued.since == math.inf:  # first item: the run loop must start the clock
            self._queued.since = trio.current_time()
            self._wake.set()

    def _request_flush(self) -> None:
        self._flush_now = True
        self._wake.set()

    # --- consumers ---------------------------------------------------------------

    @property
    def ticket(self) -> int:
        """The generation of the flush that items queued now will be part
        of; pass it to :meth:`wait_committed`."""
        return self._queued.generation

    @property
    def committed(self) -> int:
        """The generation of the last flush that committed (or was spooled)."""
        return self._written

    def is_pending(self, session_id: str, seq: int) -> bool:
        """Whether the chunk is queued or in flight (not yet committed)."""
        return self.chunks.pending_generation(session_id, seq) is not None

    async def wait_committed(self, ticket: int) -> None:
        """Return once the flush numbered ``ticket`` and every one before it
        committed to storage or was fsynced in the spool; asks for that
        flush to start at once. Raises :class:`StorageError` if ``run``
        stops first."""
        while self._written < ticket:
            if self._stopped.is_set():
                raise StorageError("writer stopped before the flush completed")
            if ticket >= self._queued.generation:
                self._request_flush()
            await self._progress.wait()
        await trio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Return when everything queued before the call is durable. Starts
        a flush at once rather than waiting for the interval. Safe to call
        from many tasks at once. Waits through write failures (bound it with
        a timeout); raises :class:`StorageError` if ``run`` stops first."""
        if self._has_queued():
            target = self._queued.generation
        elif self._inflight:
            target = self._inflight[-1].generation
        else:
            await trio.lowlevel.checkpoint()
            return
        await self.wait_committed(target)

    def pending_chunks(self, session_id: str) -> list[Chunk]:
        """The session's chunks not yet committed (queued or in flight),
        ordered by first_index. A chunk leaves this view only after its
        transaction committed, so a history read that takes this snapshot
        *first* and then reads storage sees every chunk at least once (the
        other order can miss a chunk committed in between); deduplicate by
        seq when merging. Chunks in the spool are not here: see
        :meth:`spooled_spans`."""
        return [Chunk(*row) for row in self.chunks.pending_chunks(session_id)]

    def spooled_spans(self, session_id: str) -> dict[int, tuple[int, int]]:
        """The session's chunks that are in the spool and not yet in
        storage: ``{seq: (first_index, end_index)}``."""
        return dict(self._spooled.get(session_id, {}))

    def pending_session(self, session_id: str) -> SessionRecord | None:
        """A copy of the newest not yet stored record of the session (queued,
        in flight, or in the spool)."""
        record = self._queued.sessions.get(session_id)
        for batch in reversed(self._inflight):
            if record is not None:
                break
            record = batch.sessions.get(session_id)
        if record is None:
            record = self._spooled_sessions.get(session_id)
        return None if record is None else record.copy()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage read in a worker thread (at most
        READ_THREADS at once; never competing with the writer's thread)."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._read_limiter)

    @property
    def stats(self) -> WriterStats:
        spool = self._spool
        return WriterStats(
            pending_chunks=self.chunks.pending_count,
            pending_bytes=self.chunks.pending_bytes,
            flushes=self._flushes,
            chunks_written=self._chunks_written,
            last_flush_seconds=self._last_flush_seconds,
            write_failures=self._write_failures,
            errors_dropped=self._errors_dropped,
            healthy=self._healthy,
            closed=self._closed,
            spooling=self._spooling,
            spool_bytes=spool.nbytes if spool is not None else 0,
            spool_records=spool.records if spool is not None else 0,
            spool_full=self._spooling and self.chunks.refusing,
            spooled_chunks=self._spooled_chunks,
            drained_chunks=self._drained_chunks,
        )

    # --- lifecycle -----------------------------------------------------------------

    async def recover(self) -> None:
        """Move a spool left by an earlier run (a crash, or a shutdown while
        storage was down) into storage, in order, before anything new is
        accepted: call it before ``run``. Retries with backoff until it
        succeeds; bound it with a timeout or cancel it."""
        spool = self._spool
        if spool is None or spool.empty:
            return
        log.info("spool_replay_started", bytes=spool.nbytes, records=spool.records)
        delay = RETRY_MIN
        while not spool.empty:
            if await self._drain_slice():
                delay = RETRY_MIN
            else:
                await trio.sleep(_jittered(delay))
                delay = min(delay * 2, RETRY_MAX)
        self._healthy = True
        log.info("spool_replay_finished", chunks=self._drained_chunks)

    async def spill(self) -> int:
        """The last resort of a forced shutdown (a second signal) while
        storage hangs: append every chunk not yet committed, in flight or
        queued, with its sessions and errors, to the spool (fsynced), without
        waiting for the storage call in progress. The next start replays
        them (writes are idempotent, so a flush that did commit meanwhile is
        not doubled). Returns the chunks spilled: 0 without a spool, or while
        the writer itself is using the spool (then its data is going there
        already)."""
        spool = self._spool
        if spool is None or self._spool_busy:
            return 0
        sessions: dict[str, SessionRecord] = {}
        chunks: list[Chunk] = []
        errors: list[SessionError] = []
        queued = self._take_chunks()
        batches = [(batch, None) for batch in self._inflight] + [(self._queued, queued)]
        for batch, batch_chunks in batches:
            sessions.update((sid, r.copy()) for sid, r in batch.sessions.items())
            chunks += batch_chunks if batch_chunks is not None else (batch.chunks or ())
            errors += batch.errors
        if not (sessions or chunks or errors):
            return 0
        self._spool_busy += 1
        try:
            await trio.to_thread.run_sync(spool.append, list(sessions.values()), chunks, errors)
        finally:
            self._spool_busy -= 1
        self._spilled = len(chunks)
        return len(chunks)

    @property
    def spilled_chunks(self) -> int:
        return self._spilled

    async def close(self) -> None:
        """Stop accepting, write everything pending, and return once ``run``
        has returned. Idempotent; concurrent calls all wait. Needs ``run``
        to be running. Raises :class:`StorageError` if ``run`` was cancelled
        with items still unwritten."""
        if not self._closed:
            self._closed = True
            self._wake.set()
            self._progress.set()  # wait_for_room calls held by backpressure now raise
            self._progress = trio.Event()
        await self._stopped.wait()
        if self._has_queued() or self._inflight:
            raise StorageError(f"writer stopped with {self.stats.pending_chunks} chunks unwritten")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The flush loop: call with ``nursery.start(writer.run)``. Returns
        after :meth:`close` once everything is written (or spooled)."""
        if self._running or self._stopped.is_set():
            raise RuntimeError("StorageWriter.run() can only run once")
        self._running = True
        try:
            # The flusher takes and compresses flushes; the storer writes
            # them, in order. The channel holds none: the flusher waits for
            # the storer before taking a third.
            send, receive = trio.open_memory_channel[_Batch | None](0)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._store_all, receive)
                task_status.started()
                async with send:
                    await self._flush_all(send)
        finally:
            self._stopped.set()
            self._progress.set()

    async def _flush_all(self, send: trio.MemorySendChannel[_Batch | None]) -> None:
        """Take each flush when it is due and hand it to the storer; None
        asks the storer for one step of draining the spool."""
        while True:
            batch = self._queued
            now = trio.current_time()
            if self._has_queued() and (
                self._closed
                or self._flush_now
                or self.chunks.queued >= self._batch_size
                or now >= batch.since + self._interval
            ):
                await send.send(await self._prepare(batch))
                continue
            if self._closed:
                if self._spooling:
                    log.warning(
                        "shutdown_with_spool",
                        spool_bytes=self.stats.spool_bytes,
                        hint="replayed into storage at the next start",
                    )
                return
            if self._spooling and now >= self._retry_at:
                self._retry_at = math.inf  # until the storer's attempt sets it
                await send.send(None)
                continue
            self._flush_now = False
            wake = self._wake = trio.Event()
            deadline = batch.since + self._interval  # inf when empty
            if self._spooling:
                deadline = min(deadline, self._retry_at)
            with trio.move_on_at(deadline):
                await wake.wait()

    async def _store_all(self, receive: trio.MemoryReceiveChannel[_Batch | None]) -> None:
        async with receive:
            async for batch in receive:
                if batch is None:
                    await self._drain_step()
                    self._wake.set()  # the flusher's deadline depends on the outcome
                else:
                    await self._store(batch)

    async def _prepare(self, batch: _Batch) -> _Batch:
        """Take ``batch`` from the queue as the next flush and compress it
        (in a thread of its own, beside the write of the flush before)."""
        self._queued = _Batch(generation=batch.generation + 1)
        self._inflight.append(batch)
        self._flush_now = False
        batch.started = time.perf_counter()
        chunks = batch.chunks = self._take_chunks()
        # Copy the records now, on the loop: the hub keeps updating them
        # (and the Rust counters behind them).
        for key in chunks.flush.sessions:
            if key not in batch.sessions and (record := self.records(key)) is not None:
                batch.sessions[key] = record
        batch.sessions = {sid: record.copy() for sid, record in batch.sessions.items()}
        if self._codec is not None and chunks:
            await trio.to_thread.run_sync(
                chunks.flush.compress, *self._codec, limiter=self._compress_limiter
            )
        return batch

    async def _store(self, batch: _Batch) -> None:
        """Write ``batch`` until it is committed or spooled, then forget it."""
        chunks = batch.chunks
        assert chunks is not None
        sessions = list(batch.sessions.values())
        if not self._spooling:
            if self._spool is None:
                await self._write_until_done(sessions, chunks, batch.errors)
            elif not await self._try_write(sessions, chunks, batch.errors):
                self._spooling = True
                self._update_spool_room()
                self._retry_at = trio.current_time() + _jittered(self._retry_delay)
                log.warning("storage_spooling", spool_bytes=self._spool.nbytes)
        if self._spooling:
            await self._append_to_spool(sessions, chunks, batch.errors)
        else:
            self._flushes += 1
            self._chunks_written += len(chunks)
            self._last_flush_seconds = time.perf_counter() - batch.started
            if self._on_flush is not None:
                self._on_flush(self._last_flush_seconds)
        self._commit(batch)

    async def _try_write(
        self,
        sessions: list[SessionRecord],
        chunks: Sequence[Chunk],
        errors: list[SessionError],
        **log_fields: Any,
    ) -> bool:
        """One attempt at a storage transaction; False (logged with
        ``log_fields``) if it failed."""
        storage = self._storage
        try:
            if storage.blocking:
                await trio.to_thread.run_sync(
                    storage.write, sessions, chunks, errors, limiter=self._write_limiter
                )
            else:
                await trio.lowlevel.checkpoint()
                storage.write(sessions, chunks, errors)
        except Exception as exc:  # a bug in a backend must not drop data either
            self._write_failures += 1
            self._healthy = False
            log.warning(
                "storage_write_failed",
                storage=self._storage.name,
                error=str(exc),
                retryable=getattr(exc, "retryable", None),
                chunks=len(chunks),
                sessions=len(sessions),
                errors=len(errors),
                exc_info=not isinstance(exc, StorageError),
                **log_fields,
            )
            return False
        if not self._healthy and not self._spooling:
            log.info("storage_write_recovered", storage=self._storage.name)
        self._healthy = not self._spooling
        return True

    async def _write_until_done(
        self, sessions: list[SessionRecord], chunks: Sequence[Chunk], errors: list[SessionError]
    ) -> None:
        """No spool: retry the transaction with capped, jittered exponential
        backoff until it commits. Pending bytes meanwhile hold trackers back."""
        delay, attempt = RETRY_MIN, 1
        while not await self._try_write(sessions, chunks, errors, attempt=attempt, retry_in=delay):
            await trio.sleep(_jittered(delay))
            delay, attempt = min(delay * 2, RETRY_MAX), attempt + 1

    async def _append_to_spool(
        self, sessions: list[SessionRecord], chunks: Sequence[Chunk], errors: list[SessionError]
    ) -> None:
        """Append a flush to the spool (fsynced), retrying while the local
        disk fails: accepted data is never dropped."""
        spool = self._spool
        assert spool is not None
        delay = RETRY_MIN
        while True:
            try:
                self._spool_busy += 1
                try:
                    await trio.to_thread.run_sync(
                        spool.append, sessions, chunks, errors, limiter=self._write_limiter
                    )
                finally:
                    self._spool_busy -= 1
                break
            except Exception as exc:
                self._write_failures += 1
                log.error("spool_write_failed", error=str(exc), retry_in=delay)
            await trio.sleep(_jittered(delay))
            delay = min(delay * 2, RETRY_MAX)
        self._spooled_chunks += len(chunks)
        self._update_spool_room()
        for chunk in chunks:
            self._spooled.setdefault(chunk.session_id, {})[chunk.seq] = (
                chunk.first_index,
                chunk.end_index,
            )
        for record in sessions:
            self._spooled_sessions[record.session_id] = record

    async def _drain_step(self) -> None:
        """Try to move one slice of the spool into storage; on failure, back
        off (doubling, jittered) before the next try."""
        if await self._drain_slice():
            self._retry_delay = RETRY_MIN
            self._retry_at = -math.inf
            spool = self._spool
            if spool is not None and spool.empty:
                self._spooling = False
                self._update_spool_room()
                self._healthy = True
                self._spooled.clear()
                self._spooled_sessions.clear()
                log.info("storage_recovered", storage=self._storage.name)
        else:
            self._retry_at = trio.current_time() + _jittered(self._retry_delay)
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)

    async def _drain_slice(self) -> bool:
        """Write the spool's oldest slice to storage and consume it."""
        spool = self._spool
        assert spool is not None
        self._spool_busy += 1
        try:
            return await self._drain_slice_from(spool)
        finally:
            self._spool_busy -= 1

    async def _drain_slice_from(self, spool: Spool) -> bool:
        try:
            piece = await trio.to_thread.run_sync(
                spool.read, self._drain_slice_bytes, limiter=self._write_limiter
            )
        except Exception as exc:
            log.error("spool_read_failed", error=str(exc))
            return False
        if piece is None:
            return True
        if not await self._try_write(piece.sessions, piece.chunks, piece.errors):
            return False
        try:
            await trio.to_thread.run_sync(spool.consume, piece.end, limiter=self._write_limiter)
        except StorageError as exc:  # written, but its segment not yet deleted: try again later
            log.error("spool_consume_failed", error=exc.message)
            return False
        self._drained_chunks += len(piece.chunks)
        self._update_spool_room()
        for chunk in piece.chunks:
            spans = self._spooled.get(chunk.session_id)
            if spans is not None:
                spans.pop(chunk.seq, None)
                if not spans:
                    del self._spooled[chunk.session_id]
        log.info(
            "spool_drained",
            chunks=len(piece.chunks),
            bytes=piece.nbytes,
            spool_bytes_left=spool.nbytes,
        )
        return True

    def _take_chunks(self) -> ChunkBatch:
        """The queued chunks as the flush of the current generation (the
        queue numbers its flushes as this writer numbers its batches)."""
        return ChunkBatch(self.chunks.take())

    def _commit(self, batch: _Batch) -> None:
        if batch.chunks is not None:
            self.chunks.commit(batch.chunks.flush)
        self._inflight.remove(batch)  # the oldest: flushes commit in order
        self._written = batch.generation
        self._progress.set()
        self._progress = trio.Event()


def _jittered(delay: float) -> float:
    """Between half and all of ``delay`` ("equal jitter"): instances that
    lost the same database do not all come back in the same millisecond."""
    return delay * random.uniform(0.5, 1.0)
