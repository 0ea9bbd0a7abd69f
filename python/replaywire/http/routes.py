"""The REST API. Every route is documented in ``openapi.json`` (served at
``GET /openapi.json``); keep the two in step."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import HttpError
from ..protocol.frames import json_string
from . import encoding, static
from .responses import Response, json_response

if TYPE_CHECKING:
    from ..app import Server


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    request_id: str
    client: str


Handler = Callable[["Server", Request, dict[str, str]], Awaitable[Response]]
_ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler; ``{name}`` in the pattern matches one path segment."""
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, regex, pattern, handler))
        return handler

    return register


async def dispatch(server: Server, request: Request) -> tuple[str, Response]:
    """Find and run the handler; returns the route pattern (a bounded metric
    label) and the response. Unknown paths 404, known paths with another
    method 405."""
    allowed: list[str] = []
    for method, regex, pattern, handler in _ROUTES:
        match = regex.match(request.path)
        if match is None:
            continue
        if method != request.method and not (method == "GET" and request.method == "HEAD"):
            allowed.append(method)
            continue
        response = await handler(server, request, match.groupdict())
        if request.method == "HEAD":
            response.body = b""
        return pattern, response
    if allowed:
        raise HttpError(
            405,
            "method_not_allowed",
            f"use {', '.join(allowed)}",
            [(b"allow", ", ".join(allowed).encode())],
        )
    raise HttpError(404, "not_found", f"no route for {request.path}")


def _int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, "bad_parameter", f"{name} must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise HttpError(400, "bad_parameter", f"{name} must be at least {minimum}{bound}")
    return value


@route("GET", "/")
async def root(server: Server, request: Request, params: dict[str, str]) -> Response:
    return json_response({"name": "replaywire", "version": __version__})


@route("GET", "/health/live")
async def live(server: Server, request: Request, params: dict[str, str]) -> Response:
    return json_response({"status": "alive"})


@route("GET", "/health/ready")
async def ready(server: Server, request: Request, params: dict[str, str]) -> Response:
    health = await server.health()
    return json_response(health, 503 if health["status"] == "unavailable" else 200)


@route("GET", "/health")
async def health(server: Server, request: Request, params: dict[str, str]) -> Response:
    health = await server.health()
    return json_response(health, 503 if health["status"] == "unavailable" else 200)


@route("GET", "/stats")
async def stats(server: Server, request: Request, params: dict[str, str]) -> Response:
    data = server.stats()
    cluster = await server.cluster.presence.cluster_stats()
    if cluster is not None:
        data["cluster"] = cluster
    return json_response(data)


@route("GET", "/metrics")
async def metrics(server: Server, request: Request, params: dict[str, str]) -> Response:
    body, content_type = server.metrics.render()
    return Response(200, body, content_type.encode())


@route("GET", "/openapi.json")
async def openapi(server: Server, request: Request, params: dict[str, str]) -> Response:
    return Response(200, _openapi_document())


@route("GET", "/sessions/active")
async def active_sessions(server: Server, request: Request, params: dict[str, str]) -> Response:
    limit = _int_param(request, "limit", 1000, minimum=1, maximum=10_000)
    return json_response(await server.cluster.presence.active_sessions(limit))


@route("DELETE", "/sessions/cleanup")
async def cleanup(server: Server, request: Request, params: dict[str, str]) -> Response:
    default = int(server.config.session_idle_timeout)
    idle = _int_param(request, "idle_seconds", default, minimum=0)
    ended = await server.hub.end_idle(idle, "cleanup")
    return json_response({"ended": ended, "count": len(ended)})


@route("GET", "/sessions/{session_id}")
async def get_session(server: Server, request: Request, params: dict[str, str]) -> Response:
    record = await server.hub.get_record(params["session_id"])
    if record is None:
        raise HttpError(404, "unknown_session", f"no session {params['session_id']!r}")
    data = record.to_json()
    live = server.hub.live.get(record.session_id)
    data["live"] = live is not None and not live.ended
    data["viewers"] = live.viewers if live is not None else 0
    return json_response(data)


@route("GET", "/sessions/{session_id}/events")
async def get_events(server: Server, request: Request, params: dict[str, str]) -> Response:
    sid = params["session_id"]
    config = server.config
    from_index = _int_param(request, "from_index", 0)
    limit = _int_param(
        request, "limit", config.max_history_limit, minimum=1, maximum=config.max_history_limit
    )
    if await server.hub.get_record(sid) is None:
        raise HttpError(404, "unknown_session", f"no session {sid!r}")
    coding = encoding.negotiate(request.headers.get("accept-encoding", ""))
    # Stored zstd chunks are sent as stored when the client reads zstd; a
    # plain page is sent in pieces, never joined (events may be 50 MB).
    wanted = {"zstd": "zstd", None: "parts"}.get(coding, "none")
    page = await server.hub.history(sid, from_index, limit, wanted)
    head = b'{"sessionId":%b,"fromIndex":%d,"count":%d,"nextIndex":%d,"events":' % (
        json_string(sid),
        page.first_index,
        page.count,
        page.next_index,
    )
    if page.codec == "zstd":
        body = encoding.zstd_frame(head) + page.events + encoding.zstd_frame(b"}")
        return Response(200, body, headers=encoding.encoded_headers("zstd"))
    if page.codec == "parts":
        return Response(
            200, parts=(head, *page.parts, b"}"), headers=encoding.encoded_headers(None)
        )
    body, headers = await encoding.encode(coding, head + page.events + b"}")
    return Response(200, body, headers=headers)


_OPENAPI: bytes | None = None


def _openapi_document() -> bytes:
    global _OPENAPI
    if _OPENAPI is None:
        text = resources.files("replaywire").joinpath("openapi.json").read_bytes()
        doc = json.loads(text)
        doc["info"]["version"] = __version__
        _OPENAPI = json.dumps(doc).encode()
    return _OPENAPI


# The browser assets (http/static.py): the viewer page and the tracker script.
@route("GET", "/viewer")
async def viewer_page(server: Server, request: Request, params: dict[str, str]) -> Response:
    return static.serve("index.html", request.headers.get("if-none-match", ""))


@route("GET", "/viewer/{name}")
async def viewer_asset(server: Server, request: Request, params: dict[str, str]) -> Response:
    return static.serve(params["name"], request.headers.get("if-none-match", ""))


@route("GET", "/tracker.js")
async def tracker_script(server: Server, request: Request, params: dict[str, str]) -> Response:
    return static.serve("tracker.js", request.headers.get("if-none-match", ""))
