"""A REST client that stops reading a large answer cannot hold it (a page of
events, here 16 MiB) for long: once a 256 KiB slice of the answer has
waited ``HTTP_WRITE_TIMEOUT`` seconds for room in its socket, the
connection is closed and counted. A client reading at the same time gets
the whole page."""

from __future__ import annotations

import json
import socket

import trio
from trio_websocket import open_websocket_url

from e2e.clients import http, send_batches, start_session, ws_url
from replaywire import Server

EVENT_BYTES = 1024 * 1024


def big_event(n: int) -> bytes:
    return json.dumps(
        {"type": 3, "timestamp": 1_700_000_000_000 + n, "data": {"text": "x" * EVENT_BYTES}}
    ).encode()


def stalled_request(port: int, path: str) -> socket.socket:
    """A client that sends its request and then reads nothing (a small
    receive buffer, so that the server's side fills quickly)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    return sock


def read_to_end(sock: socket.socket) -> int:
    sock.settimeout(10)
    total = 0
    while data := sock.recv(1 << 20):
        total += len(data)
    return total


async def test_a_client_that_stops_reading_is_cut_off(start_server) -> None:  # type: ignore[no-untyped-def]
    server: Server = await start_server(database_url="memory://", http_write_timeout=0.5)
    events = [big_event(n) for n in range(16)]
    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "big")
        await send_batches(tracker, "big", events, batch=1, window=4)
    path = "/sessions/big/events?limit=100"

    sock = await trio.to_thread.run_sync(stalled_request, server.port, path)
    with sock:
        await trio.sleep(3)  # nothing read meanwhile: the server gives up
        assert server.metrics.http_write_timeouts_total._value.get() == 1
        got = await trio.to_thread.run_sync(read_to_end, sock)  # then EOF, cut short
    assert got < len(events) * EVENT_BYTES

    # A client that reads gets the whole page, on the same server.
    status, _, body = await http(server, path)
    assert status == 200 and json.loads(body)["count"] == len(events)
    assert server.metrics.http_write_timeouts_total._value.get() == 1
