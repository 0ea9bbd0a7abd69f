"""``encode_chunks_copy`` against a real PostgreSQL.

Every stream is COPYed into a temporary table with the 12 columns and types
the encoder promises, and the rows are read back (in binary, so floats and
times come back bit for bit) and compared field by field with the chunks put
in: hand-picked edge cases, a few-MB payload, timestamp rounding and the
``timestamptz`` range edges, then hypothesis over random chunks. Then the
KeyError and ValueError cases, which must refuse before anything is written.

The server is ``REPLAYWIRE_TEST_POSTGRES_URL`` (default: the local one, trust
auth). If it is not reachable these tests fail: they are the only proof that
PostgreSQL reads the stream as meant, and a skip would hide that.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replaywire._core import encode_chunks_copy
from replaywire.storage.base import Chunk

POSTGRES_URL = os.environ.get(
    "REPLAYWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

COLUMNS = (
    ("session_id", "text"),
    ("session_started_at", "timestamptz"),
    ("seq", "int8"),
    ("first_index", "int8"),
    ("last_index", "int8"),
    ("event_count", "int4"),
    ("first_ts", "float8"),
    ("last_ts", "float8"),
    ("codec", "text"),
    ("received_at", "timestamptz"),
    ("stored_at", "timestamptz"),
    ("payload", "bytea"),
)
NAMES = ", ".join(name for name, _ in COLUMNS)

# Python's datetime covers years 1..9999; PostgreSQL's timestamptz far more.
FIRST_DATETIME = datetime(1, 1, 2, tzinfo=UTC).timestamp()
LAST_DATETIME = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
# PostgreSQL's MIN_TIMESTAMP (4714-11-24 BC) and END_TIMESTAMP (294277-01-01,
# exclusive) in Unix seconds.
PG_FIRST = -210_866_803_200.0
PG_END = 9_224_318_016_000.0

NOW = 1_714_564_800.25  # 2024-05-01T12:00:00.250Z


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[Any]]:
    try:
        connection = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable: {e}")
    with connection:
        connection.execute("SET TimeZone TO 'UTC'")
        columns = ", ".join(f"{name} {pg_type}" for name, pg_type in COLUMNS)
        # `n` keeps COPY order; it is not in the COPY column list.
        connection.execute(
            f"CREATE TEMP TABLE chunks (n int8 GENERATED ALWAYS AS IDENTITY, {columns})"
        )
        yield connection


def copy_and_read(
    conn: psycopg.Connection[Any], data: bytes, select: str = NAMES
) -> list[tuple[Any, ...]]:
    """COPY ``data`` into the emptied table; the rows back, in COPY order."""
    with conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute("TRUNCATE chunks")
        with cur.copy(f"COPY chunks ({NAMES}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(data)
        return cur.execute(f"SELECT {select} FROM chunks ORDER BY n").fetchall()


def utc(seconds: float) -> datetime:
    """What the column must hold: CPython rounds to the microsecond, half to
    even, and the encoder promises the same."""
    return datetime.fromtimestamp(seconds, UTC)


def float_bits(value: float | None) -> bytes | None:
    """Compare floats bit for bit: NaN and -0.0 must survive as they are."""
    return None if value is None else struct.pack(">d", value)


def expected_row(
    chunk: Chunk, started_at: Mapping[str, float], stored_at: float
) -> tuple[Any, ...]:
    return (
        chunk.session_id,
        utc(started_at[chunk.session_id]),
        chunk.seq,
        chunk.first_index,
        chunk.first_index + chunk.event_count - 1,
        chunk.event_count,
        float_bits(chunk.first_timestamp),
        float_bits(chunk.last_timestamp),
        chunk.codec,
        None if chunk.received_at is None else utc(chunk.received_at),
        utc(stored_at),
        chunk.payload,
    )


def as_compared(row: tuple[Any, ...]) -> tuple[Any, ...]:
    fields = list(row)
    fields[6], fields[7] = float_bits(fields[6]), float_bits(fields[7])
    return tuple(fields)


def check_round_trip(
    conn: psycopg.Connection[Any],
    chunks: Sequence[Chunk],
    started_at: Mapping[str, float],
    stored_at: float,
) -> None:
    rows = copy_and_read(conn, encode_chunks_copy(chunks, started_at, stored_at))
    assert len(rows) == len(chunks)
    for chunk, row in zip(chunks, rows, strict=True):
        assert as_compared(row) == expected_row(chunk, started_at, stored_at)


def make_chunk(session_id: str = "s1", **fields: Any) -> Chunk:
    values: dict[str, Any] = {
        "seq": 0,
        "first_index": 0,
        "event_count": 2,
        "first_timestamp": 1_714_564_790_000.0,
        "last_timestamp": 1_714_564_790_500.5,
        "codec": "none",
        "payload": b'[{"type":4,"timestamp":1},{"type":2,"timestamp":2}]',
        "received_at": NOW - 0.5,
    }
    values.update(fields)
    return Chunk(session_id=session_id, **values)


# --- streams PostgreSQL reads as meant -------------------------------------------


def test_rows_round_trip(conn: psycopg.Connection[Any]) -> None:
    big = bytes(range(256)) * (16 * 1024)  # 4 MiB, every byte value
    sid = "séance-日本-🎬"
    chunks = [
        make_chunk(),
        make_chunk(
            seq=1,
            first_index=2,
            event_count=1,
            first_timestamp=None,
            last_timestamp=None,
            received_at=None,  # stored before replaywire recorded it
        ),
        make_chunk(seq=2, first_index=3, event_count=0, payload=b"", codec=""),
        make_chunk(sid, seq=-5, first_index=2**40, event_count=2**31 - 1, payload=big),
        make_chunk(sid, seq=2**63 - 1, first_index=-(2**63), event_count=1, codec="zstd"),
        make_chunk("", last_timestamp=None, payload=b"\x00\xff\x00"),
    ]
    started_at = {"s1": NOW - 60.5, sid: 0.0, "": -1.000_000_5}
    check_round_trip(conn, chunks, started_at, NOW)


def test_an_empty_flush_is_a_valid_stream(conn: psycopg.Connection[Any]) -> None:
    data = encode_chunks_copy([], {}, NOW)
    assert data == b"PGCOPY\n\xff\r\n\x00" + bytes(8) + b"\xff\xff"
    assert copy_and_read(conn, data) == []


def test_float_timestamps_are_stored_bit_for_bit(conn: psycopg.Connection[Any]) -> None:
    odd = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    chunks = [
        make_chunk(seq=i, first_timestamp=a, last_timestamp=b)
        for i, (a, b) in enumerate(zip(odd, reversed(odd), strict=True))
    ]
    check_round_trip(conn, chunks, {"s1": NOW}, NOW)


def micros(column: str) -> str:
    """SQL for a timestamptz column's wire value, µs since 2000-01-01 UTC.
    Through an interval: PostgreSQL 15's ``extract(epoch FROM timestamptz)``
    loses digits near the end of the range."""
    return f"(extract(epoch FROM {column} - TIMESTAMPTZ '2000-01-01 00:00:00+00') * 1000000)::int8"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (946_684_800.0, 0),
        (946_684_800.007_812_5, 7812),  # an exact half: to even
        (946_684_800.023_437_5, 23438),
        (NOW + 0.123_456_7, 767_880_000_373_457),
        (-1.5e-6, -946_684_800_000_002),
    ],
)
def test_times_round_to_the_nearest_microsecond(
    conn: psycopg.Connection[Any], seconds: float, expected: int
) -> None:
    data = encode_chunks_copy([make_chunk(received_at=seconds)], {"s1": seconds}, seconds)
    select = (
        f"{micros('session_started_at')}, {micros('stored_at')}, {micros('received_at')},"
        " session_started_at"
    )
    [(started_micros, stored_micros, received_micros, started)] = copy_and_read(conn, data, select)
    assert started_micros == stored_micros == received_micros == expected
    assert started == utc(seconds)


@pytest.mark.parametrize("seconds", [PG_FIRST, PG_FIRST + 0.5, PG_END - 0.01])
def test_timestamptz_range_edges_are_accepted(
    conn: psycopg.Connection[Any], seconds: float
) -> None:
    data = encode_chunks_copy([make_chunk()], {"s1": seconds}, seconds)
    select = f"{micros('session_started_at')}, {micros('stored_at')}"
    [(started, stored)] = copy_and_read(conn, data, select)
    # The float's exact value, in µs from 2000, rounded half to even.
    expected = round((Decimal(seconds) - 946_684_800) * 1_000_000)
    assert started == stored == expected


@pytest.mark.parametrize("seconds", [PG_FIRST - 0.01, PG_END, 1e300, -1e300])
def test_times_postgres_would_refuse_are_value_errors(seconds: float) -> None:
    with pytest.raises(ValueError, match="outside PostgreSQL's timestamptz range"):
        encode_chunks_copy([make_chunk()], {"s1": NOW}, seconds)
    with pytest.raises(ValueError, match=r"chunk 0 .*session_started_at: .* outside"):
        encode_chunks_copy([make_chunk()], {"s1": seconds}, NOW)
    with pytest.raises(ValueError, match=r"chunk 0 .*received_at: .* outside"):
        encode_chunks_copy([make_chunk(received_at=seconds)], {"s1": NOW}, NOW)


# --- hypothesis --------------------------------------------------------------------

session_ids = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters=["\x00"]), max_size=24
)
times = st.floats(FIRST_DATETIME, LAST_DATETIME)
INT8 = 2**63


@st.composite
def flushes(draw: st.DrawFn) -> tuple[list[Chunk], dict[str, float], float]:
    started_at = draw(st.dictionaries(session_ids, times, min_size=1, max_size=3))
    chunks = []
    for seq in range(draw(st.integers(0, 6))):
        event_count = draw(st.integers(0, 2**31 - 1))
        chunks.append(
            Chunk(
                session_id=draw(st.sampled_from(sorted(started_at))),
                seq=draw(st.integers(-INT8, INT8 - 1) | st.just(seq)),
                first_index=draw(st.integers(-INT8 + 1, min(INT8 - 1, INT8 - event_count))),
                event_count=event_count,
                first_timestamp=draw(st.none() | st.floats()),
                last_timestamp=draw(st.none() | st.floats()),
                codec=draw(st.sampled_from(["none", "zstd"]) | session_ids),
                payload=draw(st.binary(max_size=4096)),
                received_at=draw(st.none() | times),
            )
        )
    return chunks, started_at, draw(times)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flushes())
def test_random_flushes_round_trip(
    conn: psycopg.Connection[Any], flush: tuple[list[Chunk], dict[str, float], float]
) -> None:
    check_round_trip(conn, *flush)


# --- refusals ---------------------------------------------------------------------


def test_a_chunk_of_an_unknown_session_is_a_key_error() -> None:
    chunks = [make_chunk("known"), make_chunk("gone")]
    for started_at in ({"known": NOW}, MappingProxyType({"known": NOW})):
        with pytest.raises(KeyError) as e:
            encode_chunks_copy(chunks, started_at, NOW)
        assert e.value.args == ("gone",)


def test_any_mapping_of_start_times_is_read(conn: psycopg.Connection[Any]) -> None:
    check_round_trip(conn, [make_chunk()], MappingProxyType({"s1": 100}), NOW)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"seq": 2**63},
            r"chunk 1 \(session \"s1\"\): seq 9223372036854775808 does not fit in int8",
        ),
        ({"first_index": -(2**63) - 1}, "first_index .* does not fit in int8"),
        ({"event_count": 2**31}, "event_count 2147483648 does not fit in int4"),
        ({"event_count": -1}, "event_count -1 is negative"),
        ({"first_index": 2**63 - 1, "event_count": 2}, "last_index .* does not fit in int8"),
        ({"session_id": "a\x00b"}, "session_id contains a NUL character"),
        ({"codec": "z\x00"}, "codec contains a NUL character"),
    ],
)
def test_values_postgres_would_refuse_are_value_errors(
    fields: dict[str, Any], message: str
) -> None:
    bad = replace(make_chunk(), **fields)
    started_at = {"s1": NOW, bad.session_id: NOW}
    with pytest.raises(ValueError, match=message):
        encode_chunks_copy([make_chunk(), bad], started_at, NOW)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf])
def test_non_finite_times_are_value_errors(seconds: float) -> None:
    with pytest.raises(ValueError, match=r"stored_at: .* is not a finite number of seconds"):
        encode_chunks_copy([make_chunk()], {"s1": NOW}, seconds)
    with pytest.raises(ValueError, match=r"session_started_at: .* is not a finite"):
        encode_chunks_copy([make_chunk()], {"s1": seconds}, NOW)
    with pytest.raises(ValueError, match=r"received_at: .* is not a finite"):
        encode_chunks_copy([make_chunk(received_at=seconds)], {"s1": NOW}, NOW)


def test_text_that_is_not_utf8_is_a_value_error() -> None:
    # A lone surrogate cannot be encoded; UnicodeEncodeError is a ValueError.
    lone = "\udc80"
    with pytest.raises(ValueError):
        encode_chunks_copy([make_chunk(lone)], {lone: NOW}, NOW)


def test_wrong_field_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        encode_chunks_copy([make_chunk(payload="not bytes")], {"s1": NOW}, NOW)
    with pytest.raises(TypeError):
        encode_chunks_copy([make_chunk(seq=1.5)], {"s1": NOW}, NOW)
