"""The local half of the rate limits: fixed windows, eviction, bounds."""

from __future__ import annotations

from replaywire.limits.concurrency import Concurrency
from replaywire.limits.windows import WindowTable


def table(limit: int = 10, window_ms: int = 1000, max_keys: int = 100) -> WindowTable:
    return WindowTable("events", limit, window_ms, max_keys=max_keys, shared=True)


def test_admits_up_to_the_limit_then_says_when_the_window_ends() -> None:
    t = table()
    w = t.get("s1", 5_250)
    assert w is not None and w.start_ms == 5_000
    assert w.retry_after(6, 5_250) == 0
    w.take(6)
    assert w.retry_after(4, 5_300) == 0
    w.take(4)
    assert w.retry_after(1, 5_400) == 600  # until 6_000
    assert w.unsynced == 10 and w in t.dirty


def test_a_new_window_starts_from_zero() -> None:
    t = table()
    w = t.get("s1", 0)
    assert w is not None
    w.take(10)
    w.remote = 25
    assert w.retry_after(1, 999) == 1
    assert w.retry_after(10, 1_000) == 0
    assert (w.start_ms, w.unsynced, w.remote) == (1_000, 0, 0)


def test_remote_counts_from_other_instances_count_against_the_limit() -> None:
    w = table().get("s1", 0)
    assert w is not None
    w.remote = 8
    assert w.retry_after(3, 10) == 990
    assert w.retry_after(2, 10) == 0


def test_an_empty_window_admits_a_batch_larger_than_the_limit() -> None:
    w = table(limit=10).get("s1", 0)
    assert w is not None
    assert w.retry_after(50, 0) == 0  # else it could never be sent
    w.take(50)
    assert w.retry_after(1, 1) > 0


def test_ended_windows_are_evicted_oldest_first() -> None:
    t = table()
    for i in range(5):
        assert t.get(f"s{i}", i * 300) is not None  # windows 0, 0, 0, 0, 1000
    assert t.evict(1_500) == 4
    assert list(t.windows) == ["s4"]


def test_a_full_table_refuses_new_subjects_until_windows_end() -> None:
    t = table(max_keys=2)
    a, b = t.get("a", 0), t.get("b", 0)
    assert a is not None and b is not None
    assert t.get("c", 500) is None  # full of live windows: refused
    assert t.get("a", 500) is a  # known subjects still served
    assert t.get("c", 1_000) is not None  # a and b ended and were evicted
    assert len(t) == 1


def test_a_rolled_window_moves_to_the_end_of_the_eviction_order() -> None:
    t = table()
    a, _ = t.get("a", 0), t.get("b", 0)
    assert a is not None
    assert a.retry_after(1, 1_200) == 0  # a rolls into window 1000
    assert t.evict(1_200) == 1
    assert list(t.windows) == ["a"]


def test_concurrency_counts_here_and_elsewhere() -> None:
    c = Concurrency(3, max_keys=2, shared=True)
    assert c.acquire("ip1") and c.acquire("ip1")
    c.synced("ip1", 1)
    assert not c.acquire("ip1")  # 2 here + 1 elsewhere
    c.release("ip1")
    assert c.acquire("ip1")
    assert c.acquire("ip2")
    assert not c.acquire("ip3")  # table full
    assert c.dirty == {"ip1", "ip2"}
