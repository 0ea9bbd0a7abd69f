"""The disk spool: exact round trips, order and merging, segments, damage
left by crashes (a real SIGKILLed process among them), accounting, the
directory lock and I/O faults."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from replaywire.storage import Chunk, SessionError, SessionRecord, StorageError
from replaywire.storage.spool import HEADER_SIZE, MAGIC, Spool, SpoolSlice

from .factories import make_chunk, make_error, make_session

Record = tuple[list[SessionRecord], list[Chunk], list[SessionError]]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spool(directory: Path) -> Iterator[Spool]:
    spool = Spool(directory, max_bytes=1 << 30)
    spool.open()
    yield spool
    spool.close()


def opened(directory: Path, **options: Any) -> Spool:
    spool = Spool(directory, **{"max_bytes": 1 << 30, **options})
    spool.open()
    return spool


def record(seq: int, session: SessionRecord | None = None, size: int = 100) -> Record:
    """One flush: a chunk of ``seq`` with a ``size``-byte payload, the session
    and an error."""
    session = make_session(event_count=seq) if session is None else session
    chunk = make_chunk(session.session_id, seq, payload=bytes([seq % 256]) * size)
    return [session], [chunk], [make_error(session.session_id, seq=seq)]


def everything(spool: Spool) -> SpoolSlice:
    read = spool.read(1 << 40)
    assert read is not None
    return read


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("spool-*.seg"))


def exact(value: Any) -> Any:
    """``value`` in a form that compares equal only if every field is
    identical: floats by their bits (NaN included), types kept apart
    (0 vs 0.0 vs False vs None)."""
    if dataclasses.is_dataclass(value):
        return tuple((f.name, exact(getattr(value, f.name))) for f in dataclasses.fields(value))
    if isinstance(value, list | tuple):
        return [exact(item) for item in value]
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, value)


# --- round trips -------------------------------------------------------------------

texts = st.text(
    st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=12
)
floats = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers() | st.integers(-(2**70), 2**70)
payloads = st.binary(max_size=600) | st.binary(max_size=40).map(lambda b: MAGIC + b + MAGIC)
sessions = st.builds(
    SessionRecord,
    session_id=st.sampled_from(["s1", "s2", "", "séance-☃"]) | texts,
    started_at=floats,
    user_id=st.none() | texts,
    url=st.none() | texts,
    user_agent=st.none() | texts,
    referrer=st.none() | texts,
    time_zone=st.none() | texts,
    viewport_width=st.none() | ints,
    viewport_height=st.none() | ints,
    device_pixel_ratio=st.none() | floats,
    client_start_time=st.none() | floats,
    ended_at=st.none() | floats,
    last_event_at=st.none() | floats,
    event_count=ints,
    byte_count=ints,
    status=texts,
    clock_skew_ms=st.none() | floats,
)
chunks = st.builds(
    Chunk,
    session_id=texts,
    seq=ints,
    first_index=ints,
    event_count=ints,
    first_timestamp=st.none() | floats,
    last_timestamp=st.none() | floats,
    codec=st.sampled_from(["none", "zstd", "deflate", ""]) | texts,
    payload=payloads,
    received_at=st.none() | floats,
)
errors = st.builds(
    SessionError, session_id=texts, at=floats, code=texts, message=texts, seq=st.none() | ints
)
records = st.tuples(
    st.lists(sessions, max_size=4), st.lists(chunks, max_size=4), st.lists(errors, max_size=3)
)


@settings(max_examples=40, deadline=None)
@given(st.lists(records, min_size=1, max_size=3))
def test_every_field_round_trips_exactly_through_disk(appended: list[Record]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool = opened(Path(tmp))
        try:
            for s, c, e in appended:
                spool.append(s, c, e)
        finally:
            spool.close()
        spool = opened(Path(tmp))  # read back what a restart would find
        try:
            read = everything(spool)
        finally:
            spool.close()
    latest: dict[str, SessionRecord] = {}
    for s, _, _ in appended:
        for session in s:
            latest.pop(session.session_id, None)
            latest[session.session_id] = session
    assert exact(read.sessions) == exact(list(latest.values()))
    assert exact(read.chunks) == exact([c for _, cs, _ in appended for c in cs])
    assert exact(read.errors) == exact([e for _, _, es in appended for e in es])
    assert read.records == len(appended)


def test_none_zero_and_empty_stay_apart_and_odd_floats_keep_their_bits(spool: Spool) -> None:
    negative_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))[0]
    session = SessionRecord("", -0.0, user_id="", url=None, viewport_width=0)
    session.device_pixel_ratio = negative_nan
    session.client_start_time = float("inf")
    chunk = Chunk("ü\ud800", 0, 0, 0, None, 5e-324, "zstd", b"\x00" + MAGIC + b"\xff")
    spool.append([session], [chunk], [SessionError("", 0.0, "", "", None)])
    spool.append([], [], [])
    read = everything(spool)
    assert exact(read.sessions) == exact([session])
    assert exact(read.chunks) == exact([chunk])
    assert exact(read.errors) == exact([SessionError("", 0.0, "", "", None)])
    assert read.records == 2


def test_a_record_written_before_the_clock_fields_reads_them_as_none(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Write as the server did before chunks had received_at and sessions
    # clock_skew_ms: the record names only the fields it had.
    from operator import attrgetter

    from replaywire.storage import spool as spool_module

    old_sessions = tuple(f for f in spool_module._SESSION_FIELDS if f != "clock_skew_ms")
    old_chunks = tuple(f for f in spool_module._CHUNK_FIELDS if f != "received_at")
    assert len(old_sessions) < len(spool_module._SESSION_FIELDS)
    assert len(old_chunks) < len(spool_module._CHUNK_FIELDS)
    monkeypatch.setattr(spool_module, "_SESSION_FIELDS", old_sessions)
    monkeypatch.setattr(spool_module, "_session_row", attrgetter(*old_sessions))
    monkeypatch.setattr(spool_module, "_CHUNK_FIELDS", old_chunks)
    monkeypatch.setattr(spool_module, "_chunk_row", attrgetter(*old_chunks))
    session = make_session(clock_skew_ms=600_000.0)
    chunk = dataclasses.replace(make_chunk(), received_at=1_714_564_801.5)
    spool.append([session], [chunk], [])
    monkeypatch.undo()
    read = everything(spool)
    assert read.sessions == [dataclasses.replace(session, clock_skew_ms=None)]
    assert read.chunks == [dataclasses.replace(chunk, received_at=None)]


def test_a_megabyte_payload_is_stored_raw_not_escaped(spool: Spool) -> None:
    payload = bytes(range(256)) * 4096
    written = spool.append([], [make_chunk(payload=payload)], [])
    assert written < len(payload) + 1024
    assert everything(spool).chunks[0].payload == payload


# --- order, merging, segments -----------------------------------------------------------


def test_read_merges_sessions_by_last_appearance_and_keeps_append_order(spool: Spool) -> None:
    a1, b1, a2, c1 = (
        make_session("a", event_count=1),
        make_session("b"),
        make_session("a", event_count=2),
        make_session("c"),
    )
    spool.append([a1, b1], [make_chunk("a", 0)], [make_error("a", seq=0)])
    spool.append([a2], [make_chunk("b", 0), make_chunk("a", 1)], [])
    spool.append([c1], [], [make_error("b", seq=3), make_error("a", seq=1)])
    read = everything(spool)
    assert read.sessions == [b1, a2, c1]
    assert [(c.session_id, c.seq) for c in read.chunks] == [("a", 0), ("b", 0), ("a", 1)]
    assert [(e.session_id, e.seq) for e in read.errors] == [("a", 0), ("b", 3), ("a", 1)]


def test_read_stops_after_the_record_that_reaches_max_bytes_and_consumes_nothing(
    spool: Spool,
) -> None:
    assert spool.read(1000) is None and spool.empty
    sizes = [spool.append(*record(seq, size=100 * (seq + 1))) for seq in range(4)]
    one = spool.read(0)
    assert one is not None and (one.records, one.nbytes) == (1, sizes[0])
    exactly_two = spool.read(sizes[0] + sizes[1])
    assert exactly_two is not None and [c.seq for c in exactly_two.chunks] == [0, 1]
    three = spool.read(sizes[0] + sizes[1] + 1)
    assert three is not None and (three.records, three.nbytes) == (3, sum(sizes[:3]))
    assert everything(spool).records == 4 and spool.records == 4  # nothing consumed


def test_read_and_consume_walk_across_segments_and_delete_them(directory: Path) -> None:
    spool = opened(directory, segment_bytes=1)  # a segment per record
    try:
        size = spool.append(*record(0))
        for seq in range(1, 7):
            spool.append(*record(seq))
        assert len(segments(directory)) == 7 and spool.records == 7
        seen = []
        while (read := spool.read(2 * size)) is not None:
            assert read.records == 2 or read.records == 1 == spool.records
            seen += [c.seq for c in read.chunks]
            spool.consume(read.end)
            assert spool.records == 7 - len(seen)
            assert len(segments(directory)) == 7 - len(seen)
        assert seen == list(range(7)) and spool.empty and spool.nbytes == 0
        spool.append(*record(7))  # numbering goes on after the last deleted segment
        assert segments(directory) == ["spool-000000000008.seg"]
        assert [c.seq for c in everything(spool).chunks] == [7]
    finally:
        spool.close()


def test_segments_roll_over_at_segment_bytes_but_a_big_record_gets_one_alone(
    directory: Path,
) -> None:
    probe = opened(directory / "probe")
    small = probe.append(*record(0, size=100))  # records of 100 bytes vary by a few digits
    probe.close()
    spool = opened(directory, segment_bytes=2 * small + small // 2)
    try:
        written = [spool.append(*record(seq, size=100)) for seq in range(3)]
        written.append(spool.append(*record(3, size=5 * small)))  # alone: bigger than a segment
        written.append(spool.append(*record(4, size=100)))
        sizes = [(directory / name).stat().st_size for name in segments(directory)]
        assert sizes == [written[0] + written[1], written[2], written[3], written[4]]
        assert [c.seq for c in everything(spool).chunks] == [0, 1, 2, 3, 4]
    finally:
        spool.close()


def test_partial_consume_is_replayed_from_the_segment_start_after_reopen(
    directory: Path,
) -> None:
    spool = opened(directory, segment_bytes=1 << 20)
    sizes = [spool.append(*record(seq)) for seq in range(5)]
    read = spool.read(sizes[0] + sizes[1])
    assert read is not None
    spool.consume(read.end)
    assert (spool.records, spool.nbytes) == (3, sum(sizes[2:]))
    rest = everything(spool)
    assert [c.seq for c in rest.chunks] == [2, 3, 4]
    spool.consume(read.end)  # an older position again: nothing changes
    assert spool.records == 3
    spool.close()

    spool = opened(directory, segment_bytes=1 << 20)
    try:
        assert (spool.records, spool.nbytes) == (5, sum(sizes))
        assert [c.seq for c in everything(spool).chunks] == [0, 1, 2, 3, 4]
        spool.consume(everything(spool).end)
        assert spool.empty and segments(directory) == []
    finally:
        spool.close()


def test_accounting_follows_appends_consumes_and_reopens(directory: Path) -> None:
    spool = opened(directory, max_bytes=1000, segment_bytes=250)
    sizes = [spool.append(*record(seq, size=10)) for seq in range(3)]
    assert spool.max_bytes == 1000
    assert spool.nbytes == sum(sizes) == sum(p.stat().st_size for p in directory.glob("*.seg"))
    assert spool.has_room(1000 - sum(sizes)) and not spool.has_room(1001 - sum(sizes))
    spool.append(*record(3, size=2000))  # over max_bytes: accepted data is never refused
    assert not spool.has_room(0) and spool.records == 4
    read = spool.read(sizes[0])
    assert read is not None
    spool.consume(read.end)
    total = spool.nbytes
    assert (spool.records, read.nbytes) == (3, sizes[0])
    spool.close()
    spool = opened(directory, max_bytes=1000, segment_bytes=250)
    try:
        # records outgrow 250 bytes, so each has a segment: the consumed one is gone
        assert (spool.records, spool.nbytes) == (3, total) and len(segments(directory)) == 3
    finally:
        spool.close()


def test_consume_rejects_positions_it_never_made(spool: Spool, directory: Path) -> None:
    spool.append(*record(0))
    end = everything(spool).end
    with pytest.raises(ValueError):
        spool.consume(dataclasses.replace(end, offset=end.offset + 1))
    with pytest.raises(ValueError):
        spool.consume(dataclasses.replace(end, segment=end.segment + 1))
    spool.consume(end)
    spool.consume(end)  # idempotent
    assert spool.empty


# --- damage ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "garbage"),
    [(5, b""), (HEADER_SIZE + 3, b""), (HEADER_SIZE + 3, os.urandom(4000)), (-1, b"\x00" * 9)],
    ids=["in-header", "in-body", "in-body-then-garbage", "last-byte-then-zeros"],
)
def test_a_torn_tail_is_cut_off_and_logged(directory: Path, cut: int, garbage: bytes) -> None:
    spool = opened(directory)
    sizes = [spool.append(*record(seq, size=500)) for seq in range(3)]
    spool.close()
    [name] = segments(directory)
    path = directory / name
    keep = sizes[0] + sizes[1]
    with open(path, "r+b") as file:
        file.truncate(keep + cut if cut >= 0 else sum(sizes) + cut)
        file.seek(0, os.SEEK_END)
        file.write(garbage)
    dropped = path.stat().st_size - keep

    with capture_logs() as logs:
        spool = opened(directory)
    try:
        [event] = [e for e in logs if e["event"] == "spool_tail_truncated"]
        assert (event["path"], event["bytes_dropped"]) == (str(path), dropped)
        assert path.stat().st_size == keep and spool.nbytes == keep
        assert [c.seq for c in everything(spool).chunks] == [0, 1]
        spool.append(*record(3))
    finally:
        spool.close()
    spool = opened(directory)
    try:
        assert [c.seq for c in everything(spool).chunks] == [0, 1, 3]
    finally:
        spool.close()


@pytest.mark.parametrize("where", ["magic", "length", "body"])
def test_corruption_mid_segment_raises_naming_file_and_offset(directory: Path, where: str) -> None:
    spool = opened(directory)
    sizes = [spool.append(*record(seq)) for seq in range(3)]
    spool.close()
    [name] = segments(directory)
    path = directory / name
    offset = sizes[0]  # the second record
    flip = offset + {"magic": 0, "length": 9, "body": HEADER_SIZE + 40}[where]
    data = bytearray(path.read_bytes())
    data[flip] ^= 0x01
    path.write_bytes(data)

    with pytest.raises(StorageError) as caught:
        opened(directory)
    assert str(path) in caught.value.message and f"offset {offset}" in caught.value.message
    assert not caught.value.retryable
    assert path.stat().st_size == sum(sizes)  # nothing was cut
    data[flip] ^= 0x01
    path.write_bytes(data)
    opened(directory).close()  # the failed open let go of the lock


def test_damage_at_the_end_of_an_older_segment_raises(directory: Path) -> None:
    spool = opened(directory, segment_bytes=1)
    spool.append(*record(0))
    spool.append(*record(1))
    spool.close()
    older = directory / segments(directory)[0]
    with open(older, "r+b") as file:
        file.truncate(older.stat().st_size - 1)
    with pytest.raises(StorageError, match="corrupt at offset 0"):
        opened(directory)


def test_a_record_of_a_newer_format_version_raises(directory: Path) -> None:
    spool = opened(directory)
    spool.append(*record(0))
    spool.close()
    path = directory / segments(directory)[0]
    data = bytearray(path.read_bytes())
    data[4] = 2
    head = bytes(data[:20])
    data[20:24] = struct.pack("<I", zlib.crc32(head))
    path.write_bytes(data)
    with pytest.raises(StorageError, match="format version 2"):
        opened(directory)


# --- crashes and faults in real processes -----------------------------------------------

CHILD_PRELUDE = """
import sys
from pathlib import Path
from replaywire.storage import Chunk, SessionRecord, StorageError
from replaywire.storage.spool import Spool

