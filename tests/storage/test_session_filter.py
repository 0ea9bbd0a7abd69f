"""GET /sessions' filters in every backend (SQLite on a file, memory, and
PostgreSQL on a real server): by user, URL substring, time range, status
and minimum duration, and pages by cursor that neither repeat nor skip a
session, also among sessions that started at the same time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaywire.storage import MemoryStorage, SessionFilter, SessionRecord, SqliteStorage, Storage

from .factories import T0, make_session


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    backend: Storage
    if request.param == "postgres":  # opened, emptied and closed by its fixture
        yield request.getfixturevalue("postgres_storage")
        return
    backend = (
        SqliteStorage(tmp_path / "replaywire.db") if request.param == "sqlite" else MemoryStorage()
    )
    backend.open()
    yield backend
    backend.close()


def shop() -> list[SessionRecord]:
    """Six sessions of two tenants: users, pages, lengths, one still live."""
    return [
        make_session("acme:a", T0, user_id="u-1", url="https://shop.example/", status="ended",
                     ended_at=T0 + 5, last_event_at=T0 + 5),
        make_session("acme:b", T0 + 60, user_id="u-2", url="https://shop.example/checkout?step=2",
                     status="ended", ended_at=T0 + 60 + 300, last_event_at=T0 + 60 + 299),
        make_session("acme:c", T0 + 120, user_id="u-1", url="https://shop.example/Checkout",
                     last_event_at=T0 + 120 + 90),  # live: its duration runs to the last event
        make_session("acme:d", T0 + 180, user_id=None, url=None),
        make_session("acme:e", T0 + 240, user_id="u-1", url="https://blog.example/checkout",
                     status="ended", ended_at=T0 + 240 + 30, last_event_at=T0 + 240 + 30),
        make_session("other:x", T0 + 90, user_id="u-1", url="https://shop.example/checkout"),
    ]  # fmt: skip


def ids(storage: Storage, where: SessionFilter, **kw: object) -> list[str]:
    return [r.session_id for r in storage.list_sessions(prefix="acme:", where=where, **kw)]  # type: ignore[arg-type]


def test_each_filter_alone_and_together(storage: Storage) -> None:
    storage.write(shop(), [], [])
    assert ids(storage, SessionFilter()) == ["acme:e", "acme:d", "acme:c", "acme:b", "acme:a"]
    assert ids(storage, SessionFilter(user_id="u-1")) == ["acme:e", "acme:c", "acme:a"]
    assert ids(storage, SessionFilter(user_id="u-")) == []  # exact, not a prefix
    # A substring of the first URL, case-sensitive, with no wildcards.
    assert ids(storage, SessionFilter(url="checkout")) == ["acme:e", "acme:b"]
    assert ids(storage, SessionFilter(url="%")) == []
    assert ids(storage, SessionFilter(url="?step=")) == ["acme:b"]
    # since inclusive, until exclusive, on the start time.
    assert ids(storage, SessionFilter(since=T0 + 60, until=T0 + 180)) == ["acme:c", "acme:b"]
    # Ended sessions to their end, live ones to their last event.
    assert ids(storage, SessionFilter(min_duration=90)) == ["acme:c", "acme:b"]
    assert ids(storage, SessionFilter(min_duration=30)) == ["acme:e", "acme:c", "acme:b"]
    assert ids(storage, SessionFilter(user_id="u-1"), status="active") == ["acme:c"]
    both = SessionFilter(user_id="u-1", url="shop.example", min_duration=1)
    assert ids(storage, both) == ["acme:c", "acme:a"]


def test_pages_by_cursor_cover_every_session_once(storage: Storage) -> None:
    # Twelve sessions, four starting in the same microsecond: the cursor
    # orders them by id too.
    records = [make_session(f"acme:{i:02d}", T0 + 0.000001 * (i // 4 * 4)) for i in range(12)]
    storage.write(records, [], [])
    seen: list[str] = []
    where = SessionFilter()
    while page := storage.list_sessions(prefix="acme:", where=where, limit=5):
        seen += [r.session_id for r in page]
        last = page[-1]
        where = SessionFilter(before=(last.started_at, last.session_id))
    assert seen == [
        r.session_id
        for r in sorted(records, key=lambda r: (r.started_at, r.session_id), reverse=True)
    ]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user=st.sampled_from([None, "u-1", "u-2"]),
    url=st.sampled_from([None, "shop", "checkout", "Checkout", "/"]),
    since=st.sampled_from([None, T0, T0 + 60, T0 + 61]),
    until=st.sampled_from([None, T0 + 120, T0 + 241]),
    min_duration=st.sampled_from([None, 0, 5, 31, 300]),
)
def test_sql_answers_as_the_python_rule(
    tmp_path_factory: pytest.TempPathFactory,
    user: str | None, url: str | None, since: float | None, until: float | None,
    min_duration: float | None,
) -> None:  # fmt: skip
    """SQLite's WHERE clause and SessionFilter.matches (the memory backend's) agree."""
    where = SessionFilter(user, url, since, until, min_duration)
    sqlite = SqliteStorage(tmp_path_factory.mktemp("filter") / "replaywire.db")
    sqlite.open()
    try:
        sqlite.write(shop(), [], [])
        expected = [r.session_id for r in sorted(shop(), key=lambda r: r.started_at, reverse=True)
                    if r.session_id.startswith("acme:") and where.matches(r)]  # fmt: skip
        assert ids(sqlite, where) == expected
    finally:
        sqlite.close()
