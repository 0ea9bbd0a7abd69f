"""Real `replaywire serve` processes for crash and outage tests, and a
tracker that keeps a window of batches in flight and remembers every ack.

The server's log goes to a file, not a pipe: a pipe nobody reads fills up
and would stall the server on its next log line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from rrweb import batch_message, start_message


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``check()`` holds (asked every 50 ms), or fail saying
    ``what`` was awaited: for state other threads or processes change."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


class ServerProcess:
    """One `python -m replaywire serve` with its environment and log file."""

    def __init__(self, tmp_path: Path, name: str, **env: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self.env = {
            **os.environ,
            "PORT": "0",
            "LOG_FORMAT": "json",
            "SPOOL_DIR": str(tmp_path / "spool"),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 60.0) -> int:
        """Start (or start again, appending to the same log); return the port."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "replaywire", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines(offset):
                if line.get("event") == "server_listening":
                    self.port = int(line["port"])
                    return self.port
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"server did not listen within {timeout} s: {self.tail()}")

    def log_lines(self, offset: int = 0) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        out = []
        for raw in self.log_path.read_bytes()[offset:].splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": "unparsed", "text": raw.decode("utf-8", "replace")})
        return out

    def tail(self, n: int = 20) -> str:
        return "\n".join(json.dumps(line) for line in self.log_lines()[-n:])

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait for the graceful exit; return the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass
class WindowedTracker:
    """Streams ``batches`` (one list of raw events per seq) for one session
    with ``window`` unacked batches in flight, like a real tracker: on
    (re)connect it sends ``session_start``, continues from the server's
    ``nextSeq`` and resends anything unacked. Thread-safe record of acks."""

    session_id: str
    batches: list[list[bytes]]
    window: int = 8
    acked: set[int] = field(default_factory=set)
    resumed_from: list[int] = field(default_factory=list)  # nextSeq of each session_start
    errors: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(
        self,
        port: int,
        *,
        on_ack: Callable[[int], None] | None = None,
        pace: float = 0.0,
        end: bool = True,
    ) -> bool:
        """One connection's worth: stream until every batch is acked (then
        ``session_end`` if ``end``; returns True) or the connection is lost
        (returns False). ``pace`` seconds between sends, for a steady rate."""
        try:
            with connect(f"ws://127.0.0.1:{port}/ws?type=tracker", max_size=None) as ws:
                ws.send(start_message(self.session_id))
                started = json.loads(ws.recv(timeout=30))
                assert started["type"] == "session_started", started
                next_seq = started["data"]["nextSeq"]
                with self.lock:
                    self.resumed_from.append(next_seq)
                    # What the server already stored counts as acked.
                    self.acked.update(range(next_seq))
                todo = [s for s in range(len(self.batches)) if s not in self.acked]
                inflight: set[int] = set()
                while todo or inflight:
                    while todo and len(inflight) < self.window:
                        seq = todo.pop(0)
                        ws.send(batch_message(self.session_id, seq, self.batches[seq]).decode())
                        inflight.add(seq)
                        if pace:
                            time.sleep(pace)
                    reply = json.loads(ws.recv(timeout=60))
                    if reply["type"] == "ack":
                        seq = reply["data"]["seq"]
                        inflight.discard(seq)
                        with self.lock:
                            self.acked.add(seq)
                        if on_ack is not None:
                            on_ack(seq)
                    elif reply["type"] == "error":
                        with self.lock:
                            self.errors.append(reply["data"])
                        seq = reply["data"].get("seq")
                        if seq is not None and seq in inflight:  # retryable: send again later
                            inflight.discard(seq)
                            todo.insert(0, seq)
                            time.sleep(reply["data"].get("retryAfterMs", 100) / 1000)
                if end:
                    end_msg = {"type": "session_end", "data": {"sessionId": self.session_id}}
                    ws.send(json.dumps(end_msg))
                    assert json.loads(ws.recv(timeout=30))["type"] == "session_ended"
                return True
        except (ConnectionClosed, OSError, TimeoutError):
            return False
