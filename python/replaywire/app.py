"""The server: storage, writer, hub and listener wired together, and their
orderly start and stop.

Resource handling: :meth:`Server.run` owns everything it starts. It returns
after :meth:`Server.shutdown` once it has stopped accepting, closed every
WebSocket with 1001, and written every accepted batch to storage, all within
``drain_seconds`` (``DRAIN_SECONDS``): readiness fails at once, the
WebSocket goodbyes get at most half of that time, the final flush the rest.
:meth:`Server.force_stop` (a second SIGTERM/SIGINT) cuts the drain short:
the writer gets ``FORCE_FLUSH_SECONDS`` to finish the flush it is in (to
the database, or to the spool while the database fails), then ``run``
returns. Whatever was left unwritten is logged (``shutdown_incomplete``)
and makes :attr:`Server.exit_code` 1. Cancelling ``run`` from outside is not
a way to stop it: the writer's task is cancelled with it, and whatever was
still queued is reported in a ``shutdown_without_flush`` error log instead
of written.

Error handling: an unexpected exception in one connection's handler is
logged (``connection_crashed``, with the traceback) and counted
(``replaywire_task_crashes_total``); that connection is closed and the
server goes on. One anywhere else ends :meth:`Server.run`; :func:`serve`
logs it as ``server_crashed`` and exits with 1.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from . import __version__, _core
from .auth import Auth
from .auth.principals import Principal
from .cluster import Cluster
from .config import Config, ConfigError
from .http import HttpDeps, RouteDeps, handle_connection
from .http.listener import ConnectionGate, ensure_fd_limit
from .observability.logfiles import dropped_records
from .observability.logging import shutdown_logging
from .observability.metrics import Metrics
from .observability.sampling import LogSampler
from .protocol import TrackerDeps, ViewerDeps, dictionary, serve_tracker, serve_viewer
from .protocol.broadcast import Broadcasts
from .sessions import Hub
from .storage import Spool, Storage, StorageError, StorageWriter, iso_utc, open_storage
from .workers import open_reuseport_listeners
from .ws import ConnectionClosed, InflightBudget, WebSocket
from .ws.heartbeat import Heartbeat

log = structlog.get_logger("replaywire.server")

FORCE_FLUSH_SECONDS = 2.0  # after a second signal: the writer's last chance
FORCE_EXIT_SECONDS = 5.0  # after a second signal: exit even if a thread is stuck
EXIT_GRACE_SECONDS = 5.0  # past DRAIN_SECONDS before serve() stops waiting for run()


class Server:
    """One replaywire instance. Build it, then ``await nursery.start(server.run)``."""

    def __init__(self, config: Config, *, storage: Storage | None = None) -> None:
        self.config = config
        self.auth = Auth(config)  # tenants and credentials (replaywire.auth)
        try:  # codec=zstd-dict's dictionary, read once (protocol/dictionary.py)
            self.dictionary = dictionary.load(config.viewer_dictionary)
        except dictionary.DictionaryError as exc:
            raise ConfigError("viewer_dictionary", f"VIEWER_DICTIONARY={exc}") from None
        self.metrics = Metrics()
        self.storage = storage or open_storage(
            config.database_url,
            pool_size=config.db_pool_size,
            memory_bytes=config.memory_storage_bytes,
        )
        self.spool = (
            Spool(Path(config.spool_dir), max_bytes=config.spool_max_bytes)
            if config.spool_dir
            else None
        )
        self.writer = StorageWriter(
            self.storage,
            batch_size=config.batch_size,
            batch_interval=config.batch_interval / 1000,
            max_pending_bytes=config.max_pending_bytes,
            spool=self.spool,
            on_flush=self._on_flush,
            codec=config.stored_codec,
            level=config.storage_level,
        )
        self.hub = Hub(config, self.storage, self.writer, self.metrics)
        self.broadcasts = Broadcasts(config, self.hub, self.metrics, warn=self.warn_client)
        # Rate limits and presence, shared through Redis when REDIS_URL is set.
        self.cluster = Cluster(
            config, self.metrics, self.hub, self.broadcasts, warn=self.warn_client
        )
        self.limiter = self.cluster.limiter
        # MAX_CONNECTIONS and LIMIT_CONCURRENT_PER_IP, counted from accept.
        self.gate = ConnectionGate(
            config.max_connections,
            self.limiter,
            self.metrics,
            warn=self.warn_client,
            on_crash=self._connection_crashed,
        )
        self.protocol = _core.ProtocolDecoder(
            max_events_per_batch=config.max_events_per_batch, max_event_bytes=config.max_event_bytes
        )
        self.inflight = InflightBudget(config.max_inflight_bytes)
        # What each component uses, handed to it instead of this object.
        self.tracker_deps = TrackerDeps(
            config=config,
            hub=self.hub,
            writer=self.writer,
            limiter=self.limiter,
            metrics=self.metrics,
            warn=self.warn_client,
            take=self.cluster.relay.take,
            claim=self.cluster.relay.claim,
        )
        if self.limiter.session_events is not None:  # counted by the engines
            self.hub.ingest.set_session_limit(self.limiter.session_events)
        self.viewer_deps = ViewerDeps(
            config=config,
            hub=self.hub,
            metrics=self.metrics,
            protocol=self.protocol,
            broadcasts=self.broadcasts,
            relay=self.cluster.relay,
            dictionary=self.dictionary,
            warn=self.warn_client,
        )
        self.http_deps = HttpDeps(
            config=config,
            auth=self.auth,
            limiter=self.limiter,
            metrics=self.metrics,
            inflight=self.inflight,
            routes=RouteDeps(
                config=config,
                auth=self.auth,
                hub=self.hub,
                storage=self.storage,
                presence=self.cluster.presence,
                metrics=self.metrics,
                dictionary=self.dictionary,
                health=self.health,
                held_head=self.cluster.relay.head,
                stats=self.stats,
            ),
            draining=lambda: self.draining,
            count_close=self.count_close,
            serve_websocket=self.run_websocket,
            warn=self.warn_client,
        )
        # One handler for every connection (not a partial made per accept):
        # the gate's admission, then HTTP.
        self._serve_connection = partial(
            self.gate.serve, handler=partial(handle_connection, deps=self.http_deps)
        )
        self.port = 0
        self.draining = False
        self.forced = False
        self.exit_code = 0  # 1 when run() returned with accepted batches unwritten
        self.started_at = time.time()
        self._stop = trio.Event()
        self.stopped = trio.Event()
        self._accept_scope = trio.CancelScope()
        self._drain_scopes: set[trio.CancelScope] = set()
        self._websockets: set[WebSocket] = set()
        self._websockets_gone: trio.Event | None = None
        self.sampler = LogSampler(
            log,
            config.log_sample_seconds,
            on_suppressed=lambda event: self.metrics.log_lines_suppressed_total.labels(event).inc(),
        )
        self._conn_ids = 0
        self._writer_seen: dict[str, int] = {}
        self._flushed_chunks = 0
        self._logs_dropped = dropped_records()
        self.metrics.add_collect_hook(self._collect)

    # -- running ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.storage.open)
        try:
            if self.spool is not None:
                await trio.to_thread.run_sync(self.spool.open)
            # A spool left by a crash goes into storage before anything new
            # is accepted, so resumed sessions continue from the right seq.
            await self.writer.recover()
            async with trio.open_nursery() as services:
                self.broadcasts.nursery = services
                await services.start(self.writer.run)
                await services.start(self.cluster.run)
                services.start_soon(self.hub.run_idle_sweeper)
                services.start_soon(self.hub.run_detached_checks)
                if self.config.retention_interval > 0:
                    services.start_soon(self._run_upkeep)
                if self.config.log_sample_seconds > 0:
                    services.start_soon(self._run_sampler_flush)
                if self.config.ws_ping_interval > 0:
                    services.start_soon(self._run_heartbeat)
                ensure_fd_limit(self.config.max_connections)
                async with trio.open_nursery() as handlers:
                    listeners = await handlers.start(partial(self._accept, handlers))
                    self.port = listeners[0].socket.getsockname()[1]
                    log.info(
                        "server_listening",
                        host=self.config.host,
                        port=self.port,
                        storage=self.storage.name,
                        drain_seconds=self.config.drain_seconds,
                    )
                    self._log_auth_mode()
                    task_status.started(self)
                    await self._stop.wait()
                    deadline = trio.current_time() + self.config.drain_seconds
                    await self._drain(handlers, deadline)
                await self._flush_and_stop(services, deadline)
        finally:
            with trio.CancelScope(shield=True):
                stats = self.writer.stats
                if not stats.closed and stats.pending_chunks:
                    # Only reached when run() was cancelled from outside
                    # instead of stopped with shutdown(): the writer's task
                    # is gone with it, so say loudly what was not written.
                    log.error(
                        "shutdown_without_flush",
                        pending_chunks=stats.pending_chunks,
                        pending_bytes=stats.pending_bytes,
                    )
                if stats.pending_chunks:
                    self.exit_code = 1
                await trio.to_thread.run_sync(self.storage.close)
                await self.cluster.close()
                if self.spool is not None:
                    await trio.to_thread.run_sync(self.spool.close)
            self.stopped.set()
            log.info("server_stopped", exit_code=self.exit_code)

    def _log_auth_mode(self) -> None:
        """Say at start who may record and read; development mode loudly."""
        if self.auth.dev_mode:
            log.warning(
                "development_mode",
                host=self.config.host,
                port=self.port,
                any_host=self.config.dev_mode_any_host,
                message="NO TENANTS CONFIGURED: no credentials are checked; whoever reaches"
                " this port can record, read and end every session. Configure [tenants.NAME]"
                " before exposing it (docs/security.md)",
            )
        else:
            log.info(
                "tenants_configured",
                tenants=sorted(self.auth.tenants),
                jwt=bool(self.config.jwt_secret),
            )

    def shutdown(self) -> None:
        """Ask :meth:`run` to stop gracefully (idempotent). Readiness fails
        and new WebSocket upgrades are refused from this moment on."""
        self.draining = True
        self.metrics.draining.set(1)
        self._stop.set()

    def force_stop(self) -> None:
        """Cut a shutdown short (a second signal): stop waiting for peers,
        give the writer ``FORCE_FLUSH_SECONDS`` to finish, then return."""
        self.forced = True
        self.shutdown()
        for scope in list(self._drain_scopes):
            scope.cancel()

    async def _bounded(self, deadline: float, fn: Callable[[], Awaitable[object]]) -> bool:
        """Await ``fn()`` until it returns (True), ``deadline`` passes or
        :meth:`force_stop` is called (False)."""
        if self.forced:
            return False
        with trio.move_on_at(deadline) as scope:
            self._drain_scopes.add(scope)
            try:
                await fn()
            finally:
                self._drain_scopes.discard(scope)
        return not scope.cancelled_caught

    async def _accept(self, handlers: trio.Nursery, *, task_status: trio.TaskStatus[Any]) -> None:
        with self._accept_scope:
            if self.config.reuse_port:  # a --workers worker: the port is shared
                await trio.serve_listeners(
                    self._serve_connection,
                    await open_reuseport_listeners(self.config.host, self.config.port),
                    handler_nursery=handlers,
                    task_status=task_status,
                )
                return
            await trio.serve_tcp(
                self._serve_connection,
                self.config.port,
                host=self.config.host,
                handler_nursery=handlers,
                task_status=task_status,
            )

    def _connection_crashed(self, exc: Exception) -> None:
        """A bug escaped one connection's handler: it ends that connection
        only (its stream is closed all the same); logged with its traceback
        and the bound context (conn_id, client, session), and counted."""
        self.metrics.task_crashes_total.labels("connection").inc()
        log.error("connection_crashed", exc_info=exc)

    async def _drain(self, handlers: trio.Nursery, deadline: float) -> None:
        """Stop accepting, commit what is queued, close every WebSocket with
        1001 and give peers until half the drain budget to answer, then
        cancel whatever is left."""
        self.shutdown()
        self._accept_scope.cancel()
        pending = self.writer.stats
        log.info(
            "shutdown_started",
            websockets=len(self._websockets),
            sessions=len(self.hub.live),
            pending_chunks=pending.pending_chunks,
            drain_seconds=self.config.drain_seconds,
        )
        goodbye_by = min(deadline, trio.current_time() + self.config.drain_seconds / 2)
        # Commit what is queued first, so that durable acks still reach the
        # trackers before their sockets close (they need not resend).
        await self._bounded(goodbye_by, self.writer.flush)
        await self._bounded(goodbye_by, self._close_websockets)
        handlers.cancel_scope.cancel()

    async def _close_websockets(self) -> None:
        async with trio.open_nursery() as closers:
            for ws in list(self._websockets):
                closers.start_soon(ws.close, 1001, "server shutting down")
        if self._websockets:
            self._websockets_gone = trio.Event()
            await self._websockets_gone.wait()

    async def _flush_and_stop(self, services: trio.Nursery, deadline: float) -> None:
        for session in list(self.hub.live.values()):
            self.writer.put_session(session.record)
        if not await self._bounded(deadline, self.writer.close):
            reason = "forced" if self.forced else "drain_deadline"
            if self.forced:
                # Whatever the writer is in the middle of (a commit, or an
                # append to the spool while the database fails) may finish.
                with trio.move_on_after(FORCE_FLUSH_SECONDS):
                    with contextlib.suppress(StorageError):
                        await self.writer.close()
                # Storage still hangs: what is left goes to the spool, to be
                # replayed at the next start.
                if self.writer.stats.pending_chunks:
                    with trio.move_on_after(FORCE_FLUSH_SECONDS), contextlib.suppress(Exception):
                        spilled = await self.writer.spill()
                        if spilled:
                            log.warning(
                                "shutdown_spilled",
                                chunks=spilled,
                                hint="replayed into storage at the next start",
                            )
            stats = self.writer.stats
            if stats.pending_chunks and stats.pending_chunks > self.writer.spilled_chunks:
                self.exit_code = 1
                log.error(
                    "shutdown_incomplete",
                    reason=reason,
                    pending_chunks=stats.pending_chunks,
                    pending_bytes=stats.pending_bytes,
                    spooled_chunks=stats.spooled_chunks,
                    hint="trackers resend unacked batches; acked ones are in storage or the spool",
                )
        services.cancel_scope.cancel()

    async def _run_heartbeat(self) -> None:
        """Ping silent WebSockets, drop dead ones (``WS_PING_INTERVAL``,
        ``WS_PING_TIMEOUT``; see :mod:`replaywire.ws.heartbeat`)."""
        beat = Heartbeat(self.config.ws_ping_interval, self.config.ws_ping_timeout)
        next_sweep = trio.current_time()
        while True:
            next_sweep = max(next_sweep + beat.step, trio.current_time())
            await trio.sleep_until(next_sweep)
            for ws in beat.sweep(self._websockets, trio.current_time()):
                self.metrics.ws_ping_timeouts_total.inc()
                self.warn_client("ws_ping_timeout", timeout_s=beat.timeout)
                await ws.abort(1011, "ping timeout")

    async def _run_sampler_flush(self) -> None:
        """Report the counts of sampled warnings whose burst is over."""
        while True:
            await trio.sleep(self.config.log_sample_seconds)
            self.sampler.flush()

    async def _run_upkeep(self) -> None:
        """Storage housekeeping, now and every ``retention_interval``:
        partitions ahead of need, then retention. Failures are logged and
        tried again next time; they never stop the server."""
        while True:
            now = time.time()
            try:
                await self.writer.read(self.storage.maintain, now)
                if self.config.retention_days > 0:
                    cutoff = now - self.config.retention_days * 86400
                    expired = await self.writer.read(self.storage.expire, cutoff)
                    if expired.sessions or expired.partitions:
                        log.info(
                            "retention_expired",
                            cutoff=iso_utc(cutoff),
                            sessions=expired.sessions,
                            chunks=expired.chunks,
                            errors=expired.errors,
                            partitions=expired.partitions,
                        )
            except StorageError as exc:
                log.warning("storage_upkeep_failed", error=exc.message, retryable=exc.retryable)
            await trio.sleep(self.config.retention_interval)

    # -- WebSocket connections -------------------------------------------

    async def run_websocket(self, ws: WebSocket, kind: str, who: Principal, codec: str) -> None:
        self._conn_ids += 1
        conn_id = f"c{self._conn_ids}"
        structlog.contextvars.bind_contextvars(conn_id=conn_id, client_type=kind)
        self.metrics.connections_total.labels(kind).inc()
        self.metrics.connections_active.labels(kind).inc()
        self._websockets.add(ws)
        started = time.monotonic()
        log.info("connection_opened", path="/ws", deflate=ws.deflate is not None)
        closed: ConnectionClosed | None = None
        try:
            async with ws:
                try:
                    if kind == "tracker":
                        await serve_tracker(ws, self.tracker_deps, who)
                    else:
                        await serve_viewer(ws, self.viewer_deps, codec, who)
                except ConnectionClosed as exc:
                    closed = exc
        finally:
            self._websockets.discard(ws)
            if not self._websockets and self._websockets_gone is not None:
                self._websockets_gone.set()
            self.metrics.connections_active.labels(kind).dec()
            log.info(
                "connection_closed",
                duration_s=round(time.monotonic() - started, 3),
                messages=ws.messages_received,
                bytes_in=ws.bytes_received,
                bytes_out=ws.bytes_sent,
                code=closed.code if closed else None,
            )

    def count_close(self, code: int, *, local: bool) -> None:
        self.metrics.ws_closes_total.labels(str(code)).inc()
        if local and code not in (1000, 1001):
            self.metrics.protocol_errors_total.labels(str(code)).inc()

    def warn_client(self, event: str, **fields: Any) -> None:
        """Log a client's fault without letting a hostile client flood the
        log: the first occurrence of ``event``, then at most one line per
        ``LOG_SAMPLE_SECONDS`` with how many were suppressed
        (:class:`~replaywire.observability.sampling.LogSampler`)."""
        self.sampler.log(event, **fields)

    # -- reports ------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Readiness, with the reasons when not ready. ``ok``: storage
        reachable and writes going through. ``degraded``: storage is failing
        but accepted batches are safe in the spool, which still has room --
        keep sending traffic. ``unavailable`` (answered with 503), for each
        of the ``reasons``: ``draining`` (shutting down), ``spool_full``,
        ``storage_unreachable`` / ``storage_failing`` with no spool to fall
        back on, ``storage_backlog`` (accepted bytes waiting for storage
        reached ``MAX_PENDING_BYTES``: memory is at its budget and trackers
        are being slowed). ``degraded`` also, with the reason
        ``redis_unreachable``, while ``REDIS_URL`` is set and Redis does not
        answer: ingest, limits and fan-out go on within this instance."""
        storage_ok = True
        try:
            with trio.fail_after(2):
                await self.writer.read(self.storage.check)
        except Exception:
            storage_ok = False
        writer = self.writer.stats
        buffers = self.hub.ingest.stats()
        reasons: list[str] = []
        if self.draining:
            reasons.append("draining")
        if writer.spool_full:
            reasons.append("spool_full")
        # While draining, the storage is being closed under the check: its
        # answer says nothing a balancer needs beyond "draining".
        if not writer.spooling and not self.draining:
            if not storage_ok:
                reasons.append("storage_unreachable")
            elif not writer.healthy:
                reasons.append("storage_failing")
        if writer.pending_bytes >= self.config.max_pending_bytes:
            reasons.append("storage_backlog")
        degraded = ["redis_unreachable"] if self.cluster.redis_unreachable else []
        if reasons:
            status = "unavailable"
        elif writer.spooling or self.cluster.redis_unreachable:
            status = "degraded"
        else:
            status = "ok"
        self.metrics.db_up.set(int(storage_ok and writer.healthy))
        return {
            "status": status,
            "reasons": reasons + degraded,
            "draining": self.draining,
            "memory": {
                "bufferBytes": buffers.bytes,
                "bufferBudget": self.config.max_buffer_bytes,
                "pendingBytes": writer.pending_bytes,
                "pendingBudget": self.config.max_pending_bytes,
            },
            "storage": {
                "backend": self.storage.name,
                "ok": storage_ok,
                "writing": writer.healthy,
                "spooling": writer.spooling,
                "spoolBytes": writer.spool_bytes,
                "spoolFull": writer.spool_full,
            },
            "redis": None if self.cluster.link is None else {"up": self.cluster.link.up},
        }

    def stats(self) -> dict[str, Any]:
        buffers = self.hub.ingest.stats()
        writer = self.writer.stats
        return {
            "version": __version__,
            "uptimeSeconds": round(time.time() - self.started_at, 3),
            "sessions": {"active": len(self.hub.live)},
            "connections": {"open": self.gate.open, "websockets": len(self._websockets)},
            "viewers": sum(s.viewers for s in self.hub.live.values()),
            "buffers": {
                "sessions": buffers.sessions,
                "events": buffers.events,
                "bytes": buffers.bytes,
                "trimmedEvents": buffers.trimmed_events,
            },
            "storage": {
                "backend": self.storage.name,
                "pendingChunks": writer.pending_chunks,
                "pendingBytes": writer.pending_bytes,
                "flushes": writer.flushes,
                "chunksWritten": writer.chunks_written,
                "writeFailures": writer.write_failures,
                "ackMode": "durable" if self.config.durable_acks else "received",
                "spooling": writer.spooling,
                "spoolBytes": writer.spool_bytes,
                "spoolRecords": writer.spool_records,
                "spooledChunks": writer.spooled_chunks,
                "drainedChunks": writer.drained_chunks,
            },
        }

    def _on_flush(self, seconds: float) -> None:
        """Called by the writer after each committed flush: its time, and its
        size (the writer counted the flush's chunks just before calling)."""
        self.metrics.storage_flush_seconds.observe(seconds)
        written = self.writer.stats.chunks_written
        self.metrics.storage_flush_chunks.observe(written - self._flushed_chunks)
        self._flushed_chunks = written

    def _collect(self) -> None:
        """Refresh storage metrics from the writer's counters at scrape time."""
        writer = self.writer.stats
        m = self.metrics
        m.storage_pending_bytes.set(writer.pending_bytes)
        m.storage_pending_chunks.set(writer.pending_chunks)
        m.db_up.set(int(writer.healthy))
        dropped = dropped_records()
        m.log_records_dropped_total.inc(max(0, dropped - self._logs_dropped))
        self._logs_dropped = dropped
        seen = self._writer_seen
        m.storage_flushes_total.inc(writer.flushes - seen.get("flushes", 0))
        m.storage_chunks_written_total.inc(writer.chunks_written - seen.get("chunks", 0))
        m.storage_write_failures_total.inc(writer.write_failures - seen.get("failures", 0))
        m.storage_spooled_chunks_total.inc(writer.spooled_chunks - seen.get("spooled", 0))
        m.storage_drained_chunks_total.inc(writer.drained_chunks - seen.get("drained", 0))
        m.storage_spooling.set(int(writer.spooling))
        m.storage_spool_bytes.set(writer.spool_bytes)
        m.tcp_connections_open.set(self.gate.open)
        m.inflight_bytes.set(self.inflight.used)
        evicted = getattr(self.storage, "evicted_chunks", 0)
        m.memory_storage_evicted_chunks_total.inc(evicted - seen.get("evicted", 0))
        m.inflight_waits_total.inc(self.inflight.waits - seen.get("inflight_waits", 0))
        self._writer_seen = {
            "inflight_waits": self.inflight.waits,
            "evicted": evicted,
            "flushes": writer.flushes,
            "chunks": writer.chunks_written,
            "failures": writer.write_failures,
            "spooled": writer.spooled_chunks,
            "drained": writer.drained_chunks,
        }


