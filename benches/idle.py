"""Connection scale: K idle tracker connections held open at once.

Each connection upgrades, starts a session and waits for
``session_started``, then stays idle (it answers the server's heartbeat
pings, as a browser does, and sends nothing else). Reported: the server's
resident memory (``VmRSS``) before and with all K open, per connection,
and the accept rate (connections fully started per second, at most
``parallel`` handshakes in flight).

The client is one ``epoll`` loop over plain non-blocking sockets (no task
per connection), so that it opens connections faster than the server
accepts them. Past one client address's ephemeral ports (about 28,000 with
Linux's default ``ip_local_port_range``), it spreads its connections over
several loopback source addresses, 127.0.0.2, 127.0.0.3, ...
(``PER_ADDRESS`` each, bound before connecting, with
``IP_BIND_ADDRESS_NO_PORT`` so that the port is picked per 4-tuple).
:func:`raise_fd_limit` raises ``RLIMIT_NOFILE`` (soft and hard: as root,
up to ``fs.nr_open``) in this process, before the server is started, which
inherits it.

Every loop is bounded: opening stops at its deadline (what was reached is
reported), holding stops after ``hold`` seconds.
"""

from __future__ import annotations

import base64
import errno
import os
import resource
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replaywire import _core

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from rrweb import start_message  # tests/rrweb.py

PER_ADDRESS = 20_000  # connections per client source address
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
FD_SPARE = 512  # descriptors besides the connections (server: storage, logs, listeners)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def raise_fd_limit(count: int) -> int:
    """Raise this process's ``RLIMIT_NOFILE`` to hold ``count`` connections
    (and ``FD_SPARE``); processes started afterwards inherit it. The hard
    limit is raised too when allowed (root, up to ``fs.nr_open``). Returns
    the soft limit now in force."""
    need = count + FD_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    try:
        with open("/proc/sys/fs/nr_open") as f:
            ceiling = int(f.read())
    except OSError:
        ceiling = hard
    target = min(need, max(hard, ceiling))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
    except (ValueError, OSError):  # not root: the soft limit up to the hard one
        target = min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fd_room(count: int) -> tuple[int, str | None]:
    """Raise the fd limit for ``count`` connections (:func:`raise_fd_limit`)
    and return how many fit under it, with why when that is fewer: the
    limit applies to each process, the server's as the client's."""
    limit = raise_fd_limit(count)
    room = limit - FD_SPARE
    if count <= room:
        return count, None
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return room, (
        f"RLIMIT_NOFILE: {count:,} connections need {count + FD_SPARE:,} descriptors per"
        f" process; the hard limit is {hard:,} and could not be raised"
        " (raising it needs CAP_SYS_RESOURCE; fs.nr_open is the ceiling)"
    )


def source_address(n: int) -> str:
    """The client address of connection ``n``: 127.0.0.2 for the first
    ``PER_ADDRESS``, then 127.0.0.3, ..."""
    host = 2 + n // PER_ADDRESS
    if host > 254:
        raise ValueError(f"connection {n}: past 127.0.0.254")
    return f"127.0.0.{host}"


def _hello(port: int, n: int) -> bytes:
    """The upgrade request and the ``session_start`` frame, sent at once
    (the server reads the frame after the request head)."""
    key = base64.b64encode(os.urandom(16))
    start = start_message(f"idle-{os.getpid()}-{n}").encode()
    return (
        b"GET /ws?type=tracker HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %b\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (port, key)
    ) + _core.encode_client_frame(_core.OP_TEXT, start, os.urandom(4))


@dataclass
class _Conn:
    sock: socket.socket
    hello: bytes
    got: bytes = b""
    decoder: _core.FrameDecoder | None = None  # once started: for the server's pings


