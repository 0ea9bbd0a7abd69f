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

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

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


M = TypeVar("M", Counter, Gauge, Histogram)


class Row(Generic[M]):
    """One metric of :class:`Metrics`, declared where the class lists them:
    its kind, help and label names; the label values to create at zero
    up front (``preset``), so that dashboards see them before the first
    event; and the value to start at (``initial``: of each preset child,
    or of the metric). The exported name is ``PREFIX`` and the attribute's
    name. Each :class:`Metrics` builds its own metric from the row, into
    its own registry, and keeps it as an instance attribute of the same
    name, which then shadows the row: reading a metric is a plain
    attribute lookup."""

    def __init__(
        self,
        kind: type[M],
        help: str,
        *,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] | None = None,
        preset: Iterable[str] = (),
        initial: float | None = None,
    ) -> None:
        self.kind: type[M] = kind
        self.help = help
        self.labels = labels
        self.buckets = buckets
        self.preset = tuple(preset)
        self.initial = initial
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Row[M]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> M: ...
    def __get__(self, obj: object, owner: type) -> Row[M] | M:
        if obj is None:
            return self
        raise AttributeError(f"{self.name}: Metrics.__init__ builds every row's metric")

    def build(self, registry: CollectorRegistry) -> M:
        extra: dict[str, Any] = {} if self.buckets is None else {"buckets": self.buckets}
        metric: M = self.kind(
            PREFIX + self.name, self.help, self.labels, registry=registry, **extra
        )
        children = [metric.labels(value) for value in self.preset] or [metric]
        if self.initial is not None:
            for child in children:
                assert isinstance(child, Gauge), "only gauges start at a value"
                child.set(self.initial)
        return metric


