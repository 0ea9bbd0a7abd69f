"""What requiring client_no_context_takeover costs on tracker traffic: the
permessage-deflate ratio of realistic tracker batches compressed with the
context kept between messages (what browsers do unless told otherwise)
against a context reset before each message (what the server now requires,
so that an oversized message can be skipped).

    python benches/deflate_context.py

The traffic is the recorded-like shop corpus of tests/data/make_corpus.py
(meta, a full snapshot of the page's serialized DOM, then mouse moves,
scrolls, input and mutations), cut into events_batch messages the way the
reference tracker does (js/tracker: a batch leaves 250 ms after its first
event or at 200 events), one connection per visit. Each message is
compressed as RFC 7692 says (raw DEFLATE, window 15 bits, sync flush, the
trailing 00 00 ff ff removed) at zlib level 6, browsers' default. Ratios
are uncompressed bytes over compressed bytes, all messages together, and
for the incremental batches alone (every batch after the one holding the
full snapshot), which are most of what a long visit sends.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "data"))
from make_corpus import session

from rrweb import batch_message

TAIL = b"\x00\x00\xff\xff"
WINDOW_BITS = 15


def tracker_batches(
    session_id: str, events: list[bytes], interval_ms: int, max_events: int
) -> list[bytes]:
    """The events_batch messages a tracker sends for ``events``: a batch
    closes ``interval_ms`` after its first event, or at ``max_events``."""
    messages: list[bytes] = []
    batch: list[bytes] = []
    opened = 0.0
    for event in events:
        ts = json.loads(event)["timestamp"]
        if batch and (ts - opened >= interval_ms or len(batch) >= max_events):
            messages.append(batch_message(session_id, len(messages), batch))
            batch = []
        if not batch:
            opened = ts
        batch.append(event)
    if batch:
        messages.append(batch_message(session_id, len(messages), batch))
    return messages


def compressed_sizes(messages: list[bytes], level: int, keep_context: bool) -> list[int]:
    """Bytes on the wire of each message's permessage-deflate payload."""
    sizes = []
    compressor = zlib.compressobj(level, zlib.DEFLATED, -WINDOW_BITS)
    for message in messages:
        if not keep_context:
            compressor = zlib.compressobj(level, zlib.DEFLATED, -WINDOW_BITS)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        sizes.append(len(data) - len(TAIL))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=8, help="sessions (connections)")
    parser.add_argument("--events", type=int, default=3000, help="events per visit")
    parser.add_argument("--level", type=int, default=6, help="zlib level of the client")
    parser.add_argument("--interval-ms", type=int, default=250)
    parser.add_argument("--max-events", type=int, default=200)
    args = parser.parse_args()

    raw = {"all": 0, "incremental": 0}
    kept = {"all": 0, "incremental": 0}
    reset = {"all": 0, "incremental": 0}
    messages_total = 0
    for visit in range(args.visits):
        events = session(seed=visit, count=args.events)
        messages = tracker_batches(f"visit-{visit}", events, args.interval_ms, args.max_events)
        messages_total += len(messages)
        with_context = compressed_sizes(messages, args.level, keep_context=True)
        alone = compressed_sizes(messages, args.level, keep_context=False)
        # The first batch holds meta and the full snapshot.
        for i, message in enumerate(messages):
            for part in ("all", "incremental") if i else ("all",):
                raw[part] += len(message)
                kept[part] += with_context[i]
                reset[part] += alone[i]

    print(
        f"{args.visits} visits, {messages_total} events_batch messages, "
        f"{raw['all'] / 1e6:.2f} MB ({raw['incremental'] / 1e6:.2f} MB of incremental batches), "
        f"zlib level {args.level}, window {WINDOW_BITS} bits"
    )
    for part in ("all", "incremental"):
        ratio_kept = raw[part] / kept[part]
        ratio_reset = raw[part] / reset[part]
        print(
            f"  {part:12} context kept {ratio_kept:5.2f}x, reset per message {ratio_reset:5.2f}x:"
            f" {reset[part] / kept[part] - 1:+.0%} bytes on the wire"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