@dataclass
class IdleClients:
    """Up to ``count`` idle tracker connections to ``port``, opened by
    :meth:`open` and kept answering pings by :meth:`hold`."""

    port: int
    count: int
    parallel: int = 200
    started: dict[int, _Conn] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    open_seconds: float = 0.0
    pongs: int = 0
    lost: int = 0  # started, then closed by the server

    def __post_init__(self) -> None:
        self._poll = select.epoll()
        self._pending: dict[int, _Conn] = {}

    def _fail(self, conn: _Conn, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1
        fd = conn.sock.fileno()
        self._pending.pop(fd, None)
        self._poll.unregister(fd)
        conn.sock.close()

    def _connect(self, n: int) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:  # EMFILE: no descriptor left here
            why = errno.errorcode.get(exc.errno or 0, str(exc))
            self.failures[why] = self.failures.get(why, 0) + 1
            return
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source_address(n), 0))
        sock.setblocking(False)
        err = sock.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            why = errno.errorcode.get(err, str(err))
            self.failures[why] = self.failures.get(why, 0) + 1
            return
        conn = _Conn(sock, _hello(self.port, n))
        self._pending[sock.fileno()] = conn
        self._poll.register(sock.fileno(), select.EPOLLOUT)

    def _on_pending(self, conn: _Conn, events: int) -> None:
        sock = conn.sock
        if conn.hello:
            if events & (select.EPOLLERR | select.EPOLLHUP):
                self._fail(conn, "connect failed")
                return
            sock.send(conn.hello)  # a few hundred bytes: a new socket takes them
            conn.hello = b""
            self._poll.modify(sock.fileno(), select.EPOLLIN)
            return
        try:
            data = sock.recv(65536)
        except OSError as exc:
            self._fail(conn, errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        if not data:
            self._fail(conn, "closed during start")
            return
        conn.got += data
        if not conn.got.startswith(b"HTTP/1.1 101"[: len(conn.got)]):
            self._fail(conn, conn.got.split(b"\r\n", 1)[0].decode(errors="replace"))
        elif b"session_started" in conn.got:
            conn.got = b""
            del self._pending[sock.fileno()]
            self.started[sock.fileno()] = conn

    def _on_started(self, conn: _Conn) -> None:
        """Answer what the server sends an idle tracker: its pings."""
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.lost += 1
            fd = conn.sock.fileno()
            del self.started[fd]
            self._poll.unregister(fd)
            conn.sock.close()
            return
        if conn.decoder is None:
            conn.decoder = _core.FrameDecoder(require_mask=False, max_message_bytes=1 << 16)
        for event in conn.decoder.feed(data):
            if isinstance(event, _core.WsPing):
                frame = _core.encode_client_frame(_core.OP_PONG, event.data, os.urandom(4))
                conn.sock.send(frame)
                self.pongs += 1

    def _pump(self, timeout: float) -> None:
        for fd, events in self._poll.poll(timeout):
            if (conn := self._pending.get(fd)) is not None:
                self._on_pending(conn, events)
            elif (conn := self.started.get(fd)) is not None:
                self._on_started(conn)

    def open(self, deadline: float, progress: Callable[[int], None] | None = None) -> None:
        """Open connections, ``parallel`` starts in flight, until ``count``
        are started or ``deadline`` (``time.monotonic``) passes."""
        t0 = time.perf_counter()
        n = 0
        while len(self.started) < self.count and time.monotonic() < deadline:
            while (
                n < self.count
                and len(self._pending) < self.parallel
                and len(self.started) + len(self._pending) < self.count
            ):
                self._connect(n)
                n += 1
            if n >= self.count and not self._pending:
                break  # some failed: no more to try
            self._pump(0.05)
            if progress is not None:
                progress(len(self.started))
        self.open_seconds = time.perf_counter() - t0

    def hold(self, seconds: float, stop: threading.Event | None = None) -> None:
        """Keep the started connections (answering pings) for ``seconds``,
        or until ``stop`` is set."""
        until = time.monotonic() + seconds
        while time.monotonic() < until and not (stop is not None and stop.is_set()):
            self._pump(min(0.1, max(0.0, until - time.monotonic())))

    def close(self) -> None:
        for conn in [*self._pending.values(), *self.started.values()]:
            conn.sock.close()
        self._pending.clear()
        self.started.clear()
        self._poll.close()


def run_idle(
    port: int,
    server_pid: int,
    count: int,
    *,
    beside: Callable[[], dict[str, Any]] | None = None,
    alone: dict[str, Any] | None = None,
    parallel: int = 200,
    hold: float = 1.0,
    open_timeout: float | None = None,
) -> dict[str, object]:
    """Open ``count`` connections, hold them ``hold`` seconds, measure; then
    run ``beside`` (a streaming load against the same server: the ingest
    generator) with them open, its acks/s compared with ``alone`` (the same
    load's result without them, measured by the caller on a fresh server).
    The caller started the server with the fd limit raised
    (:func:`raise_fd_limit`)."""
    result: dict[str, Any] = {}
    if alone is not None:
        result["alone"] = alone
    time.sleep(0.3)  # let the fresh server settle
    before = rss_bytes(server_pid)
    clients = IdleClients(port, count, parallel=parallel)
    try:
        timeout = open_timeout if open_timeout is not None else max(60.0, count / 500)
        clients.open(time.monotonic() + timeout)
        clients.hold(hold)
        after = rss_bytes(server_pid)
        opened = len(clients.started)
        if beside is not None:
            stop = threading.Event()
            holder = threading.Thread(target=clients.hold, args=(3600.0, stop), daemon=True)
            holder.start()
            try:
                result["beside_idle"] = beside()
            finally:
                stop.set()
                holder.join()
            if alone is not None:
                rate = alone.get("acks_per_s") or 0
                with_idle = result["beside_idle"].get("acks_per_s") or 0
                result["streaming_ack_ratio"] = round(with_idle / rate, 3) if rate else None
        still_open = len(clients.started)
    finally:
        clients.close()
    result.update(
        connections=opened,
        asked=count,
        failures=clients.failures,
        still_open=still_open,
        accept_per_s=round(opened / clients.open_seconds) if clients.open_seconds else 0,
        open_seconds=round(clients.open_seconds, 3),
        client_addresses=1 + (max(opened, 1) - 1) // PER_ADDRESS,
        rss_before_mib=round(before / 2**20, 1),
        rss_with_all_mib=round(after / 2**20, 1),
        rss_per_connection_kib=round((after - before) / max(opened, 1) / 1024, 2),
    )
    return result


def main() -> int:
    """Hold idle connections to a running server (for measuring it from
    inside, see ``benches/idle_memory.py``): print ``started N`` once they
    are open, hold them until stdin closes or ``--hold`` seconds."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--hold", type=float, default=120.0)
    a = p.parse_args()
    raise_fd_limit(a.count)
    clients = IdleClients(a.port, a.count)
    clients.open(time.monotonic() + max(60.0, a.count / 500))
    print(f"started {len(clients.started)} in {clients.open_seconds:.1f}s", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    clients.hold(a.hold, stop)
    clients.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
