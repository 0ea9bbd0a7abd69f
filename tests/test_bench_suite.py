"""The benchmark suite runs end to end: a tiny run of every scenario on both
WebSocket backends writes well-formed results, with the Rust load generator
(built here on first use, release, about 10-40 s cold) and with the Python
one. Speed is never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("ingest", "latency", "fanout", "connections", "storage", "codec")


def test_every_scenario_on_both_backends_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "benches", "--quiet", "--out", str(tmp_path),
        "--scenarios", ",".join(SCENARIOS), "--ws-backend", "rust,wsproto",
        "--storage", "memory", "--ack-mode", "received", "--codec", "zstd:1",
        "--duration", "0.4", "--warmup", "0.2", "--connections", "4", "--loads", "0.5",
        "--viewers", "0,2", "--idle-connections", "20", "--generator", "rust",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = tmp_path.iterdir()
    results = json.loads((folder / "results.json").read_text())
    runs = results["runs"]
    assert results["meta"]["command"].startswith("python -m benches --quiet")
    assert results["meta"]["generator_ceiling_events_per_s"] > 0
    assert results["meta"]["generator"] == "rust"
    assert results["meta"]["calibration_sink"] == "rust"
    assert [r["scenario"] for r in runs].count("calibration") == 1
    for scenario in SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario]
        expected = {"codec": 1, "latency": 2, "fanout": 4}.get(scenario, 2)
        assert len(mine) == expected, (scenario, [r["label"] for r in mine])
    assert len(list((folder / "runs").glob("*.json"))) == len(runs)
    by = {(r["scenario"], r["label"]): r for r in runs}
    for backend in ("rust", "wsproto"):
        ingest = by[("ingest", backend)]
        assert ingest["result"]["ws_backend"] == backend
        assert ingest["result"]["generator"] == "rust"
        assert 0 < ingest["result"]["generator_cpu_share"] <= 1.5
        assert ingest["result"]["generator_cpu_us_per_batch"] > 0
        assert (
            ingest["result"]["ack_latency_ms"]["p99"] >= ingest["result"]["ack_latency_ms"]["p50"]
        )
        assert ingest["result"]["events_per_s"] > 0
        assert isinstance(ingest["generator_bound"], bool)
        assert ingest["generator_ceiling_events_per_s"] > 0
        latency = by[("latency", f"{backend} 50%")]["result"]
        assert set(latency["ack_latency_ms"]) >= {"p50", "p99", "p999"}
        assert latency["offered_events_per_s"] > 0 and latency["batches_measured"] > 0
        assert latency["generator"] == "rust" and "p99" in latency["schedule_lag_ms"]
        idle = by[("connections", backend)]["result"]
        assert idle["connections"] == 20 and idle["accept_per_s"] > 0
        assert "rss_per_connection_kib" in idle
        fanout = by[("fanout", f"{backend} 2")]
        assert fanout["result"]["viewers"] == 2 and "delivered_events_per_s" in fanout["result"]
        # Its trackers are Python's: the Rust generator's ceiling says nothing about them.
        assert "generator_bound" not in fanout
    codec = by[("codec", "zstd:1")]["result"]
    assert set(codec["shapes"]) == {"chunks", "deltas"} and codec["shapes"]["chunks"]["ratio"] > 1
    markdown = (folder / "results.md").read_text()
    for heading in ("Ingest throughput", "Ack latency", "Fan-out", "Idle tracker", "Storage"):
        assert heading in markdown
    assert "Load generator: **rust**" in markdown and "the rust discard sink" in markdown
    pngs = {p.name: p.stat().st_size for p in folder.glob("*.png")}
    assert set(pngs) == {
        "ingest_throughput.png",
        "storage_throughput.png",
        "latency_percentiles.png",
        "fanout.png",
        "connections.png",
        "codecs.png",
    }
    assert all(size > 1000 for size in pngs.values()), pngs
    for name in pngs:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_python_generator_calibrates_against_the_python_sink(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "benches", "--quiet", "--out", str(tmp_path),
        "--scenarios", "ingest,latency", "--ws-backend", "rust", "--storage", "memory",
        "--ack-mode", "received", "--duration", "0.4", "--warmup", "0.2", "--connections", "4",
        "--loads", "0.5", "--generator", "python",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = tmp_path.iterdir()
    results = json.loads((folder / "results.json").read_text())
    assert results["meta"]["generator"] == "python"
    assert results["meta"]["calibration_sink"] == "python"
    by = {r["scenario"]: r for r in results["runs"]}
    assert by["calibration"]["result"]["sink"] == "python"
    assert by["ingest"]["result"]["generator"] == "python"
    assert by["ingest"]["result"]["generator_cpu_us_per_batch"] > 0
    assert isinstance(by["ingest"]["generator_bound"], bool)
    assert by["latency"]["result"]["generator"] == "python"
    assert by["latency"]["result"]["batches_measured"] > 0
    assert "Load generator: **python**" in (folder / "results.md").read_text()
