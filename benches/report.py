"""The suite's report: ``results.md`` (one table per scenario) and PNG plots
(matplotlib, Agg backend, no display needed), from the recorded runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

Run = dict[str, Any]


def _k(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e3:,.0f}k" if value >= 10_000 else f"{value:,.0f}"


def _flag(run: Run) -> str:
    if "generator_bound" not in run:
        return ""
    share = run["result"]["events_per_s"] / run["generator_ceiling_events_per_s"]
    return f"{share:.0%}" + (" ⚠ generator-bound" if run["generator_bound"] else "")


def _of(runs: list[Run], scenario: str) -> list[Run]:
    """The measured runs of ``scenario`` (skipped ones are listed apart)."""
    return [r for r in runs if r["scenario"] == scenario and "skipped" not in r]


def _is_peer(run: Run) -> bool:
    return bool(run["result"].get("server", "replaywire") != "replaywire")


def _over_peer(run: Run, versus: dict[str, Any] | None) -> str:
    if not versus or _is_peer(run):
        return ""
    ratio = versus["replaywire_over_best"].get(run["label"])
    return "-" if ratio is None else f"{ratio:.2f}x"


def _ingest_table(meta: dict[str, Any], rows: list[Run]) -> list[str]:
    """Replaywire's ingest runs and the peers', side by side."""
    versus = meta.get("peers")
    out = [
        "| server | ws backend | workers | redis | storage | ack | events/s | MB/s"
        " | ack p50 ms | ack p99 ms | vs ceiling | ÷ best peer |",
        "|---|---|---:|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        x = r["result"]
        server = x.get("server", "replaywire")
        out.append(
            f"| {server} | {x['ws_backend'] or '-'} | {x.get('workers', 1)}"
            f" | {'on' if x.get('redis') else 'off'} | {x['database']} | {x['ack_mode']}"
            f" | {_k(x['events_per_s'])} | {x['mb_per_s']} | {x['ack_latency_ms']['p50']}"
            f" | {x['ack_latency_ms']['p99']} | {_flag(r)} | {_over_peer(r, versus)} |"
        )
    out.append("")
    if versus:
        out += [
            f"*÷ best peer*: each replaywire run's events/s over the best peer's"
            f" ({versus['best']}, {_k(versus['best_events_per_s'])} events/s), same workload,"
            " same run.",
            "",
        ]
    peers = []
    for r in (r for r in rows if _is_peer(r)):
        versions = ", ".join(f"{k} {v}" for k, v in r["result"].get("versions", {}).items() if v)
        setup = r["result"].get("setup")
        took = f"; {setup['step']} took {setup['seconds']} s first" if setup else ""
        peers.append(f"{r['label']} ({versions}{took})")
    if peers:
        out += ["Peers (benches/peers/): " + "; ".join(peers) + ".", ""]
    if meta.get("pinned") and any(r["result"].get("workers", 1) > 1 for r in rows):
        out += [
            "Pinned, every worker shares the server's CPU (the generator has the others):"
            " with as many CPUs as workers plus one this shows their gain; on fewer, it shows"
            " what the extra processes cost.",
            "",
        ]
    return out


def _skipped(runs: list[Run]) -> list[str]:
    rows = [r for r in runs if "skipped" in r]
    if not rows:
        return []
    out = ["## Skipped runs", ""]
    out += [f"- {r['scenario']} {r['label']}: skipped: {r['skipped']}" for r in rows]
    return [*out, ""]


def markdown(meta: dict[str, Any], runs: list[Run]) -> str:
    out = [
        "# replaywire benchmark results",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']['cpus']} CPUs, Python {meta['machine']['python']},"
        f" {meta['machine']['platform']}; load average at the end"
        f" {', '.join(f'{x:.2f}' for x in meta['machine']['load_average_at_end'])};"
        f" server and generator {'pinned to different CPUs' if meta['pinned'] else 'not pinned'}.",
        "",
    ]
    generator = meta.get("generator", "python")
    out += [
        f"Load generator: **{generator}**"
        + (" (`benches/loadgen/`, one epoll loop on one core)" if generator == "rust" else "")
        + "; the fan-out scenario drives its trackers from Python.",
        "",
    ]
    ceiling = meta.get("generator_ceiling_events_per_s")
    if ceiling:
        out += [
            f"Generator ceiling (the same load against the {meta.get('calibration_sink')}"
            f" discard sink): **{_k(ceiling)} events/s**. *vs ceiling* is each result's share"
            " of it; at 70% or more a result is flagged generator-bound.",
            "",
        ]
    if rows := _of(runs, "ingest"):
        out += ["## Ingest throughput", "", *_ingest_table(meta, rows)]
    if rows := _of(runs, "latency"):
        out += ["## Ack latency under fixed offered load (open loop)", ""]
        out += ["| ws backend | load | offered events/s | acked events/s | p50 ms | p99 ms |"]
        out[-1] += " p999 ms | lost batches |"
        out += ["|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            x, lat = r["result"], r["result"]["ack_latency_ms"]
            out.append(
                f"| {r['label'].split()[0]} | {x['load']:.0%} | {_k(x['offered_events_per_s'])}"
                f" | {_k(x['acked_events_per_s'])} | {lat['p50']} | {lat['p99']} | {lat['p999']}"
                f" | {x['batches_lost']} |"
            )
        out.append("")
    if rows := _of(runs, "fanout"):
        out += ["## Fan-out: viewers of one busy session", ""]
        out += ["| ws backend | viewers | ingest events/s | delivered events/s | ack p99 ms |"]
        out[-1] += " fan-out share of loop | ingest kept, live vs paused slices | vs ceiling |"
        out += ["|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            x = r["result"]
            kept = f"{x['kept_while_live']:.0%}" if "kept_while_live" in x else ""
            out.append(
                f"| {r['label'].split()[0]} | {x['viewers']} | {_k(x['ingest_events_per_s'])}"
                f" | {_k(x['delivered_events_per_s'])} | {x['ack_p99_ms']}"
                f" | {x.get('fanout_share', 0):.1%} | {kept} | {_flag(r)} |"
            )
        out += ["", "Ingest kept: the server's ingest rate in 1 s slices while the watched"]
        out += ["session sends (its viewers get ticks) over the slices between, when it is"]
        out += ["paused: what live fan-out costs, measured at one machine speed.", ""]
    if rows := _of(runs, "connections"):
        out += ["## Idle tracker connections", ""]
        out += ["| ws backend | connections | accepted/s | RSS before MiB | RSS with all MiB |"]
        out[-1] += " KiB per connection | streaming acks/s, beside ÷ alone |"
        out += ["|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            x = r["result"]
            ratio = x.get("streaming_ack_ratio")
            out.append(
                f"| {r['label']} | {x['connections']:,} | {x['accept_per_s']:,}"
                f" | {x['rss_before_mib']} | {x['rss_with_all_mib']}"
                f" | {x['rss_per_connection_kib']} | {'-' if ratio is None else ratio} |"
            )
        out += ["", "Streaming: the ingest load (-c/-w/-b) once on a fresh server alone, once"]
        out += ["beside the idle connections; client addresses 127.0.0.2 onwards.", ""]
        for r in rows:
            if why := r["result"].get("fd_limited"):
                out += [f"{r['label']}: asked {r['result']['asked']:,}, opened fewer: {why}.", ""]
    if rows := _of(runs, "storage"):
        out += ["## Storage backends and ack modes", ""]
        out += ["| ws backend | storage | ack | events/s | ack p50 ms | ack p99 ms | vs ceiling |"]
        out += ["|---|---|---|---:|---:|---:|---|"]
        for r in rows:
            x = r["result"]
            out.append(
                f"| {x['ws_backend']} | {x['database']} | {x['ack_mode']} | {_k(x['events_per_s'])}"
                f" | {x['ack_latency_ms']['p50']} | {x['ack_latency_ms']['p99']} | {_flag(r)} |"
            )
        out.append("")
    if rows := _of(runs, "codec"):
        out += ["## Codecs (one core, rrweb-like corpus)", ""]
        out += ["| codec | level | shape | ratio | compress MB/s | decompress MB/s |"]
        out += ["|---|---:|---|---:|---:|---:|"]
        for r in rows:
            for shape, row in r["result"]["shapes"].items():
                out.append(
                    f"| {row['codec']} | {row['level']} | {shape} | {row['ratio']:.2f}x"
                    f" | {row['compress_mbps']:.0f} | {row['decompress_mbps']:.0f} |"
                )
        out.append("")
    out += _skipped(runs)
    return "\n".join(out)


def _bars(path: Path, title: str, labels: list[str], values: list[float], ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2), 3.6))
    ax.bar(labels, values, color="#4c72b0")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plots(folder: Path, meta: dict[str, Any], runs: list[Run]) -> list[Path]:
    written: list[Path] = []
    ceiling = meta.get("generator_ceiling_events_per_s")
    for scenario, title in (("ingest", "Ingest throughput"), ("storage", "Ingest per storage")):
        rows = _of(runs, scenario)
        if not rows:
            continue
        path = folder / f"{scenario}_throughput.png"
        fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(rows) + 2), 3.8))
        rates = [r["result"]["events_per_s"] for r in rows]
        bars = ax.bar(
            [r["label"] for r in rows],
            rates,
            color=["#dd8452" if _is_peer(r) else "#4c72b0" for r in rows],
        )
        ax.bar_label(bars, labels=[_k(v) for v in rates], fontsize=7)
        handles: list[Any] = []
        if any(_is_peer(r) for r in rows):
            # Proxy artists, so the legend names the two bar colours.
            handles += [
                Patch(color="#4c72b0", label="replaywire"),
                Patch(color="#dd8452", label="peer, same workload"),
            ]
            versus = meta.get("peers")
            ratios = [v for v in versus["replaywire_over_best"].values() if v] if versus else []
            if ratios:
                title = f"{title}: replaywire up to {max(ratios):.1f}x the best peer"
        if ceiling:
            ax.axhline(ceiling, color="grey", linestyle="--", label="generator ceiling")
            ax.axhline(0.7 * ceiling, color="orange", linestyle=":", label="70% of ceiling")
        handles += ax.get_legend_handles_labels()[0]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("events/s")
        ax.tick_params(axis="x", labelrotation=20)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if rows := _of(runs, "latency"):
        path = folder / "latency_percentiles.png"
        backends = list(dict.fromkeys(r["label"].split()[0] for r in rows))
        loads = sorted({r["result"]["load"] for r in rows})
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharey=True)
        width = 0.8 / len(backends)
        for ax, pct in zip(axes, ("p50", "p99", "p999"), strict=True):
            for i, backend in enumerate(backends):
                by_load = {
                    r["result"]["load"]: r["result"]["ack_latency_ms"][pct]
                    for r in rows
                    if r["label"].split()[0] == backend
                }
                xs = [j + i * width for j in range(len(loads))]
                ax.bar(xs, [by_load.get(load, 0) or 0 for load in loads], width, label=backend)
            ax.set_xticks([j + width * (len(backends) - 1) / 2 for j in range(len(loads))])
            ax.set_xticklabels([f"{load:.0%}" for load in loads])
            ax.set_title(f"ack {pct}")
            ax.set_xlabel("offered load (share of max)")
            ax.set_yscale("log")
        axes[0].set_ylabel("ms (log)")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if rows := _of(runs, "fanout"):
        path = folder / "fanout.png"
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for backend in dict.fromkeys(r["label"].split()[0] for r in rows):
            mine = [r for r in rows if r["label"].split()[0] == backend]
            ax.plot(
                [r["result"]["viewers"] for r in mine],
                [r["result"]["ingest_events_per_s"] for r in mine],
                marker="o",
                label=f"{backend}: ingest",
            )
            ax.plot(
                [r["result"]["viewers"] for r in mine],
                [r["result"]["delivered_events_per_s"] for r in mine],
                marker="s",
                linestyle="--",
                label=f"{backend}: delivered",
            )
        ax.set_xscale("symlog")
        ax.set_xlabel("viewers")
        ax.set_ylabel("events/s")
        ax.set_title("Fan-out")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if rows := _of(runs, "connections"):
        path = folder / "connections.png"
        _bars(
            path,
            f"Server RSS per idle connection (K={rows[0]['result']['connections']:,})",
            [r["label"] for r in rows],
            [r["result"]["rss_per_connection_kib"] for r in rows],
            "KiB per connection",
        )
        written.append(path)
    if rows := _of(runs, "codec"):
        path = folder / "codecs.png"
        labels = [f"{r['label']} {shape}" for r in rows for shape in r["result"]["shapes"]]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
        cells = [row for r in rows for row in r["result"]["shapes"].values()]
        left.bar(labels, [row["ratio"] for row in cells])
        left.set_title("compression ratio")
        right.bar(labels, [row["compress_mbps"] for row in cells])
        right.set_title("compress MB/s (one core)")
        for ax in (left, right):
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write(folder: Path, meta: dict[str, Any], runs: list[Run]) -> None:
    text = markdown(meta, runs)
    pngs = plots(folder, meta, runs)
    if pngs:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    (folder / "results.md").write_text(text)
