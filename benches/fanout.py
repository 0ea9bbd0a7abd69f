"""Live fan-out: N viewers watching one session of a fully loaded server.

For each N (default 0, 1, 10, 100, 1000) a fresh server process gets the
ingest benchmark's load (C trackers, each streaming as fast as its window of
W unacked batches of B rrweb-like events allows) and N viewers of one more
session, paced at ``--watched-rate`` events/s as a busy page would send
(``--watched-rate 0``: watch the first flat-out tracker's session instead),
with ``--codec`` (default zstd). Reported per N: the total ingest rate and
ack latency, the events delivered per second summed over all viewers,
ingest relative to N=0 -- what watching costs everyone else -- and the
server's CPU time per ingested event, resyncs, ticks and the fan-out
budget's stretch factor, and the cores the viewers' process took.

    python benches/fanout.py --viewers 0,1,10,100,1000 --duration 8

Separate runs compare badly on a VM whose speed drifts by tens of percent
over minutes, so two more measures come from within one run: the share of
the server's loop that fan-out took (its own ``replaywire_viewer_fanout_
seconds_total``), and with ``--alternate S`` a phase before the window in
which the watched session sends only in every other slice of S seconds:
ingest in the slices with live fan-out against the paused ones between
them, at one machine speed. Order counts A B B A (``--viewers
0,1000,1000,0``) to cancel a steady drift between runs; each run is
compared with its neighbouring no-viewer runs.

The flat-out trackers are the Rust load generator (``--generator rust``,
:mod:`benches.loadgen`, started once the viewers have joined, measured over
the same window) or the trio trackers of :mod:`ingest_load`. The viewers run
in a process of their own: ``loadgen viewers`` (``--viewer-client rust``, the
default: one epoll loop, of each binary frame only the header's event count
read) or :func:`viewers_process` (``--viewer-client python``: raw sockets
whose frames are decoded by the Rust frame decoder, a few microseconds of
Python per frame per viewer: at 1000 viewers about five times the Rust
loop's CPU, taken from the generator's core). Unless ``--no-pin``, the server runs on the last CPU
and every client (generator, watched session, viewers) on the others, so
the server's figures are its own core's. Every loop is bounded.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_load import (
    GENERATORS,
    LOAD_ENV,
    Totals,
    corpus,
    pct,
    serving,
    session_id,
    start_tracker,
    tracker,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import batch_message, session_events

WATCHED_RATE = 1000  # events/s of the watched session, a busy page's rate
VIEWER_CLIENTS = ("rust", "python")
HEADER = struct.Struct(">BBBBIQIQH")  # binary frame header, version 2


def _connect_viewer(port: int, session_id: str, codec: str) -> tuple[socket.socket, bytes, bytes]:
    """A viewer socket after its handshake, its join frame and the bytes
    that came after the handshake's response head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /ws?type=viewer&codec=%b HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (codec.encode(), key)
    )
    head = b""
    while b"\r\n\r\n" not in head:
        more = sock.recv(4096)
        if not more:
            raise SystemExit("viewer handshake refused")
        head += more
    join = json.dumps({"type": "viewer_join_session", "data": {"sessionId": session_id}})
    join_frame = _core.encode_client_frame(_core.OP_TEXT, join.encode(), os.urandom(4))
    sock.sendall(join_frame)
    sock.setblocking(False)
    return sock, join_frame, head.split(b"\r\n\r\n", 1)[1]


def viewers_process(port: int, session_id: str, n: int, codec: str) -> None:
    """The viewers, in a process of their own (``--viewer-process``): their
    work must not slow the trackers' process, and a plain ``selectors``
    loop costs each received frame a few microseconds where a trio task
    would cost tens. Per binary frame only the header is read (the event
    count). Prints ``joined`` once all joined, then the delivered count
    every 100 ms; stops after 600 s or when its stdout closes."""
    sel = selectors.DefaultSelector()
    delivered, joined = 0, 0
    retry: list[tuple[float, socket.socket, bytes]] = []
    pending_data = []
    for _ in range(n):
        sock, join_frame, rest = _connect_viewer(port, session_id, codec)
        decoder = _core.FrameDecoder(require_mask=False, max_message_bytes=64 << 20)
        sel.register(sock, selectors.EVENT_READ, (decoder, join_frame))
        pending_data.append((sock, rest))
    announced = False
    deadline = time.monotonic() + 600
    next_report = 0.0
    while time.monotonic() < deadline:
        ready = [(key.fileobj, key.data, None) for key, _ in sel.select(0.05)]
        ready += [(sock, sel.get_key(sock).data, rest) for sock, rest in pending_data]
        pending_data = []
        for sock, (decoder, join_frame), first in ready:
            try:
                data = first if first is not None else sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if first is None and not data:
                return
            for msg in decoder.feed(data) if data else ():
                if not isinstance(msg, _core.WsMessage):
                    continue
                if not msg.is_text:
                    delivered += HEADER.unpack_from(msg.data)[4]
                elif msg.data.startswith((b'{"type":"delta"', b'{"type":"snapshot"')):
                    delivered += json.loads(msg.data)["data"]["count"]
                elif msg.data.startswith(b'{"type":"viewer_joined"'):
                    joined += 1
                elif msg.data.startswith(b'{"type":"error"'):
                    # The session may not be started yet on a busy server.
                    retry.append((time.monotonic() + 0.1, sock, join_frame))
        now = time.monotonic()
        for item in [r for r in retry if r[0] <= now]:
            retry.remove(item)
            item[1].sendall(item[2])
        if joined >= n and now >= next_report:
            try:
                if not announced:
                    print("joined", flush=True)
                    announced = True
                print(delivered, flush=True)
            except BrokenPipeError:
                return
            next_report = now + 0.1


