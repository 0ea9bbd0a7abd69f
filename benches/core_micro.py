"""Per-call cost of the Rust core as Python sees it, on the ingest hot path:
decoding one events_batch of B rrweb-like events (~230 bytes each),
appending it to a session ring buffer, and reading it back for a viewer.

    python benches/core_micro.py --batch 50

Prints events/s for each step (best of --rounds), so the figure is a rate
that can be compared between machines and commits, never a timing assert.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import batch_message, session_events


def best_rate(fn: object, calls: int, events_per_call: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return calls * events_per_call / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    events = list(session_events(args.batch + 2, seed=1))[2:]
    message = batch_message("bench", 0, events)
    decoder = _core.ProtocolDecoder()
    batch = decoder.decode_tracker(message)
    assert isinstance(batch, _core.EventsBatch)
    buffers = _core.SessionBuffers()
    buffers.open("bench")
    frame = _core.encode_client_frame(_core.OP_TEXT, message, b"abcd")
    frames = _core.FrameDecoder()

    def append_read() -> None:
        first = buffers.append("bench", batch)
        buffers.read("bench", first).json()

    steps = {
        "frame decode": lambda: frames.feed(frame),
        "message decode": lambda: decoder.decode_tracker(message),
        "payload()": batch.payload,
        "append + read": append_read,
    }
    results = {
        name: best_rate(fn, args.calls, args.batch, args.rounds) for name, fn in steps.items()
    }
    print(f"batch of {args.batch} events, {len(message)} bytes per message")
    for name, rate in results.items():
        print(f"  {name:<15} {rate / 1e6:8.2f} M events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
