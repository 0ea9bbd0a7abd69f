"""Client helpers for end-to-end tests, built on client libraries we did
not write: trio-websocket, websockets (sync client in a worker thread) and
urllib for REST."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import WebSocketConnection, open_websocket_url

from replaywire import Server
from rrweb import batch_message, start_message


def ws_url(server: Server, kind: str = "tracker") -> str:
    return f"ws://127.0.0.1:{server.port}/ws?type={kind}"


def http_url(server: Server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def http(
    server: Server, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a request made with urllib in a thread."""

    def call() -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(http_url(server, path), method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()

    return await trio.to_thread.run_sync(call)


async def get_json(server: Server, path: str) -> Any:
    status, _, body = await http(server, path)
    assert status == 200, (status, body)
    return json.loads(body)


async def recv_json(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        msg = await ws.get_message()
    return json.loads(msg)  # type: ignore[no-any-return]


async def start_session(ws: WebSocketConnection, session_id: str) -> dict[str, Any]:
    await ws.send_message(start_message(session_id))
    reply = await recv_json(ws)
    assert reply["type"] == "session_started", reply
    return reply["data"]  # type: ignore[no-any-return]


async def send_batches(
    ws: WebSocketConnection,
    session_id: str,
    events: list[bytes],
    *,
    batch: int = 50,
    window: int = 8,
    first_seq: int = 0,
) -> list[int]:
    """Stream ``events`` in batches with up to ``window`` unacked; return the
    acked seqs in the order the acks came."""
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    acked: list[int] = []
    room = trio.Semaphore(window)

    async def sender() -> None:
        for n, part in enumerate(batches):
            await room.acquire()
            await ws.send_message(batch_message(session_id, first_seq + n, part).decode())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        while len(acked) < len(batches):
            reply = await recv_json(ws)
            assert reply["type"] == "ack", reply
            acked.append(reply["data"]["seq"])
            room.release()
    return acked


async def tracker(server: Server) -> Any:
    return open_websocket_url(ws_url(server, "tracker"))


def events_of(body: bytes) -> list[bytes]:
    """Raw events of a REST events page, split without re-serialising."""
    from replaywire import _core

    start = body.index(b'"events":') + len(b'"events":')
    return _core.split_events(body[start:-1])


async def metric_samples(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``GET /metrics``, by name and labels."""
    status, _, body = await http(server, "/metrics")
    assert status == 200, status
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


async def metric(server: Server, name: str, **labels: str) -> float:
    """One sample of ``GET /metrics`` (0 when it is not there yet)."""
    return (await metric_samples(server)).get((name, frozenset(labels.items())), 0.0)
