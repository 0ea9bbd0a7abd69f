"""Redis: the state instances share. The link (one client, its up/down
state and backoff) and presence; the rate-limit counters' sync lives with
the limits (:mod:`replaywire.limits.sync`). Cross-instance fan-out will use
the same link."""

from .link import RedisLink, RedisUnavailable

__all__ = ["RedisLink", "RedisUnavailable"]
