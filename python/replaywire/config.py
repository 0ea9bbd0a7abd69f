"""The one configuration object.

Every limit and knob of the server is a field of :class:`Config`, built once
(from defaults, then an optional TOML file, then the environment, then CLI
flags) and passed down. The CLI flags are generated from the field list,
and tests/test_docs.py checks docs/configuration.md's table against it, so
a knob is declared exactly once, with its bounds:
:meth:`Config.__post_init__` checks every value against them, so a bad
setting stops the server at start with a message naming it instead of
failing later in some corner.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .auth.tenants import Tenant, TenantError, parse_tenants
from .codecs import STORAGE_CODECS
from .databases import SCHEMES as DATABASE_SCHEMES
from .errors import ConfigError as ConfigError

KiB = 1024
MiB = 1024 * KiB
ACK_MODES = ("auto", "durable", "received")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
WS_BACKENDS = ("rust", "wsproto")
# redis+cluster:// (rediss+cluster://) names a Redis Cluster: replaywire.redis.link
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
# Knobs whose values are secrets, or may hold one (a password in a URL):
# redacted wherever the configuration is printed or logged.
SECRET_SUFFIXES = ("_url", "_password", "_secret", "_token")


def _knob(
    default: Any,
    help: str,
    *,
    env: bool = True,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
) -> Any:
    """A config field: its default, the help shown by ``--help`` and the
    docs, and the bounds :meth:`Config.__post_init__` enforces.
    ``metavar`` is the flag's placeholder when the default's type does not
    say what the value is (see ``replaywire.cli``)."""
    meta = {"help": help, "env": env, "lo": lo, "hi": hi, "choices": choices, "metavar": metavar}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Config:
    """Server configuration. Field names map to environment variables in
    upper case (``batch_size`` -> ``BATCH_SIZE``), to CLI flags
    (``--batch-size``) and to keys of the ``--config`` TOML file
    (``batch_size = 200``)."""

    # listener
    host: str = _knob("127.0.0.1", "Address to listen on")
    port: int = _knob(8080, "TCP port for HTTP and WebSocket (0 picks a free one)", lo=0, hi=65535)
    workers: int = _knob(
        1,
        "Server processes sharing the port (SO_REUSEPORT) under a supervising parent;"
        " above 1 needs REDIS_URL and a PostgreSQL DATABASE_URL",
        lo=1,
        hi=256,
    )
    reuse_port: bool = _knob(
        False, "Set SO_REUSEPORT on the listening socket (each --workers worker does)"
    )
    # storage
    database_url: str = _knob(
        "sqlite:///./data/replaywire.db",
        "Storage: sqlite:///path (embedded default), postgresql://user@host/db, or memory://",
    )
    ack_mode: str = _knob(
        "auto",
        "durable: ack a batch once its transaction committed (or it is fsynced in the spool);"
        " received: ack on receipt; auto: durable unless DATABASE_URL is memory://",
        choices=ACK_MODES,
    )
    storage_codec: str = _knob(
        "auto",
        "How stored chunks are compressed: zstd, deflate, none, or auto (zstd; none for"
        " memory://, where compressing costs a core's share and buys only retention)",
        choices=("auto", *STORAGE_CODECS),
    )
    storage_level: int = _knob(
        1, "Compression level of stored chunks (zstd 1-19, deflate 0-9)", lo=0, hi=22
    )
    memory_storage_bytes: int = _knob(
        1024 * MiB,
        "memory:// keeps chunks up to this many payload bytes; past it the oldest"
        " are evicted (history reads of them come back shorter, as after retention)",
        lo=1,
    )
    batch_size: int = _knob(200, "Flush to storage after this many accepted batches", lo=1)
    batch_interval: int = _knob(100, "...or after this many milliseconds, whichever first", lo=0)
    max_pending_bytes: int = _knob(
        256 * MiB,
        "Accepted bytes waiting for storage before trackers are slowed (backpressure)",
        lo=1,
    )
    db_pool_size: int = _knob(
        4, "PostgreSQL connections (one writes, the others serve reads)", lo=1
    )
    spool_dir: str = _knob(
        "./data/spool",
        "Local folder where accepted batches wait while the database is unreachable"
        " (empty: no spool; trackers are slowed instead)",
    )
    spool_max_bytes: int = _knob(
        1024 * MiB, "Spool size at which new batches are refused with storage_unavailable", lo=1
    )
    retention_days: int = _knob(
        30,
        "Sessions that started longer ago are deleted (PostgreSQL drops whole partitions);"
        " 0 keeps everything",
        lo=0,
    )
    retention_interval: float = _knob(
        3600.0, "Seconds between retention and partition upkeep runs", lo=0
    )
    # sessions and buffers
    max_events_per_session: int = _knob(20_000, "Events kept in memory per live session", lo=1)
    max_session_buffer_bytes: int = _knob(32 * MiB, "Bytes kept in memory per live session", lo=1)
    max_buffer_bytes: int = _knob(1024 * MiB, "Bytes kept in memory across all sessions", lo=1)
    session_idle_timeout: float = _knob(
        1800.0, "Seconds without events after which a live session is ended", lo=0
    )
    idle_sweep_interval: float = _knob(5.0, "Seconds between checks for idle sessions", lo=0)
    # protocol limits
    # A message holds one batch: up to MAX_EVENT_BYTES of event plus the
    # batch's envelope. Larger messages are answered payload_too_large.
    max_frame_bytes: int = _knob(
        64 * MiB + 256 * KiB, "Largest WebSocket frame payload accepted", lo=1
    )
    max_message_bytes: int = _knob(
        64 * MiB + 256 * KiB,
        "Largest WebSocket message (after reassembly and decompression);"
        " larger ones are refused with payload_too_large",
        lo=1,
    )
    max_inflight_bytes: int = _knob(
        256 * MiB,
        "Bytes of incomplete WebSocket messages held across all connections;"
        " past it, connections with large messages in progress are not read until others finish",
        lo=1,
    )
    ws_backend: str = _knob(
        "rust",
        "WebSocket frame codec: rust (the Rust core) or wsproto (pure Python, for comparison)",
        choices=WS_BACKENDS,
    )
    # WebSocket compression
    ws_deflate: bool = _knob(True, "Negotiate permessage-deflate (RFC 7692) when clients offer it")
    ws_deflate_client_window_bits: int = _knob(
        15,
        "Largest LZ77 window, in bits (9-15), that clients offering client_max_window_bits"
        " may compress with",
        # 8 is in RFC 7692's range, but zlib-based clients (websockets,
        # browsers) cannot compress with it and fail the handshake.
        lo=9,
        hi=15,
    )
    max_events_per_batch: int = _knob(10_000, "Most events in one events_batch", lo=1)
    max_event_bytes: int = _knob(
        64 * MiB,
        "Largest single event (rrweb full snapshots with inlined assets are large)",
        lo=1,
    )
    max_sessions_per_connection: int = _knob(16, "Sessions one tracker connection may open", lo=1)
    max_viewers_per_session: int = _knob(
        1000,
        "Live viewers one session may have on this instance; more are refused with viewer_limit",
        lo=1,
    )
    max_seq_window: int = _knob(
        4096, "How far ahead of the next expected seq a tracker batch may be", lo=1
    )
    viewer_batch_events: int = _knob(2000, "Most events in one message to a viewer", lo=1)
    viewer_batch_bytes: int = _knob(4 * MiB, "Most bytes in one message to a viewer", lo=1)
    viewer_flush_interval: int = _knob(
        50,
        "Milliseconds over which a session's new events are coalesced into one viewer delta",
        lo=0,
    )
    viewer_flush_bytes: int = _knob(
        256 * 1024, "...or fewer, once this many bytes of events are waiting", lo=1
    )
    viewer_fanout_budget: float = _knob(
        0.2,
        "Share of the event loop's time live fan-out may take; past it, ticks are"
        " stretched beyond VIEWER_FLUSH_INTERVAL so that many viewers cannot starve ingest",
        lo=0.01,
        hi=1,
        metavar="SHARE",
    )
    viewer_backlog_bytes: int = _knob(
        8 * MiB, "Delta bytes queued for one viewer before it is resynchronised", lo=1
    )
    viewer_zstd_level: int = _knob(
        3, "zstd level of viewer deltas (codec=zstd and codec=zstd-dict)", lo=1, hi=22
    )
    viewer_dictionary: str = _knob(
        "",
        "zstd dictionary file for codec=zstd-dict viewers (replaywire train-dictionary makes"
        " one from stored sessions); empty: codec=zstd-dict is refused",
    )
    viewer_deflate_level: int = _knob(
        6, "deflate level of viewer deltas (codec=deflate)", lo=0, hi=9
    )
    max_history_limit: int = _knob(10_000, "Most events one history read returns", lo=1)
    # HTTP
    max_request_bytes: int = _knob(
        64 * 1024,
        "Largest HTTP request head (request line, headers and the blank line); 431 beyond",
        lo=1,
    )
    handshake_timeout: float = _knob(
        10.0,
        "Seconds a client has to send its whole request once connected, or once its previous"
        " answer was sent (408, then close): slowloris clients are dropped after it",
        lo=0,
    )
    http_write_timeout: float = _knob(
        30.0,
        "Seconds a REST client may take to read each 256 KiB of an answer; one that reads"
        " slower (or not at all) has its connection closed, so it cannot hold a page of"
        " events in memory for long",
        lo=0.1,
    )
    # connections
    max_connections: int = _knob(
        10_000,
        "TCP connections open at once: HTTP, WebSocket, and those still sending their request."
        " A new one beyond is answered 503 with Retry-After without being read (0: no limit)."
        " The server raises its open-file limit (RLIMIT_NOFILE) to fit at start",
        lo=0,
    )
    ws_ping_interval: float = _knob(
        20.0,
        "Seconds a WebSocket may send nothing before the server pings it (0: no heartbeat)",
        lo=0,
    )
    ws_ping_timeout: float = _knob(
        20.0,
        "Seconds a pinged WebSocket has to send anything (its pong) before it is dropped"
        " with 1011; a dead peer is gone within 1.25 x (WS_PING_INTERVAL + WS_PING_TIMEOUT)",
        lo=0.01,
    )
    # shutdown
    drain_seconds: float = _knob(
        15.0,
        "Seconds a graceful shutdown (SIGTERM/SIGINT) may take: close WebSockets with 1001,"
        " write every accepted batch, exit; keep terminationGracePeriodSeconds above it",
        lo=0,
    )
    # rate limits and Redis. 0 turns a limit off. Counters are
    # fixed windows of RATE_LIMIT_WINDOW seconds; see docs/configuration.md "Rate limits".
    rate_limit_window: float = _knob(10.0, "Length in seconds of every rate-limit window")
    limit_connections_per_ip: int = _knob(
        2000, "New WebSocket connections one client IP may open per window (429 above)"
    )
    limit_concurrent_per_ip: int = _knob(
        4096,
        "TCP connections (HTTP or WebSocket, counting those still sending their request)"
        " one client IP may hold open at once (429 above, without reading the request)",
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
        "",
        "redis://host:6379/0 to share rate limits and presence between instances;"
        " redis+cluster://host:port names a Redis Cluster (any node)",
    )
    redis_cluster: bool = _knob(
        False, "REDIS_URL is a redis:// or rediss:// URL of a node of a Redis Cluster (Redis 7+)"
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
    log_level: str = _knob("info", "debug | info | warning | error", choices=LOG_LEVELS)
    log_format: str = _knob("auto", "json | console | auto (console on a TTY)", choices=LOG_FORMATS)
    log_dir: str = _knob(
        "",
        "Folder for daily JSON log files (replaywire-YYYY-MM-DD.log, and"
        " replaywire-error-YYYY-MM-DD.log for errors), gzipped when the day is over"
        " (empty: stdout only)",
    )
    log_max_files: int = _knob(
        14, "Days of log files kept in LOG_DIR; older files are deleted", lo=1
    )
    log_sample_seconds: float = _knob(
        10.0,
        "Repeated warnings (a client's bad input, slow viewers) are logged once, then at most"
        " once per this many seconds with a count of those suppressed",
        lo=0,
    )
    instance_id: str = _knob("", "Name of this instance in logs (default: host-pid)")
    # tenants and credentials (replaywire.auth). The tenants
    # themselves are a table, not a knob: [tenants.NAME] in the --config
    # file, or the JSON object TENANTS in the environment.
    jwt_secret: str = _knob(
        "",
        "HS256 secret (at least 32 bytes) that viewer/API JWTs are signed with"
        " (empty: only opaque tokens and tenants' EdDSA keys)",
    )
    dev_mode_any_host: bool = _knob(
        False,
        "Allow development mode (no tenants: no credentials at all) on a HOST other than"
        " loopback, e.g. in a container whose port only you can reach. Anyone reaching the"
        " port reads and writes every session",
    )
    tenants: tuple[Tenant, ...] = field(
        default=(),
        metadata={"env": False, "help": "tenants: [tenants.NAME] tables, or TENANTS (JSON)"},
    )

    def __post_init__(self) -> None:
        for f in knobs():
            _check(f, getattr(self, f.name))
        try:  # a dict of tables (tests, TOML, JSON) becomes Tenant objects
            object.__setattr__(self, "tenants", parse_tenants(self.tenants))
        except TenantError as exc:
            raise ConfigError("tenants", str(exc)) from None
        if not self.tenants and not self.dev_mode_any_host and not is_loopback(self.host):
            raise ConfigError(
                "host",
                f"HOST={self.host}: no tenants are configured, so replaywire would run in"
                " development mode (no credentials: whoever reaches the port reads and"
                " writes every session), which listens on loopback only. Configure"
                " [tenants.NAME] in the --config file or TENANTS (see docs/security.md),"
                " or set DEV_MODE_ANY_HOST=true to run it anyway",
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < 32:
            raise ConfigError(
                "jwt_secret", "JWT_SECRET must be at least 32 bytes (HS256 wants a 256-bit key)"
            )
        scheme, sep, _ = self.database_url.partition("://")
        if not sep or scheme.lower() not in DATABASE_SCHEMES:
            raise ConfigError(
                "database_url",
                f"DATABASE_URL: expected {', '.join(s + '://' for s in DATABASE_SCHEMES)}"
                f" URL, got scheme {scheme if sep else '(none)'!r}",
            )
        if self.redis_url and not self.redis_url.startswith(REDIS_SCHEMES):
            raise ConfigError(
                "redis_url",
                f"REDIS_URL={self.redis_url!r}: expected {', '.join(REDIS_SCHEMES)}",
            )
        if self.redis_cluster and not self.redis_url.startswith(REDIS_SCHEMES[:2]):
            raise ConfigError(
                "redis_cluster",
                "REDIS_CLUSTER needs a REDIS_URL redis:// or rediss:// to a node of the cluster",
            )
        if self.workers > 1 and not (self.redis_url and scheme.lower().startswith("postgres")):
            raise ConfigError(
                "workers",
                f"WORKERS={self.workers}: several workers need REDIS_URL and a PostgreSQL"
                " DATABASE_URL. With the embedded default (SQLite, or memory://) the workers"
                " cannot share storage (SQLite has one writer; memory:// is per process), and"
                " without Redis live sessions, viewers and rate limits would not be shared"
                " between them. Set DATABASE_URL=postgresql://... and REDIS_URL=redis://...,"
                " or run one worker.",
            )
        if self.rate_limit_window <= 0:
            raise ConfigError("rate_limit_window", "RATE_LIMIT_WINDOW must be above 0")
        if self.redis_sync_interval <= 0:
            raise ConfigError("redis_sync_interval", "REDIS_SYNC_INTERVAL must be above 0")
        if not 0 < self.presence_interval < self.presence_ttl:
            raise ConfigError(
                "presence_interval",
                f"PRESENCE_INTERVAL={self.presence_interval} must be above 0 and below"
                f" PRESENCE_TTL={self.presence_ttl}",
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        file: Path | str | None = None,
        **overrides: Any,
    ) -> Config:
        """Defaults, then the TOML ``file`` (if given), then ``environ``
        (``os.environ`` by default), then ``overrides`` (already typed, e.g.
        from CLI flags; None is ignored). Raises :class:`ConfigError` naming
        the first bad setting."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = load_toml(Path(file)) if file is not None else {}
        for f in knobs():
            name = f.name.upper()
            if name in environ:
                values[f.name] = parse_value(f, environ[name])
        if environ.get("TENANTS"):
            try:
                values["tenants"] = json.loads(environ["TENANTS"])
            except ValueError as exc:
                raise ConfigError("tenants", f"TENANTS: not a JSON object: {exc}") from None
            if not isinstance(values["tenants"], dict):
                raise ConfigError("tenants", "TENANTS: expected a JSON object {name: {...}}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def durable_acks(self) -> bool:
        """Whether trackers' acks wait for storage (see ``ack_mode``)."""
        if self.ack_mode == "auto":
            return not self.database_url.lower().startswith("memory:")
        return self.ack_mode == "durable"

    @property
    def stored_codec(self) -> str:
        """The codec stored chunks are written with (see ``storage_codec``)."""
        if self.storage_codec == "auto":
            return "none" if self.database_url.lower().startswith("memory:") else "zstd"
        return self.storage_codec

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    @property
    def dev_mode(self) -> bool:
        """No tenants: one ``default`` tenant, no credentials (loopback only)."""
        return not self.tenants

    def redacted(self) -> dict[str, Any]:
        """Every knob and its value, with secrets masked: what may be
        printed (``replaywire config``) or logged. Tenants are shown as
        their tables: write keys are public and tokens appear only as
        sha256 digests, so nothing in them is secret."""
        values = {
            f.name: redact(f.name, getattr(self, f.name))
            for f in fields(self)
            if f.name != "tenants"
        }
        values["tenants"] = {t.name: t.to_table() for t in self.tenants}
        return values


def knobs() -> list[dataclasses.Field[Any]]:
    """The configurable fields, in declaration order."""
    return [f for f in fields(Config) if f.metadata.get("env", True)]


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    """A value from the environment or a flag, typed like the field's default."""
    kind: type = type(f.default)
    try:
        if kind is bool:
            value = raw.strip().lower()
            if value in {"1", "true", "yes", "on"}:
                return True
            if value in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw.replace("_", ""))
        if kind is float:
            return float(raw)
        return raw
    except ValueError as exc:
        raise ConfigError(f.name, f"{f.name.upper()}={raw!r}: expected {_kind_name(kind)}") from exc


