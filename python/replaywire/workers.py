"""``replaywire serve --workers N``: N server processes on one port.

The parent process only supervises; each worker is an ordinary
``replaywire serve`` (a trio process of its own) whose listening socket
has ``SO_REUSEPORT`` set, so the kernel spreads new connections over the
workers. They share what every instance shares: the PostgreSQL database
and Redis (rate limits, presence, live fan-out across workers). Hence the
refusal, in :class:`~replaywire.config.Config`, of ``WORKERS`` above 1
without both.

Each worker gets the parent's effective configuration through its
environment, with its own ``INSTANCE_ID`` (``{parent id}-w{n}``), its own
``SPOOL_DIR`` and ``LOG_DIR`` subfolder (``w{n}``: a spool and a log file
have one writer) and ``PORT`` fixed (with ``PORT=0`` the parent picks the
port and holds it, bound but not listening, so that restarted workers get
it back).

Supervision: a worker that exits while the parent is not stopping is
logged (``worker_exited``, with its exit code or signal) and started again,
after a delay that doubles (1 s to 30 s) while it keeps dying within
``STABLE_SECONDS`` of its start. The first SIGTERM or SIGINT to the parent
is passed to every worker, which drains (``DRAIN_SECONDS``); a second one is
passed on too (the workers cut their drain short). Workers still running
``EXIT_GRACE_SECONDS`` after the drain are killed. The parent's exit code
is 0 if every worker exited with 0, else 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import structlog
import trio

from .config import Config, knobs
from .observability.logging import instance_name

__all__ = ["child_environment", "open_reuseport_listeners", "supervise"]

log = structlog.get_logger("replaywire.workers")

EXIT_GRACE_SECONDS = 5.0
STABLE_SECONDS = 10.0  # a worker that lived this long restarts at once when it dies
RESTART_MIN, RESTART_MAX = 1.0, 30.0
POLL = 0.1


@dataclass
class _Worker:
    number: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float = 0.0
    delay: float = 0.0
    restarts: int = 0


def child_environment(config: Config, number: int, base: str, port: int) -> dict[str, str]:
    """The environment of worker ``number``: every knob of ``config``
    spelled out (flags and the ``--config`` file included), then its own
    values."""
    env = dict(os.environ)
    for f in knobs():
        value = getattr(config, f.name)
        env[f.name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(
        WORKERS="1",
        REUSE_PORT="true",
        PORT=str(port),
        INSTANCE_ID=f"{base}-w{number}",
    )
    if config.spool_dir:
        env["SPOOL_DIR"] = os.path.join(config.spool_dir, f"w{number}")
    if config.log_dir:
        env["LOG_DIR"] = os.path.join(config.log_dir, f"w{number}")
    return env


async def open_reuseport_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Listeners on every address of ``host`` with ``SO_REUSEPORT`` (and
    ``SO_REUSEADDR``) set, as :func:`trio.open_tcp_listeners` would open
    them otherwise."""
    infos = await trio.socket.getaddrinfo(
        host, port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE
    )
    listeners = []
    try:
        for family, kind, proto, _, addr in infos:
            sock = trio.socket.socket(family, kind, proto)
            try:
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEPORT, 1)
                if family == trio.socket.AF_INET6:
                    sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
                await sock.bind(addr)
                sock.listen(trio.socket.SOMAXCONN)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


def _reserve_port(config: Config) -> socket.socket | None:
    """With ``PORT=0``: a socket bound (not listening) to a free port with
    ``SO_REUSEPORT``, held for as long as the parent runs."""
    if config.port != 0:
        return None
    family, kind, proto, _, addr = socket.getaddrinfo(
        config.host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(addr)
    return sock


def _describe(code: int) -> dict[str, object]:
    if code < 0:
        return {"signal": signal.Signals(-code).name}
    return {"exit_code": code}


def supervise(config: Config) -> int:
    """Run ``config.workers`` workers until SIGTERM/SIGINT; the exit code."""
    reserved = _reserve_port(config)
    port = reserved.getsockname()[1] if reserved is not None else config.port
    base = instance_name(config)
    signals: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workers = [_Worker(n) for n in range(1, config.workers + 1)]
    log.info("workers_starting", workers=config.workers, port=port, host=config.host)

    def start(worker: _Worker) -> None:
        env = child_environment(config, worker.number, base, port)
        worker.proc = subprocess.Popen([sys.executable, "-m", "replaywire", "serve"], env=env)
        worker.started = time.monotonic()
        log.info("worker_started", worker=worker.number, pid=worker.proc.pid)

    try:
        for worker in workers:
            start(worker)
        while not signals:
            now = time.monotonic()
            for worker in workers:
                proc = worker.proc
                if proc is not None and (code := proc.poll()) is not None:
                    lived = now - worker.started
                    worker.delay = (
                        0.0
                        if lived >= STABLE_SECONDS
                        else min(RESTART_MAX, max(RESTART_MIN, worker.delay * 2))
                    )
                    worker.restart_at = now + worker.delay
                    worker.proc = None
                    log.error(
                        "worker_exited",
                        worker=worker.number,
                        pid=proc.pid,
                        lived_seconds=round(lived, 3),
                        restart_in=worker.delay,
                        **_describe(code),
                    )
                if worker.proc is None and now >= worker.restart_at:
                    worker.restarts += 1
                    start(worker)
            time.sleep(POLL)
        return _stop(config, workers, signals)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if reserved is not None:
            reserved.close()


def _stop(config: Config, workers: list[_Worker], signals: list[int]) -> int:
    """Pass the signal on, wait for the drains, kill what outlives them."""
    live = [w for w in workers if w.proc is not None]
    log.info("workers_stopping", signal=signal.Signals(signals[0]).name, workers=len(live))
    for worker in live:
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
    forwarded = 1
    deadline = time.monotonic() + config.drain_seconds + EXIT_GRACE_SECONDS
    codes: dict[int, int] = {}
    while len(codes) < len(live) and time.monotonic() < deadline:
        if len(signals) > forwarded:  # a second signal: the workers force their drain
            forwarded = len(signals)
            for worker in live:
                if worker.number not in codes and worker.proc is not None:
                    worker.proc.send_signal(signal.SIGTERM)
        for worker in live:
            assert worker.proc is not None
            if worker.number not in codes and (code := worker.proc.poll()) is not None:
                codes[worker.number] = code
                log.info("worker_stopped", worker=worker.number, **_describe(code))
        time.sleep(POLL)
    for worker in live:
        assert worker.proc is not None
        if worker.number not in codes:
            worker.proc.kill()
            codes[worker.number] = worker.proc.wait()
            log.error("worker_killed", worker=worker.number, after_seconds=config.drain_seconds)
    status = 0 if all(code == 0 for code in codes.values()) else 1
    log.info("workers_stopped", exit_code=status)
    return status
