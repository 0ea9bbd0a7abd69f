"""Runs the Autobahn|Testsuite fuzzing client against the echo server and
reads its verdicts.

``python tests/conformance/autobahn.py [--all] [--backend rust,wsproto]
[--outdir DIR]`` is what ``make conformance`` runs: every case (517) on
both WebSocket codecs, a line of counts per codec, every NON-STRICT case
with its reason, the HTML report kept in ``DIR`` (``index.html``), and exit
status 1 if any case FAILED. The pytest test runs cases 1.* to 10.* the
same way (``tests/conformance/test_autobahn.py``).

Resource handling: each run starts one server (:func:`echo.echo_server`)
in its own nursery and one ``wstest`` process, both stopped on the way
out; a ``wstest`` that does not finish within ``timeout`` seconds is killed
and the run fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import trio

if __package__ in (None, ""):  # run as a script: tests/ on the path, as pytest does
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.echo import echo_server
from conformance.wstest import wstest

BACKENDS = ("rust", "wsproto")
QUICK_CASES = [f"{group}.*" for group in range(1, 11)]
ALL_CASES = ["*"]
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
CLIENT_TIMEOUT = 1800  # seconds; all 517 cases take about 12 minutes


@dataclass(frozen=True)
class Case:
    """One case's verdict, as the client's report says it."""

    id: str
    behavior: str
    behavior_close: str
    reason: str  # the report's "result": what the client saw and why


@dataclass(frozen=True)
class Results:
    backend: str
    cases: list[Case]
    outdir: Path

    def count(self, behavior: str) -> int:
        return sum(case.behavior == behavior for case in self.cases)

    def summary(self) -> str:
        """One line of counts, then every case that is neither OK nor
        INFORMATIONAL with its verdict and reason."""
        counts = Counter(case.behavior for case in self.cases)
        shown = " / ".join(
            f"{counts.get(v, 0)} {v}" for v in VERDICTS if v in counts or v != "UNIMPLEMENTED"
        )
        lines = [f"autobahn {self.backend}: {len(self.cases)} cases: {shown}"]
        for case in sorted(self.cases, key=lambda c: _case_key(c.id)):
            if case.behavior not in ("OK", "INFORMATIONAL"):
                lines.append(f"  {case.id} {case.behavior}: {case.reason}")
        return "\n".join(lines)


async def run(backend: str, cases: list[str], outdir: Path, workdir: Path) -> Results:
    """Runs ``cases`` against an echo server on ``backend``; the report goes
    to ``outdir``, the server's files to ``workdir``. A client that has not
    finished after ``CLIENT_TIMEOUT`` seconds is killed and the run fails."""
    client = await trio.to_thread.run_sync(wstest)  # built the first time
    for folder in (outdir, workdir):
        await trio.Path(folder).mkdir(parents=True, exist_ok=True)
    async with trio.open_nursery() as nursery, echo_server(nursery, workdir, backend) as server:
        agent = f"replaywire-{backend}"
        spec = {
            "outdir": str(outdir),
            "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{server.port}/ws?type=tracker"}],
            "cases": cases,
            "exclude-cases": [],
            "exclude-agent-cases": {},
        }
        spec_path = workdir / f"fuzzingclient-{backend}.json"
        await trio.Path(spec_path).write_text(json.dumps(spec, indent=2))
        log_path = workdir / f"wstest-{backend}.log"
        with log_path.open("wb") as log, trio.fail_after(CLIENT_TIMEOUT):
            done = await trio.run_process(
                [str(client), "-m", "fuzzingclient", "-s", str(spec_path)],
                cwd=str(workdir),
                stdout=log,
                stderr=log,
                check=False,
            )
        if done.returncode != 0:
            tail = (await trio.Path(log_path).read_text(errors="replace"))[-4000:]
            raise RuntimeError(f"wstest exited with {done.returncode}:\n{tail}")
    return read_results(backend, outdir, agent)


def read_results(backend: str, outdir: Path, agent: str) -> Results:
    index: dict[str, dict[str, dict[str, Any]]] = json.loads((outdir / "index.json").read_text())
    cases = []
    for case_id, entry in index[agent].items():
        report = json.loads((outdir / entry["reportfile"]).read_text())
        cases.append(
            Case(case_id, entry["behavior"], entry["behaviorClose"], _reason(entry, report))
        )
    return Results(backend, cases, outdir)


def _reason(entry: dict[str, Any], report: dict[str, Any]) -> str:
    """The client's words for a verdict: its result, and the close part's
    when that is what was not OK."""
    parts = [str(report.get("result", "")).strip()]
    if entry["behaviorClose"] not in ("OK", "INFORMATIONAL"):
        parts.append(f"close: {report.get('resultClose', '')}".strip())
    return " ".join(" ".join(p.split()) for p in parts if p)


def _case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="all 517 cases, not only 1.* to 10.*")
    parser.add_argument("--backend", default=",".join(BACKENDS), help="rust,wsproto")
    parser.add_argument("--outdir", type=Path, default=Path("autobahn-report"))
    args = parser.parse_args()
    cases = ALL_CASES if args.all else QUICK_CASES
    # The servers' connection log (one line per case and connection) would
    # bury the summary; warnings and errors still show.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    failed = 0
    for backend in args.backend.split(","):
        results = trio.run(
            run, backend, cases, args.outdir / backend, args.outdir / "work" / backend
        )
        print(results.summary(), flush=True)
        print(f"  report: {results.outdir / 'index.html'}", flush=True)
        failed += results.count("FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
