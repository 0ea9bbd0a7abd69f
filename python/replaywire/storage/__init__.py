"""Storage: where accepted batches end up.

Backends sit side by side behind the blocking :class:`Storage` interface
(``sqlite`` is the embedded default, ``postgres`` serves several instances
sharing one database, ``memory`` is for tests and benchmarks), and
:class:`StorageWriter` is the one piece the event loop talks to: it batches
writes into worker-thread transactions, and keeps them in the :class:`Spool`
while storage is down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..databases import SCHEMES, open_storage
from .base import (
    Chunk,
    ChunkBatch,
    ExpiredCounts,
    ResumeState,
    SessionError,
    SessionFilter,
    SessionRecord,
    Storage,
    StorageError,
    iso_utc,
)
from .memory import MemoryStorage
from .spool import Spool
from .sqlite import SqliteStorage
from .writer import StorageWriter, WriterStats

__all__ = [
    "SCHEMES",
    "Chunk",
    "ChunkBatch",
    "ExpiredCounts",
    "MemoryStorage",
    "PostgresStorage",
    "ResumeState",
    "SessionError",
    "SessionFilter",
    "SessionRecord",
    "Spool",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "StorageWriter",
    "WriterStats",
    "iso_utc",
    "open_storage",
]

if TYPE_CHECKING:
    from .postgres import PostgresStorage


def __getattr__(name: str) -> object:
    """``PostgresStorage`` is imported on first use: psycopg and its pool
    cost the process about 10 MB that a SQLite or memory server never
    needs."""
    if name == "PostgresStorage":
        from .postgres import PostgresStorage

        return PostgresStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
