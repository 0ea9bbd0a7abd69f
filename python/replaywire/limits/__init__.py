"""Rate limits: fixed-window counters kept locally and, with Redis, shared
by all instances in batches (see :mod:`.windows`, :mod:`.sync`). Tracker
messages are counted by the Rust tracker engines (``rust/src/ingest``)."""

from .limiter import LIMIT_NAMES, ConnectionLease, Limiter, RateTables, client_ip
from .sync import CounterSync

__all__ = [
    "LIMIT_NAMES",
    "ConnectionLease",
    "CounterSync",
    "Limiter",
    "RateTables",
    "client_ip",
]
