"""Acknowledged means stored: real server processes on real PostgreSQL,
killed with SIGKILL mid-ingest, and a database taken away under load.

These tests block in threads on purpose (websockets' sync client, psycopg,
subprocess): the point is the server process, not the test's event loop.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from e2e.processes import ServerProcess, WindowedTracker, wait_until
from rrweb import session_events
from services import ThrowawayPostgres, create_database

EVENTS_PER_BATCH = 50


def make_batches(count: int, seed: int) -> list[list[bytes]]:
    events = list(session_events(count, seed=seed))
    return [events[i : i + EVENTS_PER_BATCH] for i in range(0, count, EVENTS_PER_BATCH)]


def stored_chunks(url: str, session_id: str) -> list[tuple[int, int, int]]:
    """(seq, first_index, event_count) of every stored row, by seq. Rows
    are keyed by tenant and id; these servers run in development mode."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT seq, first_index, event_count FROM chunks WHERE session_id = %s ORDER BY seq",
            (f"default:{session_id}",),
        ).fetchall()
    return [(int(a), int(b), int(c)) for a, b, c in rows]


def assert_complete(url: str, session_id: str, batches: int) -> None:
    """Every batch stored exactly once, with contiguous event indices."""
    rows = stored_chunks(url, session_id)
    seqs = [seq for seq, _, _ in rows]
    assert seqs == list(range(batches)), "missing or duplicated seqs"
    for seq, first, count in rows:
        assert (first, count) == (seq * EVENTS_PER_BATCH, EVENTS_PER_BATCH), seq


def get_health(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(server.url("/health/ready"), timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_sigkill_mid_ingest_loses_no_acked_batch(tmp_path: Path, fresh_postgres_url: str) -> None:
    database = fresh_postgres_url
    batches = make_batches(100_000, seed=7)
    server = ServerProcess(tmp_path, "server", DATABASE_URL=database, ACK_MODE="durable")
    tracker = WindowedTracker("crash-1", batches, window=8)
    killed = threading.Event()

    def kill_after_some(seq: int) -> None:
        if len(tracker.acked) >= 600 and not killed.is_set():
            killed.set()
            server.kill()

    try:
        port = server.start()
        assert not tracker.run(port, on_ack=kill_after_some), "the server was to be killed"
        assert killed.is_set()
        acked_before = set(tracker.acked)
        assert 600 <= len(acked_before) < len(batches)

        # Every ack the tracker saw is already in PostgreSQL, once.
        rows = stored_chunks(database, "crash-1")
        stored = [seq for seq, _, _ in rows]
        assert len(stored) == len(set(stored))
        assert acked_before <= set(stored)

        port = server.start()
        assert tracker.run(port), server.tail()
        # The restarted server told the tracker to continue after everything
        # it had stored, so nothing was resent that was already there.
        resumed = tracker.resumed_from[-1]
        assert resumed == len(stored) and resumed > max(acked_before)
        assert_complete(database, "crash-1", len(batches))
    finally:
        server.stop()


def test_postgres_outage_spools_then_drains_in_order(
    tmp_path: Path, throwaway_postgres: ThrowawayPostgres
) -> None:
    pg = throwaway_postgres
    url = create_database(pg.url, f"rw_outage_{time.monotonic_ns()}")
    run_outage(tmp_path, pg, url)


def run_outage(tmp_path: Path, pg: ThrowawayPostgres, url: str) -> None:
    batches = make_batches(60_000, seed=11)  # 1200 batches at ~40 a second: ~30 s
    server = ServerProcess(
        tmp_path, "server", DATABASE_URL=url, ACK_MODE="durable", DB_POOL_SIZE="2"
    )
    tracker = WindowedTracker("outage-1", batches, window=4)
    done: list[bool] = []
    port = server.start()
    feeder = threading.Thread(target=lambda: done.append(tracker.run(port, pace=0.025)))
    feeder.start()
    try:
        wait_until(lambda: len(tracker.acked) >= 100, 30, "100 batches acked before the outage")
        status, body = get_health(server)
        assert (status, body["status"]) == (200, "ok"), body

        pg.stop()
        acked_at_stop = len(tracker.acked)
        health: list[tuple[int, Any]] = []

        def spooling() -> bool:
            health.append(get_health(server))
            return (
                len(tracker.acked) - acked_at_stop > 100 and health[-1][1]["status"] == "degraded"
            )

        # Ingest goes on through the spool, and readiness says so.
        wait_until(spooling, 40, "100 batches acked through the spool, readiness degraded")
        assert health[-1][0] == 200 and health[-1][1]["storage"]["spoolBytes"] > 0, health[-1]

        pg.start()

        def ready() -> bool:
            health.append(get_health(server))
            body = health[-1][1]
            return bool(body["status"] == "ok" and not body["storage"]["spooling"])

        wait_until(ready, 60, "readiness again, the spool drained")

        feeder.join(timeout=120)
        assert done == [True], server.tail()
        assert not tracker.errors, tracker.errors
        assert len(tracker.acked) == len(batches)
        assert_complete(url, "outage-1", len(batches))
        events = [line["event"] for line in server.log_lines()]
        assert "storage_spooling" in events and "storage_recovered" in events
    finally:
        feeder.join(timeout=120)
        assert server.stop() == 0