def serve(config: Config) -> int:
    """Run a server until SIGINT or SIGTERM; return the exit code: 0 after a
    complete drain, 1 if accepted batches were left unwritten or the server
    crashed.

    The first signal starts the graceful drain (``DRAIN_SECONDS``); a second
    one forces it (:meth:`Server.force_stop`). Should ``run`` still not
    return -- a storage call stuck in a worker thread cannot be cancelled --
    the process logs ``shutdown_abandoned`` and exits with 1 anyway,
    ``EXIT_GRACE_SECONDS`` after the drain deadline or ``FORCE_EXIT_SECONDS``
    after the second signal.
    """
    server: Server | None = None

    async def main() -> None:
        nonlocal server
        server = Server(config)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run)
                # Everything alive now (modules, classes, functions: ~75k
                # objects) lives as long as the process. Moving it out of
                # the collector's reach keeps each full collection to what
                # serving allocates, which was the ack latency's worst stall.
                gc.freeze()
                log.info(
                    "replaywire_ready", url=f"http://{_display_host(config.host)}:{server.port}/"
                )
                nursery.start_soon(_handle_signals, server, signals, nursery)
                await server.stopped.wait()
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except Exception as exc:
        log.critical("server_crashed", exc_info=exc)
        return 1
    return server.exit_code if server is not None else 1


async def _handle_signals(
    server: Server, signals: AsyncIterator[int], nursery: trio.Nursery
) -> None:
    """First signal: drain. Second: force. Either way, a watchdog makes sure
    the process ends."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if not server.draining:
            log.info("shutdown_requested", signal=name, drain_seconds=server.config.drain_seconds)
            server.shutdown()
            nursery.start_soon(_watchdog, server, server.config.drain_seconds + EXIT_GRACE_SECONDS)
        elif not server.forced:
            pending = server.writer.stats
            log.warning(
                "shutdown_forced",
                signal=name,
                pending_chunks=pending.pending_chunks,
                spooling=pending.spooling,
            )
            server.force_stop()
            nursery.start_soon(_watchdog, server, FORCE_EXIT_SECONDS)


async def _watchdog(server: Server, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await server.stopped.wait()
        return
    pending = server.writer.stats
    log.critical(
        "shutdown_abandoned",
        after_seconds=seconds,
        pending_chunks=pending.pending_chunks,
        hint="a storage call did not return; acked batches are in storage or the spool",
    )
    shutdown_logging()
    os._exit(1)


def _display_host(host: str) -> str:
    return socket.gethostname() if host in ("0.0.0.0", "::") else host
