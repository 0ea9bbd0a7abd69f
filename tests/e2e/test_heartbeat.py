"""The heartbeat: a WebSocket that goes silent is pinged every
WS_PING_INTERVAL; one that answers stays, one that does not is dropped with
1011 between interval + timeout and 1.25 x that after its last frame.
Small intervals keep the tests short; both codecs ping and drop alike."""

from __future__ import annotations

import json
import time
from typing import Any

import trio
from websockets.sync.client import connect

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import ws_url
from e2e.rawws import client_frame, handshake
from replaywire import Server, _core
from rrweb import batch_message, session_events, start_message

INTERVAL, TIMEOUT = 0.2, 0.3
# Scheduling on a loaded machine: what the server's tick may lag behind.
SLACK = 0.5


def metric(server: Server, line: str) -> float:
    for row in server.metrics.render()[0].decode().splitlines():
        name, _, value = row.rpartition(" ")
        if name == line:
            return float(value)
    raise AssertionError(f"{line} not in the metrics")


async def test_a_silent_peer_is_pinged_then_dropped_with_1011(start_server: Any) -> None:
    server: Server = await start_server(ws_ping_interval=INTERVAL, ws_ping_timeout=TIMEOUT)
    stream, head = await handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    last_frame = trio.current_time()  # it never sends one: the upgrade was its last word
    decoder = _core.FrameDecoder(require_mask=False)
    seen: list[tuple[float, Any]] = []
    with trio.fail_after(5):
        while data := await stream.receive_some(65536):
            seen.extend((trio.current_time(), event) for event in decoder.feed(data))
    gone = trio.current_time() - last_frame
    await stream.aclose()
    [(pinged, ping), (_, close)] = seen
    assert isinstance(ping, _core.WsPing)
    assert INTERVAL <= pinged - last_frame <= INTERVAL + SLACK
    assert isinstance(close, _core.WsClose) and close.code == 1011
    bound = 1.25 * (INTERVAL + TIMEOUT)
    assert INTERVAL + TIMEOUT <= gone <= bound + SLACK, gone
    assert metric(server, "replaywire_ws_ping_timeouts_total") == 1
    assert metric(server, 'replaywire_ws_closes_total{code="1011"}') == 1
    with trio.fail_after(5):
        while server._websockets:  # noqa: ASYNC110 - server state, bounded wait
            await trio.sleep(0.01)


async def test_a_peer_answering_pings_stays(start_server: Any) -> None:
    """A raw client that answers every ping, and sends nothing else, is
    pinged once per silence and outlives many intervals."""
    server: Server = await start_server(ws_ping_interval=INTERVAL, ws_ping_timeout=TIMEOUT)
    stream, head = await handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    decoder = _core.FrameDecoder(require_mask=False)
    pings = 0
    with trio.move_on_after(5 * (INTERVAL + TIMEOUT)):
        while data := await stream.receive_some(65536):
            for event in decoder.feed(data):
                assert isinstance(event, _core.WsPing), event
                pings += 1
                await stream.send_all(client_frame(_core.OP_PONG, event.data))
    # Pinged after each silence of INTERVAL (plus the sweep's step).
    assert 3 <= pings <= 5 * (INTERVAL + TIMEOUT) / INTERVAL
    await stream.send_all(client_frame(_core.OP_TEXT, start_message("alive").encode()))
    with trio.fail_after(5):
        reply = None
        while reply is None:
            for event in decoder.feed(await stream.receive_some(65536)):
                if isinstance(event, _core.WsMessage):
                    reply = json.loads(event.data)
    assert reply["type"] == "session_started"
    await stream.aclose()
    assert metric(server, "replaywire_ws_ping_timeouts_total") == 0


async def test_a_websockets_tracker_answers_pings_and_keeps_streaming(start_server: Any) -> None:
    """The ``websockets`` library answers pings by itself (its own
    keepalive is off here): a tracker idle for many intervals still
    streams."""
    server: Server = await start_server(ws_ping_interval=INTERVAL, ws_ping_timeout=TIMEOUT)
    events = list(session_events(100, seed=21))

    def run_client() -> list[dict[str, Any]]:
        replies = []
        with connect(ws_url(server), ping_interval=None) as ws:
            ws.send(start_message("idle-tracker"))
            replies.append(json.loads(ws.recv(timeout=10)))
            ws.send(batch_message("idle-tracker", 0, events[:50]).decode())
            replies.append(json.loads(ws.recv(timeout=10)))
            # Idle, for several intervals: the library's own thread answers
            # the server's pings meanwhile.
            time.sleep(4 * (INTERVAL + TIMEOUT))
            ws.send(batch_message("idle-tracker", 1, events[50:]).decode())
            replies.append(json.loads(ws.recv(timeout=10)))
        return replies

    replies = await trio.to_thread.run_sync(run_client)
    assert [r["type"] for r in replies] == ["session_started", "ack", "ack"]
    assert metric(server, "replaywire_ws_ping_timeouts_total") == 0
