"""permessage-deflate in the Rust core on rrweb-like JSON: compression ratio
and speed of ``encode_text_deflated`` at several levels (what the server
sends), and inflate speed of ``FrameDecoder`` (what trackers send,
compressed by CPython's zlib as a browser's would be).

    python benches/deflate_micro.py --mb 1

Rates are MB/s of uncompressed payload, best of --rounds, one core.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import batch_message, session_events

TAIL = b"\x00\x00\xff\xff"


def best_seconds(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def client_compress(compressor: zlib._Compress, data: bytes) -> bytes:
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[: -len(TAIL)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1.0, help="size of the big message")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    events = list(session_events(int(args.mb * 4600), seed=1))
    message = batch_message("bench", 0, events)
    mb = len(message) / 1e6
    print(f"one events_batch of {len(events)} events, {len(message) / 1e6:.2f} MB")

    print("server side, encode_text_deflated (no context takeover):")
    for level in (1, 3, 6, 9):
        frame = _core.encode_text_deflated(message, level=level)
        seconds = best_seconds(
            lambda lv=level: _core.encode_text_deflated(message, level=lv), args.rounds
        )
        print(f"  level {level}: {len(message) / len(frame):5.2f}x  {mb / seconds:7.0f} MB/s")

    print("tracker side, FrameDecoder inflating a masked frame (zlib level 6):")
    packed = client_compress(zlib.compressobj(6, zlib.DEFLATED, -15), message)
    frame = _core.encode_client_frame(_core.OP_TEXT, packed, b"abcd", rsv=0b100)

    def inflate() -> None:
        [event] = _core.FrameDecoder(deflate_window_bits=15).feed(frame)
        assert len(event.data) == len(message)  # type: ignore[union-attr]

    seconds = best_seconds(inflate, args.rounds)
    print(f"  {len(message) / len(packed):5.2f}x  {mb / seconds:7.0f} MB/s (with UTF-8 check)")
    plain = _core.encode_client_frame(_core.OP_TEXT, message, b"abcd")
    seconds = best_seconds(lambda: _core.FrameDecoder().feed(plain), args.rounds)
    print(f"  same message uncompressed: {mb / seconds:7.0f} MB/s")

    print("50-event batches (~11 KB), as a tracker sends them:")
    batches = [batch_message("bench", seq, events[seq * 50 : seq * 50 + 50]) for seq in range(40)]
    raw = sum(map(len, batches))
    keep = zlib.compressobj(6, zlib.DEFLATED, -15)
    with_context = sum(len(client_compress(keep, b)) for b in batches)
    alone = sum(len(client_compress(zlib.compressobj(6, zlib.DEFLATED, -15), b)) for b in batches)
    print(f"  context takeover {raw / with_context:5.2f}x, each on its own {raw / alone:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
