"""The bad-input table of docs/protocol.md ("Bad input"), as data.

Each :class:`BadInput` sends one bad input through a real interface and
checks the exact answer: a raw socket for broken HTTP and frames (what
client libraries refuse to send, :mod:`e2e.rawws`), trio-websocket for
protocol messages, urllib for REST. ``answer`` and ``metric`` are what the
doc's row says; ``tests/e2e/test_bad_input.py`` runs every case beside a
control tracker session and checks that the doc and this table agree.

Cases run as tenant ``acme`` (``auth.tenants``). Tracker cases first start
a *victim* session on the connection they are about to abuse and get one
batch acked, so that the test can check that nothing acked is lost, even
when the connection is closed for what came after.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import trio
import zstandard
from trio_websocket import WebSocketConnection

from auth.tenants import ACME_READ, BETA_READ, KEYS, open_tracker, open_viewer
from e2e.clients import http, recv_json, start_session
from e2e.control import read_events
from e2e.rawws import client_frame, handshake, next_json, read_close
from replaywire import Server, _core
from rrweb import batch_message, session_events, start_message

# The limits of every server of the table: small enough to pass cheaply.
LIMITS: dict[str, Any] = {
    "max_request_bytes": 8 * 1024,
    "max_frame_bytes": 256 * 1024,
    "max_message_bytes": 256 * 1024,
    "max_event_bytes": 128 * 1024,
    "max_events_per_batch": 50,
    "max_seq_window": 1000,
}
MAX_BODY = 1024 * 1024  # replaywire.http.server.MAX_BODY
TRACKER = f"/ws?type=tracker&key={KEYS['acme']}"
VICTIM = "victim"
T, C = _core.OP_TEXT, _core.OP_CONTINUATION
PING, CLOSE = _core.OP_PING, _core.OP_CLOSE


class Metric(NamedTuple):
    """A counter sample that one bad input adds exactly 1 to."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:  # as the doc's table writes it
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return self.name.removeprefix("replaywire_") + (f"{{{inner}}}" if inner else "")


def errors(code: str) -> Metric:
    return Metric("replaywire_protocol_errors_total", (("code", code),))


def requests(route: str, status: int) -> Metric:
    return Metric("replaywire_http_requests_total", (("route", route), ("status", str(status))))


DUPLICATES = Metric("replaywire_batches_duplicate_total")
STARTED = Metric("replaywire_sessions_started_total")


@dataclass
class Probe:
    """What a case sends its bad input with, and what the test checks after:
    ``acked`` holds, per session of acme, every event acked to it."""

    server: Server
    acked: dict[str, list[bytes]] = field(default_factory=dict)
    _seed: int = 100

    def events(self, count: int) -> list[bytes]:
        self._seed += 1
        return list(session_events(count, seed=self._seed))

    async def http(self, request: bytes, *, eof: bool = False) -> tuple[int, dict[str, str], Any]:
        return await raw_http(self.server.port, request, eof=eof)

    @asynccontextmanager
    async def raw_tracker(self, extensions: bytes = b"") -> AsyncIterator[RawTracker]:
        extra = b"Sec-WebSocket-Extensions: %b\r\n" % extensions if extensions else b""
        stream, head = await handshake(self.server.port, TRACKER, extra=extra)
        async with stream:
            assert head.startswith(b"HTTP/1.1 101"), head
            tracker = RawTracker(self, stream)
            await tracker.start_victim()
            yield tracker

    @asynccontextmanager
    async def tracker(self, victim: bool = True) -> AsyncIterator[Tracker]:
        async with open_tracker(self.server, "acme") as ws:
            tracker = Tracker(self, ws)
            if victim:
                await tracker.start_victim()
            yield tracker


