"""Where the server's time goes per tracker batch: the ingest load of
:mod:`ingest_load` against a server process pinned to its own core, with
``py-spy record --native`` sampling that process for the measured window.

Prints the load's figures, the server's CPU time per batch (from
``/proc/PID/stat`` over the window: the Python loop time per batch, since
the server is one thread doing the ingest), and the top frames of the
profile, by own samples and by samples including callees. The raw
collapsed stacks are kept (``--out``) for a flame graph.

    python benches/hotpath.py --connections 32 --window 8 --batch 50 --duration 10

Needs py-spy (the dev extra) and ptrace rights over the server (root, or
``kernel.yama.ptrace_scope=0``). Every loop is bounded by ``--duration``.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))

import ingest_load


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def top_frames(
    collapsed: Path, n: int, thread: str = "unrolled_run"
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(own, inclusive) shares of samples per frame from py-spy's raw output,
    over the stacks of the event loop's thread (those through ``thread``):
    the worker threads mostly wait, and their samples would hide the loop's."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        if not any(thread in f for f in frames):
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    share = lambda c: [(f, 100 * k / max(1, total)) for f, k in c.most_common(n)]  # noqa: E731
    return share(own), share(incl)


def main() -> int:
    parser = ingest_load.parser()
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--out", default="hotpath.collapsed", help="py-spy's collapsed stacks")
    parser.add_argument("--top", type=int, default=20)
    parser.set_defaults(database_url="memory://", ack_mode="received", pin=True)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    with ingest_load.serving(args, ingest_load.LOAD_ENV) as (port, pid):
        assert pid is not None, "hotpath starts its own server (no --port)"
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--native",
                "--pid",
                str(pid),
                "--duration",
                str(int(args.warmup + args.duration + 1)),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # py-spy attached
        cpu_before = cpu_seconds(pid)
        figures = ingest_load.measure(port, args)
        cpu = cpu_seconds(pid) - cpu_before
        spy.wait(timeout=args.warmup + args.duration + 60)
    batches = figures["acks_per_s"] * figures["seconds"]
    # The CPU time counts the warm-up too: per batch over all acked batches sent.
    sent_batches = batches * (args.warmup + args.duration) / args.duration
    print("(while sampled: py-spy --native pauses the server 250 times a second)")
    print(
        f"events/s {figures['events_per_s']:,}  acks/s {figures['acks_per_s']:,}"
        f"  ack p50 {figures['ack_latency_ms']['p50']} ms"
    )
    print(
        f"server CPU per {args.batch}-event batch: {cpu * 1e6 / max(1, sent_batches):.1f} µs"
        f" ({cpu:.1f} s over {args.warmup + args.duration:.0f} s)"
    )
    own, incl = top_frames(out, args.top)
    print(f"\nthe event loop's thread, top frames by own samples ({out}):")
    for frame, pct in own:
        print(f"  {pct:5.1f}%  {frame}")
    print("\ntop frames including callees:")
    for frame, pct in incl:
        print(f"  {pct:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
