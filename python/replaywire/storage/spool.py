"""The local-disk spool: where the writer keeps accepted data while storage is down.

When PostgreSQL is unreachable the writer appends each flush here, fsyncs it,
and only then acknowledges it; when the database returns it drains the spool
into storage oldest first, and on start it replays a spool a crash left
behind. Storage writes are idempotent, so replaying a record twice is
harmless, but order is not: a later session record must win. The spool
therefore only ever hands out records in append order, and forgets them only
when told (:meth:`Spool.consume`).

On-disk format
--------------
A spool is a directory holding ``spool.lock`` (see :meth:`Spool.open`) and
segment files ``spool-{n:012d}.seg``, n increasing: records are appended to
the highest-numbered one and read from the lowest. A segment is a plain
sequence of records, nothing before or between them. Each record is::

    offset  size  field (little-endian)
    0       4     magic b"RWSP"
    4       1     format version (1)
    5       3     zero
    8       8     body length L (u64)
    16      4     zlib.crc32 of the body
    20      4     zlib.crc32 of bytes 0..20 (the header itself)
    24      L     body

The header checksum is an addition to a bare length + CRC frame: it lets
:meth:`Spool.open` tell a damaged length field (corruption) from a record
the file ends inside of (a torn append).

The body (version 1) is::

    u32 M, then M bytes of JSON (UTF-8, surrogates passed through),
    then the chunks' payloads, raw and concatenated in chunk order

and the JSON is ``{"s": [names, rows], "c": [names, rows, payload_lengths],
"e": [names, rows]}`` for sessions, chunks and errors: ``names`` are the
dataclass field names (the chunk's without ``payload``) and each row holds
the values in that order. Naming the fields in every record lets a server
replay a spool written before its dataclasses gained a defaulted field.
Python's JSON round-trips str (even lone surrogates), None, int of any size
and finite floats exactly; a NaN or infinity is written as ``{"f64": bits}``
(its IEEE-754 bits as an unsigned int), so every float survives bit for bit.
Payloads are never escaped or copied into the JSON.

Damage found by :meth:`Spool.open`: a record that fails its checks at the
end of the *last* segment, with no valid record after it, is what a crash in
the middle of an append leaves; it was never acknowledged, so it is cut off
and logged (``spool_tail_truncated``). Anything else (a bad record followed
by valid ones, a bad record in an older segment, an unknown version) raises
:class:`StorageError` rather than skip data. A corrupted *last* record is
indistinguishable from a torn one and is dropped the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import math
import mmap
import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import structlog

from .base import Chunk, SessionError, SessionRecord, StorageError

MiB = 1 << 20
MAGIC = b"RWSP"
VERSION = 1
LOCK_NAME = "spool.lock"

_HEAD = struct.Struct("<4sB3xQI")  # magic, version, body length, body CRC
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_U64 = struct.Struct("<Q")
HEADER_SIZE = _HEAD.size + _U32.size  # 24: the header CRC closes it
_SEGMENT_NAME = re.compile(r"spool-(\d{12})\.seg")
_COALESCE = 256 * 1024  # parts smaller than this are gathered into one write()
_NON_FINITE = "f64"

_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(SessionRecord))
_CHUNK_FIELDS = tuple(f.name for f in dataclasses.fields(Chunk) if f.name != "payload")
_ERROR_FIELDS = tuple(f.name for f in dataclasses.fields(SessionError))
_session_row = attrgetter(*_SESSION_FIELDS)
_chunk_row = attrgetter(*_CHUNK_FIELDS)
_error_row = attrgetter(*_ERROR_FIELDS)

log = structlog.get_logger("replaywire.spool")


@dataclass(frozen=True, slots=True)
class SpoolPosition:
    """Opaque: a place in the spool, just after a record. Only meaningful to
    the :class:`Spool` that handed it out."""

    segment: int  # segment number
    offset: int  # byte offset in that segment
    index: int  # records in that segment before ``offset``


@dataclass(frozen=True, slots=True)
class SpoolSlice:
    """What :meth:`Spool.read` returns: consecutive records, merged."""

    sessions: list[SessionRecord]  # latest record per session_id, in order of last appearance
    chunks: list[Chunk]  # in append order
    errors: list[SessionError]  # in append order
    records: int  # how many appended records it covers
    nbytes: int  # bytes of spool it covers (on-disk, framing included)
    end: SpoolPosition  # just after the last covered record: hand it to consume()


@dataclass(slots=True)
class _Segment:
    number: int
    path: Path
    size: int = 0  # bytes of complete records
    records: int = 0
    consumed: int = 0  # offset of the first unconsumed record
    consumed_records: int = 0


class Spool:
    """An append-only, fsynced, crash-safe queue of flushes on local disk.

    Blocking API, meant for ONE worker thread at a time: the writer
    serialises every call, so nothing here locks. The exception is the
    accounting (:attr:`nbytes`, :attr:`records`, :attr:`empty`,
    :meth:`has_room`), which only reads memory and may be asked from the
    event loop while a call runs in the thread: the answer is then a moment
    stale, never an error (the segment list is replaced, never changed in
    place). ``max_bytes`` is a soft
    limit the writer asks about with :meth:`has_room` before accepting data;
    :meth:`append` never refuses data for lack of room, since data the writer
    already accepted must be kept somewhere.

    Resource handling: :meth:`open` takes an exclusive ``flock`` on
    ``spool.lock`` in the directory (so two servers never share a spool) and
    :meth:`close` releases it along with the open segment; close is
    idempotent and the spool can be opened again. Other methods on a spool
    that is not open raise :class:`StorageError` (not retryable).

    Error handling: only :class:`StorageError` is raised (and ValueError for
    a :class:`SpoolPosition` this spool never handed out). I/O faults while
    appending, reading or deleting are retryable and leave the spool as it
    was: a failed append is cut back off the segment before the error is
    raised. Corruption and data that cannot be encoded are not retryable.
    """

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 64 * MiB) -> None:
        if max_bytes < 0 or segment_bytes < 1:
            raise ValueError("need max_bytes >= 0 and segment_bytes >= 1")
        self._directory = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []  # oldest first; the last one takes appends
        self._next_number = 1
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the last segment, opened for appending
        self._torn = False  # a failed append could not be cut back off yet
        self._doomed: list[Path] = []  # consumed segments still to delete

    # --- lifecycle ---------------------------------------------------------------

    def open(self) -> None:
        """Create the directory, lock it, and check every record on disk (see
        the module docstring for what happens to damage). Raises
        :class:`StorageError` (not retryable) if the directory is unusable,
        another process holds its lock, or a segment is corrupt; on error
        nothing stays held."""
        if self._lock_fd is not None:
            raise StorageError(f"spool {self._directory} is already open")
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            lock_fd = os.open(
                self._directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise StorageError(f"cannot open spool directory {self._directory}: {exc}") from exc
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError(
                    f"spool directory {self._directory} is locked: another process holds it"
                ) from None
            segments = self._scan()
        except BaseException:
            os.close(lock_fd)
            raise
        self._lock_fd = lock_fd
        self._segments = segments
        self._next_number = segments[-1].number + 1 if segments else 1
        self._fd = None
        self._torn = False
        self._doomed = []

    def close(self) -> None:
        """Release the open segment and the lock; idempotent. Consumed
        segments whose deletion failed are tried once more (see
        :meth:`consume`)."""
        if self._lock_fd is None:
            return
        if self._doomed:
            try:
                self._delete_doomed()
            except StorageError as exc:
                log.warning("spool_delete_failed", error=exc.message)
        self._close_segment()
        os.close(self._lock_fd)
        self._lock_fd = None

    # --- accounting --------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Bytes of records not yet consumed, framing included."""
        return sum(s.size - s.consumed for s in self._segments)

    @property
    def records(self) -> int:
        """Records not yet consumed."""
        return sum(s.records - s.consumed_records for s in self._segments)

    @property
    def empty(self) -> bool:
        return self.records == 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def has_room(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more would stay within ``max_bytes``."""
        return self.nbytes + nbytes <= self._max_bytes

    # --- appending ---------------------------------------------------------------

    def append(
        self,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        errors: Sequence[SessionError],
    ) -> int:
        """Write one record at the end of the spool and fsync it; return its
        size on disk. Once this returns the record survives a crash.

        Raises :class:`StorageError`: retryable on I/O faults (disk full, the
        directory gone), with nothing of the record left in the spool; not
        retryable if the data cannot be encoded or the open segment was
        deleted behind the spool's back."""
        self._check_open()
        try:
            parts = _encode(sessions, chunks, errors)
        except (TypeError, ValueError, OverflowError) as exc:
            raise StorageError(f"cannot spool this data: {exc}") from exc
        length = 0
        crc = 0
        for part in parts:
            length += len(part)
            crc = zlib.crc32(part, crc)
        header = _header(length, crc)
        size = HEADER_SIZE + length
        segment, fd = self._segment_for(size)
        try:
            _write_parts(fd, [header, *parts])
            os.fsync(fd)
        except OSError as exc:
            self._cut_back(segment, fd)
            raise StorageError(
                f"spool append to {segment.path} failed: {exc}", retryable=True
            ) from exc
        segment.size += size
        segment.records += 1
        return size

    def _segment_for(self, size: int) -> tuple[_Segment, int]:
        """The segment to append ``size`` bytes to, and its descriptor."""
        if self._segments:
            segment = self._segments[-1]
            try:
                if self._fd is None:
                    self._fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
                if self._torn:
                    os.ftruncate(self._fd, segment.size)
                    self._torn = False
                gone = os.fstat(self._fd).st_nlink == 0
            except OSError as exc:
                raise StorageError(
                    f"spool segment {segment.path} is not writable: {exc}", retryable=True
                ) from exc
            if gone:
                raise StorageError(f"spool segment {segment.path} was deleted by someone else")
            if segment.size == 0 or segment.size + size <= self._segment_bytes:
                return segment, self._fd
        return self._new_segment()

    def _new_segment(self) -> tuple[_Segment, int]:
        number = self._next_number
        self._next_number += 1  # even on failure: a half-made file never gets reused
        path = self._directory / f"spool-{number:012d}.seg"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot create spool segment {path}: {exc}", retryable=True
            ) from exc
        try:
            _fsync_directory(self._directory)  # else the file may vanish in a crash, data and all
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise StorageError(
                f"cannot create spool segment {path}: {exc}", retryable=True
            ) from exc
        self._close_segment()
        self._fd = fd
        segment = _Segment(number, path)
        self._segments = [*self._segments, segment]  # replaced, not changed: see nbytes
        return segment, fd

    def _cut_back(self, segment: _Segment, fd: int) -> None:
        """Remove what a failed append left at the end of ``segment``, now
        or (if that fails too) before the next append, so that no record is
        ever written after a torn one."""
        try:
            os.ftruncate(fd, segment.size)
        except OSError:
            self._torn = True

    # --- reading and consuming -----------------------------------------------------

    def read(self, max_bytes: int) -> SpoolSlice | None:
        """The oldest unconsumed records, merged, stopping after the record
        that brings the slice to ``max_bytes`` (so at least one record, however
        large); None when the spool is empty. Consumes nothing: hand
        ``slice.end`` to :meth:`consume` once the data is stored.

        Raises :class:`StorageError`: retryable on I/O faults, not retryable
        if a record fails its checksum or does not decode."""
        self._check_open()
        sessions: dict[str, SessionRecord] = {}
        chunks: list[Chunk] = []
        errors: list[SessionError] = []
        records = nbytes = 0
        end: SpoolPosition | None = None
        for segment in self._segments:
            if segment.consumed == segment.size:
                continue
            offset, index = segment.consumed, segment.consumed_records
            try:
                with open(segment.path, "rb") as file:
                    file.seek(offset)
                    while offset < segment.size and (end is None or nbytes < max_bytes):
                        size, (s, c, e) = _read_record(file, segment.path, offset)
                        for record in s:
                            sessions.pop(record.session_id, None)  # moves it to the end
                            sessions[record.session_id] = record
                        chunks += c
                        errors += e
                        offset += size
                        index += 1
                        records += 1
                        nbytes += size
                        end = SpoolPosition(segment.number, offset, index)
            except OSError as exc:
                raise StorageError(
                    f"cannot read spool segment {segment.path}: {exc}", retryable=True
                ) from exc
            if end is not None and nbytes >= max_bytes:
                break
        if end is None:
            return None
        return SpoolSlice(list(sessions.values()), chunks, errors, records, nbytes, end)

    def consume(self, end: SpoolPosition) -> None:
        """Forget every record up to ``end``. Segments wholly consumed are
        deleted (and the directory fsynced); for the one ``end`` falls in,
        only an in-memory offset moves, so after a crash that segment is
        replayed from its start (harmless: writes are idempotent and the
        replay ends on the newest data). Consuming an older position again
        is a no-op.

        Raises :class:`StorageError` (retryable) if consumed segments could
        not be deleted. The records count as consumed all the same, but call
        ``consume`` again until it returns before writing newer data to
        storage directly: a leftover segment would be replayed over it after
        a crash. Raises ValueError for a position this spool never made."""
        self._check_open()
        numbers = [s.number for s in self._segments]
        if end.segment in numbers:
            at = numbers.index(end.segment)
            segment = self._segments[at]
            if end.offset > segment.size:
                raise ValueError(f"{end} lies beyond the end of the spool")
            if end.offset > segment.consumed:
                segment.consumed, segment.consumed_records = end.offset, end.index
            if segment.consumed == segment.size:
                at += 1
                if segment is self._segments[-1]:
                    self._close_segment()  # the next append starts a new segment
            self._doomed += [s.path for s in self._segments[:at]]
            self._segments = self._segments[at:]
        elif end.segment >= self._next_number:
            raise ValueError(f"{end} was not handed out by this spool")
        self._delete_doomed()

    def _delete_doomed(self) -> None:
        if not self._doomed:
            return
        try:
            for path in self._doomed:
                path.unlink(missing_ok=True)
            _fsync_directory(self._directory)
        except OSError as exc:
            raise StorageError(
                f"cannot delete consumed spool segments in {self._directory}: {exc}",
                retryable=True,
            ) from exc
        self._doomed.clear()

    # --- helpers -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise StorageError(f"spool {self._directory} is not open")

    def _close_segment(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def _scan(self) -> list[_Segment]:
        """Every segment in the directory, checked, oldest first."""
        try:
            found = sorted(
                (int(match[1]), Path(entry.path))
                for entry in os.scandir(self._directory)
                if (match := _SEGMENT_NAME.fullmatch(entry.name))
            )
            segments = []
            for i, (number, path) in enumerate(found):
                size, records = _check_segment(path, last=i == len(found) - 1)
                segments.append(_Segment(number, path, size, records))
        except OSError as exc:
            raise StorageError(f"cannot read spool directory {self._directory}: {exc}") from exc
        return segments


# --- record framing ----------------------------------------------------------------


def _header(length: int, body_crc: int) -> bytes:
    head = _HEAD.pack(MAGIC, VERSION, length, body_crc)
    return head + _U32.pack(zlib.crc32(head))


def _check_record(view: memoryview, offset: int, size: int, path: Path) -> tuple[int, str, bool]:
    """Check the record at ``offset`` of a segment of ``size`` bytes: return
    ``(end, "", False)`` if it is sound, else ``(-1, why, cut)`` where
    ``cut`` means the file ends inside it. A sound header of an unknown
    version raises: that is a newer server's data, not damage."""
    if size - offset < HEADER_SIZE:
        return -1, "file ends inside the header", True
    magic, version, length, body_crc = _HEAD.unpack_from(view, offset)
    (header_crc,) = _U32.unpack_from(view, offset + _HEAD.size)
    if magic != MAGIC:
        return -1, "bad magic", False
    if zlib.crc32(view[offset : offset + _HEAD.size]) != header_crc:
        return -1, "header checksum mismatch", False
    if version != VERSION:
        raise StorageError(
            f"spool file {path}: record at offset {offset} has format version {version};"
            f" this server reads version {VERSION}"
        )
    end = offset + HEADER_SIZE + length
    if end > size:
        return -1, "file ends inside the body", True
    if zlib.crc32(view[offset + HEADER_SIZE : end]) != body_crc:
        return -1, "body checksum mismatch", False
    return end, "", False


def _check_segment(path: Path, *, last: bool) -> tuple[int, int]:
    """Verify every record of a segment; return (bytes, records) of its
    sound part, cutting a torn tail off the last segment."""
    with open(path, "r+b" if last else "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            return 0, 0
        with (
            mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) as mapped,
            memoryview(mapped) as view,
        ):
            offset = records = 0
            why, cut = "", False
            while offset < size:
                end, why, cut = _check_record(view, offset, size, path)
                if end < 0:
                    break
                offset, records = end, records + 1
            if offset < size and (
                not last or (not cut and _sound_record_after(mapped, view, offset, path))
            ):
                where = "sound records follow it" if last else "a newer segment follows"
                raise StorageError(
                    f"spool file {path} is corrupt at offset {offset} ({why}; {where}, so this"
                    " is no torn append): refusing to skip data; move the file away to start"
                )
        if offset < size:
            file.truncate(offset)
            os.fsync(file.fileno())
            log.warning(
                "spool_tail_truncated",
                path=str(path),
                offset=offset,
                bytes_dropped=size - offset,
                reason=why,
            )
        return offset, records


def _sound_record_after(mapped: mmap.mmap, view: memoryview, offset: int, path: Path) -> bool:
    """Whether a sound record starts anywhere after ``offset`` (``view`` is
    ``mapped``'s whole content)."""
    at = mapped.find(MAGIC, offset + 1)
    while at >= 0:
        if _check_record(view, at, len(view), path)[0] >= 0:
            return True
        at = mapped.find(MAGIC, at + 1)
    return False


def _read_record(
    file: io.BufferedReader, path: Path, offset: int
) -> tuple[int, tuple[list[SessionRecord], list[Chunk], list[SessionError]]]:
    """Read, check and decode the record at the file's position."""
    header = file.read(HEADER_SIZE)
    why = ""
    if len(header) < HEADER_SIZE:
        why = "file ends inside the header"
    else:
        magic, version, length, body_crc = _HEAD.unpack_from(header)
        if magic != MAGIC or version != VERSION:
            why = "bad magic or version"
        elif zlib.crc32(header[: _HEAD.size]) != _U32.unpack_from(header, _HEAD.size)[0]:
            why = "header checksum mismatch"
        else:
            body = bytearray(length)
            if file.readinto(body) != length:
                why = "file ends inside the body"
            elif zlib.crc32(body) != body_crc:
                why = "body checksum mismatch"
            else:
                try:
                    return HEADER_SIZE + length, _decode(memoryview(body))
                except (ValueError, TypeError, KeyError, struct.error) as exc:
                    why = f"body does not decode: {exc!r}"
    raise StorageError(f"spool file {path}: record at offset {offset} is corrupt ({why})")


# --- record bodies -----------------------------------------------------------------


def _encode(
    sessions: Sequence[SessionRecord], chunks: Sequence[Chunk], errors: Sequence[SessionError]
) -> list[bytes]:
    """The body as parts to write one after the other (payloads by
    reference, not copied)."""
    meta = {
        "s": [_SESSION_FIELDS, [_session_row(r) for r in sessions]],
        "c": [_CHUNK_FIELDS, [_chunk_row(c) for c in chunks], [len(c.payload) for c in chunks]],
        "e": [_ERROR_FIELDS, [_error_row(e) for e in errors]],
    }
    try:
        text = json.dumps(meta, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: spell them out bit for bit
        text = json.dumps(_spell_floats(meta), ensure_ascii=False, separators=(",", ":"))
    encoded = text.encode("utf-8", "surrogatepass")
    return [_U32.pack(len(encoded)), encoded, *(c.payload for c in chunks)]


def _decode(body: memoryview) -> tuple[list[SessionRecord], list[Chunk], list[SessionError]]:
    (meta_length,) = _U32.unpack_from(body)
    start = _U32.size + meta_length
    text = str(body[_U32.size : start], "utf-8", "surrogatepass")
    meta = json.loads(text, object_hook=_read_float)
    names, rows = meta["s"]
    sessions = [SessionRecord(**dict(zip(names, row, strict=True))) for row in rows]
    names, rows, lengths = meta["c"]
    if start + sum(lengths) != len(body):
        raise ValueError("payload lengths do not add up to the body")
    chunks = []
    for row, length in zip(rows, lengths, strict=True):
        payload = bytes(body[start : start + length])
        chunks.append(Chunk(**dict(zip(names, row, strict=True)), payload=payload))
        start += length
    names, rows = meta["e"]
    errors = [SessionError(**dict(zip(names, row, strict=True))) for row in rows]
    return sessions, chunks, errors


def _spell_floats(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_NON_FINITE: _U64.unpack(_F64.pack(value))[0]}
    if isinstance(value, list | tuple):
        return [_spell_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: _spell_floats(item) for key, item in value.items()}
    return value


def _read_float(obj: dict[str, Any]) -> Any:
    if _NON_FINITE in obj:
        return _F64.unpack(_U64.pack(obj[_NON_FINITE]))[0]
    return obj


# --- plain I/O ---------------------------------------------------------------------


def _write_parts(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order, gathering small ones into a single write()
    and passing big ones (payloads) straight through."""
    pending = bytearray()
    for part in parts:
        if len(part) >= _COALESCE:
            if pending:
                _write_all(fd, pending)
                pending.clear()
            _write_all(fd, part)
        else:
            pending += part
            if len(pending) >= _COALESCE:
                _write_all(fd, pending)
                pending.clear()
    if pending:
        _write_all(fd, pending)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        written = 0
        while written < len(view):
            n = os.write(fd, view[written:])
            if n <= 0:
                raise OSError(f"write() wrote nothing at byte {written} of {len(view)}")
            written += n


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