class _Session:
    """Sending and answers, shared by both kinds of tracker connection."""

    probe: Probe

    async def send(self, *messages: str | bytes) -> None:
        raise NotImplementedError

    async def reply(self) -> dict[str, Any]:
        raise NotImplementedError

    async def start_victim(self) -> None:
        await self.send(start_message(VICTIM))
        assert (await self.reply())["type"] == "session_started"
        await self.batch(0, self.probe.events(5))

    async def batch(self, seq: int, events: list[bytes], session: str = VICTIM) -> None:
        """Send a batch that must be acked; remember its events."""
        await self.send(batch_message(session, seq, events).decode())
        reply = await self.reply()
        assert reply == {"type": "ack", "data": {"sessionId": session, "seq": seq}}, reply
        self.probe.acked.setdefault(session, []).extend(events)

    async def error(self, code: str, seq: int | None = None) -> dict[str, Any]:
        """The next answer, which must be an error frame with ``code``."""
        reply = await self.reply()
        assert reply["type"] == "error" and reply["data"]["code"] == code, reply
        assert reply["data"]["message"]
        assert reply["data"].get("seq") == seq, reply
        return reply["data"]  # type: ignore[no-any-return]


class Tracker(_Session):
    """An acme tracker on trio-websocket."""

    def __init__(self, probe: Probe, ws: WebSocketConnection) -> None:
        self.probe, self.ws = probe, ws

    async def send(self, *messages: str | bytes) -> None:
        for message in messages:
            await self.ws.send_message(message)

    async def reply(self) -> dict[str, Any]:
        return await recv_json(self.ws)


class RawTracker(_Session):
    """An acme tracker on a raw socket: frames as given, answers decoded
    with the core's decoder (server frames are unmasked)."""

    def __init__(self, probe: Probe, stream: trio.SocketStream) -> None:
        self.probe, self.stream = probe, stream
        self.decoder = _core.FrameDecoder(require_mask=False)

    async def send(self, *messages: str | bytes) -> None:
        for message in messages:
            data = message.encode() if isinstance(message, str) else message
            await self.stream.send_all(client_frame(T, data))

    async def frames(self, *frames: bytes) -> None:
        await self.stream.send_all(b"".join(frames))

    async def reply(self) -> dict[str, Any]:
        with trio.fail_after(10):
            return await next_json(self.stream, self.decoder)

    async def close_code(self) -> int | None:
        code, seen = await read_close(self.stream)
        assert not [e for e in seen if not isinstance(e, _core.WsPong)], seen
        return code


