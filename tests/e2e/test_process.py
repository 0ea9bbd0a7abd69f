"""The real `replaywire serve` process: started by its console entry point,
stopped by SIGTERM, it writes every acked batch before it exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from e2e.clients import start_session
from rrweb import batch_message, session_events, start_message


async def start_process(tmp_path: Path, **env: str) -> tuple[trio.Process, int, list[dict]]:
    """Start the server; return it, its port (read from its JSON log) and the
    log lines read so far."""
    environ = {
        **os.environ,
        "PORT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'rw.db'}",
        "LOG_FORMAT": "json",
        # Nothing is flushed on its own: only the shutdown can write it.
        "BATCH_INTERVAL": "600000",
        "BATCH_SIZE": "1000000",
        **env,
    }
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "replaywire", "serve"], env=environ, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    lines: list[dict] = []
    buffer = b""
    with trio.fail_after(30):
        while True:
            chunk = await proc.stdout.receive_some(65536)
            assert chunk, "server exited before listening"
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines += [json.loads(line) for line in complete if line.strip()]
            for line in lines:
                if line["event"] == "server_listening":
                    return proc, line["port"], lines


def stream_then_wait_for_close(port: int, proc: trio.Process, events: list[bytes]) -> int | None:
    """In a worker thread, with the websockets sync client: stream the
    session, send SIGTERM once everything is acked, return the close code."""
    with connect(f"ws://127.0.0.1:{port}/ws?type=tracker") as ws:
        ws.send(start_message("term"))
        ws.recv(timeout=10)
        for seq in range(len(events) // 50):
            ws.send(batch_message("term", seq, events[seq * 50 : seq * 50 + 50]).decode())
        acks = [json.loads(ws.recv(timeout=10))["data"]["seq"] for _ in range(len(events) // 50)]
        assert acks == list(range(len(events) // 50))
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=30)
        return ws.close_code


async def test_sigterm_drains_and_keeps_every_acked_batch(tmp_path: Path) -> None:
    proc, port, _ = await start_process(tmp_path)
    events = list(session_events(1500, seed=31))
    try:
        code = await trio.to_thread.run_sync(stream_then_wait_for_close, port, proc, events)
        assert code == 1001
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stdout is not None
    rest = b""
    while chunk := await proc.stdout.receive_some(65536):
        rest += chunk
    await proc.stdout.aclose()
    logged = [json.loads(line)["event"] for line in rest.splitlines() if line.strip()]
    assert "shutdown_requested" in logged
    assert "server_stopped" in logged

    proc2, port2, _ = await start_process(tmp_path)
    try:
        async with open_websocket_url(f"ws://127.0.0.1:{port2}/ws?type=tracker") as ws:
            resumed = await start_session(ws, "term")
            del resumed["limits"]  # test_snapshot_missing.py checks them
            assert resumed == {"sessionId": "term", "nextSeq": 30, "nextIndex": 1500}
    finally:
        proc2.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            await proc2.wait()
        assert proc2.stdout is not None
        await proc2.stdout.aclose()
