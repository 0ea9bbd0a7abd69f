"""Redis: the state instances share. The link (one client, its up/down
state and backoff, a single server or a cluster), presence, and
cross-instance fan-out with session ownership (:mod:`.relay`, over the
same link); the rate-limit counters' sync lives with the limits
(:mod:`replaywire.limits.sync`)."""

from .link import RedisLink, RedisUnavailable

__all__ = ["RedisLink", "RedisUnavailable"]
