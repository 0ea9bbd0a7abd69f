"""Peers: reference servers speaking replaywire's tracker protocol, for the
suite to run the same ingest workload against.

- ``node-ws``: Node.js and the ``ws`` library (``node-ws/server.js``, its
  dependencies pinned by ``node-ws/package-lock.json``);
- ``python-websockets``: the ``websockets`` library on asyncio, with uvloop
  and orjson when installed (``python_websockets.py``);
- ``bun``: Bun's built-in WebSocket server, uWebSockets underneath
  (``bun/server.js``; the runtime itself is the ``bun`` package from npm,
  pinned by ``bun/package-lock.json``, so only npm is needed);
- ``rust-tungstenite``: tokio on one thread, tokio-tungstenite and
  serde_json with a ``RawValue`` per event (``rust-tungstenite/``, a crate
  of its own with its own Cargo.lock, like ``benches/loadgen``).

The two JavaScript peers share their protocol handling (``protocol.js``) and
differ only in the server around it, which is what they are compared on.

Each one parses every message, validates every event as replaywire does,
keeps a count-bounded ring per session and acks every batch with the same
ack message (see their docstrings for what they leave out).

:func:`prepare` makes a peer ready to start (``npm ci`` for ``node-ws`` and
``bun``, once, when their ``node_modules`` are missing or older than the
lock file; ``cargo build --release`` for ``rust-tungstenite``, a no-op when
it is up to date) or raises :class:`Unavailable` saying why it cannot;
:func:`serving` starts it on a free loopback port, pinned like the server
(ingest_load.serving), and terminates it on the way out.

Under ``make test`` the suite's test runs node-ws, python-websockets and bun
(npm ci and a run of a second each); the Rust peer is left out there, its
cold release build costing about 40 s of CPU: ``make lint`` checks its
formatting, and ``cargo test --manifest-path
benches/peers/rust-tungstenite/Cargo.toml`` runs its protocol tests.
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
BUN_DIR = HERE / "bun"
RUST_DIR = HERE / "rust-tungstenite"
NPM_CI_TIMEOUT = 300.0  # seconds; a registry that does not answer skips the peer
CARGO_BUILD_TIMEOUT = 900.0  # seconds; a cold release build takes about 40 s of CPU
NAMES = ("node-ws", "python-websockets", "bun", "rust-tungstenite")
# What the peers keep, for the tables: replaywire's MAX_EVENTS_PER_SESSION.
STORAGE = "memory ring (20,000 events)"


class Unavailable(Exception):
    """The peer cannot be started here; the message says why."""


@dataclass
class Peer:
    """A peer ready to start: its command, its versions, and what preparing
    it took (``setup``, e.g. ``"npm ci"``, and its seconds, when it ran)."""

    name: str
    command: list[str]
    cwd: Path
    versions: dict[str, str | None] = field(default_factory=dict)
    setup: tuple[str, float] | None = None


def _versions(command: list[str], cwd: Path) -> dict[str, str | None]:
    done = subprocess.run(
        [*command, "--version"], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise Unavailable(f"`{' '.join(command)} --version` failed: {done.stderr.strip()[-300:]}")
    versions: dict[str, str | None] = json.loads(done.stdout)
    return versions


def _npm_ci(folder: Path, what: str) -> tuple[str, float] | None:
    """Install a peer's dependencies (``what``, for the error) from the lock
    file in ``folder`` unless they are there and newer than it (npm writes
    node_modules/.package-lock.json on every install); ("npm ci", the
    seconds it took), or None when nothing ran."""
    stamp = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return None
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable(f"npm not found on PATH (needed once to install {what})")
    print(f"peers: npm ci in {folder} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
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
    return "npm ci", seconds


def _cargo_build() -> tuple[Path, tuple[str, float] | None]:
    """Build the Rust peer (release; cargo makes it a no-op when up to date)
    in its own target dir, ``rust-tungstenite/target``, unless
    ``CARGO_TARGET_DIR`` says otherwise (cargo names the file); ``--locked``
    under CI, as for benches/loadgen. The executable, and ("cargo build",
    the seconds it took) when it compiled the peer, None when it was fresh."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise Unavailable("cargo not found on PATH (needed to build the Rust peer)")
    command = [
        cargo, "build", "--release", "--manifest-path", str(RUST_DIR / "Cargo.toml"),
        "--message-format=json-render-diagnostics",
    ]  # fmt: skip
    if os.environ.get("CI") in ("true", "1"):
        command.append("--locked")
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CARGO_BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Unavailable(
            f"cargo build did not finish within {CARGO_BUILD_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0:
        raise Unavailable(f"cargo build failed: {done.stderr.strip()[-300:]}")
    seconds = time.monotonic() - started
    for line in done.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            fresh = message.get("fresh", False)
            if not fresh:
                print(f"peers: cargo build took {seconds:.1f} s", file=sys.stderr, flush=True)
            return Path(message["executable"]), None if fresh else ("cargo build", seconds)
    raise Unavailable("cargo build named no executable")


def prepare(name: str) -> Peer:
    """The peer ``name``, ready to start; :class:`Unavailable` if it cannot be."""
    if name == "node-ws":
        node = shutil.which("node")
        if node is None:
            raise Unavailable("node not found on PATH")
        setup = _npm_ci(NODE_DIR, "the ws package")
        command = [node, str(NODE_DIR / "server.js")]
        return Peer(name, command, NODE_DIR, _versions(command, NODE_DIR), setup)
    if name == "bun":
        setup = _npm_ci(BUN_DIR, "the bun package, which ships the runtime")
        bun = BUN_DIR / "node_modules" / ".bin" / "bun"
        if not bun.exists():
            raise Unavailable(f"{bun} is missing after npm ci")
        command = [str(bun), str(BUN_DIR / "server.js")]
        return Peer(name, command, BUN_DIR, _versions(command, BUN_DIR), setup)
    if name == "rust-tungstenite":
        executable, setup = _cargo_build()
        command = [str(executable)]
        return Peer(name, command, RUST_DIR, _versions(command, RUST_DIR), setup)
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
