"""Builders for storage tests, and a fault injector around the real SQLite
backend (not a mock: every write that is let through is a real commit)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from replaywire.storage import (
    Chunk,
    MemoryStorage,
    SessionError,
    SessionRecord,
    SqliteStorage,
    StorageError,
    StorageWriter,
)
from replaywire.storage.spool import Spool

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def events_payload(first_index: int, count: int, size: int = 230) -> bytes:
    """A JSON array of ``count`` rrweb-like incremental events of ``size``
    bytes each (mouse moves, padded), without spaces."""
    events = []
    for i in range(first_index, first_index + count):
        event: dict[str, Any] = {
            "type": 3,
            "data": {"source": 1, "positions": [{"x": i % 1440, "y": i % 900, "id": 42}]},
            "timestamp": 1_714_564_800_000 + i * 16,
        }
        pad = size - len(json.dumps(event, separators=(",", ":"))) - len(',"p":""')
        event["p"] = "x" * max(pad, 0)
        events.append(event)
    return json.dumps(events, separators=(",", ":")).encode()


def make_chunk(
    session_id: str = "s1",
    seq: int = 0,
    first_index: int | None = None,
    count: int = 10,
    *,
    payload: bytes | None = None,
    received_at: float | None = None,
) -> Chunk:
    first = seq * count if first_index is None else first_index
    return Chunk(
        session_id=session_id,
        seq=seq,
        first_index=first,
        event_count=count,
        first_timestamp=1_714_564_800_000.0 + first * 16,
        last_timestamp=1_714_564_800_000.0 + (first + count - 1) * 16,
        codec="none",
        payload=events_payload(first, count) if payload is None else payload,
        received_at=received_at,
    )


def make_session(session_id: str = "s1", started_at: float = T0, **fields: Any) -> SessionRecord:
    return SessionRecord(session_id=session_id, started_at=started_at, **fields)


def make_error(session_id: str = "s1", at: float = T0, seq: int | None = None) -> SessionError:
    return SessionError(session_id, at, "seq_out_of_window", f"seq {seq} too far ahead", seq)


class FaultyStorage(SqliteStorage):
    """SQLite storage whose first ``fail_first`` writes raise, and whose
    writes can be held at gates. Writes must come from trio worker threads
    (the writer's): each attempt reports to ``events`` on the trio side.

    - ``probe``: called on the event loop at the start of every attempt;
      its results are kept in ``observed``.
    - ``before_commit`` / ``after_commit``: threading.Events the write waits
      on before it writes / after it committed (None: no wait).
    - ``events`` receives ``"started"``, ``"failed"``, ``"committed"``.
    """

    def __init__(self, path: Path, *, fail_first: int = 0) -> None:
        super().__init__(path)
        self.fail_first = fail_first
        self.attempts = 0
        self.attempt_times: list[float] = []
        self.calls: list[tuple[int, int, int]] = []  # (sessions, chunks, errors) committed
        self.probe: Callable[[], Any] | None = None
        self.observed: list[Any] = []
        self.before_commit: threading.Event | None = None
        self.after_commit: threading.Event | None = None
        send, self.events = trio.open_memory_channel[str](math.inf)
        self._send = send

    def _report(self, event: str) -> None:
        trio.from_thread.run_sync(self._send.send_nowait, event)

    def write(
        self,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        errors: Sequence[SessionError],
    ) -> None:
        self.attempts += 1
        self.attempt_times.append(trio.from_thread.run_sync(trio.current_time))
        if self.probe is not None:
            self.observed.append(trio.from_thread.run_sync(self.probe))
        # Take the gates before reporting: a test may put new ones in place
        # as soon as it hears "started", for the *next* write.
        before, after = self.before_commit, self.after_commit
        self._report("started")
        _pass(before, "before_commit")
        if self.attempts <= self.fail_first:
            self._report("failed")
            raise StorageError(f"injected fault {self.attempts}", retryable=True)
        super().write(sessions, chunks, errors)
        self.calls.append((len(sessions), len(chunks), len(errors)))
        self._report("committed")
        _pass(after, "after_commit")


class GateTimeout(BaseException):
    """A gate stayed shut: the test is broken. A BaseException, so that it
    escapes the writer's retry loop and fails the test instead of being
    retried forever."""


def _pass(gate: threading.Event | None, name: str) -> None:
    if gate is not None and not gate.wait(timeout=10):
        raise GateTimeout(f"the test never opened {name}")


BATCH_SIZE = 100  # make_writer's, unless a test asks for another


def make_writer(
    storage: FaultyStorage | MemoryStorage,
    *,
    batch_size: int = BATCH_SIZE,
    batch_interval: float = 60.0,
    max_pending_bytes: int = 1 << 30,
    spool: Spool | None = None,
) -> StorageWriter:
    """A writer whose interval (a minute) never decides a test by accident."""
    return StorageWriter(
        storage,
        batch_size=batch_size,
        batch_interval=batch_interval,
        max_pending_bytes=max_pending_bytes,
        spool=spool,
    )


async def stored(writer: StorageWriter, storage: FaultyStorage, sid: str = "s1") -> list[Chunk]:
    """Every chunk of ``sid`` in storage, read in a worker thread."""
    return await writer.read(storage.read_chunks, sid, 0, 1_000_000)


async def queue_chunk(writer: StorageWriter, chunk: Chunk, *, batch_size: int = BATCH_SIZE) -> None:
    """Queue ``chunk`` as a tracker connection does, through the writer's
    Rust queue: while the queue has no room the engine stops with
    ``backpressure`` and the connection waits in ``writer.wait_for_room``;
    then the engine puts the chunk into ``writer.chunks`` and the connection
    hands its flags (the queue was empty; it holds ``batch_size`` chunks,
    the writer's) to ``writer.chunks_queued``, which raises
    :class:`StorageError` once the writer is closed. A chunk whose
    (session_id, seq) is pending already is ignored by the queue."""
    queue = writer.chunks
    while not queue.has_room():
        await writer.wait_for_room()
    first = queue.queued == 0
    queue.put(*chunk.row())
    writer.chunks_queued(first=first, full=queue.queued >= batch_size)
