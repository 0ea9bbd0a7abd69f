"""Sampled warnings: what a hostile or broken client does cannot flood the log.

A client that sends a thousand bad messages a second must cost a thousand
error frames and a counter, not a thousand log lines. :class:`LogSampler`
logs the first occurrence of an event, then suppresses repeats for
``interval`` seconds and reports how many it suppressed: on the next
occurrence after the interval, or from :meth:`LogSampler.flush` (which the
server calls every interval, so the count of a burst that stopped is not
lost). So one event name costs at most one line per interval, whatever the
rate.

Keys are event names (``tracker_message_rejected``), optionally refined by
a short bounded value such as an error code; never a client address or a
session id, which an attacker controls. The table holds at most
``max_keys`` keys: beyond that, new keys share one overflow key
(``log_sampler_overflow``), so memory stays bounded too.

Resource handling: holds no resource. Not thread-safe: use it from the trio
thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LogSampler"]

OVERFLOW_KEY = "log_sampler_overflow"


@dataclass(slots=True)
class _Slot:
    event: str
    last_logged: float
    suppressed: int = 0
    fields: dict[str, Any] = field(default_factory=dict)  # of the latest suppressed one


class LogSampler:
    """Log ``event`` once, then at most once per ``interval`` seconds with
    ``suppressed=N`` (the repeats not logged since the last line).

    ``on_suppressed(event)`` is called for every repeat not logged (the
    server counts them in ``replaywire_log_lines_suppressed_total``).
    ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        logger: Any,
        interval: float,
        *,
        level: str = "warning",
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
        on_suppressed: Callable[[str], None] | None = None,
    ) -> None:
        self._log = logger
        self._level = level
        self.interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._on_suppressed = on_suppressed
        self._slots: dict[str, _Slot] = {}

    def log(self, event: str, *, key: str | None = None, **fields: Any) -> bool:
        """Log ``event`` with ``fields`` unless one with the same key was
        logged less than ``interval`` ago; True if a line was written."""
        now = self._clock()
        slot_key = event if key is None else f"{event}:{key}"
        slot = self._slots.get(slot_key)
        if slot is None:
            if len(self._slots) >= self._max_keys:
                slot_key, event = OVERFLOW_KEY, OVERFLOW_KEY
                slot = self._slots.get(slot_key)
            if slot is None:
                self._slots[slot_key] = _Slot(event, now)
                self._emit(event, fields, suppressed=0)
                return True
        if now - slot.last_logged < self.interval:
            slot.suppressed += 1
            slot.fields = fields
            if self._on_suppressed is not None:
                self._on_suppressed(slot.event)
            return False
        suppressed, slot.suppressed, slot.last_logged = slot.suppressed, 0, now
        self._emit(slot.event, fields, suppressed=suppressed)
        return True

    def flush(self) -> int:
        """Report the keys whose interval is over and that suppressed
        something (with the fields of the latest one and ``final=True``);
        forget keys quiet for a whole interval. Returns the lines written."""
        now = self._clock()
        written = 0
        for slot_key, slot in list(self._slots.items()):
            if now - slot.last_logged < self.interval:
                continue
            if slot.suppressed:
                self._emit(slot.event, slot.fields, suppressed=slot.suppressed, final=True)
                slot.suppressed, slot.last_logged, slot.fields = 0, now, {}
                written += 1
            else:
                del self._slots[slot_key]
        return written

    def _emit(self, event: str, fields: dict[str, Any], **extra: Any) -> None:
        getattr(self._log, self._level)(event, **fields, **extra)
