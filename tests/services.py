"""Real services for tests: a PostgreSQL server, and databases on it.

Where the server comes from (:func:`postgres_admin_url`):

1. ``REPLAYWIRE_TEST_POSTGRES_URL``, if set: a URL to any database of a
   server where that role may create databases. It must work.
2. The machine's server on 127.0.0.1:5432 as ``postgres`` (trust auth), if it
   accepts connections.
3. Otherwise a throwaway cluster (:class:`ThrowawayPostgres`) from the
   installed binaries, in a temporary folder, on a free port.

If none works the tests fail, saying what was tried: they must never be
skipped, or a broken PostgreSQL backend would pass unnoticed.

:class:`ThrowawayPostgres` is also what a test uses to stop and restart a
database (an outage) without touching the machine's shared server.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ENV_URL = "REPLAYWIRE_TEST_POSTGRES_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections


class ServiceUnavailable(RuntimeError):
    """No PostgreSQL could be found or started; the message says what was tried."""


def reachable(url: str, timeout: int = 2) -> str | None:
    """None if ``url`` accepts a connection, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (from template0, UTF8) on the server of
    ``admin_url``; return a URL to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting whoever is still
    connected to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's binaries (initdb, pg_ctl)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for candidate in found:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServiceUnavailable(
        "no PostgreSQL binaries: no /usr/lib/postgresql/*/bin/initdb, none on PATH"
    )


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a folder, listening on
    127.0.0.1:``port`` only (a free one unless given), with trust auth for
    the superuser ``postgres``. Tuned for tests, not durability (fsync off).

    :meth:`start` creates the cluster the first time and starts the server;
    :meth:`stop` stops it (``mode``: ``"fast"`` disconnects clients cleanly,
    ``"immediate"`` is a crash); :meth:`start` again brings it back on the
    same data and port, so clients see an outage and a recovery.
    :meth:`cleanup` stops it and deletes what it created (also run at exit).

    ``root``: the folder for the cluster (created if missing); default, a
    new temporary folder. As root, the binaries run as the ``postgres`` OS
    user (initdb refuses root), which must be able to reach the folder:
    pytest's ``tmp_path`` lies under a folder only root may enter, so there
    a temporary folder under the system's temp dir is used instead."""

    def __init__(self, root: Path | None = None, *, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.port = port or free_port()
        self._as_postgres = os.geteuid() == 0
        self._owned = root is None or not root.exists()
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            if self._as_postgres:
                shutil.chown(root, "postgres", "postgres")
                if not self._reachable(root):
                    root = None
                    self._owned = True
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="replaywire-pg-"))
            if self._as_postgres:
                shutil.chown(root, "postgres", "postgres")
        self.root = root
        self.datadir = root / "data"
        self.logfile = root / "server.log"
        self.running = False
        atexit.register(self.cleanup)

    @staticmethod
    def _reachable(folder: Path) -> bool:
        """Whether the postgres OS user can write in ``folder``."""
        test = ["runuser", "-u", "postgres", "--", "test", "-w", str(folder)]
        return subprocess.run(test, capture_output=True, timeout=30, check=False).returncode == 0

    @property
    def url(self) -> str:
        """Superuser URL to the ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = self.logfile.read_text()[-2000:]
            raise ServiceUnavailable(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                + (f"\nserver log:\n{log}" if log else "")
            )

    def start(self) -> ThrowawayPostgres:
        """Start the server (creating the cluster first if needed) and
        return once it accepts connections."""
        if self.running:
            return self
        if not self.datadir.exists():
            self._run(
                "initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT), "-D", str(self.datadir),
            "-l", str(self.logfile), "-o", options,
        )  # fmt: skip
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; the data stays for the next :meth:`start`."""
        if not self.running:
            return
        self._run("pg_ctl", "stop", "-w", "-D", str(self.datadir), "-m", mode)
        self.running = False

    def cleanup(self) -> None:
        """Stop the server (immediately) and delete the cluster (the whole
        folder if this object created it). Idempotent."""
        if self.running:
            with contextlib.suppress(ServiceUnavailable, subprocess.TimeoutExpired):
                self.stop("immediate")
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.logfile.unlink(missing_ok=True)
        atexit.unregister(self.cleanup)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def postgres_admin_url() -> tuple[str, ThrowawayPostgres | None]:
    """A URL on which databases may be created, and the throwaway cluster
    serving it if one had to be started (the caller cleans it up). Raises
    :class:`ServiceUnavailable` naming everything tried."""
    env = os.environ.get(ENV_URL)
    if env:
        error = reachable(env)
        if error is None:
            return env, None
        raise ServiceUnavailable(f"{ENV_URL} is set but does not accept connections: {error}")
    tried = []
    error = reachable(LOCAL_URL)
    if error is None:
        return LOCAL_URL, None
    tried.append(f"{LOCAL_URL}: {error}")
    cluster: ThrowawayPostgres | None = None
    try:
        cluster = ThrowawayPostgres()
        cluster.start()
    except (ServiceUnavailable, OSError, subprocess.SubprocessError) as exc:
        if cluster is not None:
            cluster.cleanup()
        tried.append(f"a throwaway cluster: {exc}")
        raise ServiceUnavailable(
            "no PostgreSQL for the tests; tried:\n  " + "\n  ".join(tried)
        ) from exc
    return cluster.url, cluster


