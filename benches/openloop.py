"""Ack latency under a fixed offered load: an open-loop generator.

C tracker connections send batches of B events on a fixed schedule, whatever
the acks do (open loop), for a total rate of ``rate`` events/s. Latency is
measured from when each batch was *due*, not from when it was written, so a
server (or generator) that falls behind is charged for the whole wait: the
measurement is coordinated-omission-safe (Gil Tene's term; wrk2 does the
same). Batches due while a connection is still writing go out in the next
write, late, and their lateness counts.

Every loop is bounded by the deadline: senders stop sending at it, readers
stop reading a grace period later (acks still due then count as lost).

:func:`measure` runs either generator: ``rust`` (the default, the binary in
``benches/loadgen/``: a timerfd ticks the schedule, one epoll loop sends
and reads, and it reports how late it itself sent, ``schedule_lag_ms``) or
``python`` (the trio tasks below). Both send batch ``seq`` = 0, 1, 2, ...
cut from ``ingest_load.corpus`` as the closed loop does: a repeated seq
would be acked without being stored, less work than a real batch.

    python benches/openloop.py --rate 200000 -d 5 --database-url memory://
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

# Run as a script: `benches` importable.
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from benches import ingest_load
from benches.ingest_load import corpus, pct, start_tracker
from replaywire import _core
from rrweb import batch_message

GRACE = 2.0  # seconds to wait for the last acks


@dataclass
class Latencies:
    values: list[float] = field(default_factory=list)
    lost: int = 0


async def _connection(
    port: int,
    n: int,
    connections: int,
    rate_per_conn: float,
    batch: int,
    events: list[bytes],
    start_at: float,
    measure_from: float,
    deadline: float,
    out: Latencies,
) -> None:
    sid = session_id(n)
    stream, decoder, mask = await start_tracker(port, sid)
    interval = batch / rate_per_conn
    # Stagger the connections over one interval so they do not send at once.
    first_due = start_at + interval * n / connections
    due: dict[int, float] = {}

    def frame(seq: int) -> bytes:
        start = (seq * batch) % (len(events) - batch)
        return _core.encode_client_frame(
            _core.OP_TEXT, batch_message(sid, seq, events[start : start + batch]), mask
        )

    async def sender() -> None:
        seq = 0
        while True:
            now = time.perf_counter()
            next_due = first_due + seq * interval
            if next_due >= deadline:
                return
            if next_due > now:
                await trio.sleep(next_due - now)
                now = time.perf_counter()
            burst = []
            while seq * interval + first_due <= now and first_due + seq * interval < deadline:
                due[seq] = first_due + seq * interval
                burst.append(frame(seq))
                seq += 1
            await stream.send_all(b"".join(burst))

    finished = [False]  # the sender is done
    all_acked = trio.Event()

    async def reader() -> None:
        acked = 0
        while True:
            data = await stream.receive_some(262144)
            if not data:
                return
            now = time.perf_counter()
            for event in decoder.feed(data):
                if isinstance(event, _core.WsMessage):
                    sent_due = due.pop(acked, None)
                    acked += 1
                    if sent_due is not None and sent_due >= measure_from:
                        out.values.append(now - sent_due)
            if finished[0] and not due:
                all_acked.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await sender()
        finished[0] = True
        if not due:
            all_acked.set()
        with trio.move_on_after(GRACE):
            await all_acked.wait()
        nursery.cancel_scope.cancel()
    out.lost += sum(1 for t in due.values() if t >= measure_from)
    await stream.aclose()


def session_id(n: int) -> str:
    return f"openloop-{os.getpid()}-{n}"


async def run_open_loop(
    port: int, rate: float, connections: int, batch: int, duration: float, warmup: float
) -> dict[str, object]:
    """Offer ``rate`` events/s for warmup + duration seconds; latency of
    batches due after the warm-up."""
    events = corpus(batch)
    out = Latencies()
    start_at = time.perf_counter() + 0.2
    measure_from = start_at + warmup
    deadline = measure_from + duration
    async with trio.open_nursery() as nursery:
        for n in range(connections):
            nursery.start_soon(
                _connection,
                port,
                n,
                connections,
                rate / connections,
                batch,
                events,
                start_at,
                measure_from,
                deadline,
                out,
            )
    values = sorted(out.values)
    return {
        "offered_events_per_s": round(rate),
        "acked_events_per_s": round(len(values) * batch / duration),
        "batches_measured": len(values),
        "batches_lost": out.lost,
        "ack_latency_ms": {
            "p50": round(pct(values, 0.50), 3),
            "p99": round(pct(values, 0.99), 3),
            "p999": round(pct(values, 0.999), 3),
            "max": round(values[-1] * 1000, 3) if values else None,
        },
    }


def measure(
    port: int,
    rate: float,
    connections: int,
    batch: int,
    duration: float,
    warmup: float,
    *,
    generator: str = "rust",
    pin: bool = False,
) -> dict[str, Any]:
    """Offer ``rate`` events/s to the server on ``port`` with ``generator``
    (``rust`` or ``python``); the same fields from either."""
    if generator == "rust":
        from benches import loadgen

        result = loadgen.run(
            port,
            [session_id(n) for n in range(connections)],
            corpus(batch),
            batch=batch,
            warmup=warmup,
            duration=duration,
            rate=rate,
            grace=GRACE,
            pin=pin,
        )
        keep = (
            "offered_events_per_s",
            "acked_events_per_s",
            "batches_measured",
            "batches_lost",
            "ack_latency_ms",
            "schedule_lag_ms",
            "generator_cpu_share",
        )
        return {"generator": "rust", **{k: result[k] for k in keep}}
    if generator != "python":
        raise ValueError(f"unknown generator {generator!r}")
    result = trio.run(run_open_loop, port, rate, connections, batch, duration, warmup)
    return {"generator": "python", **result}


def main() -> int:
    parser = ingest_load.parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--rate", type=float, required=True, help="offered events/s, in total")
    args = parser.parse_args()
    with ingest_load.serving(args, ingest_load.LOAD_ENV) as (port, _):
        result = measure(
            port,
            args.rate,
            args.connections,
            args.batch,
            args.duration,
            args.warmup,
            generator=args.generator,
            pin=args.pin,
        )
    result = {**result, "database": args.database_url, "ws_backend": args.ws_backend}
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["ack_latency_ms"]
        print(
            f"offered {result['offered_events_per_s']:,} events/s, acked"
            f" {result['acked_events_per_s']:,}: ack p50 {lat['p50']} ms  p99 {lat['p99']} ms"
            f"  p999 {lat['p999']} ms, {result['batches_lost']} batches lost"
            f" ({args.generator} generator, {args.database_url}, {args.ws_backend})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
