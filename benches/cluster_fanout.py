"""Cross-instance fan-out: what relaying through Redis adds to live latency.

Two server processes, A and B, share one Redis (127.0.0.1:6379 by default,
under a prefix of this run's own) and a fresh PostgreSQL database. A tracker
on A sends one small batch every ``--interval`` seconds; one viewer on A
and one on B watch the session (``--codec``). For each batch, the time from
sending it to each viewer receiving its delta is measured; B's minus A's is
what the relay adds (publish, Redis, subscriber thread, re-framing). Both
include the ``VIEWER_FLUSH_INTERVAL`` coalescing (50 ms), which is why only
the difference is the figure.

``--payload`` first compares what one relayed tick costs the publisher
when the events travel raw versus zstd-compressed (the choice made in
``replaywire/redis/wire.py``), on realistic rrweb events.

    python benches/cluster_fanout.py --samples 200 --interval 0.1 --payload

Every loop is bounded by ``--samples``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import trio
from trio_websocket import open_websocket_url

from replaywire import _core
from replaywire.client import EventsMessage, decode_message
from replaywire.redis import wire

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_load import PG_ADMIN_URL, free_port, pct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import batch_message, session_events, start_message


def payload_costs(
    redis_url: str, prefix: str, events_per_tick: int, rounds: int
) -> dict[str, object]:
    """Per tick: build + PUBLISH (one pipelined call per tick), raw vs zstd."""
    events = list(session_events(events_per_tick * 20, seed=7))[2:]  # skip the full snapshot
    ticks = [
        b"[" + b",".join(events[i : i + events_per_tick]) + b"]"
        for i in range(0, len(events) - events_per_tick, events_per_tick)
    ]
    client = redis.Redis.from_url(redis_url)
    compressor = _core.Compressor("zstd", 3)
    out: dict[str, object] = {"events_per_tick": events_per_tick}
    try:
        for mode in ("raw", "zstd"):
            sizes, started = [], time.perf_counter()
            for n in range(rounds):
                tick = ticks[n % len(ticks)]
                if mode == "zstd":
                    payload = wire.delta_payload(compressor.compress, tick)
                else:
                    payload = wire.PAYLOAD.pack(wire.CODEC_NONE, len(tick)) + tick
                msg = wire.message(wire.DELTA, n, events_per_tick, None, payload)
                sizes.append(len(msg))
                client.publish(prefix + "bench", msg)
            elapsed = time.perf_counter() - started
            out[mode] = {
                "bytes_per_tick": round(statistics.fmean(sizes)),
                "us_per_tick": round(elapsed / rounds * 1e6, 1),
            }
        # What a receiver pays to hand a zstd tick to a codec=none viewer.
        tick = ticks[0]
        blob = compressor.compress(tick)
        started = time.perf_counter()
        for _ in range(rounds):
            _core.decompress("zstd", blob, len(tick))
        out["zstd_decompress_us"] = round((time.perf_counter() - started) / rounds * 1e6, 1)
    finally:
        client.close()
    return out


def start_server(
    name: str, port: int, env: dict[str, str], log_dir: str
) -> subprocess.Popen[bytes]:
    log = open(os.path.join(log_dir, f"{name}.log"), "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "replaywire", "serve"],
        env={**os.environ, **env, "PORT": str(port), "INSTANCE_ID": name},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with open(os.path.join(log_dir, f"{name}.log"), "rb") as fh:
                if b'"server_listening"' in fh.read():
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{name} did not start")
        time.sleep(0.05)


async def measure(port_a: int, port_b: int, args: argparse.Namespace) -> dict[str, list[float]]:
    sent: dict[int, float] = {}  # event index -> send time
    got: dict[str, dict[int, float]] = {"a": {}, "b": {}}
    session = f"bench-{secrets.token_hex(3)}"
    total = args.samples + 2

    async def viewer(name: str, port: int, ready: trio.Event) -> None:
        url = f"ws://127.0.0.1:{port}/ws?type=viewer&codec={args.codec}"
        async with open_websocket_url(url, max_message_size=1 << 30) as ws:
            join = {"type": "viewer_join_session", "data": {"sessionId": session}}
            await ws.send_message(json.dumps(join))
            ready.set()
            with trio.fail_after(args.samples * args.interval + 60):
                while len(got[name]) < args.samples:
                    msg = decode_message(await ws.get_message())
                    if isinstance(msg, EventsMessage) and msg.type == "delta":
                        now = time.perf_counter()
                        for index in range(msg.first_index, msg.next_index):
                            if index >= 2:
                                got[name][index] = now

    events = list(session_events(total, seed=3))
    async with open_websocket_url(f"ws://127.0.0.1:{port_a}/ws?type=tracker") as tracker:
        await tracker.send_message(start_message(session))
        await tracker.get_message()
        await tracker.send_message(batch_message(session, 0, events[:2]).decode())  # meta+snapshot
        await tracker.get_message()
        async with trio.open_nursery() as nursery:
            for name, port in (("a", port_a), ("b", port_b)):
                ready = trio.Event()
                nursery.start_soon(viewer, name, port, ready)
                await ready.wait()
            await trio.sleep(1.0)  # both joined and synced
            for seq in range(1, args.samples + 1):
                sent[seq + 1] = time.perf_counter()
                await tracker.send_message(batch_message(session, seq, [events[seq + 1]]).decode())
                await tracker.get_message()
                await trio.sleep(args.interval)
    common = sorted(set(got["a"]) & set(got["b"]) & set(sent))
    return {
        "a": [got["a"][i] - sent[i] for i in common],
        "b": [got["b"][i] - sent[i] for i in common],
        "added": [got["b"][i] - got["a"][i] for i in common],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--codec", default="zstd", choices=["none", "deflate", "zstd"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--payload", action="store_true", help="also compare raw vs zstd relaying")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prefix = f"rwbench:{os.getpid()}:"
    result: dict[str, object] = {"samples": args.samples, "codec": args.codec}
    if args.payload:
        result["payload"] = [payload_costs(args.redis_url, prefix, n, 2000) for n in (5, 50, 500)]
    import psycopg

    pg_name = f"replaywire_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {pg_name}")
    tmp = tempfile.TemporaryDirectory()
    procs = []
    try:
        env = {
            "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name,
            "REDIS_URL": args.redis_url,
            "REDIS_PREFIX": prefix,
            "LOG_FORMAT": "json",  # info: start_server waits for server_listening
            "PRESENCE_INTERVAL": "0.5",
        }
        ports = free_port(), free_port()
        for name, port in zip(("a", "b"), ports, strict=True):
            procs.append(
                start_server(name, port, {**env, "SPOOL_DIR": f"{tmp.name}/{name}"}, tmp.name)
            )
        lat = trio.run(measure, *ports, args)
        for key in ("a", "b", "added"):
            values = sorted(lat[key])
            result[f"{key}_ms"] = {
                "p50": round(pct(values, 0.5), 2),
                "p99": round(pct(values, 0.99), 2),
                "n": len(values),
            }
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
        tmp.cleanup()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
