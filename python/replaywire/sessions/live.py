"""One live session's state on the trio side (its events live in Rust)."""

from __future__ import annotations

import json

import trio

from ..auth.tenants import client_id
from ..storage import SessionRecord
from .seqs import SeqWindow
from .skew import ClockSkew


class LiveSession:
    """A session that is being recorded now.

    ``changed`` is set (and replaced) whenever events are appended or the
    session ends, so viewer tasks sleep until there is something to send;
    there is no per-viewer queue to bound, because each viewer pulls from the
    session's ring buffer (and storage, if it fell behind) at its own pace.
    """

    __slots__ = (
        "changed",
        "client_id",
        "end_index",
        "end_reason",
        "ended",
        "id",
        "id_json",
        "last_activity",
        "record",
        "seqs",
        "skew",
        "viewers",
    )

    def __init__(self, record: SessionRecord, seqs: SeqWindow, now: float) -> None:
        self.id = record.session_id  # the key: tenant and id (replaywire.auth.tenants)
        self.client_id = client_id(self.id)  # what the tenant's clients call it
        self.id_json = json.dumps(self.client_id).encode()
        self.record = record
        self.seqs = seqs
        self.skew = ClockSkew(record.clock_skew_ms)
        self.changed = trio.Event()
        self.last_activity = now
        self.viewers = 0
        self.ended = False
        self.end_index: int | None = None  # the session's next index when it ended
        self.end_reason = ""

    def notify(self) -> None:
        """Wake everyone waiting on :attr:`changed`."""
        self.changed.set()
        self.changed = trio.Event()
