"""Real rrweb sessions hold huge events: a full snapshot with inlined CSS and
images is often tens of MB and cannot be split. One of 48 MiB is accepted,
stored, read back byte for byte and delivered live, whether it comes as one
frame or in 64 KiB fragments; one over the limit is answered and the
session goes on."""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url
from websockets.sync.client import connect

from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import get_json, http, ws_url
from e2e.processes import ServerProcess
from replaywire.app import Server
from replaywire.config import Config
from rrweb import batch_message, huge_full_snapshot, session_events, start_message

MiB = 1 << 20


def upload(url: str, session_id: str, batches: list[bytes], fragment: int | None) -> list[dict]:
    """A tracker on the `websockets` client (no compression, so that the
    frames are exactly as sent), in a thread: start, one batch after the
    other, each in ``fragment``-byte frames when given; returns the answers."""
    answers = []
    with connect(url, max_size=None, compression=None, open_timeout=10) as ws:
        ws.send(start_message(session_id))
        answers.append(json.loads(ws.recv(timeout=30)))
        for message in batches:
            text = message.decode()  # ASCII: slicing characters slices bytes
            if fragment is None:
                ws.send(text)
            else:
                ws.send(text[i : i + fragment] for i in range(0, len(text), fragment))
            answers.append(json.loads(ws.recv(timeout=60)))
    return answers


@pytest.mark.parametrize("fragment", [None, 64 * 1024], ids=["one-frame", "64k-fragments"])
async def test_a_48_mib_full_snapshot_is_acked_stored_read_back_and_delivered_live(
    server: Server, fragment: int | None
) -> None:
    sid = f"huge-{fragment}"
    small = list(session_events(30, seed=8))
    huge = huge_full_snapshot(1_700_000_100_000.0, 48 * MiB)
    batches = [batch_message(sid, 0, small[:10]), batch_message(sid, 1, [huge])]
    batches.append(batch_message(sid, 2, small[10:]))
    answers: list[dict] = []
    delivered: list[bytes] = []

    async def track() -> None:
        answers.extend(
            await trio.to_thread.run_sync(upload, ws_url(server), sid, batches, fragment)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(track)
        with trio.fail_after(20):
            while f"default:{sid}" not in server.hub.live:  # noqa: ASYNC110 (the session starts in a thread)
                await trio.sleep(0.01)
        url = ws_url(server, "viewer")
        async with open_websocket_url(url, max_message_size=128 * MiB) as viewer:
            join = {"type": "viewer_join_session", "data": {"sessionId": sid, "fromIndex": 0}}
            await viewer.send_message(json.dumps(join))
            with trio.fail_after(60):
                total = 0
                while total < 30:
                    message = await viewer.get_message()
                    raw = message.encode() if isinstance(message, str) else message
                    if raw.startswith((b'{"type":"snapshot"', b'{"type":"delta"')):
                        total += json.loads(raw)["data"]["count"]
                        delivered.append(raw)
    assert [a["type"] for a in answers] == ["session_started", "ack", "ack", "ack"], answers
    assert total == 31
    assert sum(huge in frame for frame in delivered) == 1, "the viewer must get it exactly once"

    page = await http(server, f"/sessions/{sid}/events?from_index=0&limit=100")
    assert page[0] == 200 and huge in page[2]
    assert json.loads(page[2])["count"] == 31
    # Read back from storage, not the ring buffer, after the session ended.
    await http(server, "/sessions/cleanup?idle_seconds=0", "DELETE")
    await server.writer.flush()
    stored = await http(server, f"/sessions/{sid}/events?from_index=10&limit=1")
    assert json.loads(stored[2])["count"] == 1 and huge in stored[2]


async def test_a_65_mib_message_is_refused_and_the_session_goes_on(server: Server) -> None:
    sid = "too-huge"
    small = list(session_events(20, seed=9))
    huge = huge_full_snapshot(1_700_000_100_000.0, 65 * MiB)
    batches = [
        batch_message(sid, 0, small[:10]),
        batch_message(sid, 1, [huge]),
        batch_message(sid, 1, small[10:]),  # resent without the oversized event
    ]
    answers = await trio.to_thread.run_sync(upload, ws_url(server), sid, batches, 64 * 1024)
    assert [a["type"] for a in answers] == ["session_started", "ack", "error", "ack"]
    error = answers[2]["data"]
    assert error["code"] == "payload_too_large" and error["seq"] == 1
    assert str(server.config.max_message_bytes) in error["message"]
    page = await get_json(server, f"/sessions/{sid}/events?from_index=0&limit=100")
    assert page["count"] == 20
    session = await get_json(server, f"/sessions/{sid}")
    assert session["eventCount"] == 20


def _rss_peak(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_ten_concurrent_48_mib_uploads_stay_within_the_in_flight_budget(tmp_path: Path) -> None:
    """Ten trackers send a 48 MiB snapshot each at once to a server whose
    in-flight budget is 100 MiB: all are acked (backpressure, not refusal),
    the budget never holds more than its documented bound (the limit plus
    one message), connections did wait for it, and the server's peak memory
    grows by well under ten times what one such upload alone costs it."""
    limit = 100 * MiB
    server = ServerProcess(
        tmp_path,
        "budget",
        DATABASE_URL=f"sqlite:///{tmp_path / 'budget.db'}",
        MAX_INFLIGHT_BYTES=str(limit),
        MAX_BUFFER_BYTES=str(64 * MiB),
        MAX_PENDING_BYTES=str(64 * MiB),
    )
    server.start()
    try:
        huge = huge_full_snapshot(1_700_000_100_000.0, 48 * MiB)
        url = f"ws://127.0.0.1:{server.port}/ws?type=tracker"
        pid = server.proc.pid  # type: ignore[union-attr]

        def send(name: str) -> list[dict]:
            return upload(url, name, [batch_message(name, 0, [huge])], None)

        baseline = _rss_peak(pid)
        assert [a["type"] for a in send("solo")] == ["session_started", "ack"]
        one = _rss_peak(pid) - baseline
        peak_inflight = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_inflight
            while not stop.is_set():
                peak_inflight = max(
                    peak_inflight, int(_metric(server, "replaywire_inflight_bytes"))
                )
                stop.wait(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(10) as pool:
                results = list(pool.map(send, [f"big-{n}" for n in range(10)]))
        finally:
            stop.set()
            sampler.join()
        assert all([a["type"] for a in r] == ["session_started", "ack"] for r in results), results
        ten = _rss_peak(pid) - baseline
        waits = _metric(server, "replaywire_inflight_waits")
        print(
            f"server RSS: +{one / MiB:.0f} MiB for one 48 MiB upload, +{ten / MiB:.0f} MiB"
            f" for ten at once; peak in flight {peak_inflight / MiB:.0f} MiB; {waits:.0f} waits"
        )
        assert waits > 0, "the budget never made a connection wait"
        assert peak_inflight <= limit + Config().max_message_bytes
        assert ten < 0.6 * 10 * one, "the server held nearly all ten uploads at once"
    finally:
        server.stop()


def _metric(server: ServerProcess, name: str) -> float:
    text = urllib.request.urlopen(server.url("/metrics"), timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return float(family.samples[0].value)
    raise AssertionError(f"no metric {name}")
