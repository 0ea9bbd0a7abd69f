"""HTTP/1.1 connections on the one port: h11 for requests, the WebSocket
upgrade at ``/ws`` handed to the tracker or viewer protocol.

Resource handling: each accepted TCP stream is owned by one task running
:func:`handle_connection` (once ``http.listener`` admitted it), which closes
it on every way out. Error handling: a malformed request gets h11's
suggested status (400, 413) and the connection is closed; a request head
over ``max_request_bytes`` gets 431 (checked exactly: see
:func:`_next_request`); a client that does not send its whole request within
``handshake_timeout`` of connecting (or of its previous answer) gets 408 and
is dropped (slowloris), counted in ``replaywire_handshake_timeouts_total``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import h11
import structlog
import trio

from .. import _core
from ..auth import origins
from ..codecs import BY_NAME, VIEWER_CODECS
from ..errors import HttpError
from ..storage import StorageError
from ..ws import WebSocket, check_upgrade
from ..ws.extensions import DeflateParams, negotiate_deflate
from ..ws.handshake import HandshakeError, wants_upgrade
from ..ws.wsproto_backend import WsprotoWebSocket
from .listener import linger_close, peer_name
from .responses import Response, error_response
from .routes import Request, RouteDeps, dispatch

if TYPE_CHECKING:
    from ..auth import Auth
    from ..auth.principals import Principal
    from ..config import Config
    from ..limits import Limiter
    from ..observability.metrics import Metrics
    from ..ws import InflightBudget
    from ..ws.connection import CloseHook

log = structlog.get_logger("replaywire.http")

READ_SIZE = 64 * 1024
MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpDeps:
    """What an HTTP connection uses of the server, and nothing else: built
    once by the server (replaywire.app) and shared by every connection."""

    config: Config
    auth: Auth  # CORS, and who may upgrade
    limiter: Limiter  # LIMIT_CONNECTIONS_PER_IP at the upgrade
    metrics: Metrics
    inflight: InflightBudget  # MAX_INFLIGHT_BYTES, shared by every WebSocket
    routes: RouteDeps  # what the REST routes use
    draining: Callable[[], bool]  # shutting down: upgrades are refused
    count_close: CloseHook  # every WebSocket close, by code
    # Serves an upgraded connection (its kind, "tracker" or "viewer"; who
    # upgraded; a viewer's codec) until it closes: the server's, which
    # keeps track of its WebSockets.
    serve_websocket: Callable[[WebSocket, str, Principal, str], Awaitable[None]]
    warn: Callable[..., None]  # the server's sampled client-fault log


@dataclass(frozen=True, slots=True)
class _Upgraded:
    """An accepted WebSocket upgrade: what serving it needs, and nothing of
    the HTTP exchange (its parser, buffers, request and header objects)."""

    ws: WebSocket
    kind: str  # "tracker" or "viewer"
    principal: Principal  # who upgraded (replaywire.auth)
    codec: str  # a viewer's codec (query parameter codec)


async def handle_connection(
    stream: trio.SocketStream, client: str | None = None, *, deps: HttpDeps
) -> None:
    """Serve one TCP connection from ``client`` (``ip:port``, by default the
    stream's peer): keep-alive HTTP requests, or one upgrade.

    An upgraded connection is served from here once the HTTP exchange has
    returned, so that none of its objects (the h11 connection and its
    buffers, the request's headers, the frames that read them) stays
    alive, per connection, for as long as the WebSocket is open."""
    client = client or peer_name(stream)
    structlog.contextvars.bind_contextvars(client=client)
    try:
        upgraded = await _serve_http(stream, client, deps)
        if upgraded is not None:
            await deps.serve_websocket(
                upgraded.ws, upgraded.kind, upgraded.principal, upgraded.codec
            )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


async def _serve_http(stream: trio.SocketStream, client: str, deps: HttpDeps) -> _Upgraded | None:
    """HTTP/1.1 requests on ``stream`` until it closes, or until one is a
    WebSocket upgrade: then the accepted upgrade, to be served."""
    config = deps.config
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_request_bytes)
    served = False
    try:
        while True:
            # The whole request (head, and body if any) must arrive by then.
            deadline = trio.current_time() + config.handshake_timeout
            try:
                with trio.fail_at(deadline):
                    event = await _next_request(conn, stream, config.max_request_bytes)
            except trio.TooSlowError:
                # A kept-alive connection with nothing of a next request is
                # not a slow client: closed all the same, but not counted.
                idle = served and not conn.trailing_data[0]
                await _timed_out(conn, stream, deps, count=not idle)
                return None
            if not isinstance(event, h11.Request):
                return None  # ConnectionClosed or anything but a request
            outcome = await _serve_request(conn, stream, event, deps, client, deadline)
            if isinstance(outcome, _Upgraded):
                return outcome
            if outcome:
                return None
            served = True
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return None
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return None
    except h11.RemoteProtocolError as exc:
        deps.metrics.protocol_errors_total.labels("bad_http").inc()
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            # The peer may be gone already (it closed mid-request): then
            # there is no one to answer, which is not a crash.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await _send(
                    conn,
                    stream,
                    error_response(status, "bad_request", str(exc) or "malformed request"),
                )
            # The rest of the request may still be coming, or unread (431).
            await linger_close(stream)
    return None


async def _timed_out(
    conn: h11.Connection, stream: trio.SocketStream, deps: HttpDeps, *, count: bool = True
) -> None:
    """The request did not arrive by its deadline: 408 (when no answer was
    started), counted as a handshake timeout unless ``count`` is false; the
    caller closes the connection."""
    if count:
        deps.metrics.handshake_timeouts_total.inc()
        deps.warn("handshake_timeout", timeout_s=deps.config.handshake_timeout)
    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
        await _send(conn, stream, error_response(408, "timeout", "request not received in time"))


async def _serve_request(
    conn: h11.Connection,
    stream: trio.SocketStream,
    event: h11.Request,
    deps: HttpDeps,
    client: str,
    deadline: float,
) -> bool | _Upgraded:
    """Answer one request; the rest of it (a body, the end of an upgrade
    request) must arrive by ``deadline``. Returns the upgrade when it was
    accepted (the caller serves the WebSocket), True when the connection
    must close."""
    started = time.perf_counter()
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
    request_id = headers.get("x-request-id", "")[:128] or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    target = urlsplit(event.target.decode("latin-1"))
    query = {k: v[-1] for k, v in parse_qs(target.query, keep_blank_values=True).items()}
    request = Request(
        method=event.method.decode("ascii"),
        path=target.path,
        query=query,
        headers=headers,
        body=b"",
        request_id=request_id,
        client=client,
    )
    route = "/ws" if target.path == "/ws" else "?"
    origin = headers.get("origin")
    try:
        if request.method == "OPTIONS" and "access-control-request-method" in headers:
            route, response = "OPTIONS", _preflight(deps, origin)
        elif target.path == "/ws":
            if wants_upgrade(event):
                deps.limiter.admit_connection(client)  # 429 over LIMIT_CONNECTIONS_PER_IP
                return await _upgrade(conn, stream, event, request, deps, deadline)
            raise HttpError(
                426,
                "upgrade_required",
                "connect with a WebSocket client",
                [(b"upgrade", b"websocket")],
            )
        else:
            try:
                with trio.fail_at(deadline):
                    request.body = await _read_body(conn, stream)
            except trio.TooSlowError:
                await _timed_out(conn, stream, deps)
                return True
            route, response = await dispatch(deps.routes, request)
    except HttpError as exc:
        if isinstance(exc, HandshakeError):
            deps.metrics.protocol_errors_total.labels(exc.code).inc()
        response = error_response(exc.status, exc.code, exc.message, exc.headers)
    except StorageError as exc:
        # Reads that storage cannot answer right now (database unreachable,
        # events still in the outage spool): 503 with a hint, or 500 when
        # retrying cannot help.
        if exc.retryable:
            response = error_response(
                503, "storage_unavailable", exc.message, [(b"retry-after", b"1")]
            )
        else:
            response = error_response(500, "storage_error", "storage failed; see the server log")
            log.error("storage_read_failed", error=exc.message, path=target.path)
    deps.metrics.http_requests_total.labels(route, str(response.status)).inc()
    deps.metrics.http_request_seconds.labels(route).observe(time.perf_counter() - started)
    response.headers.append((b"x-request-id", request_id.encode("latin-1")))
    if origin is not None and route != "OPTIONS" and deps.auth.cors_allowed(origin):
        response.headers.extend(origins.cors_headers(origin))
    response.headers.extend(origins.security_headers(target.path, response.headers))
    try:
        await _send(conn, stream, response, stall=deps.config.http_write_timeout)
    except trio.TooSlowError:
        # The client stopped reading (or reads slower than the limit): it
        # must not hold the answer -- a page of events -- for long.
        deps.metrics.http_write_timeouts_total.inc()
        deps.warn("http_write_timeout", timeout_s=deps.config.http_write_timeout, route=route)
        return True
    return False


def _preflight(deps: HttpDeps, origin: str | None) -> Response:
    """A CORS preflight: 204 with the allowed methods and headers for an
    origin some tenant allows, 403 for any other."""
    if origin is None or not deps.auth.cors_allowed(origin):
        raise HttpError(403, "origin_not_allowed", "cross-origin requests from here are refused")
    return Response(204, headers=origins.preflight_headers(origin))


async def _upgrade(
    conn: h11.Connection,
    stream: trio.SocketStream,
    event: h11.Request,
    request: Request,
    deps: HttpDeps,
    deadline: float,
) -> bool | _Upgraded:
    """Accept a WebSocket upgrade (the caller serves it), or answer why not
    (raises HttpError); True when the connection must close."""
    accept = check_upgrade(event)
    kind, codec = _upgrade_query(request, deps)
    if deps.draining():
        raise HttpError(503, "draining", "server is shutting down")
    # 401/403 before the upgrade (replaywire.auth.principals).
    if kind == "tracker":
        principal = deps.auth.tracker(request.query, request.headers)
    else:
        principal = deps.auth.viewer(request.query, request.headers)
    structlog.contextvars.bind_contextvars(tenant=principal.tenant)
    deflate, extension_headers = _negotiate_deflate(event, deps)
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept),
        *extension_headers,
        (b"x-request-id", request.request_id.encode("latin-1")),
    ]
    if not await _switch_protocols(conn, stream, headers, deps, deadline):
        return True
    trailing, _ = conn.trailing_data
    return _Upgraded(
        _open_websocket(stream, bytes(trailing), deflate, deps), kind, principal, codec
    )


def _upgrade_query(request: Request, deps: HttpDeps) -> tuple[str, str]:
    """The upgrade's ``type`` and a viewer's ``codec`` (400 if unknown)."""
    kind = request.query.get("type", "")
    if kind not in ("tracker", "viewer"):
        raise HttpError(400, "bad_request", "query parameter type must be 'tracker' or 'viewer'")
    kind = "tracker" if kind == "tracker" else "viewer"  # the constant, not a string per connection
    codec = request.query.get("codec", "none")
    if codec not in VIEWER_CODECS:
        raise HttpError(400, "bad_request", f"query parameter codec must be one of {VIEWER_CODECS}")
    if BY_NAME[codec].dictionary and not deps.config.viewer_dictionary:
        raise HttpError(400, "bad_request", "codec=zstd-dict: this server has no VIEWER_DICTIONARY")
    return kind, codec


def _negotiate_deflate(
    event: h11.Request, deps: HttpDeps
) -> tuple[DeflateParams | None, list[tuple[bytes, bytes]]]:
    """permessage-deflate as agreed with the client's offers (when
    ``WS_DEFLATE`` is on), and the response header that says so."""
    if not deps.config.ws_deflate:
        return None, []
    agreed = negotiate_deflate(
        (value for name, value in event.headers if name == b"sec-websocket-extensions"),
        client_window_bits=deps.config.ws_deflate_client_window_bits,
    )
    if agreed is None:
        return None, []
    response_value, deflate = agreed
    return deflate, [(b"sec-websocket-extensions", response_value)]


async def _switch_protocols(
    conn: h11.Connection,
    stream: trio.SocketStream,
    headers: list[tuple[bytes, bytes]],
    deps: HttpDeps,
    deadline: float,
) -> bool:
    """Send the 101 once h11 has seen the end of the (empty) request, which
    it needs to allow the switch. False when the connection must close
    instead (the peer left, or its request body never ended)."""
    try:
        with trio.fail_at(deadline):
            while (ev := await _next_event(conn, stream)) is not h11.PAUSED:
                if isinstance(ev, h11.ConnectionClosed):
                    return False
    except trio.TooSlowError:  # an upgrade request with a body that never ends
        await _timed_out(conn, stream, deps)
        return False
    response = h11.InformationalResponse(
        status_code=101, reason=b"Switching Protocols", headers=headers
    )
    await _send_event(conn, stream, response)
    deps.metrics.http_requests_total.labels("/ws", "101").inc()
    return True


def _open_websocket(
    stream: trio.SocketStream, trailing: bytes, deflate: DeflateParams | None, deps: HttpDeps
) -> WebSocket:
    """The upgraded connection, on the configured frame codec (``WS_BACKEND``):
    the Rust core's, or wsproto's for comparison. ``trailing``: what the
    request's reads took past its end."""
    if deps.config.ws_backend == "wsproto":
        return WsprotoWebSocket(
            stream,
            trailing,
            max_message_bytes=deps.config.max_message_bytes,
            on_close=deps.count_close,
            deflate=deflate,
            budget=deps.inflight,
        )
    decoder = _core.FrameDecoder(
        max_frame_bytes=deps.config.max_frame_bytes,
        max_message_bytes=deps.config.max_message_bytes,
        deflate_window_bits=deflate.client_max_window_bits if deflate else None,
        deflate_no_context_takeover=deflate.client_no_context_takeover if deflate else False,
        # A message over the limits is answered (payload_too_large) and the
        # connection goes on; see docs/protocol.md.
        skip_oversized=True,
    )
    return WebSocket(
        stream, decoder, trailing, on_close=deps.count_close, deflate=deflate, budget=deps.inflight
    )


async def _next_request(conn: h11.Connection, stream: trio.SocketStream, limit: int) -> h11.Event:
    """The next request head (or ``ConnectionClosed``), of at most ``limit``
    bytes; raises RemoteProtocolError with the status hint 431 beyond.

    h11's own bound (``max_incomplete_event_size``) is only checked while a
    head is incomplete, so a longer head arriving in one read would pass.
    Here the reads are cut so that no more than ``limit`` bytes of a head are
    ever fed: a head that is not complete by then is longer than ``limit``.
    What the client sent past the head (a body, a WebSocket frame) stays in
    the socket for the next reads."""
    fed = len(conn.trailing_data[0])  # a pipelined request's first bytes
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]
        room = limit - fed
        if room <= 0:
            raise h11.RemoteProtocolError(f"request head over {limit} bytes", error_status_hint=431)
        data = await stream.receive_some(min(READ_SIZE, room))
        fed += len(data)
        conn.receive_data(data)


