"""Admission of TCP connections, before a byte of them is read.

Every accepted connection is counted from accept to close, whatever it turns
out to be: a REST request, a WebSocket, or a client still sending its
request head, so slowloris sockets count too. Two limits apply here:

- ``MAX_CONNECTIONS`` open in total: a connection beyond it is answered
  ``503 too_many_connections`` with ``Retry-After: 1``;
- ``LIMIT_CONCURRENT_PER_IP`` open from one client IP (the limiter's
  :class:`~replaywire.limits.concurrency.Concurrency`, shared through Redis
  when ``REDIS_URL`` is set): beyond it, ``429 rate_limited`` with
  ``Retry-After``.

Why the answer is written without reading the request: a refused
connection must cost much less than a served one, or a flood of them would
take the server down anyway, and a slowloris client would hold the refusal
as long as it holds a served connection. So the answer is prepared bytes,
written at once (it always fits a new socket's send buffer), without h11.
Why the connection is then read for a moment: closing a socket whose
request is still unread makes the kernel reset the connection, and a reset
can destroy the answer before the client reads it. So the server half-closes
(the client sees the end of the answer), then reads and drops what arrives
until the client closes, for at most ``REFUSE_LINGER`` seconds and
``REFUSE_READ_BYTES`` (a lingering close, as Apache and nginx do). At most
``REFUSE_SLOTS`` refusals linger at once; beyond, a refused connection is
closed as soon as its answer is written.

Resource handling: :meth:`ConnectionGate.serve` owns the accepted stream. A
refused one is closed here; an admitted one is handed to the handler, which
closes it, and the gate releases its places (total and per IP) whichever
way the handler ends.

Error handling: an exception that escapes the handler (a bug) ends that
connection only: the gate hands it to ``on_crash`` (the server logs and
counts it) instead of letting it reach the listener's nursery. The gate is
the connection task's first frame, so that an idle connection's task holds
no other frame for this (docs/benchmarks.md, idle connections).
"""

from __future__ import annotations

import json
import resource
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING

import structlog
import trio

from ..auth import origins
from ..errors import HttpError

if TYPE_CHECKING:
    from ..limits import Limiter
    from ..observability.metrics import Metrics

__all__ = ["ConnectionGate", "answer_bytes", "ensure_fd_limit", "linger_close", "peer_name"]

log = structlog.get_logger("replaywire.http")

REFUSE_LINGER = 1.0  # seconds a refused connection is read (and dropped) after its answer
REFUSE_READ_BYTES = 64 * 1024  # ...or until this much was read
REFUSE_SLOTS = 64  # refusals lingering at once; past it, closed once answered
# Descriptors a server needs besides its connections: listeners, the event
# loop, storage files and connections, the spool, log files, Redis.
FD_RESERVE = 256

Handler = Callable[[trio.SocketStream, str], Awaitable[None]]


def peer_name(stream: trio.SocketStream) -> str:
    """``ip:port`` of the client, or ``?`` when the socket cannot say."""
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def answer_bytes(
    status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """A complete HTTP/1.1 error answer, ``{"error":{"code","message"}}``
    with the security headers and ``Connection: close``, for a connection
    answered before its request was read (h11 only answers requests)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    fields = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or []),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    fields.extend(origins.security_headers("", fields))
    head = b"HTTP/1.1 %d %b\r\n" % (status, HTTPStatus(status).phrase.encode())
    head += b"".join(b"%b: %b\r\n" % field for field in fields)
    return head + b"\r\n" + body


class ConnectionGate:
    """Counts the open TCP connections of one server and refuses those over
    ``MAX_CONNECTIONS`` or the per-IP limit. trio loop only."""

    def __init__(
        self,
        max_connections: int,
        limiter: Limiter,
        metrics: Metrics,
        *,
        warn: Callable[..., None] = lambda event, **fields: None,
        on_crash: Callable[[Exception], None] | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.open = 0
        """Admitted connections not yet closed."""
        self._limiter = limiter
        self._metrics = metrics
        self._warn = warn  # the server's sampled client-fault log
        self._on_crash = on_crash  # None: a handler's exception propagates
        self._refusing = 0
        self._full = answer_bytes(
            503,
            "too_many_connections",
            "the server holds as many connections as it may; retry later",
            [(b"retry-after", b"1")],
        )

    async def serve(self, stream: trio.SocketStream, handler: Handler) -> None:
        """Admit ``stream`` and run ``handler(stream, client)``, or refuse it.
        An exception from either goes to ``on_crash`` when there is one."""
        try:
            client = peer_name(stream)
            if self.max_connections and self.open >= self.max_connections:
                self._metrics.connections_refused_total.inc()
                self._warn("connection_refused", limit="max_connections", open=self.open)
                await self._refuse(stream, self._full)
                return
            try:
                lease = self._limiter.hold_connection(client)  # LIMIT_CONCURRENT_PER_IP
            except HttpError as exc:
                answer = answer_bytes(exc.status, exc.code, exc.message, exc.headers)
                await self._refuse(stream, answer)
                return
            self.open += 1
            try:
                with lease:
                    await handler(stream, client)
            finally:
                self.open -= 1
        except Exception as exc:
            if self._on_crash is None:
                raise
            self._on_crash(exc)

    async def _refuse(self, stream: trio.SocketStream, answer: bytes) -> None:
        """Write ``answer`` unread, then linger (see the module's docstring)
        while a slot is free, and close."""
        linger = self._refusing < REFUSE_SLOTS
        self._refusing += linger
        try:
            with trio.move_on_after(REFUSE_LINGER):
                await stream.send_all(answer)
            if linger:
                await linger_close(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._refusing -= linger
            with trio.CancelScope(shield=True):
                await stream.aclose()


async def linger_close(stream: trio.SocketStream) -> None:
    """Close a connection whose client may still be sending (its request
    was refused or not read to its end) without resetting it: half-close,
    so the client sees the end of the answer, then read and drop what
    arrives until the client closes, for at most ``REFUSE_LINGER`` seconds
    and ``REFUSE_READ_BYTES`` bytes, then close. A close with bytes unread
    would make the kernel send a reset, which can destroy the answer before
    the client reads it."""
    try:
        with trio.move_on_after(REFUSE_LINGER):
            await stream.send_eof()
            read = 0
            while read < REFUSE_READ_BYTES:
                data = await stream.receive_some(16 * 1024)
                if not data:
                    break
                read += len(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


def ensure_fd_limit(max_connections: int) -> None:
    """Raise this process's soft ``RLIMIT_NOFILE`` (up to its hard limit)
    so that ``max_connections`` connections, the lingering refusals and
    ``FD_RESERVE`` other descriptors fit; log ``fd_limit_low`` when even the
    hard limit is too low. Beyond the soft limit, ``accept`` fails with
    EMFILE and new clients wait unanswered in the listen backlog instead of
    getting a 503, and storage or the spool may fail to open a file.

    Many systems start services with a soft limit of 1024 and a far higher
    hard one, which a process may raise itself to (as the Go runtime and
    nginx's ``worker_rlimit_nofile`` do)."""
    if max_connections <= 0:
        return
    need = max_connections + REFUSE_SLOTS + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < need:
        log.warning(
            "fd_limit_low",
            max_connections=max_connections,
            fd_limit=soft,
            needed=need,
            hint="raise the open-file limit (ulimit -n, LimitNOFILE=) or lower MAX_CONNECTIONS",
        )
