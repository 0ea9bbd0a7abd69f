"""Every limit at its edge: one under it, exactly at it, one over it.

Each case starts a server with a small limit and sends through a real
socket a request, frame, message, batch, event, session or connection that
is ``limit + offset`` big (offset -1, 0, +1). At -1 and 0 it is served; at
+1 it gets the documented answer (docs/protocol.md), and the connection or
server goes on where the protocol says it does.

MAX_VIEWERS_PER_SESSION is exercised at its edges by
``test_viewer_live.py::test_viewers_beyond_the_limit_are_refused_until_one_leaves``
(the first viewer, the limit-th, then one too many); LIMIT_CONNECTIONS_PER_IP
(a rate, not a size) by ``test_rate_limits.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from e2e.clients import recv_json, start_session, ws_url
from e2e.rawws import client_frame, handshake, next_json
from replaywire import Server, _core
from rrweb import batch_message, session_events, start_message

StartServer = Callable[..., Any]
EDGES = pytest.mark.parametrize("offset", [-1, 0, 1], ids=["limit-1", "limit", "limit+1"])
# The frame and message limits are the codec's: those run on both codecs.
BOTH_CODECS = pytest.mark.parametrize("ws_backend", ["rust", "wsproto"])


def event_of(size: int) -> bytes:
    """An rrweb-shaped event of exactly ``size`` bytes."""
    shell = b'{"type":3,"timestamp":1,"data":{"pad":""}}'
    assert size >= len(shell)
    return shell[:-3] + b"x" * (size - len(shell)) + shell[-3:]


def batch_of(size: int, seq: int, session_id: str = "edge") -> bytes:
    """An ``events_batch`` message of exactly ``size`` bytes: one event."""
    envelope = len(batch_message(session_id, seq, [b""]))
    return batch_message(session_id, seq, [event_of(size - envelope)])


def metric(server: Server, line: str) -> float:
    """A sample of the server's metrics, read in process (a scrape over
    HTTP would take a connection, which some tests count)."""
    text = server.metrics.render()[0].decode()
    for row in text.splitlines():
        name, _, value = row.rpartition(" ")
        if name == line:
            return float(value)
    raise AssertionError(f"{line} not in the metrics")


async def wait_for(predicate: Callable[[], bool]) -> None:
    """Until the server's state says so (its tasks run beside the test's)."""
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 - server state, bounded wait
            await trio.sleep(0.005)


async def read_answer(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """An HTTP answer read to the end of the connection: status, headers, body."""
    raw = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@asynccontextmanager
async def tracker_socket(server: Server) -> AsyncIterator[Callable[[bytes], Any]]:
    """A raw tracker connection with session ``edge`` started; yields
    ``exchange(frames) -> reply`` (the next JSON message after ``frames``)."""
    stream, head = await handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101"), head
    reply = partial(next_json, stream, _core.FrameDecoder(require_mask=False))

    async def exchange(frames: bytes) -> Any:
        await stream.send_all(frames)
        with trio.fail_after(10):
            return await reply()

    async with stream:
        started = await exchange(client_frame(_core.OP_TEXT, start_message("edge").encode()))
        assert started["type"] == "session_started", started
        yield exchange


def assert_acked_or_too_large(answer: dict[str, Any], offset: int, seq: int) -> None:
    if offset <= 0:
        assert answer == {"type": "ack", "data": {"sessionId": "edge", "seq": seq}}, answer
    else:
        assert answer["type"] == "error", answer
        assert (answer["data"]["code"], answer["data"]["seq"]) == ("payload_too_large", seq)


# --- HTTP ------------------------------------------------------------------------------


def request_head(size: int) -> bytes:
    """A ``GET /health`` request head of exactly ``size`` bytes."""
    start = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: "
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


@EDGES
@pytest.mark.parametrize("piece", [None, 100], ids=["one-write", "in-pieces"])
async def test_max_request_bytes(start_server: StartServer, offset: int, piece: int | None) -> None:
    """MAX_REQUEST_BYTES bounds the request head exactly, however it is
    split into writes: 431 one byte over it."""
    limit = 1024
    server: Server = await start_server(max_request_bytes=limit)
    head = request_head(limit + offset)
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        for i in range(0, len(head), piece or len(head)):
            await stream.send_all(head[i : i + (piece or len(head))])
        status, _, body = await read_answer(stream)
    if offset <= 0:
        assert status == 200, body
    else:
        assert status == 431
        assert json.loads(body)["error"]["code"] == "bad_request"
        assert f"over {limit} bytes" in json.loads(body)["error"]["message"]


async def test_handshake_timeout_bounds_the_whole_request(start_server: StartServer) -> None:
    """HANDSHAKE_TIMEOUT: a request that arrives in pieces within it is
    served; one whose head, or body, is not complete by then gets 408 and
    is closed, and is counted."""
    server: Server = await start_server(handshake_timeout=1.0)
    head = request_head(200)

    async def send_then_stall(first: bytes, rest: bytes, pause: float) -> tuple[int, float]:
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            started = trio.current_time()
            await stream.send_all(first)
            await trio.sleep(pause)
            if rest:
                await stream.send_all(rest)
            status, _, _ = await read_answer(stream)
            return status, trio.current_time() - started

    in_time = await send_then_stall(head[:50], head[50:], 0.3)
    assert in_time[0] == 200
    stalled_head = await send_then_stall(head[:50], b"", 0)
    body_head = head.replace(b"X-Pad", b"Content-Length: 10\r\nX-Pad")
    stalled_body = await send_then_stall(body_head + b"12345", b"", 0)
    for status, took in (stalled_head, stalled_body):
        assert status == 408
        # Not before the deadline (which starts at accept, about when the
        # client's connect returned).
        assert took >= 0.9
    # A kept-alive connection idle after its answer is closed after the
    # timeout too, but it is no slow client: not counted.
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, rest = await read_answer(stream)
    assert status == 200 and b"HTTP/1.1 408 " in rest
    assert metric(server, "replaywire_handshake_timeouts_total") == 2


# --- WebSocket frames and messages ----------------------------------------------------


@EDGES
@BOTH_CODECS
async def test_max_frame_bytes(start_server: StartServer, ws_backend: str, offset: int) -> None:
    """MAX_FRAME_BYTES: a one-frame message of limit + 1 bytes (under the
    message limit) is answered payload_too_large by the Rust codec and the
    connection goes on. The wsproto codec does not see frame headers and
    checks the message limit only (docs/configuration.md, WS_BACKEND): it accepts it."""
    limit = 4096
    server: Server = await start_server(max_frame_bytes=limit, max_message_bytes=64 * 1024)
    async with tracker_socket(server) as exchange:
        answer = await exchange(client_frame(_core.OP_TEXT, batch_of(limit + offset, 0)))
        assert_acked_or_too_large(answer, offset if ws_backend == "rust" else -1, 0)
        # The connection goes on: the same seq again, small.
        after = await exchange(client_frame(_core.OP_TEXT, batch_of(200, 0)))
        assert after["type"] == "ack" and after["data"]["seq"] == 0, after


@EDGES
@BOTH_CODECS
@pytest.mark.parametrize("fragments", [1, 3], ids=["one-frame", "three-frames"])
async def test_max_message_bytes(
    start_server: StartServer, ws_backend: str, offset: int, fragments: int
) -> None:
    """MAX_MESSAGE_BYTES, counted after reassembly: one byte over it is
    answered payload_too_large with the batch's seq; the session goes on."""
    limit = 8192
    server: Server = await start_server(max_frame_bytes=64 * 1024, max_message_bytes=limit)
    message = batch_of(limit + offset, 0)
    size = -(-len(message) // fragments)
    frames = b"".join(
        client_frame(
            _core.OP_TEXT if i == 0 else _core.OP_CONTINUATION,
            message[i : i + size],
            fin=i + size >= len(message),
        )
        for i in range(0, len(message), size)
    )
    async with tracker_socket(server) as exchange:
        assert_acked_or_too_large(await exchange(frames), offset, 0)
        after = await exchange(client_frame(_core.OP_TEXT, batch_of(200, 1)))
        assert after["type"] == "ack" and after["data"]["seq"] == 1, after


# --- tracker messages ---------------------------------------------------------------------


@EDGES
async def test_max_events_per_batch(start_server: StartServer, offset: int) -> None:
    limit = 10
    server: Server = await start_server(max_events_per_batch=limit)
    events = list(session_events(limit + 1, seed=11))[: limit + offset]
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "edge")
        await ws.send_message(batch_message("edge", 0, events).decode())
        assert_acked_or_too_large(await recv_json(ws), offset, 0)


