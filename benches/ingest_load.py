"""Ingest load: C tracker connections, each keeping W unacked batches of B
rrweb-like events (~230 bytes) in flight, for a fixed time after a warm-up.

Two generators offer the same messages. ``--generator rust`` (the default)
runs the binary in ``benches/loadgen/`` (see :mod:`benches.loadgen`): one
epoll loop that copies and masks each batch frame in one pass and no
Python on the hot path. ``--generator python`` is the trio generator below:
batch frames are masked and encoded by the Rust core once per batch, acks
are decoded by the Rust frame decoder once per read, and no JSON is parsed
(acks are counted by their frames); it costs about three times the CPU
per batch that the binary does (docs/benchmarks.md, "The load generator"). By default
the script starts its own server process (``replaywire serve``) on a free
loopback port and stops it at the end.

    python benches/ingest_load.py --connections 32 --window 8 --batch 50 --duration 10

Every loop is bounded by ``--duration``; the whole run stops by itself.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import batch_message, session_events, start_message

# Run as a script (or imported as `ingest_load` by one): `benches` importable.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent.parent))

GENERATORS = ("rust", "python")
# Rate limits are per deployment; a load test sends far more than a browser.
LOAD_ENV = {
    "LIMIT_MESSAGES_PER_TRACKER": "0",
    "LIMIT_EVENTS_PER_TRACKER": "0",
    "LIMIT_EVENTS_PER_SESSION": "0",
}


@dataclass
class Totals:
    events: int = 0
    bytes: int = 0
    acks: int = 0
    sent: int = 0  # batches written, warm-up included
    latencies: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20
) -> None:
    """Return once ``proc`` accepts connections on ``port``; exit if it dies
    or does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.05)


async def start_tracker(
    port: int, session_id: str
) -> tuple[trio.SocketStream, _core.FrameDecoder, bytes]:
    """A tracker connection with ``session_id`` started: the stream, its
    frame decoder and its mask."""
    stream, rest = await open_ws(port)
    decoder = _core.FrameDecoder(require_mask=False, max_message_bytes=1 << 20)
    mask = os.urandom(4)
    await stream.send_all(
        _core.encode_client_frame(_core.OP_TEXT, start_message(session_id).encode(), mask)
    )
    pending = list(decoder.feed(rest)) if rest else []
    while not pending:
        pending = decoder.feed(await stream.receive_some(65536))
    return stream, decoder, mask


