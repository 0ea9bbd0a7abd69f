"""Versioned schema migrations, shared by the SQL backends.

Each backend keeps its scripts in ``schema/<dialect>/NNNN_name.sql`` and
records applied versions in a ``schema_migrations`` table; how a script is
run and how concurrent starts are serialised is the backend's own business
(an IMMEDIATE transaction for SQLite, an advisory lock for PostgreSQL).
What is the same for both lives here: finding the scripts, and deciding
which are still to apply -- refusing a database newer than this code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .base import StorageError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


@cache
def load(dialect: str) -> tuple[Migration, ...]:
    """The ``schema/<dialect>/NNNN_name.sql`` files, in version order."""
    assert __package__
    found: dict[int, Migration] = {}
    for entry in (resources.files(__package__) / "schema" / dialect).iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match is None:
            continue
        version = int(match[1])
        if version in found:
            raise StorageError(f"two {dialect} migrations numbered {version:04d}")
        found[version] = Migration(version, match[2], entry.read_text("utf-8"))
    return tuple(found[v] for v in sorted(found))


def pending(known: Sequence[Migration], applied: Iterable[int]) -> list[Migration]:
    """The migrations of ``known`` not in ``applied``, in order. Raises
    :class:`StorageError` (not retryable) when the database has a version
    this code does not know: it was migrated by a newer replaywire."""
    applied = set(applied)
    latest = known[-1].version if known else 0
    if applied and max(applied) > latest:
        raise StorageError(
            f"database schema version {max(applied)} is newer than this replaywire "
            f"knows ({latest}); upgrade replaywire"
        )
    return [m for m in known if m.version not in applied]