class Metrics:
    """Every metric replaywire exports, registered in a registry of its own:
    one :class:`Row` each, grouped by the room that updates them."""

    # --- The server (replaywire.app) ----------------------------------------
    build_info = Row(
        Gauge,
        "Always 1; the version label says which replaywire runs.",
        labels=("version",),
        preset=(__version__,),
        initial=1,
    )
    draining = Row(
        Gauge,
        "1 once a shutdown started (readiness fails, new connections are refused).",
    )

    # --- Connections (http/, ws/) -------------------------------------------
    connections_total = Row(
        Counter,
        "WebSocket connections accepted, by kind (tracker or viewer).",
        labels=("kind",),
        preset=CONNECTION_KINDS,
    )
    connections_active = Row(
        Gauge,
        "WebSocket connections open now, by kind (tracker or viewer).",
        labels=("kind",),
        preset=CONNECTION_KINDS,
    )
    ws_closes_total = Row(
        Counter,
        "WebSocket close frames sent or received, by close code (e.g. 1000, 1002, 1009).",
        labels=("code",),
    )
    tcp_connections_open = Row(
        Gauge,
        "TCP connections being served now: HTTP, WebSocket, and those still sending "
        "their request (bounded by MAX_CONNECTIONS).",
    )
    connections_refused_total = Row(
        Counter,
        "TCP connections refused (503) because MAX_CONNECTIONS were open; refusals "
        'over LIMIT_CONCURRENT_PER_IP are in rate_limited_total{limit="concurrent"}.',
    )
    http_write_timeouts_total = Row(
        Counter,
        "REST connections closed because the client read 256 KiB of an answer slower "
        "than HTTP_WRITE_TIMEOUT (or stopped reading).",
    )
    handshake_timeouts_total = Row(
        Counter,
        "Connections closed (408) because their request was not complete within "
        "HANDSHAKE_TIMEOUT: slowloris clients (idle kept-alive connections are not counted).",
    )
    ws_ping_timeouts_total = Row(
        Counter,
        "WebSockets dropped (1011) because they sent nothing within WS_PING_TIMEOUT "
        "of a ping: dead or unresponsive peers.",
    )

    # --- Large messages in flight, MAX_INFLIGHT_BYTES (ws/budget.py) --------
    inflight_bytes = Row(
        Gauge,
        "Bytes of incomplete large WebSocket messages held across all connections.",
    )
    inflight_waits_total = Row(
        Counter,
        "Times a connection was not read because MAX_INFLIGHT_BYTES was in use.",
    )

    # --- REST (http/routes.py) ----------------------------------------------
    http_requests_total = Row(
        Counter,
        "HTTP requests answered, by route template and status code.",
        labels=("route", "status"),
    )
    http_request_seconds = Row(
        Histogram,
        "Time from a complete HTTP request head to the end of the answer, by route.",
        labels=("route",),
        buckets=LATENCY_BUCKETS,
    )

    # --- Ingest (protocol/tracker.py; counted in the Rust engines, read at scrape time)
    messages_total = Row(
        Counter,
        "Client messages decoded, by connection kind and message type.",
        labels=("kind", "type"),
    )
    events_ingested_total = Row(
        Counter,
        "rrweb events accepted from trackers (duplicates not counted).",
    )
    bytes_ingested_total = Row(
        Counter,
        "Raw bytes of the rrweb events accepted from trackers.",
    )
    batches_acked_total = Row(
        Counter,
        "events_batch messages acknowledged to trackers (after commit with durable acks).",
    )
    ack_seconds = Row(
        Histogram,
        "Time from reading an events_batch to sending its ack; with durable acks it "
        "includes the storage commit.",
        buckets=LATENCY_BUCKETS,
    )
    batches_duplicate_total = Row(
        Counter,
        "events_batch messages ignored because their seq was already accepted (resends).",
    )
    protocol_errors_total = Row(
        Counter,
        "Error answers sent to clients, by code: an error frame's code "
        "(e.g. invalid_message) or a WebSocket close code (e.g. 1002).",
        labels=("code",),
    )

    # --- Sessions and their rings (sessions/; the rings' figures read from Rust) ---------
    sessions_active = Row(
        Gauge,
        "Live recording sessions (started and not yet ended).",
    )
    sessions_started_total = Row(
        Counter,
        "Recording sessions started by trackers.",
    )
    sessions_ended_total = Row(
        Counter,
        "Recording sessions ended, by reason: client (session_end or disconnect), "
        "idle (no events for SESSION_IDLE_TIMEOUT), cleanup, shutdown.",
        labels=("reason",),
        preset=SESSION_END_REASONS,
    )
    snapshots_missing_total = Row(
        Counter,
        "Notices from trackers that a page's full snapshot could not be delivered"
        " (snapshot_missing), by reason: too_large (over MAX_EVENT_BYTES or"
        " MAX_MESSAGE_BYTES), other (any reason this server does not know)."
        " Such sessions hold incremental events only.",
        labels=("reason",),
        preset=SNAPSHOT_MISSING_REASONS,
    )
    buffer_bytes = Row(
        Gauge,
        "Bytes of events held in memory across all live sessions.",
    )
    buffer_events = Row(
        Gauge,
        "Events held in memory across all live sessions.",
    )
    buffer_trimmed_events_total = Row(
        Counter,
        "Events dropped from memory to stay within the buffer limits (still in storage).",
    )

    # --- Viewers and live fan-out (protocol/viewer.py, protocol/broadcast.py)
    viewers_active = Row(
        Gauge,
        "Viewer subscriptions to live sessions open now.",
    )
    viewer_messages_total = Row(
        Counter,
        "Messages sent to viewers.",
    )
    viewer_bytes_total = Row(
        Counter,
        "Bytes of messages sent to viewers (WebSocket payload).",
    )
    viewer_ticks_total = Row(
        Counter,
        "Live deltas built (once per session tick, shared by all its viewers).",
    )
    viewer_resyncs_total = Row(
        Counter,
        "Viewers whose backlog overflowed VIEWER_BACKLOG_BYTES and were sent a fresh snapshot.",
    )
    viewer_fanout_seconds_total = Row(
        Counter,
        "Event-loop time live fan-out took: building ticks and writing them to "
        "viewers' sockets (what it grows by per second is the share of the loop).",
    )
    viewer_tick_stretch = Row(
        Gauge,
        "Factor on VIEWER_FLUSH_INTERVAL while live fan-out takes more than "
        "VIEWER_FANOUT_BUDGET of the event loop (1: not stretched).",
        initial=1,
    )

    # --- Storage (storage/) -------------------------------------------------
    storage_flushes_total = Row(
        Counter,
        "Flushes of accepted batches to storage (successful or not).",
    )
    storage_flush_seconds = Row(
        Histogram,
        "Time one storage flush took.",
        buckets=LATENCY_BUCKETS,
    )
    storage_flush_chunks = Row(
        Histogram,
        "Chunks (accepted batches) written by one successful storage flush.",
        buckets=FLUSH_CHUNK_BUCKETS,
    )
    storage_pending_chunks = Row(
        Gauge,
        "Accepted batches queued for storage or in flight (the storage queue depth).",
    )
    db_up = Row(
        Gauge,
        "1 while the database takes writes; 0 while writes fail (batches then wait in "
        "the spool or hold trackers back).",
    )
    storage_pending_bytes = Row(
        Gauge,
        "Accepted bytes waiting to be written to storage; trackers are slowed "
        "above MAX_PENDING_BYTES.",
    )
    storage_write_failures_total = Row(
        Counter,
        "Storage flushes that failed (their batches are retried).",
    )
    storage_chunks_written_total = Row(
        Counter,
        "Event chunks (one per accepted batch) written to storage.",
    )
    storage_spooling = Row(
        Gauge,
        "1 while storage is failing and accepted batches go to the local spool.",
    )
    storage_spool_bytes = Row(
        Gauge,
        "Bytes in the local outage spool, not yet in storage (new batches are "
        "refused with storage_unavailable at SPOOL_MAX_BYTES).",
    )
    storage_spooled_chunks_total = Row(
        Counter,
        "Chunks written to the local spool because storage was failing.",
    )
    memory_storage_evicted_chunks_total = Row(
        Counter,
        "memory:// only: stored chunks evicted, oldest first, to stay within MEMORY_STORAGE_BYTES.",
    )
    storage_drained_chunks_total = Row(
        Counter,
        "Chunks moved from the local spool into storage.",
    )

    # --- Rate limits and Redis (limits/, redis/) ----------------------------
    rate_limited_total = Row(
        Counter,
        "Connections (429) and tracker messages (rate_limited) refused, by limit: "
        "connections, concurrent, messages, events, session_events, keys_full.",
        labels=("limit",),
    )
    relay_messages_total = Row(
        Counter,
        "Cross-instance fan-out messages over Redis pub/sub, by direction: published,"
        " received, dropped (outbox or inbound queue full, or Redis down; the receivers"
        " resynchronise).",
        labels=("direction",),
    )
    redis_up = Row(
        Gauge,
        "1 while Redis (REDIS_URL) answers; 0 while it does not or is not configured.",
    )

    # --- Logs and tasks (observability/) ------------------------------------
    log_records_dropped_total = Row(
        Counter,
        "Log lines not written to LOG_DIR because the file writer's queue was full "
        "(stdout still had them).",
    )
    log_lines_suppressed_total = Row(
        Counter,
        "Repeated warnings not logged (sampled: first one, then one line per "
        "LOG_SAMPLE_SECONDS), by event name.",
        labels=("event",),
        preset=SAMPLED_EVENTS,
    )
    task_crashes_total = Row(
        Counter,
        "Tasks ended by an unexpected exception (logged with its traceback), by task: "
        "connection (one client's handler; the server goes on).",
        labels=("task",),
        preset=("connection",),
    )

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._hooks: list[Callable[[], None]] = []
        # The collectors a process-wide registry has by default: CPU, memory,
        # open files, the Python version and the garbage collector.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        for name, row in vars(Metrics).items():
            if isinstance(row, Row):
                setattr(self, name, row.build(self.registry))

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