@EDGES
async def test_max_event_bytes(start_server: StartServer, offset: int) -> None:
    """MAX_EVENT_BYTES counts an event's JSON as sent; the batch with one
    event a byte too large is refused whole."""
    limit = 1000
    server: Server = await start_server(max_event_bytes=limit)
    events = [event_of(120), event_of(limit + offset), event_of(limit - 100)]
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "edge")
        await ws.send_message(batch_message("edge", 0, events).decode())
        answer = await recv_json(ws)
        assert_acked_or_too_large(answer, offset, 0)
        if offset > 0:
            assert f"over the limit of {limit} bytes" in answer["data"]["message"]


@EDGES
async def test_max_sessions_per_connection(start_server: StartServer, offset: int) -> None:
    """The limit-th session of a connection starts; one more gets
    session_limit, and the sessions it has go on."""
    limit = 3
    server: Server = await start_server(max_sessions_per_connection=limit)
    async with open_websocket_url(ws_url(server)) as ws:
        for n in range(limit + offset - 1):
            await start_session(ws, f"s{n}")
        await ws.send_message(start_message("last"))
        answer = await recv_json(ws)
        if offset <= 0:
            assert answer["type"] == "session_started", answer
        else:
            assert answer["type"] == "error" and answer["data"]["code"] == "session_limit"
        await ws.send_message(batch_message("s0", 0, list(session_events(2))).decode())
        assert (await recv_json(ws))["type"] == "ack"