async def raw_http(
    port: int, request: bytes, *, eof: bool = False
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one raw request. ``eof``: shut down
    the sending side after it, as a client that gives up would."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    async with stream:
        try:
            await stream.send_all(request)
            if eof:
                await stream.send_eof()
        except trio.BrokenResourceError:
            pass  # answered and closed before reading it all: the answer is still there
        with trio.fail_after(10):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, json.loads(body) if body else None


def upgrade_request(
    target: str = TRACKER,
    *,
    method: bytes = b"GET",
    version: bytes = b"13",
    key: bytes = b"dGhlIHNhbXBsZSBub25jZQ==",
    connection: bool = True,
) -> bytes:
    return (
        b"%b %b HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n%bSec-WebSocket-Key: %b\r\n"
        b"Sec-WebSocket-Version: %b\r\n\r\n"
        % (method, target.encode(), b"Connection: Upgrade\r\n" if connection else b"", key, version)
    )


# --- how each kind of case answers ---------------------------------------------------

Send = Callable[[Probe], Awaitable[None]]


@dataclass(frozen=True)
class BadInput:
    """One row: ``id`` (the doc's test column), the ``send`` that sends the
    input and checks the answer, the ``answer`` as the doc writes it (every
    word must be in its answer column) and the ``metric`` that counts it.
    ``codecs``: False for inputs answered before any WebSocket codec runs
    (HTTP), which then run once instead of once per codec."""

    id: str
    send: Send
    answer: str
    metric: Metric
    codecs: bool = True


def http_case(
    id: str, request: bytes, status: int, code: str, metric: Metric, *, eof: bool = False
) -> BadInput:
    async def send(p: Probe) -> None:
        got, headers, body = await p.http(request, eof=eof)
        assert (got, body["error"]["code"]) == (status, code), (got, body)
        assert headers["content-type"] == "application/json"
        if status == 426 and code == "unsupported_version":
            assert headers["sec-websocket-version"] == "13"

    return BadInput(id, send, f"{status} {code}", metric, codecs=False)


def close_case(id: str, close_code: int, *frames: bytes, extensions: bytes = b"") -> BadInput:
    """Frames on a raw connection that must end it with ``close_code``."""

    async def send(p: Probe) -> None:
        async with p.raw_tracker(extensions) as tracker:
            await tracker.frames(*frames)
            assert await tracker.close_code() == close_code

    return BadInput(id, send, str(close_code), errors(str(close_code)))


def error_case(
    id: str, message: str | bytes, code: str, seq: int | None = None, *, victim: bool = True
) -> BadInput:
    """A message on a trio-websocket tracker answered with an error frame;
    the connection goes on (the next batch is acked)."""

    async def send(p: Probe) -> None:
        async with p.tracker(victim) as tracker:
            await tracker.send(message)
            await tracker.error(code, seq)
            if not victim:
                await tracker.start_victim()
            await tracker.batch(1, p.events(3))

    return BadInput(id, send, code, errors(code))


def batch_text(events: list[bytes] | bytes, seq: int = 1, session: str = VICTIM) -> str:
    """An events_batch; ``events`` as a list, or the raw JSON of the field."""
    raw = events if isinstance(events, bytes) else b"[" + b",".join(events) + b"]"
    data = f'{{"sessionId":"{session}","seq":{seq},"events":{raw.decode()}}}'
    return f'{{"type":"events_batch","data":{data}}}'


def packed(codec: int, message: bytes, announced: int | None = None) -> bytes:
    """A compressed tracker message (docs/protocol.md): header, then the JSON."""
    if codec == 1:
        packer = zlib.compressobj(wbits=-15)
        body = packer.compress(message) + packer.flush()
    else:
        body = zstandard.ZstdCompressor().compress(message)
    length = len(message) if announced is None else announced
    return struct.pack(">BBHI", 1, codec, 0, length) + body


def deflated(data: bytes) -> bytes:
    """permessage-deflate payload: raw DEFLATE without the final empty block."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH))[:-4]


# --- the cases that need more than one message -------------------------------------


async def http_head_too_large(p: Probe) -> None:
    # h11 checks the limit per read of up to 64 KiB: a head over the limit
    # by more than one read is refused, whatever the reads.
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %b\r\n\r\n" % (b"a" * (200 * 1024))
    status, _, body = await p.http(big)
    assert (status, body["error"]["code"]) == (431, "bad_request"), body


async def http_body_too_large(p: Probe) -> None:
    request = b"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%b" % (
        MAX_BODY + 1,
        b"x" * (MAX_BODY + 1),
    )
    status, _, body = await p.http(request)
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body


async def oversized(p: Probe, fragments: int) -> None:
    """A message over MAX_MESSAGE_BYTES is dropped as it arrives and
    answered with its seq once its last frame is in; the same seq without
    the oversized event is then accepted."""
    huge = b'{"type":3,"timestamp":1,"data":{"blob":"%b"}}' % (b"x" * 300_000)
    message = batch_message(VICTIM, 1, [huge])
    size = -(-len(message) // fragments)
    parts = [message[i : i + size] for i in range(0, len(message), size)]
    async with p.raw_tracker() as tracker:
        await tracker.frames(
            *(
                client_frame(T if i == 0 else C, part, fin=i == len(parts) - 1)
                for i, part in enumerate(parts)
            )
        )
        error = await tracker.error("payload_too_large", 1)
        assert str(LIMITS["max_message_bytes"]) in error["message"]
        await tracker.batch(1, p.events(3))
    await p.server.writer.flush()
    [recorded] = p.server.storage.session_errors(f"acme:{VICTIM}")
    assert (recorded.code, recorded.seq) == ("payload_too_large", 1)


async def deflate_bomb(p: Probe, offer: bytes) -> None:
    """The server requires client_no_context_takeover whatever the offer, so
    a bomb is skipped once MAX_MESSAGE_BYTES are inflated and answered; the
    connection goes on."""
    async with p.raw_tracker(offer) as tracker:
        await tracker.frames(client_frame(T, deflated(BOMB), rsv=0b100))
        await tracker.error("payload_too_large")
        await tracker.batch(1, p.events(3))


async def tracker_on_viewer(p: Probe) -> None:
    async with open_viewer(p.server, ACME_READ) as ws:
        await ws.send_message(batch_text(p.events(2), 0, "control"))
        reply = await recv_json(ws)
        assert (reply["type"], reply["data"]["code"]) == ("error", "not_allowed"), reply


async def after_end(p: Probe) -> None:
    async with p.tracker() as tracker:
        await tracker.send(json.dumps({"type": "session_end", "data": {"sessionId": VICTIM}}))
        assert await tracker.reply() == {"type": "session_ended", "data": {"sessionId": VICTIM}}
        await tracker.send(batch_text(p.events(2)))
        await tracker.error("unknown_session", 1)


async def other_tenants_session(p: Probe, message: str) -> None:
    """Beta's viewer names acme's live session ``control``."""
    async with open_viewer(p.server, BETA_READ) as ws:
        await ws.send_message(json.dumps({"type": message, "data": {"sessionId": "control"}}))
        reply = await recv_json(ws)
        assert reply == {
            "type": "error",
            "data": {"code": "unknown_session", "message": "no session 'control'"},
        }, reply


async def other_tenants_session_rest(p: Probe) -> None:
    status, _, body = await http(
        p.server, "/sessions/control/events", headers={"Authorization": f"Bearer {BETA_READ}"}
    )
    assert (status, json.loads(body)["error"]["code"]) == (404, "unknown_session"), body


async def other_tenants_id(p: Probe) -> None:
    """Beta's tracker starts a session with the id of acme's: a new one of
    its own, which acme's never sees (the control checks that)."""
    async with open_tracker(p.server, "beta") as ws:
        started = await start_session(ws, "control")
        assert (started["nextSeq"], started["nextIndex"]) == (0, 0)
        events = p.events(3)
        await ws.send_message(batch_message("control", 0, events).decode())
        assert (await recv_json(ws))["type"] == "ack"
    assert await read_events(p.server, "control", BETA_READ) == events


async def seq_again(p: Probe, same: bool) -> None:
    """seq 0 again, after seq 1 was acked: acked again, stored once; the
    events first acked for it are the ones kept."""
    async with p.tracker() as tracker:
        await tracker.batch(1, p.events(3))
        again = p.acked[VICTIM][:5] if same else p.events(4)  # seq 0 had 5 events
        await tracker.send(batch_message(VICTIM, 0, again).decode())
        assert await tracker.reply() == {"type": "ack", "data": {"sessionId": VICTIM, "seq": 0}}


def compressed_case(id: str, make: Callable[[bytes], bytes], code: str) -> BadInput:
    """A binary frame that ``make`` builds from a valid batch (seq 1),
    answered with an error frame; the batch itself is acked after it."""

    async def send(p: Probe) -> None:
        async with p.tracker() as tracker:
            await tracker.send(make(batch_message(VICTIM, 1, p.events(3))))
            await tracker.error(code)
            await tracker.batch(1, p.events(3))

    return BadInput(id, send, code, errors(code))


def _event(**fields: object) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


GOOD = _event(type=3, timestamp=1, data={"source": 1})
BOMB = bytes(8 << 20)  # 8 MiB of zeros: a few KiB compressed

CASES: list[BadInput] = [
    # malformed HTTP
    http_case("http-request-line", b"NOT HTTP\r\n\r\n", 400, "bad_request", errors("bad_http")),
    http_case(
        "http-header-line",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
        400,
        "bad_request",
        errors("bad_http"),
    ),
    http_case("http-no-host", b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request", errors("bad_http")),
    http_case(
        "http-truncated",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Cut-Sh",
        400,
        "bad_request",
        errors("bad_http"),
        eof=True,
    ),
    http_case(
        "http-chunk",
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        "bad_request",
        errors("bad_http"),
    ),
    BadInput(
        "http-head-too-large", http_head_too_large, "431 bad_request", errors("bad_http"), False
    ),
    BadInput(
        "http-body-too-large",
        http_body_too_large,
        "413 payload_too_large",
        requests("?", 413),
        False,
    ),
    # bad upgrade
    http_case(
        "upgrade-version",
        upgrade_request(version=b"8"),
        426,
        "unsupported_version",
        errors("unsupported_version"),
    ),
    http_case(
        "upgrade-key", upgrade_request(key=b"short"), 400, "bad_upgrade", errors("bad_upgrade")
    ),
    http_case(
        "upgrade-connection",
        upgrade_request(connection=False),
        400,
        "bad_upgrade",
        errors("bad_upgrade"),
    ),
    http_case(
        "upgrade-method", upgrade_request(method=b"POST"), 400, "bad_upgrade", errors("bad_upgrade")
    ),
    http_case(
        "upgrade-type",
        upgrade_request("/ws?type=spy"),
        400,
        "bad_request",
        requests("/ws", 400),
    ),
    http_case(
        "upgrade-codec",
        upgrade_request("/ws?type=viewer&codec=brotli"),
        400,
        "bad_request",
        requests("/ws", 400),
    ),
    http_case(
        "upgrade-codec-no-dictionary",
        upgrade_request("/ws?type=viewer&codec=zstd-dict"),
        400,
        "bad_request",
        requests("/ws", 400),
    ),
    http_case(
        "upgrade-missing",
        b"GET /ws?type=tracker HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        426,
        "upgrade_required",
        requests("/ws", 426),
    ),
    # unmasked or malformed frames
    close_case("frame-unmasked", 1002, _core.encode_frame(T, b'{"type":"x"}')),
    close_case("frame-continuation", 1002, client_frame(C, b"{}")),
    close_case("frame-interleaved", 1002, client_frame(T, b"{", fin=False), client_frame(T, b"{}")),
    close_case("frame-fragmented-control", 1002, client_frame(PING, b"x", fin=False)),
    close_case("frame-control-too-long", 1002, client_frame(PING, b"x" * 126)),
    close_case("frame-close-code", 1002, client_frame(CLOSE, struct.pack(">H", 1004))),
    close_case("frame-close-body", 1002, client_frame(CLOSE, b"\x03")),
    # '{}' with its length in the 16-bit form (RFC 6455 5.2: the shortest
    # form MUST be used), zero mask.
    close_case("frame-length-form", 1002, b"\x81\xfe\x00\x02\x00\x00\x00\x00{}"),
    # reserved bits and opcodes
    close_case("reserved-opcode-data", 1002, _core.encode_client_frame(3, b"", b"abcd")),
    close_case("reserved-opcode-control", 1002, _core.encode_client_frame(0xB, b"", b"abcd")),
    close_case("reserved-rsv1", 1002, client_frame(T, deflated(b"{}"), rsv=0b100)),
    close_case("reserved-rsv2", 1002, client_frame(T, b"{}", rsv=0b010)),
    close_case("reserved-rsv3", 1002, client_frame(T, b"{}", rsv=0b001)),
    # oversized frame or message
    BadInput(
        "oversized-message",
        partial(oversized, fragments=1),
        "payload_too_large",
        errors("payload_too_large"),
    ),
    BadInput(
        "oversized-fragmented",
        partial(oversized, fragments=9),
        "payload_too_large",
        errors("payload_too_large"),
    ),
    error_case("oversized-batch", batch_text([GOOD] * 51), "payload_too_large", 1),
    error_case(
        "oversized-event",
        batch_text([_event(type=3, timestamp=1, data="x" * 140_000)]),
        "payload_too_large",
        1,
    ),
    # 2^40 bytes announced, a few sent: refused at the header, not skipped
    # for as long as the peer keeps sending.
    close_case("oversized-header", 1009, b"\x81\xff" + (1 << 40).to_bytes(8) + b"abcd{}"),
    # invalid UTF-8
    close_case("utf8-text", 1007, client_frame(T, b'{"a":"\xff\xfe"}')),
    close_case(
        "utf8-fragmented",
        1007,
        client_frame(T, b'{"a":"\xe2\x82', fin=False),
        client_frame(C, b'\x28"}'),
    ),
    close_case("utf8-close-reason", 1007, client_frame(CLOSE, struct.pack(">H", 1000) + b"\xff")),
    # malformed JSON
    error_case("json-syntax", "{not json", "invalid_message"),
    error_case("json-not-object", '["an array"]', "invalid_message"),
    error_case("json-binary", b'{"type":"session_start"}', "invalid_message"),
    # wrong field types
    error_case("fields-missing", '{"type":"session_start","data":{}}', "invalid_message"),
    error_case("fields-data", '{"type":"session_start","data":[]}', "invalid_message"),
    error_case(
        "fields-session-id",
        '{"type":"session_start","data":{"sessionId":"%s"}}' % ("x" * 129),
        "invalid_message",
    ),
    error_case(
        "fields-nul-id",
        '{"type":"session_start","data":{"sessionId":"nul\\u0000id"}}',
        "invalid_message",
    ),
    error_case(
        "fields-nul",
        '{"type":"session_start","data":{"sessionId":"s","userAgent":"a\\u0000b"}}',
        "invalid_message",
    ),
    error_case(
        "fields-seq",
        '{"type":"events_batch","data":{"sessionId":"victim","seq":"1","events":[]}}',
        "invalid_message",
    ),
    error_case("fields-events", batch_text(b"{}"), "invalid_message", 1),
    error_case("event-not-object", batch_text([GOOD, b"42"]), "invalid_event", 1),
    error_case("event-type", batch_text([_event(type="3", timestamp=1)]), "invalid_event", 1),
    error_case("event-timestamp", batch_text([_event(type=3)]), "invalid_event", 1),
    # unknown message type
    error_case("type-unknown", '{"type":"teleport","data":{}}', "unknown_message_type"),
    error_case(
        "type-viewer-message",
        '{"type":"viewer_join_session","data":{"sessionId":"control"}}',
        "not_allowed",
    ),
    BadInput("type-tracker-message", tracker_on_viewer, "not_allowed", errors("not_allowed")),
    # events before session_start
    error_case("order-unstarted", batch_text([GOOD], 0, "never-started"), "unknown_session", 0),
    error_case(
        "order-no-session",
        '{"type":"events_batch","data":{"seq":0,"events":[]}}',
        "unknown_session",
        0,
        victim=False,
    ),
    BadInput("order-after-end", after_end, "unknown_session", errors("unknown_session")),
    # a session of another tenant
    BadInput(
        "tenant-join",
        partial(other_tenants_session, message="viewer_join_session"),
        "unknown_session",
        errors("unknown_session"),
    ),
    BadInput(
        "tenant-history",
        partial(other_tenants_session, message="get_session_events"),
        "unknown_session",
        errors("unknown_session"),
    ),
    BadInput(
        "tenant-rest",
        other_tenants_session_rest,
        "404 unknown_session",
        requests("/sessions/{session_id}/events", 404),
        codecs=False,
    ),
    BadInput("tenant-tracker", other_tenants_id, "session_started", STARTED),
    # seq regression
    BadInput("seq-resend", partial(seq_again, same=True), "ack", DUPLICATES),
    BadInput("seq-regression", partial(seq_again, same=False), "ack", DUPLICATES),
    error_case("seq-window", batch_text([GOOD], 5000), "seq_out_of_window", 5000),
    error_case("seq-negative", batch_text([GOOD], -1), "invalid_message", -1),
    # compressed tracker messages (binary frames) and permessage-deflate
    compressed_case(
        "compressed-garbage",
        lambda m: struct.pack(">BBHI", 1, 1, 0, 100) + b"\x00not compressed at all",
        "invalid_compression",
    ),
    compressed_case("compressed-length", lambda m: packed(1, m, len(m) + 5), "invalid_compression"),
    compressed_case("compressed-bomb", lambda m: packed(1, BOMB, 1000), "invalid_compression"),
    compressed_case("compressed-bomb-zstd", lambda m: packed(2, BOMB, 1000), "invalid_compression"),
    compressed_case(
        "compressed-too-large",
        lambda m: packed(2, m, LIMITS["max_message_bytes"] + 1),
        "payload_too_large",
    ),
    compressed_case(
        "compressed-header",
        lambda m: struct.pack(">BBHI", 1, 9, 0, len(m)) + m,
        "invalid_message",
    ),
    close_case(
        "deflate-invalid",
        1002,
        client_frame(T, b"\xff\xff\xff\xff", rsv=0b100),
        extensions=b"permessage-deflate",
    ),
    BadInput(
        "deflate-bomb",
        partial(deflate_bomb, offer=b"permessage-deflate"),
        "payload_too_large",
        errors("payload_too_large"),
    ),
    BadInput(
        "deflate-bomb-no-context",
        partial(deflate_bomb, offer=b"permessage-deflate; client_no_context_takeover"),
        "payload_too_large",
        errors("payload_too_large"),
    ),
]
