"""Database URLs: each scheme ``DATABASE_URL`` may name, and the storage
backend it opens. The configuration checks URLs against :data:`SCHEMES`
without importing the backends (so ``replaywire --help`` stays light);
each opener imports its backend when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StorageError

if TYPE_CHECKING:
    from .storage.base import Storage

__all__ = ["SCHEMES", "open_storage"]

_EXPECTED = (
    "expected sqlite:///relative/path.db, sqlite:////absolute/path.db,"
    " postgresql://user:password@host:5432/database or memory://"
)


def open_storage(url: str, *, pool_size: int = 4, memory_bytes: int | None = None) -> Storage:
    """The backend a database URL names, not yet opened: no I/O, so it is
    safe to call on the event loop. The caller runs ``open()`` (in a worker
    thread; for SQLite it creates the file's parent folders, switches to WAL
    and applies migrations; for PostgreSQL it connects, migrates and creates
    partitions) and later ``close()``.

    ``sqlite:///data/x.db`` is relative to the working directory,
    ``sqlite:////var/lib/x.db`` absolute (SQLAlchemy's convention);
    ``postgresql://`` (or ``postgres://``) URLs are libpq's, query options
    included, and ``pool_size`` is the most connections PostgreSQL storage
    holds (the other backends ignore it); ``memory://`` keeps chunks in this
    process, evicting the oldest past ``memory_bytes`` (``None``: keeps
    all). Anything else raises :class:`StorageError`, whose message names
    only the scheme: URLs may carry passwords and this message ends up in
    logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StorageError(f"database URL has no scheme; {_EXPECTED}")
    opener = SCHEMES.get(scheme.lower())
    if opener is None:
        raise StorageError(f"unsupported database URL scheme {scheme.lower()!r}; {_EXPECTED}")
    return opener(url, rest, pool_size, memory_bytes)


def _memory(url: str, rest: str, pool_size: int, memory_bytes: int | None) -> Storage:
    if rest:
        raise StorageError(f"memory:// takes no path; {_EXPECTED}")
    from .storage.memory import MemoryStorage

    return MemoryStorage(max_bytes=memory_bytes)


def _sqlite(url: str, rest: str, pool_size: int, memory_bytes: int | None) -> Storage:
    if not rest.startswith("/") or rest in ("/", "//"):
        raise StorageError(f"sqlite URL needs a path after three slashes; {_EXPECTED}")
    path = rest[1:]
    if path == ":memory:":
        raise StorageError("sqlite:///:memory: is not supported; use memory://")
    from .storage.sqlite import SqliteStorage

    return SqliteStorage(Path(path))


def _postgres(url: str, rest: str, pool_size: int, memory_bytes: int | None) -> Storage:
    if pool_size < 1:
        raise StorageError(f"PostgreSQL pool size must be at least 1, not {pool_size}")
    from .storage.postgres import PostgresStorage

    return PostgresStorage(url, pool_size=pool_size)


# The database URL schemes, and the backend each opens: DATABASE_URL is
# checked against these keys (replaywire.config).
SCHEMES: dict[str, Callable[[str, str, int, int | None], Storage]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
    "memory": _memory,
}
