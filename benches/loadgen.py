"""The Rust load generator (``benches/loadgen/``, a small binary crate of its
own): built on demand, fed the same sessions and events the Python
generator uses, run with a bounded timeout, its JSON result read back.

Why Rust: a result counts only if it stays under 70% of the generator's
ceiling, so measuring the 2 M events/s the server is meant to reach needs a
generator good for about 3 M on one core of this 2-core machine, beside
everything else that runs there. The Python generator (``ingest_load.py``,
trio) spends 11-13 us of CPU per 50-event batch, the binary under 4 us
(most of it the kernel's loopback send); docs/benchmarks.md "The load generator" has
the ceilings measured. The binary keeps C connections on one epoll loop
on one core and builds every batch frame by copying the comma-joined corpus
into the send buffer, masking it in the same pass; acks are told apart by
their first bytes, with no JSON parsed, and latencies go into an HDR
histogram. It writes exactly the messages ``tests/rrweb.py`` builds
(``loadgen dump`` prints them; ``tests/test_loadgen.py`` compares), so
results of both generators are comparable.

``loadgen viewers`` runs the live viewers of ``benches/fanout.py`` on one
epoll loop: :func:`start_viewers` starts it with its stdout piped (``joined``,
then the events delivered so far every 100 ms).

Resource handling: the payload file lives in a temporary directory removed
after the run; the binary is a child process run with a timeout (warm-up +
duration + grace + a margin) and killed if it overruns it. A failed build,
a non-zero exit, or a run in which the server answered with an ``error`` or
broke a connection raises :class:`LoadgenError` with the binary's message.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import start_message

CRATE = Path(__file__).resolve().parent / "loadgen"
TRACKER_PATH = "/ws?type=tracker"
BUILD_TIMEOUT = 900.0
# Seconds on top of a run's own length before the child is killed:
# connection set-up and printing the result.
MARGIN = 30.0


class LoadgenError(RuntimeError):
    """The binary could not be built, failed, or measured something else
    than asked (the server refused batches or dropped connections)."""


@functools.cache
def binary() -> Path:
    """Builds the crate (a no-op when it is up to date; ``make loadgen``
    does the same) and returns the executable: in the crate's own target
    dir, ``benches/loadgen/target``, unless ``CARGO_TARGET_DIR`` says
    otherwise (cargo names the file). ``--locked`` under CI, as the Makefile
    does for the extension."""
    command = [
        "cargo", "build", "--manifest-path", str(CRATE / "Cargo.toml"),
        "--release", "--message-format=json-render-diagnostics",
    ]  # fmt: skip
    if os.environ.get("CI") in ("true", "1"):
        command.append("--locked")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except FileNotFoundError:
        raise LoadgenError("cargo is not installed: use --generator python") from None
    if done.returncode != 0:
        raise LoadgenError(f"cargo build failed:\n{done.stderr[-3000:]}")
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            return Path(message["executable"])
    raise LoadgenError("cargo build named no executable")


def write_payload(folder: Path, session_ids: Sequence[str], events: Sequence[bytes]) -> Path:
    """The workload file the binary reads: the upgrade path, each
    connection's session (id as JSON, its ``session_start``) and the event
    corpus, events as the raw JSON texts they are sent as."""
    payload = {
        "path": TRACKER_PATH,
        "sessions": [
            {"id_json": json.dumps(sid), "start": start_message(sid)} for sid in session_ids
        ],
        "events": [e.decode() for e in events],
    }
    path = folder / "payload.json"
    path.write_text(json.dumps(payload))
    return path


def run(
    port: int,
    session_ids: Sequence[str],
    events: Sequence[bytes],
    *,
    batch: int,
    warmup: float,
    duration: float,
    window: int | None = None,
    rate: float | None = None,
    grace: float = 2.0,
    pin: bool = False,
) -> dict[str, Any]:
    """One run of the binary against the server on ``port``: closed loop
    with ``window``, or open loop at ``rate`` events/s. With ``pin`` it is
    pinned to the first CPU this process may use (the suite has already
    kept the server's CPU out of that set). Returns its JSON result."""
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        payload = write_payload(Path(tmp), session_ids, events)
        command = [
            str(binary()), "load", "--port", str(port), "--payload", str(payload),
            "--batch", str(batch), "--warmup", str(warmup), "--duration", str(duration),
            "--grace", str(grace),
        ]  # fmt: skip
        if rate is not None:
            command += ["--rate", str(rate)]
        else:
            command += ["--window", str(window or 8)]
        if pin:
            command += ["--cpu", str(min(os.sched_getaffinity(0)))]
        timeout = 0.2 + warmup + duration + grace + MARGIN
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LoadgenError(f"loadgen did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise LoadgenError(f"loadgen failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["errors"] or result["connection_errors"]:
        raise LoadgenError(
            f"{result['errors']} error answers, {result['connection_errors']} broken"
            f" connections; first: {result['first_error']}"
        )
    return result


def viewers_command(
    port: int,
    session_id: str,
    count: int,
    codec: str,
    *,
    max_seconds: float = 600.0,
    cpu: int | None = None,
) -> list[str]:
    """The command line of ``loadgen viewers``: ``count`` viewers of
    ``session_id`` with ``codec``, stopping by themselves after
    ``max_seconds``, pinned to ``cpu`` if given (else on the CPUs this
    process may use)."""
    command = [
        str(binary()), "viewers", "--port", str(port), "--session", session_id,
        "--count", str(count), "--codec", codec, "--max-seconds", str(max_seconds),
    ]  # fmt: skip
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    return command


async def start_viewers(
    port: int,
    session_id: str,
    count: int,
    codec: str,
    *,
    max_seconds: float = 600.0,
    cpu: int | None = None,
) -> trio.Process:
    """``loadgen viewers`` as a child process, its stdout piped: ``joined``
    once every viewer has joined, then the cumulative count of delivered
    events every 100 ms, one per line (what ``fanout.py --viewer-process``
    prints). Its stderr is this process's: a refused upgrade, a closed
    connection or a bad frame ends it early with a message there, exit
    status 1. The caller owns the process: it stops by itself after
    ``max_seconds`` or once its stdout is closed; kill and wait for it
    sooner."""
    command = viewers_command(port, session_id, count, codec, max_seconds=max_seconds, cpu=cpu)
    return await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