async def _next_event(
    conn: h11.Connection, stream: trio.SocketStream
) -> h11.Event | type[h11.PAUSED]:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(READ_SIZE))
            continue
        return event  # type: ignore[return-value]


async def _read_body(conn: h11.Connection, stream: trio.SocketStream) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY:
                raise HttpError(413, "payload_too_large", f"request body over {MAX_BODY} bytes")
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise HttpError(400, "bad_request", "incomplete request body")


WRITE_SLICE = 256 * 1024  # each slice of an answer must go within HTTP_WRITE_TIMEOUT


async def _send(
    conn: h11.Connection,
    stream: trio.SocketStream,
    response: Response,
    *,
    stall: float | None = None,
) -> None:
    """Write ``response``. With ``stall``, each ``WRITE_SLICE`` bytes must
    be taken by the client's socket within ``stall`` seconds, else
    ``trio.TooSlowError`` (the caller closes the connection)."""
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(response.length).encode()),
        *response.headers,
    ]
    # Answers that did not go through _serve_request (408, malformed HTTP).
    headers.extend(origins.security_headers("", headers))
    # API answers are never cached; the static assets set their own policy.
    if not any(name == b"cache-control" for name, _ in response.headers):
        headers.append((b"cache-control", b"no-store"))
    if response.status >= 400 and response.status != 404:
        headers.append((b"connection", b"close"))
    try:
        await _send_event(
            conn,
            stream,
            h11.Response(
                status_code=response.status, headers=headers, reason=_reason(response.status)
            ),
        )
        if response.body:
            for piece in conn.send_with_data_passthrough(h11.Data(data=response.body)) or ():
                await _send_all(stream, piece, stall)
        for part in response.parts:
            # Passed through as it is: h11 would join it into new bytes.
            data = h11.Data(data=part)  # type: ignore[arg-type]  # h11 passes views through
            for piece in conn.send_with_data_passthrough(data) or ():
                await _send_all(stream, piece, stall)
        await _send_event(conn, stream, h11.EndOfMessage())
    except h11.LocalProtocolError:
        return


async def _send_all(
    stream: trio.SocketStream, data: bytes | memoryview, stall: float | None
) -> None:
    if stall is None or len(data) <= WRITE_SLICE:
        with trio.fail_after(stall) if stall is not None else contextlib.nullcontext():
            await stream.send_all(data)
        return
    view = memoryview(data)
    for start in range(0, len(view), WRITE_SLICE):
        with trio.fail_after(stall):
            await stream.send_all(view[start : start + WRITE_SLICE])


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _send_event(conn: h11.Connection, stream: trio.SocketStream, event: h11.Event) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)
