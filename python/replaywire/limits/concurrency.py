"""Concurrent connections per client IP.

Unlike a rate, an open-connection count goes down again, and an instance
that crashes never says goodbye. So each instance keeps its own count per IP
and, with Redis, publishes it as a *lease*: one field per instance in the
IP's hash, holding ``count:expires_ms``; the sync script sums the other
instances' live fields and deletes expired ones. A crashed instance's
connections stop counting when its leases expire (``PRESENCE_TTL``); the
live ones renew theirs every ``PRESENCE_INTERVAL`` (:meth:`touch_all`).

Bounded: at most ``max_keys`` IPs with open connections; a new IP beyond
that is refused like one over its limit.
"""

from __future__ import annotations

__all__ = ["Concurrency"]


class Concurrency:
    """Open connections per IP here (``local``) and elsewhere (``others``,
    as Redis last said). Not thread-safe: trio loop only."""

    def __init__(self, limit: int, *, max_keys: int, shared: bool) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self.shared = shared
        self.local: dict[str, int] = {}
        self.others: dict[str, int] = {}
        self.dirty: set[str] = set()

    def acquire(self, ip: str) -> bool:
        """Count one more connection from ``ip``; False (nothing counted)
        when that would exceed the limit or the table is full."""
        mine = self.local.get(ip, 0)
        if mine == 0 and len(self.local) >= self.max_keys:
            return False
        if mine + self.others.get(ip, 0) >= self.limit:
            return False
        self.local[ip] = mine + 1
        if self.shared:
            self.dirty.add(ip)
        return True

    def release(self, ip: str) -> None:
        mine = self.local.get(ip, 0) - 1
        if mine > 0:
            self.local[ip] = mine
        else:
            self.local.pop(ip, None)
            if not self.shared:
                self.others.pop(ip, None)
        if self.shared:
            self.dirty.add(ip)  # a count of 0 removes this instance's lease

    def touch_all(self) -> None:
        """Mark every IP with open connections for the next sync, which
        renews this instance's leases."""
        if self.shared:
            self.dirty.update(self.local)

    def synced(self, ip: str, others: int) -> None:
        """Apply what Redis answered for ``ip``: the other instances' count."""
        if ip in self.local:
            self.others[ip] = others
        else:
            self.others.pop(ip, None)
