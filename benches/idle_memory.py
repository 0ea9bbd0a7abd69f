"""Where an idle tracker connection's memory goes, measured from inside.

    python benches/idle_memory.py --count 10000 [--ack-mode received|durable]

Runs a server in this process with ``tracemalloc`` on, has a client
process (``benches/idle.py``) open ``--count`` idle tracker connections,
and prints, per connection: the server's RSS growth, what tracemalloc
traced (Python's allocations, by source line), the objects of each type
that appeared (``gc``), and the rest of RSS (the Rust extension's
allocations, allocator slack, and tracemalloc's own bookkeeping, which
inflates RSS: use :mod:`benches.idle` for the RSS figure itself). The
kernel's socket memory is not in RSS; ``/proc/net/sockstat`` is printed
before and after for it.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from benches.idle import raise_fd_limit, rss_bytes  # noqa: E402
from replaywire import Config, Server  # noqa: E402


def sockstat() -> str:
    with open("/proc/net/sockstat") as f:
        return " | ".join(line.strip() for line in f if line.startswith(("TCP:", "sockets:")))


def type_counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


async def measure(a: argparse.Namespace) -> None:
    tmp = tempfile.TemporaryDirectory()
    config = Config(
        host="127.0.0.1",
        port=0,
        database_url="memory://",
        spool_dir=f"{tmp.name}/spool",
        ack_mode=a.ack_mode,
        log_level="warning",
        max_connections=0,
        limit_concurrent_per_ip=0,
        limit_connections_per_ip=0,
    )
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(Server(config).run)
        await trio.sleep(0.3)
        gc.collect()
        types0 = type_counts()
        rss0 = rss_bytes(os.getpid())
        snap0 = tracemalloc.take_snapshot()
        sock0 = sockstat()
        client = await trio.lowlevel.open_process(
            [
                sys.executable,
                str(ROOT / "benches" / "idle.py"),
                "--port",
                str(server.port),
                "--count",
                str(a.count),
                "--hold",
                "120",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert client.stdout is not None and client.stdin is not None
        line = b""
        with trio.fail_after(max(60, a.count / 200)):
            while not line.endswith(b"\n"):
                chunk = await client.stdout.receive_some(256)
                if not chunk:
                    raise SystemExit("the client process ended before opening its connections")
                line += chunk
        opened = int(line.split()[1])
        await trio.sleep(1.0)
        gc.collect()
        rss1 = rss_bytes(os.getpid())
        snap1 = tracemalloc.take_snapshot()
        types1 = type_counts()
        sock1 = sockstat()
        await client.stdin.aclose()
        await client.wait()
        server.shutdown()

    k = max(opened, 1)
    diff = snap1.compare_to(snap0, "lineno")
    traced = sum(d.size_diff for d in diff)
    print(f"connections: {opened}  ack_mode: {a.ack_mode}")
    print(f"RSS growth per connection: {(rss1 - rss0) / k:8.0f} B")
    print(f"traced (Python) per conn:  {traced / k:8.0f} B")
    print(f"untraced rest per conn:    {(rss1 - rss0 - traced) / k:8.0f} B")
    print(f"sockstat before: {sock0}")
    print(f"sockstat after:  {sock1}")
    print("\ntop source lines, bytes per connection:")
    for d in diff[: a.top]:
        if d.size_diff / k < 8:
            break
        frame = d.traceback[0]
        name = "/".join(Path(frame.filename).parts[-3:])
        print(f"{d.size_diff / k:8.0f} B {d.count_diff / k:6.2f} blocks  {name}:{frame.lineno}")
    print("\nby file, bytes per connection:")
    for d in snap1.compare_to(snap0, "filename")[: a.top // 2]:
        if d.size_diff / k < 8:
            break
        name = "/".join(Path(d.traceback[0].filename).parts[-3:])
        print(f"{d.size_diff / k:8.0f} B {d.count_diff / k:6.2f} blocks  {name}")
    print("\nobjects per connection, by type:")
    grown = (types1 - types0).most_common(a.top)
    for name, n in grown:
        if n / k >= 0.5:
            print(f"{n / k:6.2f}  {name}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--ack-mode", default="received", choices=["received", "durable"])
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--frames", type=int, default=1, help="tracemalloc traceback depth")
    a = p.parse_args()
    raise_fd_limit(a.count)
    tracemalloc.start(a.frames)
    trio.run(measure, a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
