"""The Rust load generator (benches/loadgen/) sends byte for byte what the
Python generator builds, reads its acks, and reports well-formed results
against its own discard sink; its live viewers join a real server's session
and count every event it fans out to them. Speed is never asserted."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from replaywire import Server, _core

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benches import ingest_load, loadgen, sink  # noqa: E402

from rrweb import batch_message  # noqa: E402

BATCH = 50


@pytest.fixture(scope="module")
def binary() -> Path:
    return loadgen.binary()


def test_batches_are_the_messages_rrweb_builds(binary: Path, tmp_path: Path) -> None:
    events = ingest_load.corpus(BATCH)
    ids = [ingest_load.session_id(n) for n in range(2)]
    payload = loadgen.write_payload(tmp_path, ids, events)
    count = 2 * len(events) // BATCH  # past the wrap-around of the corpus
    for n, sid in enumerate(ids):
        command = [binary, "dump", "--payload", payload, "--batch", str(BATCH)]
        command += ["--session", str(n), "--count", str(count)]
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=30,
            check=True,
        )
        lines = done.stdout.splitlines()
        assert len(lines) == count
        for seq, line in enumerate(lines):
            # ingest_load.tracker's choice of events for batch `seq`.
            start = (seq * BATCH) % (len(events) - BATCH)
            assert line == batch_message(sid, seq, events[start : start + BATCH]), seq


def _run(port: int, *, window: int | None = None, rate: float | None = None) -> dict[str, Any]:
    return loadgen.run(
        port,
        [f"t-{n}" for n in range(4)],
        ingest_load.corpus(BATCH),
        batch=BATCH,
        warmup=0.1,
        duration=0.3,
        grace=1.0,
        window=window,
        rate=rate,
    )


def test_closed_and_open_loop_against_the_rust_sink(binary: Path) -> None:
    with sink.serving_sink(kind="rust") as (port, _):
        closed = _run(port, window=4)
        opened = _run(port, rate=20_000)
    assert closed["mode"] == "closed" and closed["connections"] == 4
    assert isinstance(closed["events_per_s"], int) and closed["events_per_s"] > 0
    assert closed["acks"] * BATCH == closed["events"]
    lat = closed["ack_latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert opened["mode"] == "open" and opened["offered_events_per_s"] == 20_000
    # 20k events/s for 0.3 s in batches of 50: 120 batches due, every one acked.
    assert opened["batches_measured"] == 120 and opened["batches_lost"] == 0
    assert opened["acked_events_per_s"] == 20_000
    for result in (closed, opened):
        assert result["errors"] == result["connection_errors"] == 0
        assert result["first_error"] is None and result["generator"] == "rust"


def test_a_failed_run_raises_with_the_binarys_message(binary: Path) -> None:
    port = ingest_load.free_port()  # nothing listens there
    with pytest.raises(loadgen.LoadgenError, match=r"connection 0: .*refused"):
        _run(port, window=1)


VIEWERS = 5
BATCHES = 80  # with the pauses, at least 1.2 s: twice the heartbeat's limit
# Half a second to answer a ping: room for a loaded machine to schedule the
# viewers' process (0.2 s was missed when both cores were busy).
PING = {"ws_ping_interval": 0.1, "ws_ping_timeout": 0.5}


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while chunk := await stream.receive_some(65536):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode()


def _joins(server: Server) -> float:
    """``viewer_join_session`` messages the server has decoded so far."""
    value = server.metrics.registry.get_sample_value(
        "replaywire_messages_total", {"kind": "viewer", "type": "viewer_join_session"}
    )
    return value or 0.0


async def _paced_tracker(
    stream: trio.SocketStream, decoder: _core.FrameDecoder, mask: bytes, sid: str
) -> int:
    """Sends BATCHES batches to a started session, each after the last
    one's ack and a pause (longer in all than the heartbeat's timeout);
    returns the events sent."""
    events = ingest_load.corpus(BATCH)
    for seq in range(BATCHES):
        first = (seq * BATCH) % (len(events) - BATCH)
        message = batch_message(sid, seq, events[first : first + BATCH])
        await stream.send_all(_core.encode_client_frame(_core.OP_TEXT, message, mask))
        replies: list[Any] = []
        while not replies:  # the heartbeat may ping the tracker too: not answered
            data = await stream.receive_some(65536)
            replies = [r for r in decoder.feed(data) if isinstance(r, _core.WsMessage)]
        assert replies[0].data.startswith(b'{"type":"ack"'), replies[0].data
        await trio.sleep(0.015)
    return BATCHES * BATCH


@pytest.mark.parametrize("codec", ["zstd", "none"])
async def test_rust_viewers_join_and_count_every_event_sent(
    binary: Path, start_server: Callable[..., Any], codec: str
) -> None:
    # A viewer sends nothing once joined: the server's heartbeat pings it,
    # and drops it within 0.6 s unless it answers with pongs.
    server: Server = await start_server(database_url="memory://", **PING)
    sid = f"watched-{codec}"
    # Started before the session exists: each viewer is refused with an
    # error and joins again every 100 ms until the tracker has started it
    # (twice as many joins as viewers: the retries have begun).
    viewers = await loadgen.start_viewers(server.port, sid, VIEWERS, codec, max_seconds=60)
    try:
        assert viewers.stdout is not None
        async with contextlib.aclosing(_lines(viewers.stdout)) as lines:
            with trio.fail_after(30):
                while _joins(server) < 2 * VIEWERS:  # noqa: ASYNC110 - another process, bounded wait
                    await trio.sleep(0.01)
                stream, decoder, mask = await ingest_load.start_tracker(server.port, sid)
                async with stream:
                    assert await anext(lines) == "joined"
                    sent = await _paced_tracker(stream, decoder, mask, sid)
                    counts = [0]
                    while counts[-1] < VIEWERS * sent:
                        counts.append(int(await anext(lines)))
    finally:
        viewers.kill()
        await viewers.wait()
    assert counts == sorted(counts) and counts[-1] == VIEWERS * sent