async def open_ws(port: int) -> tuple[trio.SocketStream, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    await stream.send_all(
        b"GET /ws?type=tracker HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n" % key
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise RuntimeError("server closed during handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    return stream, head.split(b"\r\n\r\n", 1)[1]


async def tracker(
    port: int,
    n: int,
    events: list[bytes],
    args: argparse.Namespace,
    totals: Totals,
    window_open: list[bool],
    deadline: float,
) -> None:
    sid = session_id(n)
    stream, decoder, mask = await start_tracker(port, sid)
    batch_bytes = sum(len(e) for e in events[: args.batch])
    sent_at: dict[int, float] = {}
    seq = 0
    acked = 0

    def frame(seq: int) -> bytes:
        start = (seq * args.batch) % (len(events) - args.batch)
        return _core.encode_client_frame(
            _core.OP_TEXT, batch_message(sid, seq, events[start : start + args.batch]), mask
        )

    burst = b"".join(frame(s) for s in range(args.window))
    now = time.perf_counter()
    for s in range(args.window):
        sent_at[s] = now
    seq = args.window
    await stream.send_all(burst)
    totals.sent += args.window
    while time.perf_counter() < deadline:
        data = await stream.receive_some(262144)
        if not data:
            raise RuntimeError("server closed the connection")
        got = decoder.feed(data)
        now = time.perf_counter()
        out = []
        for _ in got:
            lat = now - sent_at.pop(acked)
            acked += 1
            if window_open[0]:
                totals.acks += 1
                totals.events += args.batch
                totals.bytes += batch_bytes
                if len(totals.latencies) < 2_000_000:
                    totals.latencies.append(lat)
            sent_at[seq] = now
            out.append(frame(seq))
            seq += 1
        if out:
            await stream.send_all(b"".join(out))
            totals.sent += len(out)
    await stream.aclose()


def corpus(batch: int) -> list[bytes]:
    """The events batches are cut from: steady-state events only (no
    repeated full snapshots), ~230 bytes each."""
    return list(session_events(max(batch * 40, 2000), seed=1))[2:]


def session_id(n: int) -> str:
    return f"bench-{os.getpid()}-{n}"


async def run_load(port: int, args: argparse.Namespace) -> Totals:
    events = corpus(args.batch)
    totals = Totals()
    window_open = [False]
    start = time.perf_counter()
    deadline = start + args.warmup + args.duration
    async with trio.open_nursery() as nursery:
        for n in range(args.connections):
            nursery.start_soon(tracker, port, n, events, args, totals, window_open, deadline)
        await trio.sleep(args.warmup)
        window_open[0] = True
        measured_from = time.perf_counter()
        await trio.sleep_until(trio.current_time() + args.duration)
        window_open[0] = False
        elapsed = time.perf_counter() - measured_from
    totals.latencies.sort()
    totals.elapsed = elapsed  # type: ignore[attr-defined]
    return totals


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def measure(port: int, args: Any) -> dict[str, Any]:
    """The closed-loop load ``args`` describe against the server on
    ``port``, with ``args.generator`` (rust unless said): throughput and ack
    latency, the same fields from either generator."""
    if getattr(args, "generator", "rust") == "rust":
        from benches import loadgen

        result = loadgen.run(
            port,
            [session_id(n) for n in range(args.connections)],
            corpus(args.batch),
            batch=args.batch,
            window=args.window,
            warmup=args.warmup,
            duration=args.duration,
            pin=getattr(args, "pin", False),
        )
        keep = (
            "seconds",
            "events_per_s",
            "mb_per_s",
            "acks_per_s",
            "ack_latency_ms",
            "generator_cpu_share",
            "generator_cpu_us_per_batch",
        )
        return {"generator": "rust", **{k: result[k] for k in keep}}
    # This process is the generator while trio.run runs: its CPU time is
    # the generator's (the server is another process).
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    totals = trio.run(run_load, port, args)
    cpu, wall = _cpu_seconds() - cpu_before, time.perf_counter() - started
    elapsed = totals.elapsed  # type: ignore[attr-defined]
    lat = totals.latencies
    return {
        "generator": "python",
        "seconds": round(elapsed, 2),
        "events_per_s": round(totals.events / elapsed),
        "mb_per_s": round(totals.bytes / elapsed / 1e6, 2),
        "acks_per_s": round(totals.acks / elapsed),
        "ack_latency_ms": {
            "p50": round(pct(lat, 0.50), 2),
            "p99": round(pct(lat, 0.99), 2),
            "mean": round(statistics.fmean(lat) * 1000, 2) if lat else None,
        },
        "generator_cpu_share": round(cpu / wall, 2),
        "generator_cpu_us_per_batch": round(cpu * 1e6 / max(1, totals.sent), 1),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--window", "-w", type=int, default=8)
    parser.add_argument("--batch", "-b", type=int, default=50)
    parser.add_argument("--duration", "-d", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=0, help="use a running server on this port")
    parser.add_argument(
        "--database-url",
        default="sqlite",
        help="sqlite (a temporary file) | postgres (a fresh database on 127.0.0.1:5432,"
        " dropped afterwards) | memory:// | any DATABASE_URL",
    )
    parser.add_argument(
        "--ack-mode", default="auto", choices=["auto", "durable", "received"], help="ACK_MODE"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="WORKERS (above 1 needs postgres and --redis-url)"
    )
    parser.add_argument("--redis-url", default="", help="REDIS_URL (a run prefix of its own)")
    parser.add_argument(
        "--ws-backend", default="rust", choices=["rust", "wsproto"], help="WS_BACKEND"
    )
    parser.add_argument(
        "--generator",
        default="rust",
        choices=GENERATORS,
        help="rust: the binary in benches/loadgen/ (built on demand); python: trio",
    )
    parser.add_argument(
        "--pin", action="store_true", help="server on the last CPU, the generator on the others"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def serving(
    args: argparse.Namespace, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[int, int | None]]:
    """A server process as ``args`` say (database, ack mode, WebSocket
    backend), on a free port: yields (port, pid), stops it on the way out.
    With ``--port`` it yields that port (pid None) and starts nothing.
    With ``--pin`` (and two or more CPUs) the server runs on the last CPU and
    this process, the generator, on the others (``sched_setaffinity``)."""
    if args.port:
        yield args.port, None
        return
    tmp = tempfile.TemporaryDirectory()
    pg_name = None
    port = free_port()
    db = args.database_url
    if db == "sqlite":
        db = f"sqlite:///{tmp.name}/bench.db"
    elif db == "postgres":
        import psycopg

        pg_name = f"replaywire_bench_{os.getpid()}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {pg_name}")
            conn.execute(f"CREATE DATABASE {pg_name}")
        db = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name
    env = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": db,
        "ACK_MODE": args.ack_mode,
        "WS_BACKEND": getattr(args, "ws_backend", "rust"),
        "SPOOL_DIR": f"{tmp.name}/spool",
        "LOG_LEVEL": "warning",
        "LOG_FORMAT": "json",
        "WORKERS": str(getattr(args, "workers", 1)),
        "REDIS_URL": getattr(args, "redis_url", ""),
        "REDIS_PREFIX": f"rwbench:{os.getpid()}:",
        **(extra_env or {}),
    }
    cpus = sorted(os.sched_getaffinity(0))
    pin = getattr(args, "pin", False) and len(cpus) >= 2
    server_cpus, generator_cpus = {cpus[-1]}, set(cpus[:-1])

    server = subprocess.Popen([sys.executable, "-m", "replaywire", "serve"], env=env)
    if pin:
        os.sched_setaffinity(server.pid, server_cpus)
        os.sched_setaffinity(0, generator_cpus)
    try:
        wait_listening(port, server, "server")
        yield port, server.pid
    finally:
        if pin:
            os.sched_setaffinity(0, cpus)
        server.terminate()
        server.wait(timeout=60)
        tmp.cleanup()
        if pg_name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")


def running_storage(port: int) -> str:
    """The storage backend a running server reports (``GET /health``): with
    ``--port`` the server's settings are its own, not this script's."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:  # 503 still says which backend
        body = exc.read()
    return f"{json.loads(body)['storage']['backend']} (running server)"


def server_rss_mb(pid: int) -> float | None:
    """The server's resident memory now (``VmRSS``, MB), read at the end of
    the measured window: with the default ring limits it holds 20,000
    events of each of the C sessions by then."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def run_once(args: argparse.Namespace) -> dict[str, object]:
    """Start a server as ``args`` say (unless --port), load it, stop it.
    With ``--port``, the storage is the running server's own (asked for)
    and its ack mode, backend and workers are not known here."""
    with serving(args, LOAD_ENV) as (port, pid):
        figures = measure(port, args)
        figures["server_rss_mb"] = server_rss_mb(pid) if args.port == 0 else None
        given = args.port != 0
        database = running_storage(port) if given else args.database_url
    unknown = "(running server)"
    return {
        "connections": args.connections,
        "window": args.window,
        "batch": args.batch,
        **figures,
        "database": database,
        "ack_mode": unknown if given else args.ack_mode,
        "workers": unknown if given else getattr(args, "workers", 1),
        "redis": unknown if given else bool(getattr(args, "redis_url", "")),
        "ws_backend": unknown if given else getattr(args, "ws_backend", "rust"),
    }


def main() -> int:
    args = parser().parse_args()
    result = run_once(args)
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["ack_latency_ms"]
        assert isinstance(lat, dict)
        print(
            f"{result['events_per_s']:,} events/s  {result['mb_per_s']} MB/s  "
            f"{result['acks_per_s']:,} acks/s  ack p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
            f"(C={args.connections} W={args.window} B={args.batch}, {result['seconds']} s, "
            f"{result['database']}, ack {result['ack_mode']}, {result['ws_backend']},"
            f" {args.generator} generator)"
            + (f"  server RSS {rss} MB" if (rss := result.get("server_rss_mb")) else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