# --- connections ----------------------------------------------------------------------------


async def probe_connection(
    server: Server, limit: int, offset: int
) -> tuple[int, dict[str, str], bytes]:
    """Hold ``limit + offset - 1`` connections that send nothing (counted
    by the server: they are still in the handshake), then make connection
    number ``limit + offset`` ask for ``/health``; its answer."""
    held = limit + offset - 1
    async with trio.open_nursery() as nursery:
        idle = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(held)]
        await wait_for(lambda: server.gate.open == held)
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(request_head(100))
            answer = await read_answer(stream)
        for sock in idle:
            nursery.start_soon(sock.aclose)
    return answer


@EDGES
async def test_max_connections(start_server: StartServer, offset: int) -> None:
    """MAX_CONNECTIONS counts every open TCP connection, those still in the
    handshake included: connection limit + 1 gets 503 too_many_connections
    with Retry-After, unread, and is counted."""
    limit = 4
    server: Server = await start_server(max_connections=limit, limit_concurrent_per_ip=0)
    status, headers, body = await probe_connection(server, limit, offset)
    if offset <= 0:
        assert status == 200, body
        assert metric(server, "replaywire_connections_refused_total") == 0
    else:
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["connection"] == "close"
        assert headers["x-content-type-options"] == "nosniff"
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        assert metric(server, "replaywire_connections_refused_total") == 1
    # The refused and the idle connections are gone: the server serves again.
    await wait_for(lambda: server.gate.open == 0)
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "after")


@EDGES
async def test_limit_concurrent_per_ip(start_server: StartServer, offset: int) -> None:
    """LIMIT_CONCURRENT_PER_IP counts every open TCP connection of the IP
    (all of them come from 127.0.0.1 here), those still in the handshake
    included: one more gets 429 rate_limited with Retry-After, unread."""
    limit = 4
    server: Server = await start_server(max_connections=0, limit_concurrent_per_ip=limit)
    status, headers, body = await probe_connection(server, limit, offset)
    refused = 'replaywire_rate_limited_total{limit="concurrent"}'
    if offset <= 0:
        assert status == 200, body
        assert metric(server, refused) == 0
    else:
        assert status == 429
        assert headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "rate_limited"
        assert metric(server, refused) == 1
    await wait_for(lambda: server.gate.open == 0)
    async with open_websocket_url(ws_url(server)) as ws:
        await start_session(ws, "after")
