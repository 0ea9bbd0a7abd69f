"""The log of a real `replaywire serve`, as ops read it: JSON lines with the
documented fields on stdout and in LOG_DIR, context bound per connection
and request, and a flood of bad input costing a bounded number of lines."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from websockets.sync.client import connect

from e2e.processes import ServerProcess
from rrweb import batch_message, session_events, start_message

DOCUMENTED = ["timestamp", "level", "event", "logger", "instance"]
CONNECTION_CONTEXT = {"conn_id", "client", "client_type", "request_id"}


def test_log_lines_are_documented_json_and_floods_are_bounded(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    server = ServerProcess(
        tmp_path,
        "server",
        DATABASE_URL=f"sqlite:///{tmp_path / 'rw.db'}",
        LOG_DIR=str(log_dir),
        INSTANCE_ID="ops-1",
    )
    port = server.start()
    try:
        events = list(session_events(200, seed=9))
        with connect(
            f"ws://127.0.0.1:{port}/ws?type=tracker",
            additional_headers={"X-Request-ID": "req-tracker-1"},
        ) as ws:
            ws.send(start_message("log-1"))
            ws.recv(timeout=10)
            for seq in range(4):
                ws.send(batch_message("log-1", seq, events[seq * 50 : seq * 50 + 50]).decode())
            for _ in range(4):
                assert json.loads(ws.recv(timeout=10))["type"] == "ack"
            ws.send(json.dumps({"type": "session_end", "data": {"sessionId": "log-1"}}))
            ws.recv(timeout=10)
        # A hostile client: 500 bad messages in a burst.
        with connect(f"ws://127.0.0.1:{port}/ws?type=tracker") as ws:
            for _ in range(500):
                ws.send("{not json")
            for _ in range(500):
                ws.recv(timeout=10)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/health", headers={"X-Request-ID": "req-http-1"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["X-Request-ID"] == "req-http-1"
    finally:
        assert server.stop() == 0

    lines = server.log_lines()
    assert lines and all(line["event"] != "unparsed" for line in lines), server.tail()
    for line in lines:
        assert list(line)[:5] == DOCUMENTED, line
        assert line["instance"] == "ops-1"
        assert line["level"] in ("debug", "info", "warning", "error", "critical")
        assert line["event"] == line["event"].lower() and " " not in line["event"], line
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)

    opened = by_event["connection_opened"][0]
    assert opened.keys() >= CONNECTION_CONTEXT
    assert (opened["request_id"], opened["client_type"]) == ("req-tracker-1", "tracker")
    ended = by_event["session_ended"][0]
    assert ended["session_id"] == "default:log-1" and ended["conn_id"] == opened["conn_id"]
    closed = by_event["connection_closed"][0]
    assert {"duration_s", "messages", "bytes_in", "bytes_out", "code"} <= closed.keys()
    assert closed["messages"] == 6

    # 500 rejected messages: one line (the rest counted, then reported once
    # the burst is over, or in the metrics).
    assert len(by_event["tracker_message_rejected"]) == 1
    assert len(lines) < 30, [line["event"] for line in lines]

    # LOG_DIR holds the same lines, and errors only in the error file.
    today = datetime.now(UTC).date().isoformat()
    in_file = [
        json.loads(raw) for raw in (log_dir / f"replaywire-{today}.log").read_text().splitlines()
    ]
    assert [line["event"] for line in in_file] == [line["event"] for line in lines]
    assert not (log_dir / f"replaywire-error-{today}.log").exists()  # made at the first error
