"""Real `replaywire serve` processes and signals: SIGTERM in the middle of
ingest loses no accepted batch and every tracker sees 1001; DRAIN_SECONDS
bounds the drain; a second signal forces the exit."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from e2e.processes import ServerProcess
from rrweb import batch_message, session_events, start_message

BATCH = 10  # events per batch: small, to keep the load on two shared cores low


@dataclass
class Tracker:
    """Streams one session with a window of 8 unacked batches until the
    server closes the connection; remembers acks and the close code."""

    session_id: str
    events: list[bytes]
    acked: set[int] = field(default_factory=set)
    close_code: int | None = None
    error: BaseException | None = None

    def run(self, port: int) -> None:
        try:
            with connect(f"ws://127.0.0.1:{port}/ws?type=tracker") as ws:
                ws.send(start_message(self.session_id))
                assert json.loads(ws.recv(timeout=10))["type"] == "session_started"
                seq, inflight = 0, 0
                try:
                    while True:
                        while inflight < 8 and (seq + 1) * BATCH <= len(self.events):
                            part = self.events[seq * BATCH : (seq + 1) * BATCH]
                            ws.send(batch_message(self.session_id, seq, part).decode())
                            seq, inflight = seq + 1, inflight + 1
                            time.sleep(0.002)
                        reply = json.loads(ws.recv(timeout=30))
                        assert reply["type"] == "ack", reply
                        self.acked.add(reply["data"]["seq"])
                        inflight -= 1
                except ConnectionClosed:
                    pass
                self.close_code = ws.close_code
        except BaseException as exc:
            self.error = exc


def stored_seqs(db: Path, session_id: str) -> set[int]:
    """Rows are keyed by tenant and id; this server runs in development mode."""
    with sqlite3.connect(db) as conn:
        key = f"default:{session_id}"
        rows = conn.execute("SELECT seq FROM chunks WHERE session_id = ?", (key,))
        return {seq for (seq,) in rows}


def wait_for_event(server: ServerProcess, event: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log_lines():
            if line.get("event") == event:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no {event} within {timeout} s: {server.tail()}")


def stubborn_client(port: int) -> socket.socket:
    """A WebSocket tracker that never reads again: it will not answer the
    server's close frame, so only the drain's deadline ends it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /ws?type=tracker HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n" % key
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def close_code_received(sock: socket.socket) -> int:
    """The code of the close frame the server sent (unmasked, short)."""
    data = b""
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        data += chunk
    frame = data[data.index(b"\x88") :]
    return int.from_bytes(frame[2:4], "big")


def test_sigterm_mid_ingest_keeps_every_acked_batch_and_closes_with_1001(
    tmp_path: Path,
) -> None:
    db = tmp_path / "rw.db"
    server = ServerProcess(
        tmp_path,
        "server",
        DATABASE_URL=f"sqlite:///{db}",
        DRAIN_SECONDS="10",
        LOG_DIR=str(tmp_path / "logs"),
    )
    port = server.start()
    trackers = [Tracker(f"t{i}", list(session_events(3000, seed=40 + i))) for i in range(3)]
    threads = [threading.Thread(target=t.run, args=(port,)) for t in trackers]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while min(len(t.acked) for t in trackers) < 10:  # everyone mid-stream
            assert time.monotonic() < deadline, [len(t.acked) for t in trackers]
            assert all(t.error is None for t in trackers), [t.error for t in trackers]
            time.sleep(0.01)
        signalled = time.monotonic()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        assert server.proc.wait(timeout=30) == 0
        took = time.monotonic() - signalled
    finally:
        server.stop()

    assert took < 10 + 2, took  # DRAIN_SECONDS, plus the interpreter's exit
    for tracker in trackers:
        assert tracker.error is None, tracker.error
        assert tracker.close_code == 1001, tracker.session_id
        assert len(tracker.acked) < 300  # the signal came mid-stream
        missing = tracker.acked - stored_seqs(db, tracker.session_id)
        assert not missing, (tracker.session_id, sorted(missing))

    events = [line["event"] for line in server.log_lines()]
    for event in ("shutdown_requested", "shutdown_started", "server_stopped"):
        assert event in events
    assert "shutdown_incomplete" not in events
    stopped = [line for line in server.log_lines() if line["event"] == "server_stopped"]
    assert stopped[-1]["exit_code"] == 0
    closed = [line for line in server.log_lines() if line["event"] == "connection_closed"]
    assert sorted(line["code"] for line in closed) == [1001, 1001, 1001]


def test_drain_seconds_bounds_the_shutdown(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, "server", DATABASE_URL=f"sqlite:///{tmp_path / 'rw.db'}", DRAIN_SECONDS="2"
    )
    port = server.start()
    sock = stubborn_client(port)
    try:
        assert server.proc is not None
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0  # nothing accepted was left unwritten
        took = time.monotonic() - signalled
        assert close_code_received(sock) == 1001
    finally:
        sock.close()
        server.stop()
    assert 0.9 < took < 2 + 2, took  # waited for the peer, but not past DRAIN_SECONDS


def test_a_second_signal_forces_the_exit(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, "server", DATABASE_URL=f"sqlite:///{tmp_path / 'rw.db'}", DRAIN_SECONDS="60"
    )
    port = server.start()
    sock = stubborn_client(port)
    try:
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        wait_for_event(server, "shutdown_started")
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=30) == 0  # forced, but nothing was pending
        took = time.monotonic() - signalled
        assert close_code_received(sock) == 1001
    finally:
        sock.close()
        server.stop()
    assert took < 5, took  # not the 30 s the drain would have waited for the peer
    forced = wait_for_event(server, "shutdown_forced")
    assert (forced["signal"], forced["level"]) == ("SIGINT", "warning")
