"""Live fan-out: N viewers watching one session of a fully loaded server.

For each N (default 0, 1, 10, 100, 1000) a fresh server process gets the
ingest benchmark's load (C trackers, each streaming as fast as its window of
W unacked batches of B rrweb-like events allows) and N viewers of the first
tracker's session (``--codec``, default zstd). Reported per N: the total
ingest rate and ack latency, the events delivered per second summed over all
viewers, and ingest relative to N=0 -- what watching costs everyone else.

    python benches/fanout.py --viewers 0,1,10,100,1000 --duration 8

Viewers are raw sockets whose frames are decoded by the Rust frame decoder;
per binary frame only the 22-byte header is read (the event count). They run
in a process of their own, so their work does not slow the trackers' process
(all three processes still share the machine's cores). Every loop is bounded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_load import Totals, free_port, pct, tracker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import session_events

HEADER = struct.Struct(">BBBBIQIH")


async def viewer(
    port: int, session_id: str, codec: str, delivered: list[int], joined: list[int]
) -> None:
    """Join and count delivered events until cancelled."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    await stream.send_all(
        b"GET /ws?type=viewer&codec=%b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (codec.encode(), key)
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(4096)
    data = head.split(b"\r\n\r\n", 1)[1]
    join = json.dumps({"type": "viewer_join_session", "data": {"sessionId": session_id}})
    join_frame = _core.encode_client_frame(_core.OP_TEXT, join.encode(), os.urandom(4))
    await stream.send_all(join_frame)
    decoder = _core.FrameDecoder(require_mask=False, max_message_bytes=64 << 20)
    try:
        while True:
            for msg in decoder.feed(data) if data else ():
                if isinstance(msg, _core.WsMessage):
                    if msg.is_text:
                        if msg.data.startswith(b'{"type":"delta"'):
                            delivered[0] += json.loads(msg.data)["data"]["count"]
                        elif msg.data.startswith(b'{"type":"viewer_joined"'):
                            joined[0] += 1
                        elif msg.data.startswith(b'{"type":"error"'):
                            # The session may not be started yet on a busy server.
                            await trio.sleep(0.1)
                            await stream.send_all(join_frame)
                    else:
                        delivered[0] += HEADER.unpack_from(msg.data)[4]
            data = await stream.receive_some(1 << 20)
            if not data:
                return
    finally:
        stream.socket.close()


async def viewers_process(port: int, session_id: str, n: int, codec: str) -> None:
    """The viewers, in a process of their own (``--viewer-process``): their
    Python work must not slow the trackers' process. Prints ``joined`` once
    all joined, then the delivered count every 100 ms; stops after 600 s."""
    delivered, joined = [0], [0]
    with trio.move_on_after(600):
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(viewer, port, session_id, codec, delivered, joined)
            while joined[0] < n:  # noqa: ASYNC110
                await trio.sleep(0.05)
            print("joined", flush=True)
            while True:
                print(delivered[0], flush=True)
                await trio.sleep(0.1)


async def run(port: int, n_viewers: int, args: argparse.Namespace) -> dict[str, object]:
    events = list(session_events(max(args.batch * 40, 2000), seed=1))[2:]
    totals = Totals()
    window_open = [False]
    delivered = [0]
    # Trackers stop at this (far) deadline or, normally, when cancelled below.
    deadline = time.perf_counter() + 600
    session_id = f"bench-{os.getpid()}-0"
    async with trio.open_nursery() as nursery:
        for n in range(args.connections):
            nursery.start_soon(tracker, port, n, events, args, totals, window_open, deadline)
        proc = None
        if n_viewers:
            proc = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    __file__,
                    "--viewer-process",
                    str(port),
                    session_id,
                    str(n_viewers),
                    args.codec,
                ],
                stdout=subprocess.PIPE,
            )
            assert proc.stdout is not None
            lines = _lines(proc.stdout)
            with trio.fail_after(120):
                while await anext(lines) != "joined":
                    pass

            async def follow() -> None:
                async for line in lines:
                    delivered[0] = int(line)

            nursery.start_soon(follow)
        await trio.sleep(args.warmup)
        window_open[0] = True
        before = delivered[0]
        measured_from = time.perf_counter()
        await trio.sleep(args.duration)
        window_open[0] = False
        elapsed = time.perf_counter() - measured_from
        delivered_in_window = delivered[0] - before
        if proc is not None:
            proc.kill()
            await proc.wait()
        nursery.cancel_scope.cancel()
    totals.latencies.sort()
    return {
        "viewers": n_viewers,
        "codec": args.codec,
        "ingest_events_per_s": round(totals.events / elapsed),
        "delivered_events_per_s": round(delivered_in_window / elapsed),
        "ack_p50_ms": round(pct(totals.latencies, 0.5), 2),
        "ack_p99_ms": round(pct(totals.latencies, 0.99), 2),
        "ack_mean_ms": round(statistics.fmean(totals.latencies) * 1000, 2)
        if totals.latencies
        else None,
    }


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while chunk := await stream.receive_some(65536):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode().strip()


def start_server(tmp: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": "memory://",
        "SPOOL_DIR": "",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
    }
    server = subprocess.Popen([sys.executable, "-m", "replaywire", "serve"], env=env, cwd=tmp)
    deadline = time.monotonic() + 20
    while True:
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start") from None
            time.sleep(0.05)


def main() -> int:
    if sys.argv[1:2] == ["--viewer-process"]:
        port, session_id, n, codec = sys.argv[2:6]
        trio.run(viewers_process, int(port), session_id, int(n), codec)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="0,1,10,100,1000")
    parser.add_argument("--codec", default="zstd", choices=["none", "deflate", "zstd"])
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--window", "-w", type=int, default=8)
    parser.add_argument("--batch", "-b", type=int, default=50)
    parser.add_argument("--duration", "-d", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for n in (int(v) for v in args.viewers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            server, port = start_server(tmp)
            try:
                results.append(trio.run(run, port, n, args))
            finally:
                server.terminate()
                server.wait(timeout=60)
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results))
        return 0
    base = results[0]["ingest_events_per_s"]
    assert isinstance(base, int)
    print(
        f"C={args.connections} W={args.window} B={args.batch}, viewers of one session,"
        f" codec {args.codec}, {args.duration} s each"
    )
    columns = ["viewers", "ingest events/s", "vs no viewers", "delivered events/s"]
    print("| " + " | ".join([*columns, "ack p50 ms", "ack p99 ms"]) + " |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ingest = r["ingest_events_per_s"]
        assert isinstance(ingest, int)
        print(
            f"| {r['viewers']} | {ingest:,} | {ingest / base:.0%} |"
            f" {r['delivered_events_per_s']:,} | {r['ack_p50_ms']} | {r['ack_p99_ms']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
