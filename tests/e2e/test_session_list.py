"""``GET /sessions`` as the viewer's session list queries it: filters by
user, URL, time, live and duration, pages by cursor, and 400 for what it
cannot read, on SQLite and PostgreSQL, with sessions recorded over the
tracker protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from trio_websocket import open_websocket_url

from e2e.clients import get_json, http, recv_json, send_batches, ws_url
from e2e.storages import database_url  # noqa: F401  (runs every test on each backend)
from replaywire import Server
from rrweb import session_events, start_message

VISITS = [  # (session id, user id, first URL, ended)
    ("s-home", "u-1", "https://shop.example/", True),
    ("s-checkout", "u-2", "https://shop.example/checkout?step=2", True),
    ("s-blog", "u-1", "https://blog.example/post", False),
]


async def record_visits(server: Server) -> None:
    async with open_websocket_url(ws_url(server)) as ws:
        for sid, user, url, ended in VISITS:
            await ws.send_message(start_message(sid, userId=user, url=url))
            assert (await recv_json(ws))["type"] == "session_started"
            await send_batches(ws, sid, list(session_events(20)), batch=10)
            if ended:
                await ws.send_message(
                    json.dumps({"type": "session_end", "data": {"sessionId": sid}})
                )
                assert (await recv_json(ws))["type"] == "session_ended"
    await server.hub.writer.flush()  # the ends are stored with the next flush


async def listed(server: Server, **query: Any) -> dict[str, Any]:
    page: dict[str, Any] = await get_json(server, "/sessions?" + urlencode(query))
    return page


async def ids(server: Server, **query: Any) -> list[str]:
    return [s["sessionId"] for s in (await listed(server, **query))["sessions"]]


async def test_filters_and_rows(server: Server) -> None:
    await record_visits(server)
    everything = await listed(server)
    assert [s["sessionId"] for s in everything["sessions"]] == ["s-blog", "s-checkout", "s-home"]
    assert everything["nextCursor"] is None
    row = everything["sessions"][0]
    assert (row["userId"], row["url"], row["eventCount"]) == (
        "u-1",
        "https://blog.example/post",
        20,
    )
    assert (row["live"], row["viewers"], row["status"]) == (True, 0, "active")
    assert row["startedAt"] and row["lastEventAt"]

    assert await ids(server, user="u-1") == ["s-blog", "s-home"]
    assert await ids(server, url="checkout") == ["s-checkout"]
    assert await ids(server, url="shop.example", user="u-1") == ["s-home"]
    assert await ids(server, live="true") == ["s-blog"]
    assert await ids(server, live="false") == ["s-checkout", "s-home"]
    assert await ids(server, min_duration=3600) == []
    assert await ids(server, min_duration=0) == ["s-blog", "s-checkout", "s-home"]
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    assert await ids(server, since=(now - hour).isoformat(), until=(now + hour).isoformat()) == [
        "s-blog",
        "s-checkout",
        "s-home",
    ]
    assert await ids(server, since=int((now + hour).timestamp() * 1000)) == []
    assert await ids(server, until=(now - hour).strftime("%Y-%m-%d")) == []


async def test_pages_by_cursor(server: Server) -> None:
    await record_visits(server)
    seen, cursor = [], ""
    for _ in range(5):
        page = await listed(server, limit=1, cursor=cursor)
        seen += [s["sessionId"] for s in page["sessions"]]
        if page["nextCursor"] is None:
            break
        cursor = page["nextCursor"]
    assert seen == ["s-blog", "s-checkout", "s-home"]
    # The cursor carries on with the same filters.
    first = await listed(server, user="u-1", limit=1)
    second = await listed(server, user="u-1", limit=1, cursor=first["nextCursor"])
    assert [s["sessionId"] for s in first["sessions"] + second["sessions"]] == ["s-blog", "s-home"]
    assert second["nextCursor"] is None


async def test_what_cannot_be_read_is_a_400_naming_it(server: Server) -> None:
    for query, name in [
        ("since=yesterday", "since"),
        ("until=99999999999999999", "until"),
        ("min_duration=-1", "min_duration"),
        ("min_duration=soon", "min_duration"),
        ("live=maybe", "live"),
        ("live=true&status=ended", "live"),
        ("cursor=not-a-cursor", "cursor"),
        ("user=a%00b", "user"),
    ]:
        status, _, body = await http(server, f"/sessions?{query}")
        error = json.loads(body)["error"]
        assert (status, error["code"]) == (400, "bad_parameter"), query
        assert error["message"].startswith(name), (query, error)
