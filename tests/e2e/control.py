"""A control tracker: one session of tenant ``acme`` on a connection of its
own that keeps streaming batches while a test throws bad input at the same
server, and shows afterwards that it was acked all along and that every
event acked to it reads back, once and in order.

Use it with the tenants of ``auth.tenants``::

    control = ControlTracker(server)
    await nursery.start(control.run)  # returns once a first batch is acked
    ...                               # the bad input
    await control.finish()            # one more batch acked, then reads back
"""

from __future__ import annotations

import itertools

import trio
from trio_websocket import WebSocketConnection

from auth.tenants import ACME_READ, open_tracker
from e2e.clients import events_of, http, recv_json, start_session
from replaywire import Server
from rrweb import batch_message, session_events

BATCH = 10  # events per control batch: far under every limit the tests set


class ControlTracker:
    """Streams ``BATCH``-event batches for session ``session_id``, one at a
    time (each waits for its ack), every ``pace`` seconds until
    :meth:`finish`. Any refusal or a missing ack fails the test that runs
    it (the assertion ends its task, and so the test's nursery)."""

    def __init__(self, server: Server, session_id: str = "control", pace: float = 0.01) -> None:
        self.server = server
        self.session_id = session_id
        self.pace = pace
        self.acked: list[bytes] = []
        self.batches = 0
        self._events = session_events(10**9, seed=11)
        self._stop = trio.Event()
        self._done = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_tracker(self.server, "acme") as ws:
            await start_session(ws, self.session_id)
            await self._batch(ws)
            task_status.started()
            while not self._stop.is_set():
                with trio.move_on_after(self.pace):
                    await self._stop.wait()
                await self._batch(ws)  # also once after stop: acked after the bad input
        self._done.set()

    async def _batch(self, ws: WebSocketConnection) -> None:
        events = list(itertools.islice(self._events, BATCH))
        await ws.send_message(batch_message(self.session_id, self.batches, events).decode())
        reply = await recv_json(ws)
        assert reply == {
            "type": "ack",
            "data": {"sessionId": self.session_id, "seq": self.batches},
        }, reply
        self.acked += events
        self.batches += 1

    async def finish(self) -> None:
        """Stop after one more acked batch; check every acked event reads back."""
        before = self.batches
        self._stop.set()
        with trio.fail_after(30):
            await self._done.wait()
        assert self.batches > before, "no batch was acked after the bad input"
        assert await read_events(self.server, self.session_id) == self.acked


async def read_events(server: Server, session_id: str, token: str = ACME_READ) -> list[bytes]:
    """Every stored event of a session, page by page, as raw bytes."""
    events: list[bytes] = []
    while True:
        status, _, body = await http(
            server,
            f"/sessions/{session_id}/events?from_index={len(events)}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert status == 200, (status, body)
        page = events_of(body)
        if not page:
            return events
        events += page
