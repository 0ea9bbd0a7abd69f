"""Durable ingest per storage backend against in-memory only, in one run.

Runs benches/ingest_load.py's workload (C trackers, W unacked batches each,
B events of ~230 bytes a batch) once per configuration and prints events/s,
the ratio to the in-memory run, and ack latency p50/p99:

    .venv/bin/python benches/storage_compare.py -d 10

Needs PostgreSQL on 127.0.0.1:5432 (BENCH_POSTGRES_URL overrides the admin
URL); each PostgreSQL run gets a fresh database, dropped afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ingest_load import parser, run_once

CONFIGS = [
    ("memory://", "received"),
    ("sqlite", "received"),
    ("sqlite", "durable"),
    ("postgres", "received"),
    ("postgres", "durable"),
]


def main() -> int:
    p = parser()
    p.description = __doc__.split("\n\n")[0]
    args = p.parse_args()
    results = []
    for database, ack_mode in CONFIGS:
        args.database_url, args.ack_mode = database, ack_mode
        result = run_once(args)
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    base = results[0]["events_per_s"]
    assert isinstance(base, int)
    print(f"C={args.connections} W={args.window} B={args.batch}, {args.duration} s per run")
    print("| storage | ack | events/s | vs memory | MB/s | ack p50 ms | ack p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        lat = r["ack_latency_ms"]
        assert isinstance(lat, dict) and isinstance(r["events_per_s"], int)
        print(
            f"| {r['database']} | {r['ack_mode']} | {r['events_per_s']:,} |"
            f" {r['events_per_s'] / base:.0%} | {r['mb_per_s']} | {lat['p50']} | {lat['p99']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
