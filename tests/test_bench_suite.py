"""The benchmark suite runs end to end: a tiny run of every scenario on both
WebSocket backends, with the peers, writes well-formed results (with the
Rust load generator, built here on first use, release, about 10-40 s cold,
and with the Python one); so does an ingest run with two workers and Redis.
Speed is never asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("ingest", "latency", "fanout", "connections", "storage", "codec")
TINY = ["--duration", "0.4", "--warmup", "0.2", "--connections", "4"]


def _run_suite(out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``python -m benches --quiet --out out ARGS``: its results.json, once
    it exited 0 and wrote exactly one results folder."""
    command = [sys.executable, "-m", "benches", "--quiet", "--out", str(out), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = out.iterdir()
    results: dict[str, Any] = json.loads((folder / "results.json").read_text())
    results["folder"], results["stderr"] = folder, done.stderr
    return results


def test_every_scenario_on_both_backends_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    results = _run_suite(
        tmp_path,
        "--scenarios", ",".join(SCENARIOS), "--ws-backend", "rust,wsproto",
        "--storage", "memory", "--ack-mode", "received", "--codec", "zstd:1",
        "--loads", "0.5", "--viewers", "0,2", "--idle-connections", "20",
        "--peers", "python-websockets,node-ws,bun", "--generator", "rust", *TINY,
    )  # fmt: skip
    folder, runs = results["folder"], results["runs"]
    assert results["meta"]["command"].startswith("python -m benches --quiet")
    assert results["meta"]["generator_ceiling_events_per_s"] > 0
    assert results["meta"]["generator"] == "rust"
    assert results["meta"]["calibration_sink"] == "rust"
    assert [r["scenario"] for r in runs].count("calibration") == 1
    for scenario in SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario]
        expected = {"codec": 1, "latency": 2, "fanout": 4, "ingest": 5}.get(scenario, 2)
        assert len(mine) == expected, (scenario, [r["label"] for r in mine])
    assert len(list((folder / "runs").glob("*.json"))) == len(runs)
    by = {(r["scenario"], r["label"]): r for r in runs}
    for backend in ("rust", "wsproto"):
        ingest = by[("ingest", backend)]
        assert ingest["result"]["ws_backend"] == backend
        assert ingest["result"]["server"] == "replaywire"
        assert (ingest["result"]["workers"], ingest["result"]["redis"]) == (1, False)
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
        assert fanout["result"]["generator"] == "rust"
        assert isinstance(fanout["generator_bound"], bool)
    codec = by[("codec", "zstd:1")]["result"]
    assert set(codec["shapes"]) == {"chunks", "deltas"} and codec["shapes"]["chunks"]["ratio"] > 1
    _check_peers(results, by)
    markdown = (folder / "results.md").read_text()
    for heading in ("Ingest throughput", "Ack latency", "Fan-out", "Idle tracker", "Storage"):
        assert heading in markdown
    assert "| python-websockets |" in markdown and "÷ best peer" in markdown
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


def _check_peers(results: dict[str, Any], by: dict[tuple[str, str], Any]) -> None:
    """The peers ran the ingest workload right after replaywire (node-ws
    wherever ``node`` is installed, bun wherever ``npm`` is, which installs
    it; skipped with the reason elsewhere), and the meta compares replaywire
    with the best of them. The Rust peer (rust-tungstenite) is left out: its
    cold release build would cost CI about 40 s of CPU (benches/peers)."""
    labels = [r["label"] for r in results["runs"] if r["scenario"] == "ingest"]
    assert labels == ["rust", "wsproto", "python-websockets", "node-ws", "bun"]
    measured = ["python-websockets"]
    node = by[("ingest", "node-ws")]
    if shutil.which("node"):
        assert "skipped" not in node, node
        measured.append("node-ws")
        assert node["result"]["versions"]["ws"].startswith("8.")
    else:
        assert "node not found" in node["skipped"]
        assert "skipped ingest: node-ws: node not found" in results["stderr"]
    bun = by[("ingest", "bun")]
    if shutil.which("npm"):
        assert "skipped" not in bun, bun
        measured.append("bun")
        assert bun["result"]["versions"]["bun"].startswith("1.")
    else:
        assert "npm not found" in bun["skipped"]
    for name in measured:
        peer = by[("ingest", name)]
        assert peer["result"]["server"] == name
        assert peer["result"]["events_per_s"] > 0
        assert peer["result"]["connections"] == 4 and peer["result"]["batch"] == 50
        assert isinstance(peer["generator_bound"], bool)
    websockets = by[("ingest", "python-websockets")]["result"]["versions"]
    assert set(websockets) == {"python", "websockets", "loop", "json"}
    versus = results["meta"]["peers"]
    assert versus["best"] in measured and versus["best_events_per_s"] > 0
    assert set(versus["replaywire_over_best"]) == {"rust", "wsproto"}
    assert all(v > 0 for v in versus["replaywire_over_best"].values())


def test_ingest_with_two_workers_and_redis(
    tmp_path: Path, postgres_admin_url: str, redis_url: str
) -> None:
    """Two workers need PostgreSQL and Redis: with both the run is measured
    and its Redis keys are gone afterwards; without Redis it is recorded as
    skipped, saying why."""
    env = {**os.environ, "BENCH_POSTGRES_URL": postgres_admin_url}
    results = _run_suite(
        tmp_path,
        "--scenarios", "ingest", "--ws-backend", "rust", "--storage", "postgres",
        "--ack-mode", "received", "--workers", "2", "--redis", "off,on",
        "--redis-url", redis_url, "--peers", "none", "--no-calibrate", *TINY,
        env=env,
    )  # fmt: skip
    skipped, ran = results["runs"]
    assert skipped["label"] == "rust w2" and skipped["result"] == {}
    assert "refuses WORKERS=2 without PostgreSQL and Redis" in skipped["skipped"]
    assert ran["label"] == "rust w2 redis" and "skipped" not in ran
    result = ran["result"]
    assert (result["workers"], result["redis"], result["database"]) == (2, True, "postgres")
    assert result["events_per_s"] > 0
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=result["redis_prefix"] + "*")) == []
    finally:
        client.close()
    assert results["meta"]["peers"] is None
    markdown = (results["folder"] / "results.md").read_text()
    assert "| replaywire | rust | 2 | on | postgres |" in markdown
    assert "## Skipped runs" in markdown and "rust w2: skipped:" in markdown


def test_the_python_generator_calibrates_against_the_python_sink(tmp_path: Path) -> None:
    results = _run_suite(
        tmp_path,
        "--scenarios", "ingest,latency", "--ws-backend", "rust", "--storage", "memory",
        "--ack-mode", "received", "--loads", "0.5", "--generator", "python", "--peers", "none",
        *TINY,
    )  # fmt: skip
    folder = results["folder"]
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
