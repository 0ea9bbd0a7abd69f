"""Compression ratio and one-core speed of the event codecs, on the rrweb
corpus of ``tests/data/make_corpus.py``, in the three shapes the server
compresses:

1. ``chunks``: 50 consecutive incremental events (~13 KB), what the storage
   writer stores per chunk;
2. ``deltas``: 3 to 10 events (~1.7 KB), what a viewer gets per 50 ms tick;
3. ``snapshot``: one full snapshot of a 500-product page (~3 MB).

    python benches/codecs.py [--rounds 5] [--budget 3] [--json FILE]

Chunks and deltas hold the same 10,000 incremental events of four visits.
Each row compresses every item of a shape with one kept ``Compressor`` (as
the server does) and decompresses each with ``decompress``, through the
Python API, in this one thread; the figure is the best of ``--rounds``
passes (fewer when a pass takes over ``--budget`` seconds), timed in CPU
time of this thread (``time.thread_time``), so that other load on the
machine does not count against it. Ratio is raw bytes over compressed
bytes; MB/s counts raw bytes (1 MB = 10^6 bytes) per CPU second.

``zstd + dict`` rows use a dictionary trained on deltas of 20 *other*
visits (seeds 100-119) of the same synthetic site, as a deployment would
train on its own past traffic; viewers then need that dictionary too.
``new context`` rows call ``compress()`` per item, which sets a context up
each time, to show what keeping one saves.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "data"))
import make_corpus

GOAL_RATIO = 5.0
GOAL_MBPS = 300.0


@dataclass
class Row:
    shape: str
    codec: str
    level: int
    variant: str
    items: int
    raw_bytes: int
    packed_bytes: int
    ratio: float
    compress_mbps: float
    decompress_mbps: float


def best_seconds(fn: Callable[[], object], rounds: int, budget: float) -> float:
    best = float("inf")
    spent = 0.0
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        start = time.thread_time()
        fn()
        elapsed = time.thread_time() - start
        gc.enable()
        best = min(best, elapsed)
        spent += elapsed
        if spent > budget:
            break
    return best


def measure(
    shape: str,
    items: list[bytes],
    codec: str,
    level: int | None,
    args: argparse.Namespace,
    *,
    dictionary: bytes | None = None,
    variant: str = "",
) -> Row:
    compressor = _core.Compressor(codec, level, dictionary)
    if variant == "new context":

        def compress_all() -> list[bytes]:
            return [_core.compress(codec, item, level) for item in items]

    else:

        def compress_all() -> list[bytes]:
            return [compressor.compress(item) for item in items]

    packed = compress_all()
    sizes = [len(item) for item in items]
    pairs = list(zip(packed, sizes, strict=True))

    def decompress_all() -> None:
        for data, size in pairs:
            _core.decompress(codec, data, size, dictionary)

    raw = sum(sizes)
    out = sum(map(len, packed))
    return Row(
        shape=shape,
        codec=codec,
        level=compressor.level,
        variant=variant,
        items=len(items),
        raw_bytes=raw,
        packed_bytes=out,
        ratio=raw / out,
        compress_mbps=raw / best_seconds(compress_all, args.rounds, args.budget) / 1e6,
        decompress_mbps=raw / best_seconds(decompress_all, args.rounds, args.budget) / 1e6,
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(rows: list[Row]) -> str:
    lines = [
        "| codec | level | ratio | compress MB/s | decompress MB/s | out bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r.codec + (f" ({r.variant})" if r.variant else "")
        mark = " ✓" if r.ratio >= GOAL_RATIO and r.compress_mbps >= GOAL_MBPS else ""
        lines.append(
            f"| {name}{mark} | {r.level} | {r.ratio:.2f} | "
            f"{r.compress_mbps:,.0f} | {r.decompress_mbps:,.0f} | {r.packed_bytes:,} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    events = make_corpus.incremental_events(range(1, 5), 2500)
    shapes = {
        "chunks": make_corpus.chunks(events),
        "deltas": make_corpus.deltas(events),
        "snapshot": [make_corpus.full_snapshot(7, cards=500)],
    }
    training = make_corpus.deltas(make_corpus.incremental_events(range(100, 120), 1500), seed=1)
    dictionaries = {
        f"dict {size // 1024} KiB": _core.train_dictionary(training, size)
        for size in (16 * 1024, 110 * 1024)
    }
    plain = [("none", None), ("deflate", 1), ("deflate", 6), ("deflate", 9)]
    plain += [("zstd", level) for level in (-1, 1, 3, 9, 19)]

    rows: list[Row] = []
    print(
        f"# Codecs on the rrweb corpus\n\n"
        f"{cpu_model()}, one thread; Python {platform.python_version()}; "
        f"best of {args.rounds} passes (fewer past {args.budget:g} s), in thread CPU time.\n"
        f"Command: `python benches/codecs.py"
        + "".join(f" {a}" for a in sys.argv[1:])
        + "`\n\n✓ marks rows meeting the goal: ratio >= 5 and compression >= 300 MB/s."
    )
    for shape, items in shapes.items():
        shape_rows = [measure(shape, items, codec, level, args) for codec, level in plain]
        for name, dictionary in dictionaries.items():
            for level in (1, 3):
                shape_rows.append(
                    measure(shape, items, "zstd", level, args, dictionary=dictionary, variant=name)
                )
        for codec, level in (("deflate", 6), ("zstd", 3)):
            shape_rows.append(measure(shape, items, codec, level, args, variant="new context"))
        rows += shape_rows
        sizes = [len(i) for i in items]
        print(
            f"\n## {shape}: {len(items):,} items, {sum(sizes) / 1e6:.2f} MB, "
            f"mean {sum(sizes) / len(items):,.0f} bytes\n"
        )
        print(table(shape_rows))
        sys.stdout.flush()

    trained_mb = sum(map(len, training)) / 1e6
    print(f"\ndictionaries trained on {len(training):,} deltas, {trained_mb:.1f} MB")
    if args.json:
        meta = {"cpu": cpu_model(), "python": platform.python_version(), "argv": sys.argv[1:]}
        args.json.write_text(
            json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
