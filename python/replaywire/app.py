"""The server: storage, writer, hub and listener wired together, and their
orderly start and stop.

Resource handling: :meth:`Server.run` owns everything it starts. It returns
after :meth:`Server.shutdown` once it has stopped accepting, closed every
WebSocket with 1001, and written every accepted batch to storage (bounded by
``shutdown_timeout``). Cancelling ``run`` from outside is not a way to stop
it: the writer's task is cancelled with it, and whatever was still queued is
reported in a ``shutdown_without_flush`` error log instead of written.
"""

from __future__ import annotations

import signal
import socket
import time
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from . import __version__, _core
from .cluster import Cluster
from .config import Config
from .http import handle_connection
from .http.routes import Request
from .observability.metrics import Metrics
from .protocol import serve_tracker, serve_viewer
from .protocol.fanout import Fanout
from .sessions import Hub
from .storage import Spool, Storage, StorageError, StorageWriter, iso_utc, open_storage
from .ws import ConnectionClosed, WebSocket

log = structlog.get_logger("replaywire.server")

WARN_EVERY = 10.0


class Server:
    """One replaywire instance. Build it, then ``await nursery.start(server.run)``."""

    def __init__(self, config: Config, *, storage: Storage | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.storage = storage or open_storage(config.database_url, pool_size=config.db_pool_size)
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
            on_flush=self.metrics.storage_flush_seconds.observe,
            codec=config.storage_codec,
            level=config.storage_level,
        )
        self.hub = Hub(config, self.storage, self.writer, self.metrics)
        self.fanout = Fanout(self)
        # Rate limits and presence, shared through Redis when REDIS_URL is set.
        self.cluster = Cluster(config, self.metrics, self.hub, warn=self.warn_client)
        self.limiter = self.cluster.limiter
        self.protocol = _core.ProtocolDecoder(
            max_events_per_batch=config.max_events_per_batch, max_event_bytes=config.max_event_bytes
        )
        self.port = 0
        self.draining = False
        self.started_at = time.time()
        self._stop = trio.Event()
        self.stopped = trio.Event()
        self._accept_scope = trio.CancelScope()
        self._websockets: set[WebSocket] = set()
        self._websockets_gone: trio.Event | None = None
        self._warned: dict[str, tuple[float, int]] = {}
        self._conn_ids = 0
        self._writer_seen: dict[str, int] = {}
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
                self.fanout.nursery = services
                await services.start(self.writer.run)
                await services.start(self.cluster.run)
                services.start_soon(self.hub.run_idle_sweeper)
                if self.config.retention_interval > 0:
                    services.start_soon(self._run_upkeep)
                async with trio.open_nursery() as handlers:
                    listeners = await handlers.start(partial(self._accept, handlers))
                    self.port = listeners[0].socket.getsockname()[1]
                    log.info(
                        "server_listening",
                        host=self.config.host,
                        port=self.port,
                        storage=self.storage.name,
                    )
                    task_status.started(self)
                    await self._stop.wait()
                    await self._drain(handlers)
                await self._flush_and_stop(services)
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
                await trio.to_thread.run_sync(self.storage.close)
                await self.cluster.close()
                if self.spool is not None:
                    await trio.to_thread.run_sync(self.spool.close)
            self.stopped.set()
            log.info("server_stopped")

    def shutdown(self) -> None:
        """Ask :meth:`run` to stop gracefully (idempotent)."""
        self._stop.set()

    async def _accept(self, handlers: trio.Nursery, *, task_status: trio.TaskStatus[Any]) -> None:
        with self._accept_scope:
            await trio.serve_tcp(
                partial(handle_connection, server=self),
                self.config.port,
                host=self.config.host,
                handler_nursery=handlers,
                task_status=task_status,
            )

    async def _drain(self, handlers: trio.Nursery) -> None:
        """Stop accepting, close every WebSocket with 1001 and give peers a
        moment to answer, then cancel whatever is left."""
        self.draining = True
        self._accept_scope.cancel()
        log.info("shutdown_started", websockets=len(self._websockets))
        # Commit what is queued first, so that durable acks still reach the
        # trackers before their sockets close (they need not resend).
        with trio.move_on_after(min(5.0, self.config.shutdown_timeout)):
            await self.writer.flush()
        with trio.move_on_after(min(5.0, self.config.shutdown_timeout)):
            async with trio.open_nursery() as closers:
                for ws in list(self._websockets):
                    closers.start_soon(ws.close, 1001, "server shutting down")
            if self._websockets:
                self._websockets_gone = trio.Event()
                await self._websockets_gone.wait()
        handlers.cancel_scope.cancel()

    async def _flush_and_stop(self, services: trio.Nursery) -> None:
        for session in list(self.hub.live.values()):
            self.writer.put_session(session.record)
        with trio.move_on_after(self.config.shutdown_timeout) as scope:
            await self.writer.close()
        if scope.cancelled_caught:
            log.error("shutdown_flush_timeout", pending=self.writer.stats.pending_chunks)
        services.cancel_scope.cancel()

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

    async def run_websocket(self, ws: WebSocket, kind: str, request: Request) -> None:
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
                        await serve_tracker(ws, self)
                    else:
                        await serve_viewer(ws, self, request.query.get("codec", "none"))
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
        log: the first occurrence of ``event``, then one line per
        ``WARN_EVERY`` seconds with how many were suppressed."""
        now = time.monotonic()
        last, suppressed = self._warned.get(event, (0.0, 0))
        if now - last < WARN_EVERY:
            self._warned[event] = (last, suppressed + 1)
            return
        self._warned[event] = (now, 0)
        log.warning(event, suppressed=suppressed, **fields)

    # -- reports ------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Readiness. ``ok``: storage reachable and writes going through.
        ``degraded``: storage is failing but accepted batches are safe in the
        spool, which still has room -- keep sending traffic. ``unavailable``:
        draining, spool full, or failing with no spool."""
        storage_ok = True
        try:
            with trio.fail_after(2):
                await self.writer.read(self.storage.check)
        except Exception:
            storage_ok = False
        writer = self.writer.stats
        if self.draining or writer.spool_full:
            status = "unavailable"
        elif writer.spooling:
            status = "degraded"
        elif storage_ok and writer.healthy:
            status = "ok"
        else:
            status = "unavailable"
        return {
            "status": status,
            "draining": self.draining,
            "storage": {
                "backend": self.storage.name,
                "ok": storage_ok,
                "writing": writer.healthy,
                "spooling": writer.spooling,
                "spoolBytes": writer.spool_bytes,
                "spoolFull": writer.spool_full,
            },
        }

    def stats(self) -> dict[str, Any]:
        buffers = self.hub.buffers.stats()
        writer = self.writer.stats
        return {
            "version": __version__,
            "uptimeSeconds": round(time.time() - self.started_at, 3),
            "sessions": {"active": len(self.hub.live)},
            "connections": {"websockets": len(self._websockets)},
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

    def _collect(self) -> None:
        """Refresh storage metrics from the writer's counters at scrape time."""
        writer = self.writer.stats
        m = self.metrics
        m.storage_pending_bytes.set(writer.pending_bytes)
        seen = self._writer_seen
        m.storage_flushes_total.inc(writer.flushes - seen.get("flushes", 0))
        m.storage_chunks_written_total.inc(writer.chunks_written - seen.get("chunks", 0))
        m.storage_write_failures_total.inc(writer.write_failures - seen.get("failures", 0))
        m.storage_spooled_chunks_total.inc(writer.spooled_chunks - seen.get("spooled", 0))
        m.storage_drained_chunks_total.inc(writer.drained_chunks - seen.get("drained", 0))
        m.storage_spooling.set(int(writer.spooling))
        m.storage_spool_bytes.set(writer.spool_bytes)
        self._writer_seen = {
            "flushes": writer.flushes,
            "chunks": writer.chunks_written,
            "failures": writer.write_failures,
            "spooled": writer.spooled_chunks,
            "drained": writer.drained_chunks,
        }


def serve(config: Config) -> int:
    """Run a server until SIGINT or SIGTERM; return the exit code."""

    async def main() -> None:
        server = Server(config)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run)
                log.info(
                    "replaywire_ready", url=f"http://{_display_host(config.host)}:{server.port}/"
                )
                async for signum in signals:
                    log.info("shutdown_requested", signal=signal.Signals(signum).name)
                    server.shutdown()
                    break

    trio.run(main)
    return 0


def _display_host(host: str) -> str:
    return socket.gethostname() if host in ("0.0.0.0", "::") else host
