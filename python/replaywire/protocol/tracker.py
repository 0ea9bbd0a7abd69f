"""The tracker side: ``session_start``, ``events_batch``, ``session_end``,
``snapshot_missing``.

A tracker connection's bytes go into one Rust object,
:class:`replaywire._core.TrackerEngine`, once per socket read (it reads
the socket into its own buffer, ``feed_from``, once trio found it
readable; ``feed`` takes bytes read elsewhere): it decodes
the frames and messages, validates the events, applies the rate limits and
the seq window, appends to the ring, queues the chunk for storage and
builds the acks (``rust/src/ingest/engine.rs``). This module sends what
comes back and acts only on what needs the server: a session's start
(storage is read to resume it) and end (it is flushed), storage
backpressure, the peer's close, and the notices to log, count or record.
All answers to one read go out in one write, so a tracker that keeps a
window of batches in flight gets its acks back in one frame burst.

With durable acks (``ACK_MODE=durable``) an ack may only leave once the
flush holding its batch committed. The engine keeps such acks, tagged with
their flush generation, and the answers after them; a second task sends
them as soon as the writer commits (one call per commit). Reading goes on
meanwhile (the tracker's window stays full); answers never overtake each
other; and a tracker that never waits for its acks is stopped at
REPLY_BACKLOG answers (its socket is then not read: TCP backpressure).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .. import _core
from ..auth.principals import DEV_PRINCIPAL, Principal
from ..errors import ProtocolError
from ..storage import StorageError
from ..ws import ConnectionClosed, WebSocket

if TYPE_CHECKING:
    from ..config import Config
    from ..limits import Limiter
    from ..observability.metrics import Metrics
    from ..sessions import Hub, LiveSession
    from ..storage import StorageWriter

REPLY_BACKLOG = 4096  # answers waiting for their flush, per connection
# The close code of a connection whose session a newer connection started
# (docs/protocol.md, "Two connections of one session").
TAKEN_OVER = 4409
TAKE_OVER_SECONDS = 1.0

Step = tuple[bytes, Any, Any, Any, int]  # TrackerEngine.feed's answer


async def _no_take(session_id: str) -> int | None:
    return None


async def _no_claim(session: LiveSession, epoch: int | None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class TrackerDeps:
    """What a tracker connection uses of the server, and nothing else: built
    once by the server (replaywire.app) and shared by every connection."""

    config: Config
    hub: Hub  # sessions, and the shared Rust state every engine feeds
    writer: StorageWriter  # durable acks wait for its commits
    limiter: Limiter
    metrics: Metrics
    warn: Callable[..., None]  # the server's sampled client-fault log
    # Before a start: take the session from the instance that holds it,
    # once that one stored what it accepted (replaywire.redis.relay, Relay.take);
    # after: own it with the epoch taken (Relay.claim). No-ops without Redis.
    take: Callable[[str], Awaitable[int | None]] = _no_take
    claim: Callable[[LiveSession, int | None], Awaitable[None]] = _no_claim


def serve_tracker(
    ws: WebSocket, deps: TrackerDeps, principal: Principal = DEV_PRINCIPAL
) -> Coroutine[Any, Any, None]:
    """Serve one tracker connection of ``principal``'s tenant until it
    closes (raises ConnectionClosed). Session ids it sends are that
    tenant's: a session of another tenant with the same id is another
    session (replaywire.auth.tenants).

    A plain function that returns the tracker's coroutine, for the caller
    to await: the task of an idle connection then holds one frame less
    (docs/benchmarks.md, idle connections)."""
    tracker = _Tracker(ws, deps, principal)
    return tracker.serve_durable() if deps.config.durable_acks else tracker.serve()


class _Tracker:
    # Slots, not a __dict__: one per open tracker connection.
    __slots__ = (
        "_replies_waiting",
        "_room",
        "attached",
        "deps",
        "engine",
        "hub",
        "metrics",
        "principal",
        "warn",
        "writer",
        "ws",
    )

    def __init__(self, ws: WebSocket, deps: TrackerDeps, principal: Principal) -> None:
        config = deps.config
        self.ws = ws
        self.deps = deps
        self.principal = principal
        self.hub = deps.hub
        self.writer = deps.writer
        self.metrics = deps.metrics
        self.warn = deps.warn
        limiter = deps.limiter
        self.engine = _core.TrackerEngine(
            deps.hub.ingest,
            ws.frame_decoder,
            max_sessions=config.max_sessions_per_connection,
            max_message_bytes=config.max_message_bytes,
            max_event_bytes=config.max_event_bytes,
            max_events_per_batch=config.max_events_per_batch,
            durable=config.durable_acks,
            limit_messages=config.limit_messages_per_tracker,
            limit_events=config.limit_events_per_tracker,
            window_ms=limiter.window_ms,
        )
        # The sessions this connection started, by key (see Hub.attach).
        self.attached: dict[str, LiveSession] = {}
        # Durable acks only, made by serve_durable (not per idle connection
        # otherwise): the engine holds replies; the sender made room or sent all.
        self._replies_waiting: trio.Event
        self._room: trio.Event

    # -- reading ----------------------------------------------------------

    async def serve(self) -> None:
        """Acks on receipt: every read's replies are sent before the next read.
        An idle connection waits for its peer in this frame (see
        :meth:`WebSocket.idle_wait`)."""
        ws, engine = self.ws, self.engine
        try:
            while True:
                wait = ws.idle_wait(engine)
                if wait is not None:
                    # Not contextlib.suppress: it would stay alive as long as the wait.
                    try:  # noqa: SIM105
                        await wait
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # closed meanwhile: the read below reports how
                step = await ws.feed_engine(engine, 0)
                while True:
                    reply, stop = self._after(step)
                    if reply:
                        await ws.send_soon(reply)
                    if stop is None:
                        break
                    step = await self._stop(stop)
                # Nothing of this read is kept alive while the peer is idle.
                step, reply = None, b""
        finally:
            self._detach_all()

    async def serve_durable(self) -> None:
        """Acks once committed: a second task sends what each commit frees."""
        ended: list[ConnectionClosed] = []
        self._replies_waiting = trio.Event()
        self._room = trio.Event()
        ws = self.ws

        async def until_closed(fn: Callable[[], Awaitable[None]]) -> None:
            # The first of the two tasks to see the connection end stops both;
            # the caller gets that ConnectionClosed as if there were one task.
            try:
                await fn()
            except ConnectionClosed as exc:
                ended.append(exc)
            except StorageError as exc:  # the writer stopped under us
                await ws.close(1011, "storage stopped")
                ended.append(ConnectionClosed(1011, exc.message, local=True))
            nursery.cancel_scope.cancel()

        async def read() -> None:
            engine = self.engine
            while True:
                step = await ws.feed_engine(engine, self.writer.committed)
                while True:
                    reply, stop = self._after(step)
                    if reply:
                        await ws.send_soon(reply)
                    if engine.waiting:
                        self._replies_waiting.set()
                    if stop is None:
                        break
                    step = await self._stop(stop)
                if ws.close_pending:
                    # wsproto read the peer's close (or a violation) with
                    # these messages: answer them first (once committed).
                    await self._drain_replies()
                while engine.waiting >= REPLY_BACKLOG:
                    self._room = trio.Event()
                    await self._room.wait()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(until_closed, self._send_committed)
                nursery.start_soon(until_closed, read)
            raise ended[0]
        finally:
            self._detach_all()

    def _detach_all(self) -> None:
        """The connection is over: its sessions are no longer its."""
        for session in self.attached.values():
            self.hub.detach(session, self)

    async def _send_committed(self) -> None:
        engine, writer, ws = self.engine, self.writer, self.ws
        while True:
            if not engine.waiting:
                self._room.set()
                self._replies_waiting = trio.Event()
                await self._replies_waiting.wait()
                continue
            await writer.wait_committed(engine.waiting_for)
            reply = engine.release(writer.committed, time.perf_counter())
            self._room.set()
            if reply:
                await ws.send_soon(reply)

    async def _drain_replies(self) -> None:
        """Durable acks: until every reply held by the engine was sent, at
        most DRAIN_SECONDS (a stalled writer must not hold a close long)."""
        if not self.deps.config.durable_acks:
            return
        with trio.move_on_after(self.deps.config.drain_seconds):
            while self.engine.waiting:
                self._replies_waiting.set()
                self._room = trio.Event()
                await self._room.wait()

    # -- what the engine reports --------------------------------------------

    def _after(self, step: Step) -> tuple[bytes, Any]:
        """Act on a step's notices, wake-ups and writer flags; return its
        replies and its stop."""
        reply, stop, notices, woken, flags = step
        if notices is not None:
            self._notices(notices)
        if woken is not None:
            self.hub.wake(woken)
        if flags:
            self.writer.chunks_queued(first=bool(flags & 1), full=bool(flags & 2))
        return reply, stop

    def _notices(self, notices: list[tuple[Any, ...]]) -> None:
        metrics = self.metrics
        for notice in notices:
            if notice[0] == "error":
                _, code, message, seq, key, limit = notice
                metrics.protocol_errors_total.labels(code).inc()
                if limit is not None:
                    metrics.rate_limited_total.labels(limit).inc()
                self.warn("tracker_message_rejected", code=code, message=message)
                if key is not None:
                    self.hub.record_error(key, code, message, seq)
            else:  # ("snapshot_missing", key, SnapshotMissing)
                _, key, missing = notice
                session = self.hub.live.get(key)
                if session is not None:
                    self.hub.snapshot_missing(session, missing)

    async def _stop(self, stop: tuple[Any, ...]) -> Step:
        """Do what the engine stopped for; the engine's next step."""
        engine, kind = self.engine, stop[0]
        if kind == "start":
            await self._start(stop[1])
        elif kind == "end":
            _, client_id, key = stop
            session = self.hub.live.get(key)
            if session is not None:
                await self.hub.end_session(session, "client")
            if (attached := self.attached.pop(key, None)) is not None:
                self.hub.detach(attached, self)
            engine.ended(client_id)
        elif kind == "backpressure":
            await self.writer.wait_for_room()
        elif kind == "close":
            # The peer closed after these messages: their answers first
            # (durable acks: once committed), then its close.
            await self._drain_replies()
            await self.ws.answer_close(stop[1], stop[2])
        elif kind == "failed":
            await self._drain_replies()
            await self.ws.fail(stop[1], stop[2])
        return engine.feed(b"", time.time(), time.perf_counter(), self.writer.committed)

    async def _start(self, start: _core.SessionStart) -> None:
        sid = start.session_id
        key = self.principal.key(sid)
        epoch = await self.deps.take(key)
        try:
            session = await self.hub.start_session(start, key)
        except ProtocolError as exc:
            self.engine.refuse(exc.code, exc.message, exc.seq, exc.retry_after_ms)
            return
        if self.attached.get(key) is not session:
            if (before := self.attached.pop(key, None)) is not None:
                self.hub.detach(before, self)
            older = self.hub.attach(session, self)
            self.attached[key] = session
            for tracker in older:
                # A peer that does not read could hold its send lock: the
                # start does not wait for it (its heartbeat ends it).
                with trio.move_on_after(TAKE_OVER_SECONDS):
                    await tracker.take_over()
            await self.deps.claim(session, epoch)
        self.engine.started(sid, key)

    async def take_over(self) -> None:
        """A newer connection started one of this connection's sessions:
        close this one (its other sessions, if any, with it). What it sent
        before is kept; it gets no more answers."""
        await self.ws.close(TAKEN_OVER, "session_taken_over")
