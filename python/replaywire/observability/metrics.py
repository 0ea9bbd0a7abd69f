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

Resource handling: a ``Metrics`` holds no OS resource; it is released with
the server that owns it.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from replaywire.observability.logging import get_logger

__all__ = ["CONNECTION_KINDS", "CONTENT_TYPE", "SESSION_END_REASONS", "Metrics"]

PREFIX = "replaywire_"

# What generate_latest() writes is the classic text format, 0.0.4. Newer
# prometheus_client releases point CONTENT_TYPE_LATEST at "version=1.0.0"
# (which only differs for UTF-8 metric names, and we have none) while their
# own HTTP handler still labels this output 0.0.4 unless the scraper asks
# for more; say what every Prometheus version understands.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CONNECTION_KINDS = ("tracker", "viewer")
SESSION_END_REASONS = ("client", "idle", "cleanup", "shutdown")

# Latency buckets from 1 ms to 10 s: an HTTP answer or a SQLite flush is
# usually a few milliseconds, and the interesting part is the tail.
# fmt: off
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"),
)
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
        self.storage_drained_chunks_total = Counter(
            PREFIX + "storage_drained_chunks_total",
            "Chunks moved from the local spool into storage.",
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

        # --- rate limits and Redis (issue 6) ------------------------------
        self.rate_limited_total = Counter(
            PREFIX + "rate_limited_total",
            "Connections (429) and tracker messages (rate_limited) refused, by limit: "
            "connections, concurrent, messages, events, session_events, keys_full.",
            ["limit"],
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

    def add_collect_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` before every :meth:`render`, to refresh values that
        are cheaper to read at scrape time than to track per event (the Rust
        buffer statistics). Hooks run in the order added.

        A hook that raises is logged and skipped; the scrape still answers
        with the values last set, so one broken source does not blind the
        whole dashboard.
        """
        self._hooks.append(hook)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                name = getattr(hook, "__qualname__", repr(hook))
                _log.exception("metrics_collect_hook_failed", hook=name)
        return generate_latest(self.registry), CONTENT_TYPE
