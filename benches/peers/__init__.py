"""Peers: reference servers speaking replaywire's tracker protocol, for the
suite to run the same ingest workload against (issue 8, "Peers").

- ``node-ws``: Node.js and the ``ws`` library (``node-ws/server.js``, its
  dependencies pinned by ``node-ws/package-lock.json``);
- ``python-websockets``: the ``websockets`` library on asyncio, with uvloop
  and orjson when installed (``python_websockets.py``).

Each one parses every message, validates every event as replaywire does,
keeps a count-bounded ring per session and acks every batch with the same
ack message (see their docstrings for what they leave out).

:func:`prepare` makes a peer ready to start (``npm ci`` for ``node-ws``,
once, when its ``node_modules`` are missing or older than the lock file) or
raises :class:`Unavailable` saying why it cannot; :func:`serving` starts it
on a free loopback port, pinned like the server (ingest_load.serving), and
terminates it on the way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node-ws"
NPM_CI_TIMEOUT = 300.0  # seconds; a registry that does not answer skips the peer
NAMES = ("node-ws", "python-websockets")
# What the peers keep, for the tables: replaywire's MAX_EVENTS_PER_SESSION.
STORAGE = "memory ring (20,000 events)"


class Unavailable(Exception):
    """The peer cannot be started here; the message says why."""


@dataclass
class Peer:
    """A peer ready to start: its command, its versions, and what preparing
    it took (``npm_ci_seconds`` when ``npm ci`` ran)."""

    name: str
    command: list[str]
    cwd: Path
    versions: dict[str, str | None] = field(default_factory=dict)
    npm_ci_seconds: float | None = None


def _versions(command: list[str], cwd: Path) -> dict[str, str | None]:
    done = subprocess.run(
        [*command, "--version"], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise Unavailable(f"`{' '.join(command)} --version` failed: {done.stderr.strip()[-300:]}")
    versions: dict[str, str | None] = json.loads(done.stdout)
    return versions


def _npm_ci() -> float | None:
    """Install node-ws's dependencies from its lock file unless they are
    there and newer than it (npm writes node_modules/.package-lock.json
    on every install); the seconds it took, or None when nothing ran."""
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return None
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm not found on PATH (needed once to install the ws package)")
    print(f"peers: npm ci in {NODE_DIR} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"npm ci did not finish within {NPM_CI_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise Unavailable(f"npm ci failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    seconds = time.monotonic() - started
    print(f"peers: npm ci took {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds


def prepare(name: str) -> Peer:
    """The peer ``name``, ready to start; :class:`Unavailable` if it cannot be."""
    if name == "node-ws":
        node = shutil.which("node")
        if node is None:
            raise Unavailable("node not found on PATH")
        seconds = _npm_ci()
        command = [node, str(NODE_DIR / "server.js")]
        return Peer(name, command, NODE_DIR, _versions(command, NODE_DIR), seconds)
    if name == "python-websockets":
        try:
            import websockets  # noqa: F401
        except ImportError:
            raise Unavailable("the websockets package is not installed") from None
        command = [sys.executable, str(HERE / "python_websockets.py")]
        return Peer(name, command, HERE, _versions(command, HERE))
    raise SystemExit(f"unknown peer {name!r}: expected {', '.join(NAMES)}")


@contextlib.contextmanager
def serving(peer: Peer, pin: bool = False) -> Iterator[tuple[int, int]]:
    """``peer`` on a free loopback port: yields (port, pid), terminates it
    after (killed if it does not exit within 10 s). With ``pin`` (and two or
    more CPUs) it runs on the last CPU and this process, the generator, on
    the others, as the server does in ingest_load.serving."""
    from benches.ingest_load import free_port, wait_listening

    port = free_port()
    cpus = sorted(os.sched_getaffinity(0))
    pin = pin and len(cpus) >= 2
    # Pinned in the child before exec, so every thread it starts inherits
    # the mask (node starts its V8 and libuv threads at once; setting the
    # affinity of its pid afterwards would pin the main thread only).
    proc = subprocess.Popen(
        [*peer.command, "--port", str(port)],
        cwd=peer.cwd,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[-1]})) if pin else None,
    )
    if pin:
        os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        wait_listening(port, proc, peer.name)
        yield port, proc.pid
    finally:
        if pin:
            os.sched_setaffinity(0, cpus)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
