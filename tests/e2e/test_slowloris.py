"""Slowloris: 1,000 sockets that connect and never finish their request do
not stop a tracker from connecting and streaming; each is dropped once
HANDSHAKE_TIMEOUT has passed, with 408, and counted."""

from __future__ import annotations

import resource
from typing import Any

import trio
from trio_websocket import open_websocket_url

from e2e.clients import send_batches, start_session, ws_url
from replaywire import Server
from rrweb import session_events

IDLE_SOCKETS = 1000
HANDSHAKE_TIMEOUT = 3.0


def ensure_fds(need: int) -> None:
    """Room for the idle sockets twice over (both ends live in this process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


async def test_a_thousand_idle_sockets_do_not_stop_a_tracker(start_server: Any) -> None:
    ensure_fds(2 * IDLE_SOCKETS + 512)
    # Every socket comes from 127.0.0.1: the per-IP limit would bind first.
    server: Server = await start_server(
        handshake_timeout=HANDSHAKE_TIMEOUT, limit_concurrent_per_ip=0
    )
    assert server.config.max_connections >= IDLE_SOCKETS + 1  # the default fits them
    answers: list[bytes] = []
    held_for: list[float] = []  # from connecting to the server's close

    async def idle(n: int, *, task_status: trio.TaskStatus[None]) -> None:
        """Connect; half send nothing, half the start of a request head;
        then read whatever comes until the server closes."""
        connected = trio.current_time()
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            if n % 2:
                await stream.send_all(b"GET /ws?type=tracker HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            task_status.started()
            got = b""
            with trio.fail_after(HANDSHAKE_TIMEOUT + 10):
                while chunk := await stream.receive_some(4096):
                    got += chunk
            held_for.append(trio.current_time() - connected)
            answers.append(got)

    events = list(session_events(1000, seed=17))
    async with trio.open_nursery() as nursery:
        for n in range(IDLE_SOCKETS):
            await nursery.start(idle, n)
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            while server.gate.open < IDLE_SOCKETS:  # noqa: ASYNC110 - server state, bounded wait
                await trio.sleep(0.01)
        async with open_websocket_url(ws_url(server)) as ws:
            await start_session(ws, "beside-the-idle")
            acked = await send_batches(ws, "beside-the-idle", events[:500])
            # ...while every idle socket was still held open.
            assert server.gate.open == IDLE_SOCKETS + 1
            assert sorted(acked) == list(range(10))
            # They all go once HANDSHAKE_TIMEOUT has passed, and the tracker
            # goes on streaming.
            with trio.fail_after(HANDSHAKE_TIMEOUT + 10):
                while len(answers) < IDLE_SOCKETS:  # noqa: ASYNC110 - bounded wait
                    await trio.sleep(0.05)
            acked = await send_batches(ws, "beside-the-idle", events[500:], first_seq=10)
            assert sorted(acked) == list(range(10, 20))
            assert server.gate.open == 1
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    # Not before: the server's deadline starts at accept, after `connected`.
    assert min(held_for) >= HANDSHAKE_TIMEOUT
    text = server.metrics.render()[0].decode()
    assert f"replaywire_handshake_timeouts_total {float(IDLE_SOCKETS)}" in text