def server_metrics(port: int) -> dict[str, float]:
    """The server's own view of the run: slow-viewer resyncs, ticks built
    and the fan-out budget's stretch factor when the run ended."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    wanted = {
        "replaywire_viewer_resyncs": "resyncs",
        "replaywire_viewer_ticks": "ticks",
        "replaywire_viewer_tick_stretch": "tick_stretch",
        "replaywire_viewer_fanout_seconds": "fanout_seconds",
        "replaywire_events_ingested": "ingested",
    }
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name in wanted:
            found[wanted[family.name]] = family.samples[0].value
    return found


async def paced_tracker(
    port: int,
    session_id: str,
    events: list[bytes],
    batch: int,
    rate: int,
    live: list[bool] | None = None,
) -> None:
    """The watched session, at ``--watched-rate`` events/s in batches of
    ``--batch``, as a busy real page would send (rrweb pages send tens to
    hundreds of events a second); runs until cancelled. While ``live[0]``
    is false it sends nothing (the viewers then get no ticks)."""
    stream, _, mask = await start_tracker(port, session_id)

    async def drain_acks() -> None:
        while await stream.receive_some(65536):
            pass

    period = batch / rate
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain_acks)
        next_at = trio.current_time()
        for seq in range(10**9):
            while live is not None and not live[0]:
                await trio.sleep(period / 4)
                next_at = trio.current_time()
            first = (seq * batch) % (len(events) - batch)
            message = batch_message(session_id, seq, events[first : first + batch])
            await stream.send_all(_core.encode_client_frame(_core.OP_TEXT, message, mask))
            next_at += period
            await trio.sleep_until(next_at)


def cpu_ticks() -> list[tuple[int, int, int]]:
    """Per CPU, (busy, stolen, total) jiffies so far (Linux /proc/stat).
    Busy shares over a window tell whether the clients' core, not the
    server's, ran out; time the hypervisor stole (a VM's core ready to run
    while the host ran something else, one cause of figures that drift
    between runs) counts as busy and is also given on its own."""
    out = []
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(v) for v in values]
                idle = ticks[3] + ticks[4]  # idle + iowait
                out.append((sum(ticks) - idle, ticks[7], sum(ticks)))
    return out


def busy_shares(
    before: list[tuple[int, int, int]], after: list[tuple[int, int, int]], field: int
) -> list[float]:
    """Per CPU, the share of the window in ``field`` (0 busy, 1 stolen)."""
    return [
        round((b1[field] - b0[field]) / (b1[2] - b0[2]), 3) if b1[2] > b0[2] else 0.0
        for b0, b1 in zip(before, after, strict=True)
    ]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    port: int, server_pid: int, n_viewers: int, args: argparse.Namespace
) -> dict[str, object]:
    events = list(session_events(max(args.batch * 40, 2000), seed=1))[2:]
    # The paced session, or else the first flat-out tracker's.
    rate = getattr(args, "watched_rate", WATCHED_RATE)
    session_id = f"bench-{os.getpid()}-{'watched' if rate else 0}"
    # A phase before the measured window, of the same length, in which the
    # watched session sends in every other slice (see _alternate).
    alternate = getattr(args, "alternate", 0.0) if n_viewers and rate else 0.0
    phase = args.duration if alternate else 0.0
    if getattr(args, "generator", "rust") == "rust":
        if not rate:
            raise SystemExit("--watched-rate 0 watches a flat-out tracker: use --generator python")
        load: _Load = _RustLoad(port, args, extra_warmup=phase)
    else:
        load = _PythonLoad(port, events, args)
    from benches import loadgen

    viewer_client = getattr(args, "viewer_client", "rust")
    if n_viewers and viewer_client == "rust":
        loadgen.binary()  # build it now, not while the viewers join
    delivered = [0]
    live = [True]
    slices: dict[bool, list[float]] = {True: [0, 0.0], False: [0, 0.0]}
    async with trio.open_nursery() as nursery:
        if rate:
            nursery.start_soon(paced_tracker, port, session_id, events, args.batch, rate, live)
        await load.start(nursery)  # flat-out trackers (the watched one if rate is 0)
        proc = None
        if n_viewers:
            # Spawned after serving() pinned this process: the viewers
            # inherit the client CPUs.
            if viewer_client == "rust":
                proc = await loadgen.start_viewers(port, session_id, n_viewers, args.codec)
            else:
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
                try:
                    while await anext(lines) != "joined":
                        pass
                except StopAsyncIteration:
                    raise SystemExit("the viewers stopped before all joined") from None

            async def follow() -> None:
                async for line in lines:
                    delivered[0] = int(line)

            nursery.start_soon(follow)
        await load.started(nursery)
        await trio.sleep(args.warmup)
        if alternate:
            alternate = await _alternate(port, alternate, phase, live, slices, rate)
        load.window_open(True)
        before = delivered[0]
        measured_from = time.perf_counter()
        fanout_from = (await trio.to_thread.run_sync(server_metrics, port)).get("fanout_seconds", 0)
        cpu_from = cpu_seconds(server_pid)
        cores_from = cpu_ticks()
        viewers_cpu_from = cpu_seconds(proc.pid) if proc is not None else 0.0
        await trio.sleep(args.duration)
        load.window_open(False)
        elapsed = time.perf_counter() - measured_from
        server_cpu = cpu_seconds(server_pid) - cpu_from
        cores_to = cpu_ticks()
        cores_busy = busy_shares(cores_from, cores_to, 0)
        cores_steal = busy_shares(cores_from, cores_to, 1)
        fanout_to = (await trio.to_thread.run_sync(server_metrics, port)).get("fanout_seconds", 0)
        viewers_cpu = cpu_seconds(proc.pid) - viewers_cpu_from if proc is not None else 0.0
        delivered_in_window = delivered[0] - before
        figures = await load.finish()
        if proc is not None:
            if proc.poll() is not None:
                raise SystemExit(f"the viewers stopped during the run (status {proc.returncode})")
            proc.kill()
            await proc.wait()
        nursery.cancel_scope.cancel()
    events_in_window = figures["events_per_s"] * elapsed
    alternated = {}
    if alternate:
        live_rate, paused_rate = (slices[k][0] / slices[k][1] for k in (True, False))
        if not paused_rate:
            raise SystemExit("no ingest in the paused slices: the load stopped early")
        alternated = {
            "alternate_s": alternate,
            "live_events_per_s": round(live_rate),
            "paused_events_per_s": round(paused_rate),
            "kept_while_live": round(live_rate / paused_rate, 3),
        }
    return alternated | {
        "viewers": n_viewers,
        "codec": args.codec,
        "generator": load.name,
        "viewer_client": viewer_client,
        "ingest_events_per_s": figures["events_per_s"],
        "delivered_events_per_s": round(delivered_in_window / elapsed),
        # The server's CPU time per ingested event: what watching costs the
        # server itself, whatever the clients sharing the cores cost.
        "server_cpu_share": round(server_cpu / elapsed, 3),
        "server_cpu_us_per_event": round(server_cpu * 1e6 / events_in_window, 3)
        if events_in_window
        else None,
        # What the viewers' process took of the client cores meanwhile.
        "viewers_cpu_share": round(viewers_cpu / elapsed, 3),
        # The server's own measure of what fan-out took from its loop:
        # time it spent building ticks and writing them to viewers, per second.
        "fanout_share": round((fanout_to - fanout_from) / elapsed, 4),
        # Each core's busy share over the window (the server's is the last
        # when pinned): a client core at 1.0 means the load, not the
        # server, set the pace.
        "cores_busy": cores_busy,
        "cores_steal": cores_steal,
        "ack_p50_ms": figures["ack_p50_ms"],
        "ack_p99_ms": figures["ack_p99_ms"],
    }


async def _alternate(
    port: int,
    slice_s: float,
    duration: float,
    live: list[bool],
    slices: dict[bool, list[float]],
    watched_rate: int,
) -> float:
    """Measure the window in slices of ``slice_s``, the watched session
    sending in every other one: ingest (the server's own event counter,
    the watched session's events taken out) in slices with live fan-out
    against the paused ones just around them. Neighbouring seconds run at
    the same machine speed, which separate runs do not on a VM. Returns
    the slice length used (at most half of ``duration``)."""

    def ingested() -> float:
        return server_metrics(port).get("ingested", 0.0)

    slice_s = min(slice_s, duration / 2)  # at least one slice of each
    count = await trio.to_thread.run_sync(ingested)
    at = time.perf_counter()
    for k in range(max(2, round(duration / slice_s))):
        live[0] = k % 2 == 0
        await trio.sleep(slice_s)
        now_count = await trio.to_thread.run_sync(ingested)
        now = time.perf_counter()
        slices[live[0]][0] += now_count - count
        slices[live[0]][1] += now - at
        count, at = now_count, now
    if slices[True][1]:  # the watched session's own events are not ingest load
        slices[True][0] -= watched_rate * slices[True][1]
    live[0] = True
    return slice_s


class _Load:
    """The flat-out trackers of a fan-out run. ``start`` runs before the
    viewers join, ``started`` after; ``window_open`` brackets the measured
    window; ``finish`` returns events/s and ack p50/p99 over it."""

    name = ""

    async def start(self, nursery: trio.Nursery) -> None:
        pass

    async def started(self, nursery: trio.Nursery) -> None:
        pass

    def window_open(self, is_open: bool) -> None:
        pass

    async def finish(self) -> dict[str, float]:
        raise NotImplementedError


class _PythonLoad(_Load):
    """The trio trackers of :mod:`ingest_load`, in this process."""

    name = "python"

    def __init__(self, port: int, events: list[bytes], args: argparse.Namespace) -> None:
        self.port, self.events, self.args = port, events, args
        self.totals = Totals()
        self.open = [False]
        self.elapsed = 0.0

    async def start(self, nursery: trio.Nursery) -> None:
        # Trackers stop at this (far) deadline or, normally, when cancelled.
        deadline = time.perf_counter() + 600
        for n in range(self.args.connections):
            nursery.start_soon(
                tracker, self.port, n, self.events, self.args, self.totals, self.open, deadline
            )

    def window_open(self, is_open: bool) -> None:
        self.open[0] = is_open
        now = time.perf_counter()
        if is_open:
            self.elapsed = -now
        else:
            self.elapsed += now

    async def finish(self) -> dict[str, float]:
        lat = sorted(self.totals.latencies)
        return {
            "events_per_s": round(self.totals.events / self.elapsed),
            "ack_p50_ms": round(pct(lat, 0.5), 2),
            "ack_p99_ms": round(pct(lat, 0.99), 2),
        }


class _RustLoad(_Load):
    """``benches/loadgen`` in a worker thread, started once the viewers have
    joined, with the same warm-up and duration as the measured window (its
    own window starts after its handshakes, a few ms later). Pinned to the
    first CPU this process may use when ``args.pin``."""

    name = "rust"

    def __init__(self, port: int, args: argparse.Namespace, extra_warmup: float = 0.0) -> None:
        from benches import loadgen

        self.loadgen, self.port, self.args = loadgen, port, args
        self.extra_warmup = extra_warmup  # the alternating phase, before the window
        self.done = trio.Event()
        self.result: dict[str, Any] = {}
        loadgen.binary()  # build it now, not inside the measured window

    async def started(self, nursery: trio.Nursery) -> None:
        a = self.args

        async def load() -> None:
            self.result = await trio.to_thread.run_sync(
                functools.partial(
                    self.loadgen.run,
                    self.port,
                    [session_id(n) for n in range(a.connections)],
                    corpus(a.batch),
                    batch=a.batch,
                    window=a.window,
                    warmup=a.warmup + self.extra_warmup,
                    duration=a.duration,
                    pin=getattr(a, "pin", False),
                )
            )
            self.done.set()

        nursery.start_soon(load)

    async def finish(self) -> dict[str, float]:
        await self.done.wait()
        lat = self.result["ack_latency_ms"]
        return {
            "events_per_s": self.result["events_per_s"],
            "ack_p50_ms": lat["p50"],
            "ack_p99_ms": lat["p99"],
        }


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while chunk := await stream.receive_some(65536):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.decode().strip()


def neighbours(results: list[dict[str, Any]], i: int, key: str) -> float | None:
    """The mean of ``key`` over the no-viewer runs just before and just after
    run ``i``: the machine's speed drifts over minutes (a VM), so a run
    compares best with its neighbours; order the counts A B B A
    (``--viewers 0,1000,1000,0,0,1000,1000,0``) to cancel a steady drift."""
    near = []
    for step in (-1, 1):
        j = i + step
        while 0 <= j < len(results) and results[j]["viewers"] != 0:
            j += step
        if 0 <= j < len(results) and results[j][key]:
            near.append(results[j][key])
    return sum(near) / len(near) if near else None


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def markdown(results: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table, each compared with its neighbouring
    no-viewer runs; then per viewer count the ingest kept, from the
    alternating slices when the runs have them (one machine speed), else
    the median of the ratios to neighbouring runs."""
    columns = ["viewers", "ingest events/s", "vs no viewers", "delivered events/s"]
    columns += ["server CPU µs/event", "vs no viewers", "fan-out share of loop"]
    columns += ["kept, live vs paused", "ack p50 ms", "ack p99 ms", "viewers' CPU (cores)"]
    columns += ["cores busy", "stolen"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    kept: dict[int, list[float]] = {}
    alternated: dict[int, list[float]] = {}
    for i, r in enumerate(results):
        ingest, cpu = r["ingest_events_per_s"], r["server_cpu_us_per_event"]
        base, base_cpu = (
            neighbours(results, i, "ingest_events_per_s"),
            neighbours(results, i, "server_cpu_us_per_event"),
        )
        ratio = f"{ingest / base:.0%}" if base and r["viewers"] else ""
        cpu_ratio = f"{cpu / base_cpu:.0%}" if base_cpu and cpu and r["viewers"] else ""
        if base and r["viewers"]:
            kept.setdefault(r["viewers"], []).append(ingest / base)
        live = ""
        if "kept_while_live" in r:
            alternated.setdefault(r["viewers"], []).append(r["kept_while_live"])
            live = f"{r['kept_while_live']:.0%}"
        lines.append(
            f"| {r['viewers']} | {ingest:,} | {ratio} | {r['delivered_events_per_s']:,} |"
            f" {cpu} | {cpu_ratio} | {r.get('fanout_share', 0):.1%} | {live} |"
            f" {r['ack_p50_ms']} | {r['ack_p99_ms']} | {r['viewers_cpu_share']} |"
            f" {' / '.join(f'{b:.0%}' for b in r['cores_busy'])} |"
            f" {' / '.join(f'{b:.0%}' for b in r.get('cores_steal', []))} |"
        )
    lines.append("")
    for n in sorted(kept.keys() | alternated.keys()):
        if n in alternated:
            ratios, how = alternated[n], "runs, slices with fan-out live against paused"
        else:
            ratios, how = kept[n], "runs, each against its no-viewer neighbours"
        lines.append(
            f"- {n} viewers: ingest kept {_median(ratios):.0%} (median of {len(ratios)}"
            f" {how}; {min(ratios):.0%} to {max(ratios):.0%})"
        )
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--viewer-process"]:
        port, session_id, n, codec = sys.argv[2:6]
        viewers_process(int(port), session_id, int(n), codec)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="0,1,10,100,1000")
    parser.add_argument("--codec", default="zstd", choices=["none", "deflate", "zstd"])
    parser.add_argument(
        "--watched-rate",
        type=int,
        default=WATCHED_RATE,
        help="events/s of the watched session, a tracker of its own beside the C flat-out"
        " ones (0: watch the first flat-out tracker's session instead)",
    )
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--window", "-w", type=int, default=8)
    parser.add_argument("--batch", "-b", type=int, default=50)
    parser.add_argument("--duration", "-d", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument(
        "--generator",
        default="rust",
        choices=GENERATORS,
        help="the flat-out trackers: rust (benches/loadgen/) or python (trio, in this process)",
    )
    parser.add_argument(
        "--viewer-client",
        default="rust",
        choices=VIEWER_CLIENTS,
        help="the viewers: rust (loadgen viewers) or python (a selectors loop), each a process"
        " of its own",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the server to the last CPU and the clients to the others",
    )
    parser.add_argument(
        "--alternate",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with viewers, first a phase as long as the window, in slices of SECONDS with the"
        " watched session sending in every other one: ingest in live against paused slices",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server_args = argparse.Namespace(
        port=0, database_url="memory://", ack_mode="received", ws_backend="rust", pin=args.pin
    )
    results = []
    for n in (int(v) for v in args.viewers.split(",")):
        with serving(server_args, {**LOAD_ENV, "SPOOL_DIR": ""}) as (port, pid):
            assert pid is not None
            results.append(trio.run(run, port, pid, n, args))
            results[-1].update(server_metrics(port))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"C={args.connections} W={args.window} B={args.batch}, viewers of one session,"
        f" codec {args.codec}, {args.duration} s each, {args.generator} generator,"
        f" {args.viewer_client} viewers"
    )
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
