"""The heartbeat's ping always reaches a live peer. The sweep starts its
clock when it asks for a ping, so a ping that is skipped or left queued
would get a live viewer (which sends nothing but pongs) dropped with 1011:
this happened while another task held the connection's send lock, and
when the socket had no room for the ping on a session gone quiet.

Real sockets (a socket pair), the server's WebSocket on one end, frames
read raw on the other."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from replaywire import _core
from replaywire.ws import WebSocket
from replaywire.ws.heartbeat import Heartbeat

PING = _core.encode_ping()


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[WebSocket, socket.socket]]:
    """The server's WebSocket on one end of a socket pair with small
    buffers, and the raw other end (non-blocking)."""
    server_end, client_end = socket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client_end.setblocking(False)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(server_end))
    try:
        yield WebSocket(stream, _core.FrameDecoder()), client_end
    finally:
        client_end.close()
        await stream.aclose()


def drain(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


async def test_a_ping_asked_for_while_another_task_sends_follows_its_frames() -> None:
    big = _core.encode_binary(b"x" * 200_000)  # more than the socket takes at once
    async with pair() as (ws, peer), trio.open_nursery() as nursery:
        nursery.start_soon(ws.send, big)
        await trio.testing.wait_all_tasks_blocked()
        assert ws._sending  # the sender waits for room
        ws.ping_now()  # the sweep asks now: it may not interleave
        received = b""
        with trio.fail_after(10):
            while len(received) < len(big) + len(PING):
                received += drain(peer)
                await trio.sleep(0.001)
    assert received == big + PING


async def test_a_ping_the_socket_had_no_room_for_is_flushed_by_the_sweep() -> None:
    filler = _core.encode_binary(b"y" * 1000)
    async with pair() as (ws, peer):
        while ws.write_now(filler) == len(filler):  # fill the socket, frame by frame
            pass
        received = b""
        # The session goes quiet: nothing else is sent. The peer reads on.
        beat = Heartbeat(interval=1.0, timeout=1.0)
        ws.idle_since = 0.0
        assert beat.sweep([ws], 1.0) == []  # pinged: no room, so the ping is queued
        assert ws._tail.endswith(PING)
        with trio.fail_after(10):
            while not received.endswith(PING):
                received += drain(peer)
                assert beat.sweep([ws], 1.5) == []  # the sweep flushes what waits
                await trio.sleep(0.001)
        assert received.endswith(PING) and received.count(b"y" * 1000) >= 4
