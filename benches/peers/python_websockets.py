"""A reference ingest server on the Python ``websockets`` library (asyncio),
speaking the tracker side of replaywire's protocol (docs/protocol.md), so the
benchmark suite can put replaywire next to what people would otherwise write
in Python. It does the work replaywire does in its memory mode, the way an
idiomatic asyncio server would, with the usual speed-ups: uvloop for the
event loop and orjson for JSON when they are installed (the ``bench`` extra
brings both), the standard library otherwise (``--version`` says which).

- ``GET /ws?type=tracker`` upgrades (no credentials: replaywire's
  development mode); any other path or type is answered 400;
- every text message is parsed as JSON; ``session_start`` answers
  ``session_started`` with ``nextSeq`` and ``nextIndex``, ``session_end``
  answers ``session_ended``;
- ``events_batch``: every event must be an object with an integer ``type``
  and a numeric ``timestamp``, or the batch is refused whole
  (``invalid_event``); accepted events go into the session's ring buffer
  (a ``deque`` bounded by count, like MAX_EVENTS_PER_SESSION), and the
  batch is acked with ``{"type":"ack","data":{"sessionId":…,"seq":…}}``. A
  seq already accepted is acked again and not stored twice; one too far
  ahead is refused.

Sessions live in a process-wide dict, so a reconnecting tracker resumes.
Left out: storage, viewers, compressed binary messages, credentials and
rate limits (none of which the ingest benchmark uses), and write coalescing:
``websockets`` writes each ``send()`` to the transport at once and has no
public way to batch the acks of one read into one write.

    python benches/peers/python_websockets.py --port 9000   # until SIGTERM/SIGINT
    python benches/peers/python_websockets.py --version     # versions, as JSON

``--no-gc`` turns the cyclic garbage collector off (the ring buffers hold
hundreds of thousands of parsed events, which every full collection walks);
the suite runs the peer as shipped, with the collector on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

loads: Callable[[str], Any]
try:
    import orjson

    loads, JSON_LIBRARY = orjson.loads, f"orjson {metadata.version('orjson')}"
except ImportError:
    loads, JSON_LIBRARY = json.loads, "json (stdlib)"

MAX_EVENTS_PER_SESSION = 20_000  # replaywire's defaults
MAX_EVENTS_PER_BATCH = 10_000
MAX_SESSIONS_PER_CONNECTION = 16
MAX_SEQ_WINDOW = 4096
MAX_MESSAGE_BYTES = 64 * 1024 * 1024 + 256 * 1024


class Refused(Exception):
    """A message answered with an ``error`` (the connection goes on)."""

    def __init__(self, code: str, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.seq = code, message, seq


class Session:
    """A live session: its newest events and which seqs were accepted (a
    watermark plus the few above it)."""

    __slots__ = ("above", "events", "id", "id_json", "next_index", "next_seq")

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.id_json = json.dumps(session_id)
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS_PER_SESSION)
        self.next_index = 0  # events ever appended
        self.next_seq = 0
        self.above: set[int] = set()

    def seen(self, seq: int) -> bool:
        return seq < self.next_seq or seq in self.above

    def add(self, seq: int, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)
        self.next_index += len(events)
        if seq == self.next_seq:
            self.next_seq += 1
            while self.next_seq in self.above:
                self.above.remove(self.next_seq)
                self.next_seq += 1
        elif seq > self.next_seq:
            self.above.add(seq)


SESSIONS: dict[str, Session] = {}  # live sessions by id


def _message(type_: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": type_, "data": data}, separators=(",", ":"))


def _session_of(own: dict[str, Session], session_id: object, seq: int | None) -> Session:
    if session_id is None:
        if len(own) != 1:
            raise Refused(
                "unknown_session",
                "sessionId is required when the connection has no or several sessions",
                seq,
            )
        return next(iter(own.values()))
    session = own.get(session_id) if isinstance(session_id, str) else None
    if session is None:
        raise Refused(
            "unknown_session", f"session {session_id!r} was not started on this connection", seq
        )
    return session


def _start(own: dict[str, Session], data: dict[str, Any]) -> str:
    sid = data.get("sessionId")
    if not isinstance(sid, str) or not 1 <= len(sid) <= 128:
        raise Refused("invalid_message", "sessionId must be a string of 1-128 characters")
    if sid not in own and len(own) >= MAX_SESSIONS_PER_CONNECTION:
        raise Refused(
            "session_limit", f"at most {MAX_SESSIONS_PER_CONNECTION} sessions per connection"
        )
    session = SESSIONS.get(sid)
    if session is None:
        session = SESSIONS[sid] = Session(sid)
    own[sid] = session
    return _message(
        "session_started",
        {"sessionId": sid, "nextSeq": session.next_seq, "nextIndex": session.next_index},
    )


def _batch(own: dict[str, Session], data: dict[str, Any]) -> str:
    seq = data.get("seq")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise Refused("invalid_message", "seq must be an integer >= 0")
    session_id = data.get("sessionId")
    if session_id is not None and not isinstance(session_id, str):
        raise Refused("invalid_message", "sessionId must be a string", seq)
    events = data.get("events")
    if type(events) is not list:
        raise Refused("invalid_message", "events must be an array", seq)
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise Refused(
            "payload_too_large", f"more than {MAX_EVENTS_PER_BATCH} events in one batch", seq
        )
    for i, event in enumerate(events):
        if type(event) is not dict:
            raise Refused("invalid_event", f"event {i} of the batch is not an object", seq)
        # bool is an int subclass in Python, not in JSON: compare types exactly.
        if type(event.get("type")) is not int:
            raise Refused("invalid_event", f"event {i} of the batch has no integer 'type'", seq)
        if type(event.get("timestamp")) not in (int, float):
            raise Refused(
                "invalid_event", f"event {i} of the batch has no numeric 'timestamp'", seq
            )
    session = _session_of(own, session_id, seq)
    if seq is None:
        seq = session.next_seq
    if not session.seen(seq):
        if seq >= session.next_seq + MAX_SEQ_WINDOW:
            raise Refused(
                "seq_out_of_window",
                f"seq {seq} is more than {MAX_SEQ_WINDOW} ahead of {session.next_seq}",
                seq,
            )
        session.add(seq, events)
    return f'{{"type":"ack","data":{{"sessionId":{session.id_json},"seq":{seq}}}}}'


def _end(own: dict[str, Session], data: dict[str, Any]) -> str:
    session = _session_of(own, data.get("sessionId"), None)
    del own[session.id]
    SESSIONS.pop(session.id, None)
    return _message("session_ended", {"sessionId": session.id})


HANDLERS = {"events_batch": _batch, "session_start": _start, "session_end": _end}


def answer(own: dict[str, Session], raw: str | bytes) -> str:
    """The answer to one message: an ack, another reply or an error."""
    seq = None
    try:
        if isinstance(raw, bytes):
            raise Refused("invalid_message", "this server takes no compressed binary messages")
        try:
            message = loads(raw)
        except ValueError as exc:
            raise Refused("invalid_message", f"not JSON: {exc}") from None
        data = message.get("data") if type(message) is dict else None
        kind = message.get("type") if type(message) is dict else None
        if type(data) is not dict or type(kind) is not str:
            raise Refused("invalid_message", 'expected {"type": string, "data": object}')
        if type(data.get("seq")) is int:
            seq = data["seq"]
        handler = HANDLERS.get(kind)
        if handler is None:
            raise Refused("unknown_message_type", f"unknown message type {kind!r}")
        return handler(own, data)
    except Refused as exc:
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if (exc.seq if exc.seq is not None else seq) is not None:
            error["seq"] = exc.seq if exc.seq is not None else seq
        return _message("error", error)


def _tracker_only(connection: ServerConnection, request: Request) -> Response | None:
    """Refuse anything but ``/ws?type=tracker`` before the upgrade."""
    url = urlsplit(request.path)
    if url.path != "/ws" or parse_qs(url.query).get("type") != ["tracker"]:
        return connection.respond(HTTPStatus.BAD_REQUEST, "expected /ws?type=tracker\n")
    return None


async def track(websocket: ServerConnection) -> None:
    """One tracker connection: answer its messages in order until it
    closes. A tracker that goes away without a close frame (as the load
    generator does at its deadline) is no error here."""
    own: dict[str, Session] = {}
    with contextlib.suppress(ConnectionClosed):
        async for raw in websocket:
            await websocket.send(answer(own, raw))


async def main(port: int, host: str) -> None:
    async with serve(
        track,
        host,
        port,
        process_request=_tracker_only,
        max_size=MAX_MESSAGE_BYTES,
        ping_interval=None,  # replaywire does not ping trackers either
    ) as server:
        await server.serve_forever()


def versions() -> dict[str, str]:
    """What this peer runs on: the libraries it found, with their versions."""
    try:
        import uvloop  # noqa: F401

        loop = f"uvloop {metadata.version('uvloop')}"
    except ImportError:
        loop = "asyncio (stdlib)"
    return {
        "python": sys.version.split()[0],
        "websockets": metadata.version("websockets"),
        "loop": loop,
        "json": JSON_LIBRARY,
    }


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--no-gc", action="store_true", help="turn the cyclic GC off")
    parser.add_argument("--version", action="store_true", help="print versions as JSON")
    args = parser.parse_args()
    if args.version:
        print(json.dumps(versions()))
        return 0
    if args.no_gc:
        gc.disable()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.port, args.host))
    else:
        uvloop.run(main(args.port, args.host))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(run())
