"""The benchmark suite: chosen scenarios against chosen backends, one
results folder.

    python -m benches --scenarios ingest,latency --ws-backend rust,wsproto -d 5

Scenarios: ``ingest`` (throughput, closed loop: C trackers with W
unacked batches of B events), ``latency`` (ack latency under a fixed offered
load at fractions of the measured maximum, open loop, see
:mod:`benches.openloop`), ``fanout`` (N viewers of one busy session,
:mod:`benches.fanout`), ``connections`` (K idle trackers: RSS per
connection, accept rate, :mod:`benches.idle`), ``storage`` (ingest per
storage backend and ack mode) and ``codec`` (ratio and MB/s per codec and
level, :mod:`benches.codecs`). Every server scenario runs once per
``--ws-backend``; ingest also once per ``--workers`` and ``--redis`` value
(replaywire refuses several workers without PostgreSQL and Redis: such runs
are recorded as skipped, saying so).

Peers (:mod:`benches.peers`): right after replaywire's ingest runs, the same
workload (generator, C/W/B, duration) runs against each ``--peers`` server,
Node.js ``ws``, Python ``websockets``, Bun and Rust (tokio-tungstenite)
implementations of the tracker protocol; the table gives replaywire's rate
over the best peer's. A peer that cannot be started (its tool missing,
``npm ci`` or ``cargo build`` failing) is recorded as ``skipped`` with the
reason, and the suite goes on.

The load generator is ``--generator rust`` (the default: the binary in
``benches/loadgen/``, built on demand, see :mod:`benches.loadgen`) or
``python`` (trio); every scenario with trackers uses it (the fan-out
scenario's watched session and viewers are Python's, in their own pace).

First, unless ``--no-calibrate``, the ingest generator is run against a
discard sink with the same C/W/B: its rate is the generator's ceiling,
written next to every throughput result; a result at 70% of it or more is
flagged ``generator_bound`` (the figure then says more about the generator
than about the server). The sink (``--sink``) is by default the one in the
generator's language: the Python sink (:mod:`benches.sink`) caps out below
the Rust generator, so calibrating that against it would report the sink's
ceiling, not the generator's.

Output, in ``--out``/``<timestamp>/``: ``runs/*.json`` (one raw result per
run), ``results.json`` (all of them, with the command and the machine),
``results.md`` (tables) and PNG plots (``report.py``). Progress bars use
rich. Every run is bounded by its duration; the suite stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES.parent / "tests"))
sys.path.insert(0, str(BENCHES.parent / "tests" / "data"))

from benches import codecs, idle, ingest_load, openloop, peers, sink  # noqa: E402
from benches import fanout as fanout_bench  # noqa: E402
from services import delete_prefix, redis_reachable  # noqa: E402  (tests/services.py)

SCENARIOS = ("ingest", "latency", "fanout", "connections", "storage", "codec")
STORAGES = {"memory": "memory://", "sqlite": "sqlite", "postgres": "postgres"}
GENERATOR_BOUND = 0.7
UNLIMITED = {
    "LIMIT_CONCURRENT_PER_IP": "0",
    "LIMIT_CONNECTIONS_PER_IP": "0",
    "MAX_CONNECTIONS": "0",
}
LOAD_ENV = ingest_load.LOAD_ENV
# A Redis database of the suite's own; each run writes under a key prefix of
# its own (REDIS_PREFIX), deleted after the run.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


class Skipped(Exception):
    """A planned run that cannot happen here; recorded with the reason."""


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benches", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    p.add_argument("--ws-backend", default="rust,wsproto", help="rust,wsproto")
    p.add_argument("--storage", default="memory,sqlite", help="memory,sqlite,postgres")
    p.add_argument("--ack-mode", default="received,durable", help="received,durable")
    p.add_argument(
        "--codec", default="none,deflate:6,zstd:1,zstd:3", help="codec[:level],... (codec scenario)"
    )
    p.add_argument("--duration", "-d", type=float, default=5.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--connections", "-c", type=int, default=32)
    p.add_argument("--window", "-w", type=int, default=8)
    p.add_argument("--batch", "-b", type=int, default=50)
    p.add_argument(
        "--peers",
        default=",".join(peers.NAMES),
        help="ingest: peer servers run after replaywire (none: no peer); a peer"
        " that cannot start is recorded as skipped",
    )
    p.add_argument("--workers", default="1", help="ingest: replaywire worker counts, e.g. 1,2")
    p.add_argument("--redis", default="off", help="ingest: off,on (REDIS_URL of --redis-url)")
    p.add_argument("--redis-url", default=REDIS_URL, help="Redis for --redis on (BENCH_REDIS_URL)")
    p.add_argument("--loads", default="0.25,0.5,0.75", help="latency: fractions of max")
    p.add_argument("--viewers", default="0,10,100", help="fanout: viewer counts")
    p.add_argument("--viewer-codec", default="zstd", choices=["none", "deflate", "zstd"])
    p.add_argument(
        "--fanout-alternate",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="fanout: also compare ingest in slices with the watched session sending and"
        " paused, alternating every SECONDS (0: off; see benches/fanout.py)",
    )
    p.add_argument("--idle-connections", type=int, default=1000, help="connections: K")
    p.add_argument(
        "--generator",
        default="rust",
        choices=ingest_load.GENERATORS,
        help="load generator: rust (benches/loadgen/, built on demand) or python",
    )
    p.add_argument(
        "--sink",
        default="auto",
        choices=("auto", *sink.SINKS),
        help="discard sink of the calibration (auto: the generator's language)",
    )
    p.add_argument("--no-calibrate", action="store_true", help="skip the discard-sink run")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


class Suite:
    """Plans the runs, runs them one by one, records each result."""

    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.folder: Path = args.out / stamp
        self.results: list[dict[str, Any]] = []
        self.ceiling: float | None = None
        self.max_rate: dict[str, float] = {}  # ws backend -> ingest events/s

    # -- plan ---------------------------------------------------------------

    def plan(self) -> list[tuple[str, str, float, Callable[[], dict[str, Any]]]]:
        """(scenario, label, expected seconds, run) in order."""
        a = self.args
        scenarios = _list(a.scenarios)
        unknown = set(scenarios) - set(SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
        backends = _list(a.ws_backend)
        storages = _list(a.storage)
        acks = _list(a.ack_mode)
        workers = [int(n) for n in _list(a.workers)]
        redis = _list(a.redis)
        if set(redis) - {"off", "on"}:
            raise SystemExit(f"--redis takes off,on; got {a.redis!r}")
        peer_names = [] if a.peers.strip() == "none" else _list(a.peers)
        if unknown := set(peer_names) - set(peers.NAMES):
            raise SystemExit(f"unknown peers: {', '.join(sorted(unknown))}")
        per_run = a.warmup + a.duration + 1.5
        runs: list[tuple[str, str, float, Callable[[], dict[str, Any]]]] = []
        if not a.no_calibrate and set(scenarios) & {"ingest", "latency", "storage", "fanout"}:
            runs.append(("calibration", "sink", per_run, self.calibrate))
        for ws in backends:
            if "ingest" in scenarios:
                for n in workers:
                    for r in redis:
                        label = " ".join(
                            [ws, *([f"w{n}"] if n != 1 else []), *(["redis"] if r == "on" else [])]
                        )
                        runs.append(
                            (
                                "ingest",
                                label,
                                per_run + (3 if n > 1 else 0),
                                lambda ws=ws, n=n, r=r: self.ingest(ws, n, r == "on"),
                            )
                        )
                if ws == backends[-1]:  # the peers right after replaywire
                    for name in peer_names:
                        runs.append(("ingest", name, per_run, lambda name=name: self.peer(name)))
            if "latency" in scenarios:
                for load in (float(x) for x in _list(a.loads)):
                    runs.append(
                        (
                            "latency",
                            f"{ws} {load:.0%}",
                            per_run + openloop.GRACE,
                            lambda ws=ws, load=load: self.latency(ws, load),
                        )
                    )
            if "fanout" in scenarios:
                for n in (int(x) for x in _list(a.viewers)):
                    runs.append(
                        ("fanout", f"{ws} {n}", per_run + 1, lambda ws=ws, n=n: self.fanout(ws, n))
                    )
            if "connections" in scenarios:
                k = a.idle_connections
                runs.append(
                    (
                        "connections",
                        ws,
                        3 + 2 * per_run + k / 1000,
                        lambda ws=ws, k=k: self.connections(ws, k),
                    )
                )
            if "storage" in scenarios:
                for storage in storages:
                    for ack in acks:
                        runs.append(
                            (
                                "storage",
                                f"{ws} {storage} {ack}",
                                per_run,
                                lambda ws=ws, s=storage, ack=ack: self.storage(ws, s, ack),
                            )
                        )
        if "codec" in scenarios:
            for spec in _list(a.codec):
                runs.append(("codec", spec, 2 * a.duration / 5, lambda spec=spec: self.codec(spec)))
        return runs

    # -- runs ----------------------------------------------------------------

    def _ingest_args(
        self,
        ws: str,
        storage: str = "memory",
        ack: str = "received",
        workers: int = 1,
        redis: bool = False,
    ) -> Any:
        a = self.args
        if storage not in STORAGES:
            raise SystemExit(f"unknown storage {storage!r}: expected {', '.join(STORAGES)}")
        return SimpleNamespace(
            connections=a.connections,
            window=a.window,
            batch=a.batch,
            duration=a.duration,
            warmup=a.warmup,
            port=0,
            database_url=STORAGES[storage],
            ack_mode=ack,
            ws_backend=ws,
            pin=not a.no_pin,
            codec=a.viewer_codec,
            alternate=a.fanout_alternate,
            workers=workers,
            redis_url=a.redis_url if redis else "",
            generator=a.generator,
        )

    def _load(
        self,
        ws: str,
        storage: str = "memory",
        ack: str = "received",
        *,
        workers: int = 1,
        redis: bool = False,
        server: contextlib.AbstractContextManager[tuple[int, int | None]] | None = None,
    ) -> dict[str, Any]:
        """Run the ingest generator against replaywire as the arguments
        say, or against ``server`` (a peer) when given."""
        args = self._ingest_args(ws, storage, ack, workers, redis)
        env = dict(LOAD_ENV)
        if redis:
            env["REDIS_PREFIX"] = prefix = f"rwbench:{os.getpid()}:{len(self.results)}:"
        if server is None:
            server = ingest_load.serving(args, env)
        try:
            with server as (port, _):
                figures = ingest_load.measure(port, args)
        finally:
            if redis:
                delete_prefix(args.redis_url, prefix)
        result = {"server": "replaywire", **_summary(figures, args)}
        if redis:
            result["redis_prefix"] = prefix  # deleted after the run
        return result

    def sink_kind(self) -> str:
        return self.args.generator if self.args.sink == "auto" else self.args.sink

    def calibrate(self) -> dict[str, Any]:
        args = self._ingest_args("sink")
        with sink.serving_sink(pin=args.pin, kind=self.sink_kind()) as (port, _):
            result = _summary(ingest_load.measure(port, args), args)
        result["sink"] = self.sink_kind()
        self.ceiling = float(result["events_per_s"])
        return result

    def ingest(self, ws: str, workers: int = 1, redis: bool = False) -> dict[str, Any]:
        storage = _list(self.args.storage)[0]
        if workers > 1 and not (storage == "postgres" and redis):
            raise Skipped(
                f"replaywire refuses WORKERS={workers} without PostgreSQL and Redis"
                f" (this run: storage {storage}, redis {'on' if redis else 'off'});"
                " add --storage postgres --redis on"
            )
        if redis and (error := redis_reachable(self.args.redis_url)):
            raise Skipped(f"Redis at {self.args.redis_url} is unreachable: {error}")
        result = self._load(ws, storage, _list(self.args.ack_mode)[0], workers=workers, redis=redis)
        if workers == 1 and not redis:
            self.max_rate[ws] = float(result["events_per_s"])
        return result

    def peer(self, name: str) -> dict[str, Any]:
        """The ingest workload against the peer ``name`` (benches.peers)."""
        try:
            peer = peers.prepare(name)
        except peers.Unavailable as exc:
            raise Skipped(str(exc)) from None
        server = peers.serving(peer, pin=not self.args.no_pin)
        result = self._load("-", server=server)
        result.update(
            server=name,
            ws_backend=None,
            database=peers.STORAGE,
            versions=peer.versions,
        )
        if peer.setup is not None:
            step, seconds = peer.setup
            result["setup"] = {"step": step, "seconds": round(seconds, 1)}
        return result

    def latency(self, ws: str, load: float) -> dict[str, Any]:
        a = self.args
        if ws not in self.max_rate:  # no ingest run before: measure the max now
            self.max_rate[ws] = float(self._load(ws)["events_per_s"])
        args = self._ingest_args(ws)
        rate = max(1.0, self.max_rate[ws] * load)
        with ingest_load.serving(args, LOAD_ENV) as (port, _):
            result = openloop.measure(
                port,
                rate,
                a.connections,
                a.batch,
                a.duration,
                a.warmup,
                generator=a.generator,
                pin=args.pin,
            )
        return {**result, "load": load, "max_events_per_s": round(self.max_rate[ws])}

    def fanout(self, ws: str, viewers: int) -> dict[str, Any]:
        args = self._ingest_args(ws)
        with ingest_load.serving(args, {**LOAD_ENV, "SPOOL_DIR": ""}) as (port, pid):
            assert pid is not None
            result: dict[str, Any] = trio.run(fanout_bench.run, port, pid, viewers, args)
        result["events_per_s"] = result["ingest_events_per_s"]
        return result

    def connections(self, ws: str, count: int) -> dict[str, Any]:
        """K idle trackers (RSS per connection, accept rate), and the ingest
        load run once alone and once beside them: its acks/s ratio."""
        args = self._ingest_args(ws)
        env = {**LOAD_ENV, **UNLIMITED}
        # The load alone, on a server of its own: the idle connections' server
        # starts as fresh as this one did.
        with ingest_load.serving(args, env) as (port, _):
            alone = _summary(ingest_load.measure(port, args), args)
        asked = count
        # Before the server starts: it inherits the limit.
        count, fd_limited = idle.fd_room(count)
        with ingest_load.serving(args, env) as (port, pid):
            assert pid is not None
            result = idle.run_idle(
                port,
                pid,
                count,
                beside=lambda: _summary(ingest_load.measure(port, args), args),
                alone=alone,
            )
        result.update(asked=asked, fd_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        if fd_limited is not None:
            result["fd_limited"] = fd_limited
        return result

    def storage(self, ws: str, storage: str, ack: str) -> dict[str, Any]:
        return self._load(ws, storage, ack)

    def codec(self, spec: str) -> dict[str, Any]:
        name, _, level = spec.partition(":")
        events = codecs.make_corpus.incremental_events(range(1, 3), 1500)
        shapes = {
            "chunks": codecs.make_corpus.chunks(events),
            "deltas": codecs.make_corpus.deltas(events),
        }
        options = SimpleNamespace(rounds=3, budget=max(0.05, self.args.duration / 10))
        rows = {
            shape: asdict(
                codecs.measure(shape, items, name, int(level) if level else None, options)
            )
            for shape, items in shapes.items()
        }
        return {"codec": name, "level": rows["chunks"]["level"], "shapes": rows}

    # -- driving -------------------------------------------------------------

    def record(
        self,
        scenario: str,
        label: str,
        started: float,
        result: dict[str, Any],
        skipped: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "scenario": scenario,
            "label": label,
            "started": datetime.fromtimestamp(started, UTC).isoformat(),
            "wall_seconds": round(time.time() - started, 2),
            "result": result,
        }
        if skipped is not None:
            entry["skipped"] = skipped
        rate = result.get("events_per_s")
        # A ceiling says something only about the generator it was measured with.
        same_generator = result.get("generator") == self.args.generator
        if (
            self.ceiling
            and isinstance(rate, (int, float))
            and scenario != "calibration"
            and same_generator
        ):
            entry["generator_ceiling_events_per_s"] = round(self.ceiling)
            entry["generator_bound"] = rate >= GENERATOR_BOUND * self.ceiling
        self.results.append(entry)
        runs = self.folder / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        name = f"{len(self.results):02d}-{scenario}-{label.replace(' ', '-').replace('%', 'pc')}"
        (runs / f"{name}.json").write_text(json.dumps(entry, indent=2) + "\n")

    def run(self) -> Path:
        plan = self.plan()
        self.folder.mkdir(parents=True, exist_ok=True)
        with _Progress(enabled=not self.args.quiet, total=len(plan)) as progress:
            for scenario, label, expected, fn in plan:
                progress.start(f"{scenario}: {label}", expected)
                started = time.time()
                try:
                    result = fn()
                except Skipped as exc:
                    print(f"skipped {scenario}: {label}: {exc}", file=sys.stderr, flush=True)
                    self.record(scenario, label, started, {}, skipped=str(exc))
                else:
                    self.record(scenario, label, started, result)
                progress.finish()
        meta = {
            "command": "python -m benches " + shlex.join(self.argv),
            "machine": {
                "cpus": os.cpu_count(),
                "cpu_affinity": sorted(os.sched_getaffinity(0)),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_at_end": os.getloadavg(),
            },
            "pinned": not self.args.no_pin and len(os.sched_getaffinity(0)) >= 2,
            "generator": self.args.generator,
            "calibration_sink": None if self.ceiling is None else self.sink_kind(),
            "generator_ceiling_events_per_s": round(self.ceiling) if self.ceiling else None,
            "peers": _versus_peers(self.results),
        }
        (self.folder / "results.json").write_text(
            json.dumps({"meta": meta, "runs": self.results}, indent=2) + "\n"
        )
        from benches import report

        report.write(self.folder, meta, self.results)
        return self.folder


def _versus_peers(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best peer's ingest rate and each replaywire ingest run's rate
    over it (None when no peer ran)."""
    ingest = [r for r in runs if r["scenario"] == "ingest" and "skipped" not in r]
    measured = [r for r in ingest if r["result"]["server"] != "replaywire"]
    if not measured:
        return None
    best = max(measured, key=lambda r: r["result"]["events_per_s"])
    rate = best["result"]["events_per_s"]
    return {
        "best": best["label"],
        "best_events_per_s": rate,
        "replaywire_over_best": {
            r["label"]: round(r["result"]["events_per_s"] / rate, 2) if rate else None
            for r in ingest
            if r["result"]["server"] == "replaywire"
        },
    }


