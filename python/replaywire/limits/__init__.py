"""Rate limits: fixed-window counters kept locally and, with Redis, shared
by all instances in batches (see :mod:`.windows`, :mod:`.sync`)."""

from .limiter import LIMIT_NAMES, ConnectionLease, Limiter, TrackerQuota, client_ip, tracker_key
from .sync import CounterSync

__all__ = [
    "LIMIT_NAMES",
    "ConnectionLease",
    "CounterSync",
    "Limiter",
    "TrackerQuota",
    "client_ip",
    "tracker_key",
]