def load_toml(path: Path) -> dict[str, Any]:
    """The knobs a TOML file sets, typed and checked against the field
    list: ``port = 8080``, ``database_url = "postgresql://..."``. Keys are
    field names (the environment variable in lower case); an unknown key is
    an error, with the closest known name as a hint."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError("config", f"--config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"--config {path}: not valid TOML: {exc}") from exc
    by_name = {f.name: f for f in knobs()}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "tenants":  # [tenants.NAME] tables, checked by Config
            if not isinstance(value, dict):
                raise ConfigError(key, f"{path}: tenants: expected [tenants.NAME] tables")
            values[key] = value
            continue
        f = by_name.get(key)
        if f is None:
            near = difflib.get_close_matches(key, list(by_name), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(key, f"{path}: unknown setting {key!r}{hint}")
        kind: type = type(f.default)
        ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))) or (
            kind is float and isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok:
            raise ConfigError(key, f"{path}: {key} = {value!r}: expected {_kind_name(kind)}")
        values[key] = float(value) if kind is float else value
    return values


def redact(name: str, value: Any) -> Any:
    """``value`` fit to print: a URL's password masked, a secret knob
    replaced by ``***``; anything else unchanged."""
    if not isinstance(value, str) or not value or not name.endswith(SECRET_SUFFIXES):
        return value
    if name.endswith("_url"):
        return _mask_url(value)
    return "***"


def _mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db?password=x`` -> ``postgresql://u:***@h/db?password=***``.

    Done on the text rather than through ``urlsplit``: a URL that does not
    parse (a stray ``[``, say) must still not leak its password."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        authority = f"{userinfo}@{hostport}"
    path, qmark, query = tail.partition("?")
    if qmark:
        params = []
        for param in query.split("&"):
            key, eq, _ = param.partition("=")
            secret = key.lower() in ("password", "passwd", "pass", "sslpassword")
            params.append(f"{key}=***" if eq and secret else param)
        query = "&".join(params)
    return f"{scheme}{sep}{authority}{slash}{path}{qmark}{query}"


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check(f: dataclasses.Field[Any], value: Any) -> None:
    env = f.name.upper()
    kind: type = type(f.default)
    numeric = kind in (int, float)
    if numeric and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f.name, f"{env}={value!r}: expected {_kind_name(kind)}")
    if kind is int and not isinstance(value, int):
        raise ConfigError(f.name, f"{env}={value!r}: expected {_kind_name(kind)}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f.name, f"{env}={value!r}: expected one of {', '.join(choices)}")
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    if numeric and value != value:  # NaN passes every comparison below
        raise ConfigError(f.name, f"{env}={value!r}: expected a number")
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise ConfigError(f.name, f"{env}={value!r}: expected {lo}..{hi}")
    if lo is not None and value < lo:
        raise ConfigError(f.name, f"{env}={value!r}: expected at least {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f.name, f"{env}={value!r}: expected at most {hi}")


def _kind_name(kind: type) -> str:
    return "true or false" if kind is bool else kind.__name__
