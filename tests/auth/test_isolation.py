"""Tenant isolation, end to end: a tenant's credentials never reach another
tenant's sessions, over every way in (tracker socket, viewer socket, every
REST route). Another tenant's session answers exactly like one that does
not exist: 404 ``unknown_session`` over REST, an ``unknown_session`` error
frame over WebSocket (docs/protocol.md, "Tenants and credentials")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from auth.tenants import (
    ACME_ADMIN,
    ACME_READ,
    BETA_READ,
    jwt_for,
    open_tracker,
    open_viewer,
    recv,
    start,
)
from e2e.clients import events_of, http, send_batches, start_session
from replaywire import Server
from rrweb import session_events

# Every credential of tenant acme that may read (opaque and JWT, both scopes).
ACME_READERS = {
    "opaque-read": ACME_READ,
    "opaque-admin": ACME_ADMIN,
    "jwt-read": jwt_for("acme"),
    "jwt-admin": jwt_for("acme", "admin"),
}


async def get(server: Server, path: str, token: str, method: str = "GET") -> tuple[int, Any]:
    status, _, body = await http(server, path, method, {"Authorization": f"Bearer {token}"})
    return status, json.loads(body) if body else None


async def record(server: Server, tenant: str, sid: str, count: int, seed: int) -> list[bytes]:
    """A finished session of ``tenant``; returns its events."""
    events = list(session_events(count, seed=seed))
    async with open_tracker(server, tenant) as ws:
        await start_session(ws, sid)
        await send_batches(ws, sid, events, batch=10)
    return events


@pytest.mark.parametrize("reader", sorted(ACME_READERS))
async def test_another_tenants_session_is_not_there_for_rest(
    start_server: Any, reader: str
) -> None:
    server = await start(start_server)
    await record(server, "beta", "beta-only", 20, seed=1)
    token = ACME_READERS[reader]
    # The owner reads it (the session exists, so a 404 below is isolation).
    assert (await get(server, "/sessions/beta-only", BETA_READ))[0] == 200
    assert (await get(server, "/sessions/beta-only/events", BETA_READ))[0] == 200
    for path in ("/sessions/{}", "/sessions/{}/events", "/sessions/{}/events?from_index=5"):
        theirs = await get(server, path.format("beta-only"), token)
        missing = await get(server, path.format("no-such-id"), token)
        assert theirs[0] == missing[0] == 404
        assert theirs[1]["error"]["code"] == missing[1]["error"]["code"] == "unknown_session"
    # The live list and the stats of acme know nothing of beta.
    async with open_tracker(server, "beta") as ws:
        await start_session(ws, "beta-live")
        status, active = await get(server, "/sessions/active", token)
        assert status == 200 and active["sessions"] == [] and active["count"] == 0
        status, mine = await get(server, "/sessions/active", BETA_READ)
        # (a closed socket does not end a session: beta-only is live too)
        assert {s["sessionId"] for s in mine["sessions"]} == {"beta-live", "beta-only"}
        if "read" in reader:
            status, stats = await get(server, "/stats", token)
            assert status == 200 and stats["sessions"] == {"active": 0}
            assert stats["tenant"] == "acme" and "storage" not in stats


async def test_same_id_in_two_tenants_is_two_sessions(start_server: Any) -> None:
    server = await start(start_server)
    acme_events = await record(server, "acme", "shared", 30, seed=2)
    beta_events = await record(server, "beta", "shared", 20, seed=3)
    for token, events in ((ACME_READ, acme_events), (BETA_READ, beta_events)):
        status, meta = await get(server, "/sessions/shared", token)
        assert status == 200 and meta["sessionId"] == "shared"
        assert meta["eventCount"] == len(events)
        status, _, body = await http(
            server, "/sessions/shared/events", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200 and events_of(body) == events
        assert json.loads(body)["sessionId"] == "shared"


async def test_viewer_cannot_join_or_read_another_tenants_session(start_server: Any) -> None:
    server = await start(start_server)
    await record(server, "beta", "beta-done", 10, seed=4)
    async with open_tracker(server, "beta") as tracker:
        await start_session(tracker, "beta-live")
        await send_batches(tracker, "beta-live", list(session_events(10, seed=5)))
        for token in ACME_READERS.values():
            async with open_viewer(server, token) as viewer:
                for sid in ("beta-live", "beta-done", "no-such-id"):
                    await viewer.send_message(
                        json.dumps({"type": "viewer_join_session", "data": {"sessionId": sid}})
                    )
                    reply = await recv(viewer)
                    assert reply["type"] == "error", reply
                    assert reply["data"]["code"] == "unknown_session"
                    assert reply["data"]["message"] == f"no session {sid!r}"
                    await viewer.send_message(
                        json.dumps({"type": "get_session_events", "data": {"sessionId": sid}})
                    )
                    reply = await recv(viewer)
                    assert (reply["type"], reply["data"]["code"]) == ("error", "unknown_session")
        # beta's own viewer joins both, seeing its ids, not the server's keys.
        async with open_viewer(server, BETA_READ) as viewer:
            await viewer.send_message(
                json.dumps({"type": "viewer_join_session", "data": {"sessionId": "beta-live"}})
            )
            joined = await recv(viewer)
            assert joined["type"] == "viewer_joined"
            assert {k: joined["data"][k] for k in ("sessionId", "fromIndex", "nextIndex")} == {
                "sessionId": "beta-live",
                "fromIndex": 0,
                "nextIndex": 10,
            }
            snapshot = await recv(viewer)
            assert snapshot["type"] == "snapshot" and snapshot["data"]["sessionId"] == "beta-live"


async def test_tracker_cannot_continue_overwrite_or_end_another_tenants_session(
    start_server: Any,
) -> None:
    server = await start(start_server)
    acme_events = list(session_events(40, seed=6))
    async with open_tracker(server, "acme") as acme:
        await start_session(acme, "s1")
        await send_batches(acme, "s1", acme_events[:20], batch=10)  # seqs 0, 1
        async with open_tracker(server, "beta") as beta:
            # Same id: a new, empty session of beta, not a resume of acme's.
            started = await start_session(beta, "s1")
            assert (started["nextSeq"], started["nextIndex"]) == (0, 0)
            # beta's seq 0 and 1 are its own, not duplicates of acme's.
            await send_batches(beta, "s1", list(session_events(20, seed=7)), batch=10)
            await beta.send_message(
                json.dumps({"type": "session_end", "data": {"sessionId": "s1"}})
            )
            assert (await recv(beta))["type"] == "session_ended"
        # acme's session is still live and goes on where it was.
        assert await send_batches(acme, "s1", acme_events[20:], batch=10, first_seq=2) == [2, 3]
        status, meta = await get(server, "/sessions/s1", ACME_READ)
        assert status == 200 and meta["live"] is True and meta["eventCount"] == 40
    status, _, body = await http(
        server, "/sessions/s1/events", headers={"Authorization": f"Bearer {ACME_READ}"}
    )
    assert events_of(body) == acme_events


async def test_cleanup_ends_only_the_admins_tenants_sessions(start_server: Any) -> None:
    server = await start(start_server)
    async with open_tracker(server, "acme") as acme, open_tracker(server, "beta") as beta:
        await start_session(acme, "idle")
        await start_session(beta, "idle")
        status, body = await get(server, "/sessions/cleanup?idle_seconds=0", ACME_ADMIN, "DELETE")
        assert status == 200 and body == {"ended": ["idle"], "count": 1}
        status, meta = await get(server, "/sessions/idle", BETA_READ)
        assert meta["live"] is True and meta["status"] == "active"
        status, meta = await get(server, "/sessions/idle", ACME_READ)
        assert meta["live"] is False and meta["status"] == "ended"


async def test_the_session_list_shows_only_the_tenants_own(start_server: Any) -> None:
    """``GET /sessions`` (the viewer's recent list) lists the asking tenant's
    stored sessions under its own ids, filtered by status."""
    server = await start(start_server)
    await record(server, "acme", "a-1", 10, seed=4)
    await record(server, "acme", "a-2", 10, seed=5)
    await record(server, "beta", "b-1", 10, seed=6)
    await http(
        server,
        "/sessions/cleanup?idle_seconds=0",
        "DELETE",
        {"Authorization": f"Bearer {ACME_ADMIN}"},
    )
    await server.writer.flush()
    status, listed = await get(server, "/sessions", ACME_READ)
    assert status == 200 and listed["count"] == 2
    assert [s["sessionId"] for s in listed["sessions"]] == ["a-2", "a-1"]  # newest first
    status, ended = await get(server, "/sessions?status=ended", ACME_READ)
    assert {s["sessionId"] for s in ended["sessions"]} == {"a-1", "a-2"}
    status, beta = await get(server, "/sessions?status=ended", BETA_READ)
    assert beta == {"count": 0, "sessions": [], "nextCursor": None}  # beta's is still active
    status, beta = await get(server, "/sessions?status=active&limit=5", BETA_READ)
    assert [s["sessionId"] for s in beta["sessions"]] == ["b-1"]
    # acme's page cursor names a position in acme's listing: beta gets only its own with it.
    status, first = await get(server, "/sessions?limit=1", ACME_READ)
    status, beta = await get(server, f"/sessions?cursor={first['nextCursor']}", BETA_READ)
    assert status == 200 and {s["sessionId"] for s in beta["sessions"]} <= {"b-1"}
    assert (await get(server, "/sessions?status=bogus", ACME_READ))[0] == 400
    assert (await get(server, "/sessions", "not-a-token"))[0] == 401
