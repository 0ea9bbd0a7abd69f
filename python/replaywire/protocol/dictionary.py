"""The zstd dictionary of ``codec=zstd-dict`` viewers.

A viewer's delta holds a few events (a 50 ms tick): too little for zstd to
find much repetition inside it, while every delta repeats the same rrweb
shapes and the same page's strings. A dictionary trained on past deltas
gives the compressor that context up front; on the rrweb-like corpus it
takes 3-10-event deltas from 3.3x to about 6x (``benches/codecs.py``).

The server loads one dictionary file (``VIEWER_DICTIONARY``, made by
``replaywire train-dictionary`` from stored sessions) and uses it for every
``codec=zstd-dict`` frame. Its id (in the file's header, and in every
frame's header) is told to the viewer in ``viewer_joined``
(``dictionaryId``); the viewer fetches the bytes once from
``GET /dictionaries/{id}``. A trained dictionary holds fragments of the
sessions it was trained on, so that route needs read access, and the
dictionary should be trained on sessions every reader may see (README).
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _core
from ..errors import DictionaryError as DictionaryError

if TYPE_CHECKING:
    from ..storage import Storage

MAGIC = 0xEC30A437  # zstd dictionary header (RFC 8878, section 5), little-endian
DELTA_EVENTS = (3, 10)  # events per training sample: what a viewer's tick holds


@dataclass(frozen=True, slots=True)
class Dictionary:
    id: int
    data: bytes


def parse(data: bytes) -> Dictionary:
    """A trained zstd dictionary: the magic number, then its id (nonzero)."""
    if len(data) < 8:
        raise DictionaryError("too short for a zstd dictionary")
    magic, dict_id = struct.unpack_from("<II", data)
    if magic != MAGIC:
        raise DictionaryError("not a zstd dictionary (bad magic number)")
    if dict_id == 0:
        raise DictionaryError("dictionary id 0 is reserved")
    return Dictionary(dict_id, data)


@functools.cache
def load(path: str) -> Dictionary | None:
    """The dictionary in file ``path`` (read once per process), or None for
    an empty path; :class:`DictionaryError` if it cannot be used."""
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DictionaryError(f"{path}: {exc.strerror or exc}") from None
    try:
        return parse(data)
    except DictionaryError as exc:
        raise DictionaryError(f"{path}: {exc}") from None


def deltas(events: Sequence[bytes], rng: random.Random) -> Iterable[bytes]:
    """``events`` (each one event's JSON) cut into runs of 3 to 10, each
    joined into a JSON array: samples shaped like viewer deltas."""
    i = 0
    while i < len(events):
        n = rng.randint(*DELTA_EVENTS)
        yield b"[" + b",".join(events[i : i + n]) + b"]"
        i += n


def train(samples: Sequence[bytes], size: int) -> Dictionary:
    """A dictionary of at most ``size`` bytes trained on ``samples``
    (``ValueError`` from zstd when there are too few)."""
    return parse(_core.train_dictionary(samples, size))


@dataclass(frozen=True, slots=True)
class Training:
    """What :func:`train_from_storage` made, and how it does on sessions it
    was not trained on: ``ratio_plain`` (zstd alone) against
    ``ratio_dictionary`` on the held-out sessions' deltas (with fewer than
    five sessions none is held out, ``held_out_sessions`` is 0, and the
    ratios are the training deltas': optimistic)."""

    dictionary: Dictionary
    sessions: int
    samples: int
    sample_bytes: int
    held_out_sessions: int
    held_out_deltas: int
    ratio_plain: float
    ratio_dictionary: float


def session_events(storage: Storage, session_id: str, max_events: int) -> list[bytes]:
    """The first ``max_events`` events of a stored session, each as its
    JSON bytes (stored chunks decompressed as needed)."""
    out: list[bytes] = []
    for chunk in storage.read_chunks(session_id, 0, max_events):
        payload = chunk.payload
        if chunk.codec != "none":  # the array's contents, compressed (storage/base.py)
            raw = _core.decompress(chunk.codec, payload, 1 << 30)
            payload = b"[" + raw + b"]"
        out += _core.split_events(payload)
        if len(out) >= max_events:
            break
    return out[:max_events]


def train_from_storage(
    storage: Storage,
    *,
    size: int = 16 * 1024,
    sessions: int = 200,
    prefix: str = "",
    events_per_session: int = 2000,
    level: int = 3,
) -> Training:
    """A dictionary trained on deltas cut from the newest ``sessions``
    stored sessions (ids starting with ``prefix``: one tenant's), every
    fifth session held out to measure it. ``ValueError`` when there is too
    little to train on."""
    records = storage.list_sessions(limit=sessions, prefix=prefix)
    rng = random.Random(0)
    training: list[bytes] = []
    held_out: list[bytes] = []
    for n, record in enumerate(records):
        events = session_events(storage, record.session_id, events_per_session)
        (held_out if n % 5 == 4 else training).extend(deltas(events, rng))
    if not held_out:  # too few sessions to hold any out: measure on the training set
        held_out = training
    try:
        trained = train(training, size)
    except ValueError as exc:
        raise ValueError(
            f"{len(records)} sessions gave {len(training)} deltas"
            f" ({sum(map(len, training)):,} bytes): too few to train a {size:,}-byte"
            f" dictionary ({exc})"
        ) from None
    raw = sum(map(len, held_out))
    plain = _core.Compressor("zstd", level)
    with_dict = _core.Compressor("zstd", level, trained.data)
    return Training(
        trained,
        len(records),
        len(training),
        sum(map(len, training)),
        len(records) // 5,
        len(held_out),
        raw / max(1, sum(len(plain.compress(d)) for d in held_out)),
        raw / max(1, sum(len(with_dict.compress(d)) for d in held_out)),
    )
