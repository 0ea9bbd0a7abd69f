"""One live session's state on the trio side (its events and hot counters
live in Rust: :class:`replaywire._core.Ingest`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

import trio

from ..auth.tenants import client_id
from ..storage import SessionRecord

# (event_count, byte_count, last_event_at, keyframe_index, clock_skew_ms, next_seq)
Counters = tuple[int, int, float | None, int | None, float | None, int]


class TrackerHandle(Protocol):
    """A tracker connection, as the hub sees it: something a newer
    connection of the same session takes over."""

    async def take_over(self) -> None:
        """Close this connection: a newer one started the session."""


class LiveSession:
    """A session that is being recorded now.

    ``changed`` is set (and replaced) whenever events are appended or the
    session ends, so viewer tasks sleep until there is something to send;
    there is no per-viewer queue to bound, because each viewer pulls from the
    session's ring buffer (and storage, if it fell behind) at its own pace.

    :attr:`record` is the session's record with the counters the tracker
    engines keep in Rust read into it on access: they change per batch, and
    copying them per batch is the Python work the engines exist to avoid.
    """

    __slots__ = (
        "_counters",
        "_record",
        "changed",
        "client_id",
        "end_index",
        "ended",
        "epoch",
        "held_elsewhere",
        "id",
        "id_json",
        "last_activity",
        "trackers",
        "viewers",
    )

    def __init__(
        self,
        record: SessionRecord,
        counters: Callable[[str], Counters | None],
        now: float,
    ) -> None:
        self.id = record.session_id  # the key: tenant and id (replaywire.auth.tenants)
        self.client_id = client_id(self.id)  # what the tenant's clients call it
        self.id_json = json.dumps(self.client_id).encode()
        self._record = record
        self._counters = counters
        self.changed = trio.Event()
        self.last_activity = now
        self.viewers = 0
        # The tracker connection that started it here (one at most: a newer
        # one takes over, see Hub.attach). With none the session is
        # *detached*: its tracker may have reconnected to another instance,
        # which then writes its events, so this ring may no longer be its
        # tail (see Hub.catch_up).
        self.trackers: list[TrackerHandle] = []
        # This instance's latest ownership epoch of the session (with
        # Redis, see replaywire.redis.relay); 0 before any claim.
        self.epoch = 0
        # Whether Redis said another instance claimed it after this one's
        # last claim: then viewers here follow it through the relay.
        self.held_elsewhere = False
        self.ended = False
        self.end_index: int | None = None  # the session's next index when it ended

    def replace_record(self, record: SessionRecord) -> None:
        """Take ``record`` as the session's (its counters reopened in Rust)."""
        self._record = record

    @property
    def record(self) -> SessionRecord:
        """The record, its counters as the engines last left them (frozen
        once the session is closed)."""
        record = self._record
        counters = self._counters(self.id)
        if counters is not None:
            (
                record.event_count,
                record.byte_count,
                record.last_event_at,
                record.keyframe_index,
                record.clock_skew_ms,
                _,
            ) = counters
        return record

    def notify(self) -> None:
        """Wake everyone waiting on :attr:`changed`."""
        self.changed.set()
        self.changed = trio.Event()
