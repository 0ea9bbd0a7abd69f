"""The tracker side: ``session_start``, ``events_batch``, ``session_end``,
``snapshot_missing``.

All messages completed by one socket read are handled in order and all
their answers go out in one write, so a tracker that keeps a window of
batches in flight gets its acks back in one frame burst.

With durable acks (``ACK_MODE=durable``) an ack may only leave once the
batch's flush committed. Answers then go through a bounded queue of
``(ticket, frame)`` in arrival order, sent by a second task as soon as the
writer has committed their ticket: reading goes on while acks wait (the
tracker's window stays full), answers never overtake each other, and a
tracker that never waits for acks is stopped at REPLY_BACKLOG answers (its
socket is then not read: TCP backpressure).
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio

from .. import _core
from ..auth.gate import DEV_PRINCIPAL, Principal
from ..errors import ProtocolError
from ..sessions import LiveSession
from ..storage import StorageError
from ..ws import ConnectionClosed, WebSocket
from ..ws.messages import TOO_LARGE, DataMessage, TooLargeMessage
from . import frames

if TYPE_CHECKING:
    from ..config import Config
    from ..limits import Limiter
    from ..observability.metrics import Metrics
    from ..sessions import Hub
    from ..storage import StorageWriter

REPLY_BACKLOG = 4096  # answers waiting for their flush, per connection
COMPRESSED_HEADER = struct.Struct(">BBHI")  # version, codec, reserved, raw length
COMPRESSED_CODECS = {1: "deflate", 2: "zstd"}
_START_STRINGS = ("session_id", "user_id", "url", "user_agent", "referrer", "time_zone")
# The envelope of a skipped oversized message, read from its first bytes
# (trackers put sessionId and seq before events; see docs/protocol.md).
_PREFIX_SEQ = re.compile(rb'"seq"\s*:\s*(\d{1,18})\b')
_PREFIX_SESSION = re.compile(rb'"sessionId"\s*:\s*("(?:[^"\\]|\\.){1,512}")')


@dataclass(frozen=True, slots=True)
class TrackerDeps:
    """What a tracker connection uses of the server, and nothing else: built
    once by the server (replaywire.app) and shared by every connection.
    Each connection resolves what it calls per batch from it once."""

    config: Config
    hub: Hub  # sessions, their rings and the storage queue
    writer: StorageWriter  # durable acks wait for its commits
    limiter: Limiter
    metrics: Metrics
    protocol: _core.ProtocolDecoder  # the server's, compiled once from its limits
    warn: Callable[..., None]  # the server's sampled client-fault log


async def serve_tracker(
    ws: WebSocket, deps: TrackerDeps, principal: Principal = DEV_PRINCIPAL
) -> None:
    """Serve one tracker connection of ``principal``'s tenant until it
    closes (raises ConnectionClosed). Session ids it sends are that
    tenant's: a session of another tenant with the same id is another
    session (replaywire.auth.tenants)."""
    handler = _Tracker(ws, deps, principal)
    try:
        await _serve(handler, ws, deps)
    finally:
        deps.limiter.forget_tracker(handler.quota)


async def _serve(handler: _Tracker, ws: WebSocket, deps: TrackerDeps) -> None:
    if not deps.config.durable_acks:
        while True:
            out: list[bytes] = []
            messages = await ws.receive()
            received = time.perf_counter()
            acks = 0
            for msg in messages:
                frame, _, is_ack = await handler.handle(msg)
                out.append(frame)
                acks += is_ack
            if reply := b"".join(out):  # snapshot_missing alone has no answer
                await ws.send(reply)
            handler.count_acks([received] * acks)
    replies = _Replies(handler.count_acks)
    ended: list[ConnectionClosed] = []

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
        while True:
            messages = await ws.receive()
            received = time.perf_counter()
            for msg in messages:
                frame, ticket, is_ack = await handler.handle(msg)
                replies.push(frame, ticket, received if is_ack else None)
            replies.wake()
            await replies.wait_for_room()
            if ws.close_pending:
                # The peer closed right after these batches (one write):
                # ack them once committed, then answer the close. Bounded,
                # so that a stalled writer cannot hold the close for long.
                with trio.move_on_after(deps.config.drain_seconds):
                    await replies.wait_sent()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(until_closed, partial(replies.send_committed, ws, deps.writer))
        nursery.start_soon(until_closed, read)
    raise ended[0]


class _Replies:
    """Answers waiting for the writer to commit the flush that holds them."""

    def __init__(self, count_acks: Callable[[list[float]], None]) -> None:
        # (frame, ticket, when its batch was read -- None unless an ack)
        self._queue: deque[tuple[bytes, int, float | None]] = deque()
        self._wake = trio.Event()
        self._room = trio.Event()
        self._count_acks = count_acks
        self._sending = False  # answers taken from the queue, being written

    def push(self, frame: bytes, ticket: int, received: float | None) -> None:
        self._queue.append((frame, ticket, received))

    def wake(self) -> None:
        self._wake.set()

    async def wait_for_room(self) -> None:
        while len(self._queue) >= REPLY_BACKLOG:
            self._room = trio.Event()
            await self._room.wait()

    async def wait_sent(self) -> None:
        """Until every queued answer has been written."""
        while self._queue or self._sending:
            self._room = trio.Event()
            await self._room.wait()

    async def send_committed(self, ws: WebSocket, writer: StorageWriter) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            await writer.wait_committed(queue[0][1])
            committed = writer.committed
            out: list[bytes] = []
            acks: list[float] = []
            while queue and queue[0][1] <= committed:
                frame, _, received = queue.popleft()
                out.append(frame)
                if received is not None:
                    acks.append(received)
            if reply := b"".join(out):
                self._sending = True
                self._room.set()
                try:
                    await ws.send(reply)
                finally:
                    self._sending = False
            self._room.set()
            self._count_acks(acks)


class _Tracker:
    def __init__(self, ws: WebSocket, deps: TrackerDeps, principal: Principal) -> None:
        self.ws = ws
        self.principal = principal
        self.config = deps.config
        self.hub = deps.hub
        self.metrics = deps.metrics
        self.decode = deps.protocol.decode
        self.warn = deps.warn
        self.sessions: dict[str, LiveSession] = {}  # by the id the tracker sent
        # Labelled children resolved once: .labels() costs a lock and a dict
        # lookup, too much for once per batch.
        self.count_batch = self.metrics.messages_total.labels("tracker", "events_batch").inc
        self.limiter = deps.limiter
        self.quota = deps.limiter.tracker()  # rate limits of this tracker

    def count_acks(self, received: list[float]) -> None:
        """Acks just sent, given when each one's batch was read."""
        if received:
            now = time.perf_counter()
            self.metrics.batches_acked_total.inc(len(received))
            observe = self.metrics.ack_seconds.observe
            for when in received:
                observe(now - when)

    async def handle(self, msg: DataMessage) -> tuple[bytes, int, bool]:
        """The answer to one message (empty when it has none), the writer
        ticket that must commit before it may be sent (0: at once), and
        whether it is an ack."""
        if isinstance(msg, TOO_LARGE):
            return self._too_large(msg), 0, False
        seq: int | None = None
        try:
            data = msg.data if msg.is_text else self._inflate(msg.data)
            decoded = self.decode(data)
            if isinstance(decoded, _core.EventsBatch):
                seq = decoded.seq
                self.count_batch()
                session = self._session(decoded.session_id, seq)
                self.limiter.check_batch(self.quota, session.id, decoded.count, seq)
                accepted, ticket = await self.hub.accept_batch(session, decoded)
                return frames.ack(session.id_json, accepted), ticket, True
            self.limiter.check_batch(self.quota, None, 0, None)  # other messages count too
            if isinstance(decoded, _core.SessionStart):
                self.metrics.messages_total.labels("tracker", "session_start").inc()
                return await self._start(decoded), 0, False
            if isinstance(decoded, _core.SessionEnd):
                self.metrics.messages_total.labels("tracker", "session_end").inc()
                session = self._session(decoded.session_id, None)
                await self.hub.end_session(session, "client")
                del self.sessions[session.client_id]
                return frames.message("session_ended", {"sessionId": session.client_id}), 0, False
            if isinstance(decoded, _core.SnapshotMissing):
                self.metrics.messages_total.labels("tracker", "snapshot_missing").inc()
                session = self._session(decoded.session_id, None)
                self.hub.snapshot_missing(session, decoded)
                return b"", 0, False  # no answer on success
            raise ProtocolError(
                "not_allowed", "viewer messages are not accepted on a tracker connection"
            )
        except _core.MessageError as exc:
            code, message = exc.code, exc.message
            return self._error(code, message, exc.seq if exc.seq is not None else seq), 0, False
        except ProtocolError as exc:
            seq = exc.seq if exc.seq is not None else seq
            return self._error(exc.code, exc.message, seq, exc.retry_after_ms), 0, False

    def _inflate(self, frame: bytes) -> bytes:
        """A compressed binary message (docs/protocol.md, "Compressed tracker
        messages"): header, then the message's JSON compressed."""
        if len(frame) < COMPRESSED_HEADER.size:
            raise ProtocolError("invalid_message", "binary frame shorter than its header")
        version, codec, _, raw_length = COMPRESSED_HEADER.unpack_from(frame)
        name = COMPRESSED_CODECS.get(codec)
        if version != 1 or name is None:
            raise ProtocolError("invalid_message", "unknown binary frame version or codec")
        limit = self.config.max_message_bytes
        if raw_length > limit:
            raise ProtocolError(
                "payload_too_large", f"message of {raw_length} bytes; the limit is {limit}"
            )
        try:
            data = _core.decompress(name, frame[COMPRESSED_HEADER.size :], raw_length)
        except _core.CodecError as exc:
            # The codec's payload_too_large means "more than max_size", which
            # here is the announced length, already checked against the
            # limit: data that inflates past it (a zip bomb) does not match
            # its header, and payload_too_large would tell the tracker to drop
            # an event and resend, which cannot help.
            if exc.code == "payload_too_large":
                raise ProtocolError(
                    "invalid_compression",
                    f"data decompresses to more than the announced {raw_length} bytes",
                ) from None
            raise ProtocolError(exc.code, exc.message) from None
        if len(data) != raw_length:
            raise ProtocolError("invalid_compression", "length differs from the header's")
        return data

    async def _start(self, start: _core.SessionStart) -> bytes:
        sid = start.session_id
        for name in _START_STRINGS:
            value = getattr(start, name)
            if value is not None and "\x00" in value:
                # Valid JSON, but no SQL text column can hold it: refused
                # here, or one tracker could make every flush fail.
                raise ProtocolError("invalid_message", f"{name} contains a NUL character")
        if (
            sid not in self.sessions
            and len(self.sessions) >= self.config.max_sessions_per_connection
        ):
            raise ProtocolError(
                "session_limit",
                f"at most {self.config.max_sessions_per_connection} sessions per connection",
            )
        session = await self.hub.start_session(start, self.principal.key(sid))
        self.sessions[sid] = session
        config = self.config
        return frames.message(
            "session_started",
            {
                "sessionId": sid,
                "nextSeq": session.seqs.next_seq,
                "nextIndex": self.hub.buffers.next_index(session.id),
                # What this server refuses, so that the tracker need not
                # send an event it would drop (docs/protocol.md).
                "limits": {
                    "maxEventBytes": config.max_event_bytes,
                    "maxMessageBytes": config.max_message_bytes,
                    "maxEventsPerBatch": config.max_events_per_batch,
                },
            },
        )

    def _session(self, session_id: str | None, seq: int | None) -> LiveSession:
        if session_id is None:
            if len(self.sessions) != 1:
                raise ProtocolError(
                    "unknown_session",
                    "sessionId is required when the connection has no or several sessions",
                    seq,
                )
            session = next(iter(self.sessions.values()))
        else:
            found = self.sessions.get(session_id)
            if found is None:
                raise ProtocolError(
                    "unknown_session",
                    f"session {session_id!r} was not started on this connection",
                    seq,
                )
            session = found
        if session.ended:
            del self.sessions[session.client_id]
            raise ProtocolError("unknown_session", "session has ended; send session_start", seq)
        return session

    def _too_large(self, msg: TooLargeMessage) -> bytes:
        """``payload_too_large`` for a message the decoder skipped: its seq
        and session are read from its first bytes when they are there."""
        config = self.config
        prefix = msg.prefix
        found = _PREFIX_SEQ.search(prefix)
        seq = int(found.group(1)) if found else None
        session_id: str | None = None
        if found_sid := _PREFIX_SESSION.search(prefix):
            try:
                session_id = json.loads(found_sid.group(1))
            except ValueError:
                session_id = None
        message = (
            f"message of {msg.size} bytes is over the limit of {config.max_message_bytes} bytes"
            f" (an event may be at most {config.max_event_bytes} bytes); it was not stored:"
            " resend this seq without the oversized event and take a new full snapshot"
        )
        return self._error("payload_too_large", message, seq, session_id=session_id)

    def _error(
        self,
        code: str,
        message: str,
        seq: int | None,
        retry_after_ms: int | None = None,
        *,
        session_id: str | None = None,
    ) -> bytes:
        self.metrics.protocol_errors_total.labels(code).inc()
        self.warn("tracker_message_rejected", code=code, message=message)
        if session_id is not None and session_id in self.sessions:
            self.hub.record_error(self.sessions[session_id].id, code, message, seq)
        elif len(self.sessions) == 1:
            self.hub.record_error(next(iter(self.sessions.values())).id, code, message, seq)
        return frames.error(code, message, seq, retry_after_ms=retry_after_ms)