# --- Redis ------------------------------------------------------------------------
# Where it comes from (:func:`redis_url`): REPLAYWIRE_TEST_REDIS_URL if set (it
# must work), else the machine's server on 127.0.0.1:6379, else a throwaway
# `redis-server` on a free port. Tests keep to a key prefix of their own and
# delete it afterwards. Outage tests stop and start a ThrowawayRedis, never
# the shared server.

REDIS_ENV_URL = "REPLAYWIRE_TEST_REDIS_URL"
REDIS_LOCAL_URL = "redis://127.0.0.1:6379/0"


def redis_reachable(url: str) -> str | None:
    """None if ``url`` answers PING, else why not."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


class ThrowawayRedis:
    """A private ``redis-server`` on 127.0.0.1:``port`` (a free one unless
    given), no persistence. :meth:`stop` kills it (an outage), :meth:`start`
    brings it back on the same port; :meth:`cleanup` (also at exit) stops it
    and removes its folder."""

    def __init__(self, *, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("no redis-server binary on PATH")
        self.binary = binary
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="replaywire-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.cleanup)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        """Start the server and return once it answers PING."""
        if self.proc is not None:
            return self
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.root),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while (error := redis_reachable(self.url)) is not None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceUnavailable(f"redis-server on port {self.port} did not start: {error}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Kill the server (no goodbye to clients); the port stays ours."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.cleanup)

    def __enter__(self) -> ThrowawayRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def redis_url() -> tuple[str, ThrowawayRedis | None]:
    """A Redis URL for the tests, and the throwaway server behind it if one
    had to be started (the caller cleans it up). Raises ServiceUnavailable
    naming everything tried."""
    env = os.environ.get(REDIS_ENV_URL)
    if env:
        error = redis_reachable(env)
        if error is None:
            return env, None
        raise ServiceUnavailable(f"{REDIS_ENV_URL} is set but does not answer: {error}")
    tried = []
    error = redis_reachable(REDIS_LOCAL_URL)
    if error is None:
        return REDIS_LOCAL_URL, None
    tried.append(f"{REDIS_LOCAL_URL}: {error}")
    try:
        server = ThrowawayRedis().start()
    except (ServiceUnavailable, OSError, subprocess.SubprocessError) as exc:
        tried.append(f"a throwaway redis-server: {exc}")
        raise ServiceUnavailable("no Redis for the tests; tried:\n  " + "\n  ".join(tried)) from exc
    return server.url, server


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def delete_cluster_prefix(cluster: ThrowawayRedisCluster, prefix: str) -> None:
    """Delete every key under ``prefix`` on a cluster (one node's client
    follows each key to its slot's node)."""
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(cluster.node_url)
    try:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
    finally:
        client.close()


def _cluster_port() -> int:
    """A free port for a cluster node: its bus listens 10,000 above it, so
    that one must be free too (and the port at most 55535)."""
    for _ in range(1000):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise ServiceUnavailable("no free port pair (P, P + 10000) for a cluster node")


class ThrowawayRedisCluster:
    """A private Redis Cluster of three masters (no replicas, no
    persistence) on free ports of 127.0.0.1, from the installed
    ``redis-server`` and ``redis-cli``. :meth:`start` returns once
    ``CLUSTER INFO`` says ``cluster_state:ok`` on every node, or raises
    :class:`ServiceUnavailable` saying why (with the nodes' logs);
    :meth:`cleanup` (also at exit) kills the nodes and removes their folder."""

    MASTERS = 3

    def __init__(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise ServiceUnavailable("no redis-server or redis-cli binary on PATH")
        self.server, self.cli = server, cli
        self.ports: list[int] = []
        while len(self.ports) < self.MASTERS:
            port = _cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        self.root = Path(tempfile.mkdtemp(prefix="replaywire-redis-cluster-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        atexit.register(self.cleanup)

    @property
    def url(self) -> str:
        """A URL naming the cluster (any node would do)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    @property
    def node_url(self) -> str:
        """A plain URL of one node (for ``REDIS_CLUSTER=1``)."""
        return f"redis://127.0.0.1:{self.ports[1]}"

    def _logs(self) -> str:
        return "\n".join(
            f"--- node {port}:\n" + (self.root / f"node-{port}.log").read_text(errors="replace")
            for port in self.ports
            if (self.root / f"node-{port}.log").exists()
        )

    def _fail(self, why: str) -> ServiceUnavailable:
        logs = self._logs()
        self.cleanup()
        return ServiceUnavailable(
            f"Redis Cluster on ports {self.ports} did not start: {why}\n{logs}"
        )

    def start(self) -> ThrowawayRedisCluster:
        for port in self.ports:
            log = (self.root / f"node-{port}.log").open("ab")
            command = [
                self.server, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.root / f"nodes-{port}.conf"),
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.root),
            ]  # fmt: skip
            self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        for port in self.ports:
            while (error := redis_reachable(f"redis://127.0.0.1:{port}")) is not None:
                if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                    raise self._fail(f"node {port} does not answer: {error}")
                time.sleep(0.05)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0"]
        done = subprocess.run(
            [*create, "--cluster-yes"], capture_output=True, timeout=START_TIMEOUT, check=False
        )
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")
            raise self._fail(f"redis-cli --cluster create exited {done.returncode}:\n{out}")
        import redis

        for port in self.ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            try:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise self._fail(f"node {port}: CLUSTER INFO never said cluster_state:ok")
                    time.sleep(0.05)
            finally:
                client.close()
        return self

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        self.procs = []
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.cleanup)

    def __enter__(self) -> ThrowawayRedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
