"""Connection scale: K idle tracker connections held open at once.

Each connection upgrades, starts a session and waits for
``session_started``, then stays idle. Reported: the server's resident
memory (``VmRSS``) before and with all K open, per connection, and the
accept rate (connections fully started per second, at most ``parallel``
handshakes in flight). The client needs K file descriptors; ``K=10000``
needs ``ulimit -n`` above that, in this process and the server's.
"""

from __future__ import annotations

import os
import time

import trio

from benches.ingest_load import open_ws
from replaywire import _core
from rrweb import start_message


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def _open_one(port: int, n: int, streams: list[trio.SocketStream]) -> None:
    stream, rest = await open_ws(port)
    decoder = _core.FrameDecoder(require_mask=False, max_message_bytes=1 << 20)
    sid = f"idle-{os.getpid()}-{n}"
    await stream.send_all(
        _core.encode_client_frame(_core.OP_TEXT, start_message(sid).encode(), os.urandom(4))
    )
    got = list(decoder.feed(rest)) if rest else []
    while not got:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("server closed an idle connection")
        got = decoder.feed(data)
    streams.append(stream)


async def run_idle(
    port: int, server_pid: int, count: int, parallel: int = 100, hold: float = 1.0
) -> dict[str, object]:
    """Open ``count`` connections (``parallel`` at a time), hold them
    ``hold`` seconds, measure, close them all."""
    await trio.sleep(0.3)  # let the fresh server settle
    before = rss_bytes(server_pid)
    streams: list[trio.SocketStream] = []
    limiter = trio.CapacityLimiter(parallel)

    async def one(n: int) -> None:
        async with limiter:
            await _open_one(port, n, streams)

    started = time.perf_counter()
    with trio.fail_after(max(60.0, count / 50)):
        async with trio.open_nursery() as nursery:
            for n in range(count):
                nursery.start_soon(one, n)
    elapsed = time.perf_counter() - started
    await trio.sleep(hold)
    after = rss_bytes(server_pid)
    for stream in streams:
        await stream.aclose()
    return {
        "connections": count,
        "accept_per_s": round(count / elapsed),
        "open_seconds": round(elapsed, 3),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_with_all_mib": round(after / 2**20, 1),
        "rss_per_connection_kib": round((after - before) / count / 1024, 2),
    }