def _summary(figures: dict[str, Any], args: Any) -> dict[str, Any]:
    return {
        "connections": args.connections,
        "window": args.window,
        "batch": args.batch,
        **figures,
        "database": args.database_url,
        "ack_mode": args.ack_mode,
        "ws_backend": args.ws_backend,
        "workers": getattr(args, "workers", 1),
        "redis": bool(getattr(args, "redis_url", "")),
    }


class _Progress:
    """One bar for the suite and one for the run in progress, which a
    ticker thread advances by wall time against the run's expected length
    (runs block in trio.run, so nothing else would move it)."""

    def __init__(self, *, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._stop = threading.Event()

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description:<36}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._progress.__enter__()
        self._suite = self._progress.add_task("suite", total=self.total)
        self._run = self._progress.add_task("", total=1)
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._started = time.monotonic()
        self._expected = 1.0
        self._thread.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            done = min(0.99, (time.monotonic() - self._started) / self._expected)
            self._progress.update(self._run, completed=done * 100, total=100)

    def start(self, description: str, expected: float) -> None:
        if self.enabled:
            self._started, self._expected = time.monotonic(), max(0.1, expected)
            self._progress.update(self._run, description=description, completed=0, total=100)
        else:
            print(f"running {description} (~{expected:.0f} s)", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled:
            self._progress.update(self._run, completed=100)
            self._progress.advance(self._suite)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self._progress.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    folder = Suite(args, argv).run()
    print((folder / "results.md").read_text())
    print(f"results in {folder}")
    return 0
