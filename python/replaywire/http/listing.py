"""The query of ``GET /sessions``: its filters, read into a
:class:`~replaywire.storage.SessionFilter`, and its page cursor.

Every parameter is optional, and an empty one means "any" (as everywhere in
the REST API). A value that cannot be read answers 400 ``bad_parameter``
naming the parameter, never a guess:

- ``user``: the user id, exactly; ``url``: a substring of the first URL
  (case-sensitive);
- ``since``, ``until``: bounds of the start time, ``since`` inclusive and
  ``until`` exclusive, as ISO 8601 (``2025-06-01``,
  ``2025-06-01T12:00:00Z``; UTC unless an offset is given) or epoch
  milliseconds (what ``Date.now()`` gives), between 1970 and 9999;
- ``live``: ``true`` for live sessions only, ``false`` for ended ones
  (``status=active|ended`` says the same; both given must agree);
- ``min_duration``: seconds, from the start to the end (to the last event
  while live);
- ``cursor``: the ``nextCursor`` of the previous page, opaque to clients.

The cursor is the last listed session's ``(started_at, session_id)`` in
base64url JSON: the next page starts strictly after it in the listing
order, so sessions written meanwhile neither repeat nor shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ..errors import HttpError
from ..storage import SessionFilter, SessionRecord

# Start times a filter may name: 1970 to the end of 9999, the range every
# backend's timestamps hold (PostgreSQL's to_timestamp refuses far beyond).
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
MAX_DURATION = 100 * 365 * 86400.0  # seconds
_EPOCH_MS = re.compile(r"\d{1,16}(\.\d{1,6})?")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def bad(name: str, message: str) -> HttpError:
    return HttpError(400, "bad_parameter", f"{name} {message}")


def parse(query: Mapping[str, str]) -> tuple[str | None, SessionFilter]:
    """The status (``active``, ``ended`` or None) and filter asked for."""
    status = query.get("status") or None
    if status not in (None, "active", "ended"):
        raise HttpError(400, "bad_request", "query parameter status must be 'active' or 'ended'")
    live = (query.get("live") or "").lower()
    if live:
        if live not in _TRUE + _FALSE:
            raise bad("live", "must be true or false")
        wanted = "active" if live in _TRUE else "ended"
        if status not in (None, wanted):
            raise bad("live", f"contradicts status={status}")
        status = wanted
    return status, SessionFilter(
        user_id=_text(query, "user"),
        url=_text(query, "url"),
        since=_time(query, "since"),
        until=_time(query, "until"),
        min_duration=_duration(query, "min_duration"),
        before=_cursor(query.get("cursor") or ""),
    )


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name) or None
    if value is not None and "\x00" in value:  # no stored text holds one (PostgreSQL refuses it)
        raise bad(name, "must not contain NUL")
    return value


def _time(query: Mapping[str, str], name: str) -> float | None:
    raw = (query.get(name) or "").strip()
    if not raw:
        return None
    if _EPOCH_MS.fullmatch(raw):
        seconds = float(raw) / 1000
    else:
        try:
            moment = datetime.fromisoformat(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
        except ValueError:
            raise bad(name, "must be ISO 8601 (2025-06-01T12:00:00Z) or epoch ms") from None
        except OverflowError:  # year 1 with an offset east of UTC
            raise bad(name, "must be between 1970 and 9999") from None
    if not 0 <= seconds <= LATEST:
        raise bad(name, "must be between 1970 and 9999")
    return seconds


def _duration(query: Mapping[str, str], name: str) -> float | None:
    raw = (query.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad(name, "must be a number of seconds") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_DURATION):
        raise bad(name, f"must be between 0 and {MAX_DURATION:.0f} seconds")
    return value


def cursor_after(record: SessionRecord) -> str:
    """The cursor of the page that follows ``record`` (the last listed)."""
    data = json.dumps([record.started_at, record.session_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def _cursor(raw: str) -> tuple[float, str] | None:
    """The position a cursor names; the session id in it is the storage key
    (``tenant:id``), so a cursor of one tenant only moves another's listing
    to where that key would sort, and shows nothing of the first."""
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise bad("cursor", "is not one this server made (use nextCursor as given)") from None
    if not (
        isinstance(data, list)
        and len(data) == 2
        and isinstance(data[0], (int, float))
        and not isinstance(data[0], bool)
        and math.isfinite(data[0])
        and 0 <= data[0] <= LATEST
        and isinstance(data[1], str)
    ):
        raise bad("cursor", "is not one this server made (use nextCursor as given)")
    return float(data[0]), data[1]
