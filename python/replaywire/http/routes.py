"""The REST API. Every route is documented in ``openapi.json`` (served at
``GET /openapi.json``); keep the two in step."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

import trio

from .. import __version__
from ..auth import ADMIN, READ, Auth, Principal, client_id
from ..errors import HttpError
from ..protocol.frames import json_string
from . import encoding, listing, static
from .responses import Response, error_response, json_response

if TYPE_CHECKING:
    from ..config import Config
    from ..observability.metrics import Metrics
    from ..protocol.dictionary import Dictionary
    from ..redis.presence import Presence
    from ..sessions import Hub
    from ..sessions.history import EventsPage
    from ..storage import Storage


@dataclass(frozen=True, slots=True)
class RouteDeps:
    """What the REST routes use of the server, and nothing else: built once
    by the server (replaywire.app) and passed to every handler."""

    config: Config
    auth: Auth  # the bearer tokens of scoped routes
    hub: Hub  # live sessions, history, and the writer's reads
    storage: Storage  # read through ``hub.writer.read``
    presence: Presence  # every instance's sessions (Redis), or this one's
    metrics: Metrics
    dictionary: Dictionary | None  # codec=zstd-dict's, when configured
    health: Callable[[], Awaitable[dict[str, Any]]]  # readiness, with its reasons
    # How far another instance holding a session has taken it (None: the
    # tail is here or in storage); see Relay.head.
    held_head: Callable[[str], Awaitable[int | None]]
    stats: Callable[[], dict[str, Any]]  # the operator's counters


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    request_id: str
    client: str
    # Who is asking (replaywire.auth): set by dispatch for routes that need
    # a scope, and by the WebSocket upgrade.
    principal: Principal | None = None

    @property
    def who(self) -> Principal:
        assert self.principal is not None, "route registered without a scope"
        return self.principal


Handler = Callable[[RouteDeps, Request, dict[str, str]], Awaitable[Response]]
_ROUTES: list[tuple[str, re.Pattern[str], str, Handler, str | None]] = []


def route(method: str, pattern: str, scope: str | None = None) -> Callable[[Handler], Handler]:
    """Register a handler; ``{name}`` in the pattern matches one path segment.
    With a ``scope`` (``read``, ``admin``) the request must carry a bearer
    token granting it (401/403 otherwise, before the handler runs), and the
    handler finds its tenant in ``request.who``."""
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(handler: Handler) -> Handler:
        _ROUTES.append((method, regex, pattern, handler, scope))
        return handler

    return register


async def dispatch(deps: RouteDeps, request: Request) -> tuple[str, Response]:
    """Find and run the handler; returns the route pattern (a bounded metric
    label) and the response. Unknown paths 404, known paths with another
    method 405. A path that a route names literally is that route's only, as
    in OpenAPI: ``/sessions/cleanup`` is not also ``/sessions/{session_id}``
    (so GET there is 405, not the metadata of a session named "cleanup")."""
    allowed: list[str] = []
    matches = [(route, m) for route in _ROUTES if (m := route[1].match(request.path))]
    if any("{" not in route[2] for route, _ in matches):
        matches = [(route, m) for route, m in matches if "{" not in route[2]]
    for (method, _, pattern, handler, scope), match in matches:
        if method != request.method and not (method == "GET" and request.method == "HEAD"):
            allowed.append(method)
            continue
        try:
            if scope is not None:
                request.principal = deps.auth.rest(request.headers, scope)
            response = await handler(deps, request, match.groupdict())
        except HttpError as exc:
            # Answered here, so that it is counted under its route, not "?".
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        if request.method == "HEAD":
            response.strip_body()
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
async def root(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return json_response({"name": "replaywire", "version": __version__})


@route("GET", "/health/live")
async def live(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return json_response({"status": "alive"})


@route("GET", "/health/ready")
async def ready(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    health = await deps.health()
    return json_response(health, 503 if health["status"] == "unavailable" else 200)


@route("GET", "/health")
async def health(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    health = await deps.health()
    return json_response(health, 503 if health["status"] == "unavailable" else 200)


@route("GET", "/stats", READ)
async def stats(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    who = request.who
    if not who.allows(ADMIN):
        # The read scope sees its own tenant's live sessions only; the
        # server's counters (storage, buffers, other instances) are the
        # operator's business.
        mine = [s for key, s in deps.hub.live.items() if who.owns(key)]
        return json_response(
            {
                "version": __version__,
                "tenant": who.tenant,
                "sessions": {"active": len(mine)},
                "viewers": sum(s.viewers for s in mine),
            }
        )
    data = deps.stats()
    cluster = await deps.presence.cluster_stats()
    if cluster is not None:
        data["cluster"] = cluster
    return json_response(data)


@route("GET", "/metrics")
async def metrics(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    body, content_type = deps.metrics.render()
    return Response(200, body, content_type.encode())


@route("GET", "/openapi.json")
async def openapi(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return Response(200, _openapi_document())


@route("GET", "/sessions", READ)
async def list_sessions(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    """The tenant's stored sessions, newest first: the viewer's session
    list, with its filters (``user``, ``url``, ``since``, ``until``,
    ``live``, ``min_duration``, ``status``; see :func:`listing.parse`)
    and pages (``nextCursor``, given back as ``cursor``). Live sessions not
    flushed yet show up within a flush (``BATCH_INTERVAL``); ``live`` and
    ``viewers`` are this instance's view of each."""
    limit = _int_param(request, "limit", 50, minimum=1, maximum=1000)
    status, where = listing.parse(request.query)
    prefix = request.who.key("")
    # One more than asked: whether another page follows, without a request
    # that comes back empty.
    records = await deps.hub.writer.read(
        partial(
            deps.storage.list_sessions, status=status, limit=limit + 1, prefix=prefix, where=where
        )
    )
    page, more = records[:limit], len(records) > limit
    sessions = []
    for r in page:
        live = deps.hub.live.get(r.session_id)
        sessions.append(
            {
                **r.to_json(),
                "sessionId": client_id(r.session_id),
                "live": live is not None and not live.ended,
                "viewers": live.viewers if live is not None else 0,
            }
        )
    cursor = listing.cursor_after(page[-1]) if more else None
    return json_response({"count": len(sessions), "sessions": sessions, "nextCursor": cursor})