def payload(i):
    size = (i * 7919) % 150_000
    return (f"{i}:".encode() * (size // 2 + 1))[:size]

def append(spool, i):
    chunk = Chunk("s1", i, i * 10, 10, i + 0.25, i + 0.75, "none", payload(i))
    return spool.append([SessionRecord("s1", 1.5, event_count=i)], [chunk], [])
"""


def run_child(body: str, *args: str) -> subprocess.Popen[str]:
    code = CHILD_PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kill_after", [3, 40])
def test_every_acknowledged_append_survives_sigkill(directory: Path, kill_after: int) -> None:
    loop = """
        spool = Spool(Path(sys.argv[1]), max_bytes=1 << 40, segment_bytes=400_000)
        spool.open()
        i = 0
        while True:
            append(spool, i)
            print(f"appended {i}", flush=True)
            i += 1
    """
    with run_child(loop, str(directory)) as child:
        assert child.stdout is not None
        reported = -1
        while reported < kill_after:
            line = child.stdout.readline()
            assert line.startswith("appended "), (line, child.stderr and child.stderr.read())
            reported = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
        # Read through the same text wrapper readline() used: it may already
        # hold lines it has not returned (communicate() would skip them).
        rest = child.stdout.read()
        assert child.wait(timeout=30) == -signal.SIGKILL
    for line in rest.splitlines():  # printed before the kill landed
        reported = int(line.removeprefix("appended "))

    spool = opened(directory, segment_bytes=400_000)
    try:
        found = everything(spool)
    finally:
        spool.close()
    seqs = [c.seq for c in found.chunks]
    assert seqs == list(range(len(seqs))) and len(seqs) >= reported + 1
    assert len(seqs) <= reported + 2  # at most the one being acknowledged when killed
    for chunk in found.chunks:
        i = chunk.seq
        size = (i * 7919) % 150_000
        assert chunk.payload == (f"{i}:".encode() * (size // 2 + 1))[:size]
        assert (chunk.first_timestamp, chunk.last_timestamp) == (i + 0.25, i + 0.75)
    assert [s.event_count for s in found.sessions] == [seqs[-1]]


def test_a_failed_append_leaves_nothing_behind(directory: Path) -> None:
    """A write cut short by the file-size limit (as by a full disk): the
    append raises, the partial record is cut back off, and appends after it
    land where they should."""
    body = """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        spool = Spool(Path(sys.argv[1]), max_bytes=1 << 40)
        spool.open()
        append(spool, 1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (spool.nbytes + 4000, resource.RLIM_INFINITY))
        try:
            append(spool, 2)  # 15 KB: only part of it fits
        except StorageError as exc:
            print("failed", exc.retryable, exc.message)
        append(spool, 0)  # an empty payload fits
        print("ok", spool.records)
        spool.close()
    """
    with run_child(body, str(directory)) as child:
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    failed, ok = out.splitlines()
    assert failed.startswith("failed True") and "File too large" in failed
    assert ok == "ok 2"
    with capture_logs() as logs:
        spool = opened(directory)
    try:
        assert [c.seq for c in everything(spool).chunks] == [1, 0]
        assert not [e for e in logs if e["event"] == "spool_tail_truncated"]
    finally:
        spool.close()


# --- the lock, faults, lifecycle ----------------------------------------------------------


def test_the_directory_lock_keeps_a_second_spool_out(spool: Spool, directory: Path) -> None:
    other = Spool(directory, max_bytes=1 << 30)
    with pytest.raises(StorageError, match="another process holds it"):
        other.open()
    probe = """
        try:
            Spool(Path(sys.argv[1]), max_bytes=1).open()
        except StorageError as exc:
            print(exc.message)
    """
    with run_child(probe, str(directory)) as child:
        out, err = child.communicate(timeout=30)
    assert "another process holds it" in out, err
    spool.close()
    other.open()  # free again
    other.close()


@pytest.mark.parametrize("fault", ["removed", "replaced-by-a-file"])
def test_append_raises_when_the_directory_is_gone(directory: Path, fault: str) -> None:
    spool = opened(directory)
    try:
        shutil.rmtree(directory)
        if fault == "replaced-by-a-file":
            directory.write_bytes(b"")
        with pytest.raises(StorageError) as caught:
            spool.append(*record(0))
        assert caught.value.retryable and "cannot create spool segment" in caught.value.message
        assert spool.empty
    finally:
        spool.close()


def test_append_raises_when_its_segment_was_deleted(spool: Spool, directory: Path) -> None:
    spool.append(*record(0))
    shutil.rmtree(directory)  # the open segment would swallow appends silently
    with pytest.raises(StorageError, match="deleted by someone else"):
        spool.append(*record(1))


def test_data_that_cannot_be_encoded_is_refused_without_a_trace(spool: Spool) -> None:
    bad = make_session(url=object())
    with pytest.raises(StorageError, match="cannot spool") as caught:
        spool.append([bad], [], [])
    assert not caught.value.retryable and spool.empty


def test_close_is_idempotent_and_a_closed_spool_refuses_work(directory: Path) -> None:
    spool = opened(directory)
    spool.append(*record(0))
    spool.close()
    spool.close()
    for call in (
        lambda: spool.append(*record(1)),
        lambda: spool.read(1),
        lambda: spool.consume(everything(spool).end),
    ):
        with pytest.raises(StorageError, match="not open"):
            call()
    spool.open()  # and it can be opened again
    try:
        assert [c.seq for c in everything(spool).chunks] == [0]
        with pytest.raises(StorageError, match="already open"):
            spool.open()
    finally:
        spool.close()
