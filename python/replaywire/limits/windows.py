"""Fixed-window counters: the local half of every rate limit.

Why fixed windows (and not a sliding window or GCRA): a fixed window's count
is a plain integer that only grows until the window ends, so counts from
many instances merge by addition (``INCRBY``), a batch of local increments
can be sent late without changing the result, and the key expires by itself
when its window is over. The price is a burst of up to twice the limit
across a window boundary, which for abuse protection (what these limits are
for) is acceptable. A sliding window would need two keys per check, GCRA a
timestamp per subject that cannot be merged from batched deltas without a
read per increment.

Each :class:`Window` counts one subject (an IP, a tracker, a session) for
one limit. ``remote`` is the subject's count over all instances as Redis
last answered it (this instance's synced increments included), ``unsynced``
what this instance admitted since; the subject is over its limit when
``remote + unsynced + n > limit``. Without Redis, ``remote`` stays 0 and
``unsynced`` is the whole count.

Bounds: a :class:`WindowTable` holds at most ``max_keys`` windows. Expired
windows are evicted in order (an ``OrderedDict`` kept in order of window
start, so eviction is O(evicted)); when the table is still full, a new
subject is refused (:meth:`WindowTable.get` returns None) rather than let an
attacker with many addresses grow memory without bound.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["Window", "WindowTable"]


class Window:
    """One subject's count in the current window of one limit."""

    __slots__ = (
        "key",
        "last_ms",
        "limit",
        "remote",
        "start_ms",
        "table",
        "unsynced",
        "window_ms",
    )

    def __init__(self, table: WindowTable, key: str, start_ms: int) -> None:
        self.table = table
        self.key = key
        self.limit = table.limit
        self.window_ms = table.window_ms
        self.start_ms = start_ms
        self.remote = 0
        self.unsynced = 0
        self.last_ms = start_ms  # last check: recently checked windows are kept fresh

    def retry_after(self, n: int, now_ms: int) -> int:
        """0 if ``n`` more fit in this window now, else the milliseconds until
        the window ends (at least 1). A window with nothing in it always
        admits, so a single batch larger than the limit is not refused for
        ever (it overshoots by itself once per window)."""
        if now_ms >= self.start_ms + self.window_ms:
            self.table.roll(self, now_ms)
        self.last_ms = now_ms
        used = self.remote + self.unsynced
        if used == 0 or used + n <= self.limit:
            return 0
        return max(1, self.start_ms + self.window_ms - now_ms)

    def take(self, n: int) -> None:
        """Count ``n`` (after :meth:`retry_after` said 0 for this ``now``)."""
        self.unsynced += n
        if self.table.shared:
            self.table.dirty.add(self)


class WindowTable:
    """Every subject's window for one limit (``limit`` per ``window_ms``).

    ``shared``: whether the counts are synced with Redis (see
    :mod:`replaywire.limits.sync`); the windows counted in since the last
    sync are in ``dirty``, those synced lately and still being checked in
    ``recent`` (the sync refreshes their view of the total even when this
    instance has nothing to add). Not thread-safe: trio loop only.
    """

    def __init__(
        self, name: str, limit: int, window_ms: int, *, max_keys: int, shared: bool
    ) -> None:
        self.name = name
        self.limit = limit
        self.window_ms = window_ms
        self.max_keys = max_keys
        self.shared = shared
        self.windows: OrderedDict[str, Window] = OrderedDict()
        self.dirty: set[Window] = set()
        self.recent: set[Window] = set()

    def __len__(self) -> int:
        return len(self.windows)

    def get(self, key: str, now_ms: int) -> Window | None:
        """The subject's window, created if needed; None when the table is
        full of windows that have not ended yet."""
        window = self.windows.get(key)
        if window is not None:
            return window
        if len(self.windows) >= self.max_keys:
            self.evict(now_ms)
            if len(self.windows) >= self.max_keys:
                return None
        window = Window(self, key, now_ms - now_ms % self.window_ms)
        self.windows[key] = window
        return window

    def roll(self, window: Window, now_ms: int) -> None:
        """Start ``window`` afresh in the window holding ``now_ms``. Increments
        not yet synced belong to the old window, which is over: dropped."""
        window.start_ms = now_ms - now_ms % self.window_ms
        window.remote = 0
        window.unsynced = 0
        self.dirty.discard(window)
        self.recent.discard(window)
        # Back to the end of the eviction order (and back into the table if
        # it was evicted while its owner, a tracker connection, kept it).
        self.windows[window.key] = window
        self.windows.move_to_end(window.key)

    def drop(self, key: str) -> None:
        """Forget a subject now (its connection closed)."""
        window = self.windows.pop(key, None)
        if window is not None:
            self.dirty.discard(window)
            self.recent.discard(window)

    def evict(self, now_ms: int) -> int:
        """Remove the windows that have ended (oldest first); return how many."""
        windows = self.windows
        removed = 0
        while windows:
            window = next(iter(windows.values()))
            if window.start_ms + self.window_ms > now_ms:
                break
            windows.popitem(last=False)
            self.dirty.discard(window)
            self.recent.discard(window)
            removed += 1
        return removed

    # -- syncing (the same three calls as the Rust ``_core.RateTable``) --------

    def collect(self, hot_since_ms: int) -> list[tuple[str, int, int]]:
        """``(key, start_ms, delta)`` of every window to sync now: those
        counted in since the last sync, and those checked since
        ``hot_since_ms`` (their view of the total is refreshed even when
        this instance adds nothing). Clears the dirty set."""
        touched = self.dirty | self.recent
        self.dirty, self.recent = set(), set()
        out: list[tuple[str, int, int]] = []
        for window in touched:
            if window.last_ms >= hot_since_ms:
                self.recent.add(window)
            elif window.unsynced <= 0:
                continue
            out.append((window.key, window.start_ms, window.unsynced))
        return out

    def restore(self, keys: list[str]) -> None:
        """A failed sync: these windows stay dirty, increments kept."""
        for key in keys:
            window = self.windows.get(key)
            if window is not None:
                self.dirty.add(window)

    def apply(self, rows: list[tuple[str, int, int, int]]) -> None:
        """A sync's answers, ``(key, start_ms, delta, total)`` per window: the
        delta reached Redis, whose total over all instances is ``total``. A
        window that rolled meanwhile ignores it (old news)."""
        for key, start, delta, total in rows:
            window = self.windows.get(key)
            if window is not None and window.start_ms == start:
                window.unsynced -= delta
                window.remote = total