@route("GET", "/sessions/active", READ)
async def active_sessions(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    limit = _int_param(request, "limit", 1000, minimum=1, maximum=10_000)
    who = request.who
    # Presence lists every tenant's sessions, by key: keep this tenant's,
    # under the ids its clients know. (Presence holds each instance's
    # 5,000 newest sessions; the count is of those seen.)
    view = await deps.presence.active_sessions(10_000)
    mine = [
        {**item, "sessionId": client_id(item["sessionId"])}
        for item in view["sessions"]
        if who.owns(str(item.get("sessionId", "")))
    ]
    view["sessions"], view["count"] = mine[:limit], len(mine)
    return json_response(view)


@route("DELETE", "/sessions/cleanup", ADMIN)
async def cleanup(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    default = int(deps.config.session_idle_timeout)
    idle = _int_param(request, "idle_seconds", default, minimum=0)
    # Only the asking tenant's sessions: an admin token is a tenant's too.
    ended = await deps.hub.end_idle(idle, "cleanup", tenant=request.who.tenant)
    ids = [client_id(key) for key in ended]
    return json_response({"ended": ids, "count": len(ids)})


# Another tenant's session answers exactly like one that does not exist:
# the tenant's key for the id is simply not there (replaywire.auth.tenants).
@route("GET", "/sessions/{session_id}", READ)
async def get_session(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    record = await deps.hub.get_record(request.who.key(params["session_id"]))
    if record is None:
        raise HttpError(404, "unknown_session", f"no session {params['session_id']!r}")
    data = record.to_json()
    data["sessionId"] = params["session_id"]
    live = deps.hub.live.get(record.session_id)
    data["live"] = live is not None and not live.ended
    data["viewers"] = live.viewers if live is not None else 0
    return json_response(data)


@route("GET", "/sessions/{session_id}/events", READ)
async def get_events(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    sid = params["session_id"]
    key = request.who.key(sid)
    config = deps.config
    from_index = _int_param(request, "from_index", 0)
    limit = _int_param(
        request, "limit", config.max_history_limit, minimum=1, maximum=config.max_history_limit
    )
    if await deps.hub.get_record(key) is None:
        raise HttpError(404, "unknown_session", f"no session {sid!r}")
    coding = encoding.negotiate(request.headers.get("accept-encoding", ""))
    # Stored zstd chunks are sent as stored when the client reads zstd; a
    # plain page is sent in pieces, never joined (events may be 50 MB).
    wanted = {"zstd": "zstd", None: "parts"}.get(coding, "none")
    page = await _settled_history(deps, key, from_index, limit, wanted)
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


HELD_WAIT = 5.0  # seconds a read waits for another instance's accepted events to be stored
HELD_POLL = 0.02


async def _settled_history(
    deps: RouteDeps, key: str, from_index: int, limit: int, codec: str
) -> EventsPage:
    """The page, including what another instance holding the session live
    has accepted and not yet committed (one flush, ``BATCH_INTERVAL``):
    a short page is read again until storage reaches that instance's
    head, for at most ``HELD_WAIT``."""
    page = await deps.hub.history(key, from_index, limit, codec)
    if page.count >= limit:
        return page
    held = await deps.held_head(key)
    if held is None:
        return page
    with trio.move_on_after(HELD_WAIT):
        while page.next_index < min(held, from_index + limit):
            await trio.sleep(HELD_POLL)
            page = await deps.hub.history(key, from_index, limit, codec)
    return page


MAX_ERRORS_LIMIT = 1000  # most errors one GET /sessions/{id}/errors returns


@route("GET", "/sessions/{session_id}/errors", READ)
async def get_errors(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    """The errors answered to the session's tracker and the notices it sent
    (``snapshot_too_large``), newest first: why a session is incomplete.
    Errors are stored with the writer's next flush, so one answered a moment
    ago shows up within ``BATCH_INTERVAL``."""
    sid = params["session_id"]
    key = request.who.key(sid)
    limit = _int_param(request, "limit", 100, minimum=1, maximum=MAX_ERRORS_LIMIT)
    if await deps.hub.get_record(key) is None:
        raise HttpError(404, "unknown_session", f"no session {sid!r}")
    errors = await deps.hub.writer.read(deps.storage.session_errors, key, limit)
    return json_response({"sessionId": sid, "errors": [e.to_json() for e in errors]})


@route("GET", "/dictionaries/{dictionary_id}", READ)
async def get_dictionary(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    """The zstd dictionary of ``codec=zstd-dict`` frames, by the id that
    ``viewer_joined`` and every frame name. It never changes under its id,
    so it may be cached for good; read access, as it holds fragments of the
    sessions it was trained on."""
    used = deps.dictionary
    if used is None or params["dictionary_id"] != str(used.id):
        raise HttpError(404, "unknown_dictionary", f"no dictionary {params['dictionary_id']!r}")
    headers = [(b"cache-control", b"private, max-age=31536000, immutable")]
    return Response(200, used.data, b"application/octet-stream", headers)


_OPENAPI: bytes | None = None


def _openapi_document() -> bytes:
    global _OPENAPI
    if _OPENAPI is None:
        text = resources.files("replaywire").joinpath("openapi.json").read_bytes()
        doc = json.loads(text)
        doc["info"]["version"] = __version__
        _OPENAPI = json.dumps(doc).encode()
    return _OPENAPI


# The browser assets (http/static.py): the viewer page, the tracker script
# and the viewer's icon, also where browsers ask for one first.
@route("GET", "/viewer")
@route("GET", "/viewer/")
async def viewer_page(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return static.viewer_page(request.headers.get("if-none-match", ""))


# A session's shareable link: the same page, which reads the id from its path.
@route("GET", "/viewer/sessions/{session_id}")
async def viewer_session_page(
    deps: RouteDeps, request: Request, params: dict[str, str]
) -> Response:
    return static.viewer_page(request.headers.get("if-none-match", ""))


@route("GET", "/viewer/{name}")
async def viewer_asset(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return static.serve(params["name"], request.headers.get("if-none-match", ""))


@route("GET", "/tracker.js")
async def tracker_script(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return static.serve("tracker.js", request.headers.get("if-none-match", ""))


@route("GET", "/favicon.ico")
async def favicon(deps: RouteDeps, request: Request, params: dict[str, str]) -> Response:
    return static.serve("favicon.svg", request.headers.get("if-none-match", ""))
