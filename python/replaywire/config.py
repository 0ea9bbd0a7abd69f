"""The one configuration object.

Every limit and knob of the server is a field of :class:`Config`, built once
(from defaults, then the environment, then CLI flags) and passed down. The
CLI flags and the README's configuration table are generated from the same
field list, so a knob is declared exactly once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

MiB = 1024 * 1024
ACK_MODES = ("auto", "durable", "received")
CODECS = ("none", "deflate", "zstd")


def _knob(default: Any, help: str, *, env: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "env": env})


@dataclass(frozen=True, slots=True)
class Config:
    """Server configuration. Field names map to environment variables in
    upper case (``batch_size`` -> ``BATCH_SIZE``) and to CLI flags
    (``--batch-size``)."""

    # listener
    host: str = _knob("127.0.0.1", "Address to listen on")
    port: int = _knob(8080, "TCP port for HTTP and WebSocket (0 picks a free one)")
    # storage
    database_url: str = _knob(
        "sqlite:///./data/replaywire.db",
        "Storage: sqlite:///path (embedded default), postgresql://user@host/db, or memory://",
    )
    ack_mode: str = _knob(
        "auto",
        "durable: ack a batch once its transaction committed (or it is fsynced in the spool);"
        " received: ack on receipt; auto: durable unless DATABASE_URL is memory://",
    )
    storage_codec: str = _knob("zstd", "How stored chunks are compressed: zstd, deflate or none")
    storage_level: int = _knob(3, "Compression level of stored chunks (zstd 1-19, deflate 0-9)")
    batch_size: int = _knob(200, "Flush to storage after this many accepted batches")
    batch_interval: int = _knob(100, "...or after this many milliseconds, whichever first")
    max_pending_bytes: int = _knob(
        256 * MiB, "Accepted bytes waiting for storage before trackers are slowed (backpressure)"
    )
    db_pool_size: int = _knob(4, "PostgreSQL connections (one writes, the others serve reads)")
    spool_dir: str = _knob(
        "./data/spool",
        "Local folder where accepted batches wait while the database is unreachable"
        " (empty: no spool; trackers are slowed instead)",
    )
    spool_max_bytes: int = _knob(
        1024 * MiB, "Spool size at which new batches are refused with storage_unavailable"
    )
    retention_days: int = _knob(
        30,
        "Sessions that started longer ago are deleted (PostgreSQL drops whole partitions);"
        " 0 keeps everything",
    )
    retention_interval: float = _knob(3600.0, "Seconds between retention and partition upkeep runs")
    # sessions and buffers
    max_events_per_session: int = _knob(20_000, "Events kept in memory per live session")
    max_session_buffer_bytes: int = _knob(32 * MiB, "Bytes kept in memory per live session")
    max_buffer_bytes: int = _knob(1024 * MiB, "Bytes kept in memory across all sessions")
    session_idle_timeout: float = _knob(
        1800.0, "Seconds without events after which a live session is ended"
    )
    idle_sweep_interval: float = _knob(5.0, "Seconds between checks for idle sessions")
    # protocol limits
    max_frame_bytes: int = _knob(16 * MiB, "Largest WebSocket frame payload accepted")
    max_message_bytes: int = _knob(
        16 * MiB, "Largest WebSocket message (after reassembly and decompression)"
    )
    # WebSocket compression
    ws_deflate: bool = _knob(True, "Negotiate permessage-deflate (RFC 7692) when clients offer it")
    ws_deflate_client_window_bits: int = _knob(
        15,
        "Largest LZ77 window, in bits (9-15), that clients offering client_max_window_bits"
        " may compress with",
    )
    max_events_per_batch: int = _knob(10_000, "Most events in one events_batch")
    max_event_bytes: int = _knob(16 * MiB, "Largest single event")
    max_sessions_per_connection: int = _knob(16, "Sessions one tracker connection may open")
    max_seq_window: int = _knob(
        4096, "How far ahead of the next expected seq a tracker batch may be"
    )
    viewer_batch_events: int = _knob(2000, "Most events in one message to a viewer")
    viewer_batch_bytes: int = _knob(4 * MiB, "Most bytes in one message to a viewer")
    viewer_flush_interval: int = _knob(
        50, "Milliseconds over which a session's new events are coalesced into one viewer delta"
    )
    viewer_flush_bytes: int = _knob(
        256 * 1024, "...or fewer, once this many bytes of events are waiting"
    )
    viewer_backlog_bytes: int = _knob(
        8 * MiB, "Delta bytes queued for one viewer before it is resynchronised"
    )
    viewer_zstd_level: int = _knob(3, "zstd level of viewer deltas (codec=zstd)")
    viewer_deflate_level: int = _knob(6, "deflate level of viewer deltas (codec=deflate)")
    max_history_limit: int = _knob(10_000, "Most events one history read returns")
    # HTTP
    max_request_bytes: int = _knob(64 * 1024, "Largest HTTP request head")
    handshake_timeout: float = _knob(10.0, "Seconds a client has to send its request head")
    shutdown_timeout: float = _knob(30.0, "Seconds a graceful shutdown may take")
    # rate limits and Redis (issue 6). 0 turns a limit off. Counters are
    # fixed windows of RATE_LIMIT_WINDOW seconds; see README "Rate limits".
    rate_limit_window: float = _knob(10.0, "Length in seconds of every rate-limit window")
    limit_connections_per_ip: int = _knob(
        2000, "New WebSocket connections one client IP may open per window (429 above)"
    )
    limit_concurrent_per_ip: int = _knob(
        4096, "WebSocket connections one client IP may hold open at once (429 above)"
    )
    limit_messages_per_tracker: int = _knob(
        5000, "Messages one tracker connection may send per window (rate_limited above)"
    )
    limit_events_per_tracker: int = _knob(
        300_000, "Events one tracker connection may send per window (rate_limited above)"
    )
    limit_events_per_session: int = _knob(
        300_000, "Events one session may receive per window, over all its connections"
    )
    limit_max_keys: int = _knob(
        100_000, "Counters (IPs, trackers, sessions) tracked per limit; new ones are refused above"
    )
    redis_url: str = _knob(
        "", "redis://host:6379/0 to share rate limits and presence between instances"
    )
    redis_prefix: str = _knob("replaywire:", "Prefix of every Redis key this server writes")
    redis_sync_interval: int = _knob(
        75, "Milliseconds between two syncs of the local rate-limit counters with Redis"
    )
    presence_interval: float = _knob(
        2.0, "Seconds between two presence heartbeats (live sessions) written to Redis"
    )
    presence_ttl: float = _knob(
        10.0, "Seconds after its last heartbeat that a vanished instance's sessions disappear"
    )
    # logging
    log_level: str = _knob("info", "debug | info | warning | error")
    log_format: str = _knob("auto", "json | console | auto (console on a TTY)")
    instance_id: str = _knob("", "Name of this instance in logs (default: host-pid)")

    def __post_init__(self) -> None:
        if self.storage_codec not in CODECS:
            raise ConfigError(
                f"STORAGE_CODEC={self.storage_codec!r}: expected one of {', '.join(CODECS)}"
            )
        if self.ack_mode not in ACK_MODES:
            raise ConfigError(f"ACK_MODE={self.ack_mode!r}: expected one of {', '.join(ACK_MODES)}")
        if not 9 <= self.ws_deflate_client_window_bits <= 15:
            # 8 is in RFC 7692's range, but zlib-based clients (websockets,
            # browsers) cannot compress with it and fail the handshake.
            raise ConfigError(
                f"WS_DEFLATE_CLIENT_WINDOW_BITS={self.ws_deflate_client_window_bits}:"
                " expected 9..15"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"REDIS_URL={self.redis_url!r}: expected redis://, rediss:// or unix://"
            )
        if self.rate_limit_window <= 0 or self.redis_sync_interval <= 0:
            raise ConfigError("RATE_LIMIT_WINDOW and REDIS_SYNC_INTERVAL must be above 0")
        if not 0 < self.presence_interval < self.presence_ttl:
            raise ConfigError(
                f"PRESENCE_INTERVAL={self.presence_interval} must be above 0 and below"
                f" PRESENCE_TTL={self.presence_ttl}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then ``environ`` (``os.environ`` by default), then
        ``overrides`` (already typed, e.g. from CLI flags; None is ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in knobs():
            name = f.name.upper()
            if name in environ:
                values[f.name] = parse_value(f, environ[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def durable_acks(self) -> bool:
        """Whether trackers' acks wait for storage (see ``ack_mode``)."""
        if self.ack_mode == "auto":
            return not self.database_url.lower().startswith("memory:")
        return self.ack_mode == "durable"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def knobs() -> list[dataclasses.Field[Any]]:
    """The configurable fields, in declaration order."""
    return [f for f in fields(Config) if f.metadata.get("env", True)]


class ConfigError(ValueError):
    """A configuration value could not be parsed."""


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    kind: type = type(f.default)
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind is int:
            return int(raw.replace("_", ""))
        if kind is float:
            return float(raw)
        return raw
    except ValueError as exc:
        raise ConfigError(f"{f.name.upper()}={raw!r}: expected {kind.__name__}") from exc
