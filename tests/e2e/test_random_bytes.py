"""Random bytes to a live server (hypothesis): as a request head, as frame
bytes after a valid upgrade, and as masked frames with random opcodes, RSV
bits and payloads.

Each example is one real TCP connection to one server (per WebSocket codec)
that a control tracker session streams to throughout
(:mod:`e2e.control`). The examples run in a worker thread on blocking
sockets while trio serves. After sending, an example either half-closes
and reads everything until the server closes (which must happen within
``BOUND`` seconds), checking that every answer is documented, or resets the
connection without reading (a client that vanishes). Documented means: an
HTTP status of docs/protocol.md (5xx never: 503 is for draining, and this
server is not), an error frame whose code is in its "Errors" table, a close
code of its close-code table (or the echo of the client's own close), or
nothing at all (the input was incomplete, and the connection was open until
the client left). At the end no connection task crashed, every error the
server counted is documented, the control session was acked all along with
every acked event stored, and a newcomer is served.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import time
from pathlib import Path
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth.tenants import KEYS, open_tracker, start
from e2e.backends import ws_backend  # noqa: F401  (one server per WebSocket codec)
from e2e.clients import metric_samples, send_batches, start_session
from e2e.control import ControlTracker
from replaywire import _core
from rrweb import session_events

BOUND = 5.0  # seconds the server may take to finish with a connection once the client is done
EXAMPLES = settings(
    max_examples=100,
    deadline=None,  # time is bounded per example by BOUND instead (a loaded 2-core machine)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,  # examples against a live server: nothing to replay from a previous run
)
DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
TRACKER = f"/ws?type=tracker&key={KEYS['acme']}".encode()


def _section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


# What docs/protocol.md documents: error frame codes, close codes, statuses.
ERROR_CODES = set(re.findall(r"^\| `(\w+)` \|", _section("Errors"), re.M))
FAILURE_CLOSES = {int(c) for c in re.findall(r"^\| (\d{4}) ", _section("Errors"), re.M)}
STATUSES = {int(s) for s in re.findall(r"`(\d{3})`", DOC)} | {200, 204}
COUNTED = ERROR_CODES | {str(c) for c in FAILURE_CLOSES} | {"bad_http"}
COUNTED |= set(re.findall(r"code=\"(\w+)\"", _section("Bad input")))


def test_the_documented_answers_were_found() -> None:
    """The oracle reads the doc: make sure it read something."""
    assert {"invalid_message", "payload_too_large", "unknown_session"} <= ERROR_CODES
    # 1011: the heartbeat; 4409: a later connection took a session over
    assert {1001, 1002, 1007, 1009, 1011, 4409} == FAILURE_CLOSES
    assert {101, 400, 401, 403, 426, 429, 431, 503} <= STATUSES


# --- one connection -------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _finish(sock: socket.socket, abort: bool) -> bytes:
    """Leave: reset at once (``abort``), or half-close and read until the
    server closes, which must happen within BOUND seconds."""
    if abort:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        return b""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    data = bytearray()
    deadline = time.monotonic() + BOUND
    with sock:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break  # closed while our bytes were unread: what it sent is in data
            except TimeoutError:
                raise AssertionError(f"the server kept the connection past {BOUND} s") from None
            if not chunk:
                break
            data += chunk
    return bytes(data)


def _send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)  # the server may have answered and closed already


def check_http(data: bytes, *, head: bool = False) -> bytes:
    """Every response in ``data`` has a documented status; returns what
    follows a 101 (WebSocket frames). ``head``: the first request was a
    HEAD, whose answer may have a Content-Length but no body (RFC 9110
    9.3.2)."""
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data[:200]
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        assert lines[0].startswith(b"HTTP/1.1 ") and status in STATUSES, lines[0]
        if status == 101:
            return rest
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = int(headers.get(b"content-length", b"0"))
        if head and (not rest or rest.startswith(b"HTTP/1.1 ")):
            length = 0  # a HEAD answered as such (a 400 to one h11 could not read has a body)
        head = False  # later answers are to what followed, pipelined
        body, data = rest[:length], rest[length:]
        if status >= 500:
            assert status == 503 and json.loads(body)["error"]["code"] == "draining", body
    return b""


def check_frames(data: bytes) -> None:
    """Every server frame in ``data`` is a documented answer."""
    decoder = _core.FrameDecoder(require_mask=False, max_message_bytes=1 << 30)
    for event in decoder.feed(data):
        if isinstance(event, _core.WsClose):
            code = event.code
            # Ours (documented), or the echo of the client's (any valid code).
            assert code is None or code in FAILURE_CLOSES or _echoable(code), code
        elif isinstance(event, _core.WsMessage):
            message = json.loads(event.data)
            assert message["type"] in {"error", "ack", "session_started", "session_ended"}
            if message["type"] == "error":
                assert message["data"]["code"] in ERROR_CODES, message
        else:
            assert isinstance(event, _core.WsPong), event


def _echoable(code: int) -> bool:
    return code in (1000, 1001, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999


def upgrade(port: int, deflate: bool) -> socket.socket:
    sock = _connect(port)
    offer = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else b""
    sock.sendall(
        b"GET %b HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%b\r\n"
        % (TRACKER, offer)
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    assert head.endswith(b"\r\n\r\n"), "the server spoke before the client"
    return sock


# --- what hypothesis draws --------------------------------------------------------------

HEADER_LINES = [
    b"Host: 127.0.0.1",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Connection: keep-alive",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    b"Content-Length: 5",
    b"Transfer-Encoding: chunked",
    b"Authorization: Bearer rwt_acme-read-token",
    b"Origin: https://evil.test",
    b"Access-Control-Request-Method: GET",
]
TARGETS = [
    b"/",
    TRACKER,
    b"/ws?type=viewer",
    b"/ws",
    b"/sessions",
    b"/sessions/control",
    b"/sessions/control/events?from_index=3&limit=2",
    b"/sessions/active",
    b"/sessions/cleanup",
    b"/health",
    b"/stats",
    b"/openapi.json",
    b"*",
]
# Mostly requests h11 parses far enough to reach routing and the upgrade
# checks, with random bytes where a hostile client would put them.
request_heads = st.one_of(
    st.binary(max_size=512),
    st.builds(
        lambda method, target, version, host, headers, end, body: (
            method
            + b" "
            + target
            + b" "
            + version
            + b"\r\n"
            + host
            + b"\r\n".join(headers)
            + end
            + body
        ),
        method=st.sampled_from([b"GET", b"GET", b"POST", b"DELETE", b"HEAD", b"OPTIONS"])
        | st.binary(max_size=8),
        target=st.sampled_from(TARGETS) | st.binary(max_size=40),
        version=st.just(b"HTTP/1.1") | st.sampled_from([b"HTTP/1.0", b"HTTP/2"]),
        host=st.sampled_from([b"Host: 127.0.0.1\r\n", b""]),
        headers=st.lists(
            st.sampled_from(HEADER_LINES) | st.binary(max_size=60).filter(lambda b: b"\n" not in b),
            max_size=8,
        ),
        end=st.sampled_from([b"\r\n\r\n", b"\r\n\r\n", b"\r\n", b""]),
        body=st.binary(max_size=64),
    ),
)

# Protocol messages with random values in the right places and wrong ones.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
events = st.fixed_dictionaries(
    {"type": st.integers(0, 6), "timestamp": st.integers(0, 2**53)},
    optional={"data": json_values},
)
batches = st.builds(
    lambda sid, seq, events: {"sessionId": sid, "seq": seq, "events": events},
    sid=st.just("fz") | json_values,
    seq=st.integers(-1, 20) | json_values,
    events=st.lists(events | json_values, max_size=3) | json_values,
)
messages = st.one_of(
    batches.map(lambda data: {"type": "events_batch", "data": data}),
    st.builds(
        lambda kind, data: {"type": kind, "data": data},
        kind=st.sampled_from(
            ["session_start", "session_end", "events_batch", "viewer_join_session", "teleport"]
        )
        | json_values,
        data=st.fixed_dictionaries({}, optional={"sessionId": st.just("fz") | json_values})
        | json_values,
    ),
    json_values,
).map(lambda message: json.dumps(message).encode())

# Mostly well-formed frames carrying protocol messages, so that the
# protocol is reached; then frames with random opcodes, RSV bits, FIN and
# payloads.
good_frames = st.builds(
    lambda payload, mask: _core.encode_client_frame(_core.OP_TEXT, payload, mask),
    payload=messages,
    mask=st.binary(min_size=4, max_size=4),
)
random_frames = st.builds(
    lambda opcode, payload, fin, rsv, mask: _core.encode_client_frame(
        opcode, payload, mask, fin=fin, rsv=rsv
    ),
    opcode=st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15),
    payload=st.one_of(st.binary(max_size=300), messages, st.text(max_size=50).map(str.encode)),
    fin=st.booleans(),
    rsv=st.integers(0, 7),
    mask=st.binary(min_size=4, max_size=4),
)
frames = good_frames | good_frames | random_frames


# --- the three ways in ------------------------------------------------------------------


def random_request_heads(port: int) -> None:
    @EXAMPLES
    @given(head=request_heads, abort=st.booleans())
    def example(head: bytes, abort: bool) -> None:
        sock = _connect(port)
        _send(sock, head)
        rest = check_http(_finish(sock, abort), head=head.startswith(b"HEAD "))
        check_frames(rest)

    example()


def random_frame_bytes(port: int) -> None:
    @EXAMPLES
    @given(data=st.binary(min_size=1, max_size=4096), deflate=st.booleans(), abort=st.booleans())
    def example(data: bytes, deflate: bool, abort: bool) -> None:
        sock = upgrade(port, deflate)
        _send(sock, data)
        check_frames(_finish(sock, abort))

    example()


def random_masked_frames(port: int) -> None:
    @EXAMPLES
    @given(
        start=st.booleans(),
        sent=st.lists(frames, min_size=1, max_size=8),
        deflate=st.booleans(),
        abort=st.booleans(),
    )
    def example(start: bool, sent: list[bytes], deflate: bool, abort: bool) -> None:
        sock = upgrade(port, deflate)
        if start:  # so that batches may name a started session
            message = json.dumps({"type": "session_start", "data": {"sessionId": "fz"}})
            _send(sock, _core.encode_client_frame(_core.OP_TEXT, message.encode(), os.urandom(4)))
        _send(sock, b"".join(sent))
        check_frames(_finish(sock, abort))

    example()


async def test_random_bytes(start_server: Any, nursery: trio.Nursery) -> None:
    server = await start(start_server)
    control = ControlTracker(server, pace=0.02)
    await nursery.start(control.run)
    for phase in (random_request_heads, random_frame_bytes, random_masked_frames):
        await trio.to_thread.run_sync(phase, server.port)
    await control.finish()
    samples = await metric_samples(server)
    crashed = samples[("replaywire_task_crashes_total", frozenset({("task", "connection")}))]
    assert crashed == 0
    counted = {
        dict(labels)["code"]
        for (name, labels), value in samples.items()
        if name == "replaywire_protocol_errors_total" and value
    }
    assert counted <= COUNTED, counted - COUNTED
    statuses = {
        int(dict(labels)["status"])
        for (name, labels), value in samples.items()
        if name == "replaywire_http_requests_total" and value
    }
    assert statuses <= STATUSES - {503}, statuses
    async with open_tracker(server, "acme") as ws:
        await start_session(ws, "newcomer")
        await send_batches(ws, "newcomer", list(session_events(20, seed=5)), batch=10)
