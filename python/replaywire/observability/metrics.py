"""Prometheus metrics of one server.

:class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`
instead of the process-wide default one, so several servers can run in one
process (the test suite starts many) without "Duplicated timeseries" errors
and without counting into each other.

Every metric is a plain ``prometheus_client`` object, updated once per
batch, never once per event: ``metrics.events_ingested_total.inc(batch.count)``.
Values that already live elsewhere (the Rust session buffers' statistics, the
storage writer's counters) are not mirrored on every change: a *collect hook*
(:meth:`Metrics.add_collect_hook`) reads them just before each scrape, setting
gauges and advancing counters by the difference since the last scrape.

Besides replaywire's own metrics, the registry holds prometheus_client's
process collectors (``process_cpu_seconds_total``,
``process_resident_memory_bytes``, ``process_open_fds``, ...),
``python_info`` and ``python_gc_*``, as a process-wide default registry
would.

Resource handling: a ``Metrics`` holds no OS resource; it is released with
the server that owns it.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from replaywire import __version__
from replaywire.observability.logging import get_logger

__all__ = [
    "CONNECTION_KINDS",
    "CONTENT_TYPE",
    "SESSION_END_REASONS",
    "SNAPSHOT_MISSING_REASONS",
    "Metrics",
]

PREFIX = "replaywire_"

# What generate_latest() writes is the classic text format, 0.0.4. Newer
# prometheus_client releases point CONTENT_TYPE_LATEST at "version=1.0.0"
# (which only differs for UTF-8 metric names, and we have none) while their
# own HTTP handler still labels this output 0.0.4 unless the scraper asks
# for more; say what every Prometheus version understands.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CONNECTION_KINDS = ("tracker", "viewer")
SESSION_END_REASONS = ("client", "idle", "cleanup", "shutdown")
# The snapshot_missing reasons trackers send (docs/protocol.md); any other
# is counted as "other", so that clients cannot grow the label set.
SNAPSHOT_MISSING_REASONS = ("too_large",)
# The warnings the server samples (Server.warn_client); their suppressed
# counters start at zero.
SAMPLED_EVENTS = (
    "tracker_message_rejected",
    "viewer_message_rejected",
    "viewer_resync",
    "connection_refused",
    "handshake_timeout",
    "ws_ping_timeout",
)

# Latency buckets from 1 ms to 10 s: an HTTP answer or a SQLite flush is
# usually a few milliseconds, and the interesting part is the tail.
# fmt: off
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"),
)
# Chunks (accepted batches) in one storage flush: 1 up to BATCH_SIZE and beyond.
FLUSH_CHUNK_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2500, 10000, float("inf"))
# fmt: on

_log = get_logger(__name__)


class Metrics:
    """Every metric replaywire exports, registered in a registry of its own.

    Labelled series whose label values are known in advance (connection kind,
    session end reason) are created at zero up front, so dashboards see them
    before the first event.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._hooks: list[Callable[[], None]] = []
        r = self.registry
        # The collectors a process-wide registry has by default: CPU, memory,
        # open files, the Python version and the garbage collector.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)

        self.build_info = Gauge(
            PREFIX + "build_info",
            "Always 1; the version label says which replaywire runs.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(__version__).set(1)
        self.draining = Gauge(
            PREFIX + "draining",
            "1 once a shutdown started (readiness fails, new connections are refused).",
            registry=r,
        )

        # --- connections --------------------------------------------------
        self.connections_total = Counter(
            PREFIX + "connections_total",
            "WebSocket connections accepted, by kind (tracker or viewer).",
            ["kind"],
            registry=r,
        )
        self.connections_active = Gauge(
            PREFIX + "connections_active",
            "WebSocket connections open now, by kind (tracker or viewer).",
            ["kind"],
            registry=r,
        )
        self.ws_closes_total = Counter(
            PREFIX + "ws_closes_total",
            "WebSocket close frames sent or received, by close code (e.g. 1000, 1002, 1009).",
            ["code"],
            registry=r,
        )
        self.tcp_connections_open = Gauge(
            PREFIX + "tcp_connections_open",
            "TCP connections being served now: HTTP, WebSocket, and those still sending "
            "their request (bounded by MAX_CONNECTIONS).",
            registry=r,
        )
        self.connections_refused_total = Counter(
            PREFIX + "connections_refused_total",
            "TCP connections refused (503) because MAX_CONNECTIONS were open; refusals "
            'over LIMIT_CONCURRENT_PER_IP are in rate_limited_total{limit="concurrent"}.',
            registry=r,
        )
        self.http_write_timeouts_total = Counter(
            PREFIX + "http_write_timeouts_total",
            "REST connections closed because the client read 256 KiB of an answer slower "
            "than HTTP_WRITE_TIMEOUT (or stopped reading).",
            registry=r,
        )
        self.handshake_timeouts_total = Counter(
            PREFIX + "handshake_timeouts_total",
            "Connections closed (408) because their request was not complete within "
            "HANDSHAKE_TIMEOUT: slowloris clients (idle kept-alive connections are not counted).",
            registry=r,
        )
        self.ws_ping_timeouts_total = Counter(
            PREFIX + "ws_ping_timeouts_total",
            "WebSockets dropped (1011) because they sent nothing within WS_PING_TIMEOUT "
            "of a ping: dead or unresponsive peers.",
            registry=r,
        )

        # --- ingest -------------------------------------------------------
        self.messages_total = Counter(
            PREFIX + "messages_total",
            "Client messages decoded, by connection kind and message type.",
            ["kind", "type"],
            registry=r,
        )
        self.events_ingested_total = Counter(
            PREFIX + "events_ingested_total",
            "rrweb events accepted from trackers (duplicates not counted).",
            registry=r,
        )
        self.bytes_ingested_total = Counter(
            PREFIX + "bytes_ingested_total",
            "Raw bytes of the rrweb events accepted from trackers.",
            registry=r,
        )
        self.batches_acked_total = Counter(
            PREFIX + "batches_acked_total",
            "events_batch messages acknowledged to trackers (after commit with durable acks).",
            registry=r,
        )
        self.ack_seconds = Histogram(
            PREFIX + "ack_seconds",
            "Time from reading an events_batch to sending its ack; with durable acks it "
            "includes the storage commit.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batches_duplicate_total = Counter(
            PREFIX + "batches_duplicate_total",
            "events_batch messages ignored because their seq was already accepted (resends).",
            registry=r,
        )
        self.protocol_errors_total = Counter(
            PREFIX + "protocol_errors_total",
            "Error answers sent to clients, by code: an error frame's code "
            "(e.g. invalid_message) or a WebSocket close code (e.g. 1002).",
            ["code"],
            registry=r,
        )

        # --- HTTP ---------------------------------------------------------
        self.http_requests_total = Counter(
            PREFIX + "http_requests_total",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=r,
        )
        self.http_request_seconds = Histogram(
            PREFIX + "http_request_seconds",
            "Time from a complete HTTP request head to the end of the answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # --- sessions -----------------------------------------------------
        self.sessions_active = Gauge(
            PREFIX + "sessions_active",
            "Live recording sessions (started and not yet ended).",
            registry=r,
        )
        self.sessions_started_total = Counter(
            PREFIX + "sessions_started_total",
            "Recording sessions started by trackers.",
            registry=r,
        )
        self.sessions_ended_total = Counter(
            PREFIX + "sessions_ended_total",
            "Recording sessions ended, by reason: client (session_end or disconnect), "
            "idle (no events for SESSION_IDLE_TIMEOUT), cleanup, shutdown.",
            ["reason"],
            registry=r,
        )
        self.snapshots_missing_total = Counter(
            PREFIX + "snapshots_missing_total",
            "Notices from trackers that a page's full snapshot could not be delivered"
            " (snapshot_missing), by reason: too_large (over MAX_EVENT_BYTES or"
            " MAX_MESSAGE_BYTES), other (any reason this server does not know)."
            " Such sessions hold incremental events only.",
            ["reason"],
            registry=r,
        )

        # --- viewers ------------------------------------------------------
        self.viewers_active = Gauge(
            PREFIX + "viewers_active",
            "Viewer subscriptions to live sessions open now.",
            registry=r,
        )
        self.viewer_messages_total = Counter(
            PREFIX + "viewer_messages_total",
            "Messages sent to viewers.",
            registry=r,
        )
        self.viewer_bytes_total = Counter(
            PREFIX + "viewer_bytes_total",
            "Bytes of messages sent to viewers (WebSocket payload).",
            registry=r,
        )

        self.viewer_ticks_total = Counter(
            PREFIX + "viewer_ticks_total",
            "Live deltas built (once per session tick, shared by all its viewers).",
            registry=r,
        )
        self.viewer_resyncs_total = Counter(
            PREFIX + "viewer_resyncs_total",
            "Viewers whose backlog overflowed VIEWER_BACKLOG_BYTES and were sent a fresh snapshot.",
            registry=r,
        )
        self.viewer_fanout_seconds_total = Counter(
            PREFIX + "viewer_fanout_seconds_total",
            "Event-loop time live fan-out took: building ticks and writing them to "
            "viewers' sockets (what it grows by per second is the share of the loop).",
            registry=r,
        )
        self.viewer_tick_stretch = Gauge(
            PREFIX + "viewer_tick_stretch",
            "Factor on VIEWER_FLUSH_INTERVAL while live fan-out takes more than "
            "VIEWER_FANOUT_BUDGET of the event loop (1: not stretched).",
            registry=r,
        )
        self.viewer_tick_stretch.set(1)

        # --- storage ------------------------------------------------------
        self.storage_flushes_total = Counter(
            PREFIX + "storage_flushes_total",
            "Flushes of accepted batches to storage (successful or not).",
            registry=r,
        )
        self.storage_flush_seconds = Histogram(
            PREFIX + "storage_flush_seconds",
            "Time one storage flush took.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.storage_flush_chunks = Histogram(
            PREFIX + "storage_flush_chunks",
            "Chunks (accepted batches) written by one successful storage flush.",
            buckets=FLUSH_CHUNK_BUCKETS,
            registry=r,
        )
        self.storage_pending_chunks = Gauge(
            PREFIX + "storage_pending_chunks",
            "Accepted batches queued for storage or in flight (the storage queue depth).",
            registry=r,
        )
        self.db_up = Gauge(
            PREFIX + "db_up",
            "1 while the database takes writes; 0 while writes fail (batches then wait in "
            "the spool or hold trackers back).",
            registry=r,
        )
        self.storage_pending_bytes = Gauge(
            PREFIX + "storage_pending_bytes",
            "Accepted bytes waiting to be written to storage; trackers are slowed "
            "above MAX_PENDING_BYTES.",
            registry=r,
        )
        self.storage_write_failures_total = Counter(
            PREFIX + "storage_write_failures_total",
            "Storage flushes that failed (their batches are retried).",
            registry=r,
        )
        self.storage_chunks_written_total = Counter(
            PREFIX + "storage_chunks_written_total",
            "Event chunks (one per accepted batch) written to storage.",
            registry=r,
        )

        self.storage_spooling = Gauge(
            PREFIX + "storage_spooling",
            "1 while storage is failing and accepted batches go to the local spool.",
            registry=r,
        )
        self.storage_spool_bytes = Gauge(
            PREFIX + "storage_spool_bytes",
            "Bytes in the local outage spool, not yet in storage (new batches are "
            "refused with storage_unavailable at SPOOL_MAX_BYTES).",
            registry=r,
        )
        self.storage_spooled_chunks_total = Counter(
            PREFIX + "storage_spooled_chunks_total",
            "Chunks written to the local spool because storage was failing.",
            registry=r,
        )
        self.memory_storage_evicted_chunks_total = Counter(
            PREFIX + "memory_storage_evicted_chunks_total",
            "memory:// only: stored chunks evicted, oldest first, to stay within "
            "MEMORY_STORAGE_BYTES.",
            registry=r,
        )
        self.storage_drained_chunks_total = Counter(
            PREFIX + "storage_drained_chunks_total",
            "Chunks moved from the local spool into storage.",
            registry=r,
        )

        # --- large messages in flight (MAX_INFLIGHT_BYTES) ----------------
        self.inflight_bytes = Gauge(
            PREFIX + "inflight_bytes",
            "Bytes of incomplete large WebSocket messages held across all connections.",
            registry=r,
        )
        self.inflight_waits_total = Counter(
            PREFIX + "inflight_waits_total",
            "Times a connection was not read because MAX_INFLIGHT_BYTES was in use.",
            registry=r,
        )

        # --- in-memory session buffers (read from the Rust core) ----------
        self.buffer_bytes = Gauge(
            PREFIX + "buffer_bytes",
            "Bytes of events held in memory across all live sessions.",
            registry=r,
        )
        self.buffer_events = Gauge(
            PREFIX + "buffer_events",
            "Events held in memory across all live sessions.",
            registry=r,
        )
        self.buffer_trimmed_events_total = Counter(
            PREFIX + "buffer_trimmed_events_total",
            "Events dropped from memory to stay within the buffer limits (still in storage).",
            registry=r,
        )

        # --- the server itself -------------------------------------------
        self.log_records_dropped_total = Counter(
            PREFIX + "log_records_dropped_total",
            "Log lines not written to LOG_DIR because the file writer's queue was full "
            "(stdout still had them).",
            registry=r,
        )
        self.log_lines_suppressed_total = Counter(
            PREFIX + "log_lines_suppressed_total",
            "Repeated warnings not logged (sampled: first one, then one line per "
            "LOG_SAMPLE_SECONDS), by event name.",
            ["event"],
            registry=r,
        )
        self.task_crashes_total = Counter(
            PREFIX + "task_crashes_total",
            "Tasks ended by an unexpected exception (logged with its traceback), by task: "
            "connection (one client's handler; the server goes on).",
            ["task"],
            registry=r,
        )
        self.task_crashes_total.labels("connection")
        for event in SAMPLED_EVENTS:
            self.log_lines_suppressed_total.labels(event)

        # --- rate limits and Redis (issue 6) ------------------------------
        self.rate_limited_total = Counter(
            PREFIX + "rate_limited_total",
            "Connections (429) and tracker messages (rate_limited) refused, by limit: "
            "connections, concurrent, messages, events, session_events, keys_full.",
            ["limit"],
            registry=r,
        )
        self.relay_messages_total = Counter(
            PREFIX + "relay_messages_total",
            "Cross-instance fan-out messages over Redis pub/sub, by direction: published,"
            " received, dropped (outbox or inbound queue full, or Redis down; the receivers"
            " resynchronise).",
            ["direction"],
            registry=r,
        )
        self.redis_up = Gauge(
            PREFIX + "redis_up",
            "1 while Redis (REDIS_URL) answers; 0 while it does not or is not configured.",
            registry=r,
        )

        for kind in CONNECTION_KINDS:
            self.connections_total.labels(kind)
            self.connections_active.labels(kind)
        for reason in SESSION_END_REASONS:
            self.sessions_ended_total.labels(reason)
        for reason in SNAPSHOT_MISSING_REASONS:
            self.snapshots_missing_total.labels(reason)

    def add_collect_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` before every :meth:`render`, to refresh values that
        are cheaper to read at scrape time than to track per event (the Rust
        buffer statistics). Hooks run in the order added.

        A hook that raises is logged and skipped; the scrape still answers
        with the values last set, so one broken source does not blind the
        whole dashboard.
        """
        self._hooks.append(hook)

    def add_ack_latencies(self, bucket_counts: list[int], total_seconds: float) -> None:
        """Add acks timed by the tracker engines in Rust since the last
        scrape: how many fell in each bucket of ``LATENCY_BUCKETS`` (then
        above the last), and their sum. prometheus_client has no bulk
        ``observe``; its histogram keeps one counter per bucket and the
        sum, which this advances as ``observe`` would have, once per
        scrape instead of once per ack."""
        histogram = self.ack_seconds
        for bucket, count in zip(histogram._buckets, bucket_counts, strict=True):
            if count:
                bucket.inc(count)
        if total_seconds:
            histogram._sum.inc(total_seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                name = getattr(hook, "__qualname__", repr(hook))
                _log.exception("metrics_collect_hook_failed", hook=name)
        return generate_latest(self.registry), CONTENT_TYPE
