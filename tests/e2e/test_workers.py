"""``replaywire serve --workers N``: real processes on one port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from e2e.processes import ServerProcess, WindowedTracker
from rrweb import session_events


def _wait_for(proc: ServerProcess, check: Any, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = proc.log_lines()
        if check(lines):
            return lines
        time.sleep(0.05)
    raise AssertionError(f"timed out: {proc.tail(40)}")


def _get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.read()


def test_workers_above_one_are_refused_without_redis_and_postgresql(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "replaywire", "serve", "--workers", "2", "--port", "0"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "WORKERS=2: several workers need REDIS_URL and a PostgreSQL DATABASE_URL" in err
    assert "SQLite has one writer" in err and "would not be shared" in err


def test_two_workers_share_a_port_and_survive_a_sigkill(
    tmp_path: Path, redis_url: str, redis_prefix: str, fresh_postgres_url: str
) -> None:
    server = ServerProcess(
        tmp_path,
        "workers",
        WORKERS="2",
        INSTANCE_ID="sup",
        DATABASE_URL=fresh_postgres_url,
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        DRAIN_SECONDS="5",
    )
    port = server.start()
    try:
        lines = _wait_for(
            server, lambda ls: sum(1 for x in ls if x.get("event") == "server_listening") == 2
        )
        assert {x["port"] for x in lines if x.get("event") == "server_listening"} == {port}
        pids = {x["worker"]: x["pid"] for x in lines if x.get("event") == "worker_started"}
        assert set(pids) == {1, 2}

        for _ in range(40):  # the kernel spreads connections over both workers
            with connect(f"ws://127.0.0.1:{port}/ws?type=viewer"):
                pass
        served = {
            x["instance"] for x in server.log_lines() if x.get("event") == "connection_opened"
        }
        assert {"sup-w1", "sup-w2"} <= served, served

        os.kill(pids[1], signal.SIGKILL)
        lines = _wait_for(
            server, lambda ls: sum(1 for x in ls if x.get("event") == "server_listening") == 3
        )
        exited = [x for x in lines if x.get("event") == "worker_exited"]
        assert exited[0]["worker"] == 1 and exited[0]["signal"] == "SIGKILL", exited
        assert exited[0]["level"] == "error"

        # Still serving: a session streamed and stored through the shared port.
        events = list(session_events(40))
        tracker = WindowedTracker("after-kill", [events[i : i + 10] for i in range(0, 40, 10)])
        assert tracker.run(port)
        status, body = _get(port, "/sessions/after-kill")
        assert status == 200 and json.loads(body)["eventCount"] == 40
    finally:
        started = time.monotonic()
        code = server.stop()
    assert code == 0 and time.monotonic() - started < 5 + 5
    assert any(x.get("event") == "workers_stopped" for x in server.log_lines())
