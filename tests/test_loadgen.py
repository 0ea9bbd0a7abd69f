"""The Rust load generator (benches/loadgen/) sends byte for byte what the
Python generator builds, reads its acks, and reports well-formed results
against its own discard sink. Speed is never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
