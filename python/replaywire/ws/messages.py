"""Data messages as the protocol layer sees them, whichever codec read them.

The Rust codec returns its own ``_core.WsMessage`` / ``_core.WsTooLarge``;
the wsproto codec returns the plain Python :class:`Message` / :class:`TooLarge`
below, with the same attributes. The protocol layer tells them apart with
``isinstance(msg, TOO_LARGE)`` and reads ``is_text``, ``data``, ``size`` and
``prefix`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _core

__all__ = ["TOO_LARGE", "DataMessage", "Message", "TooLarge"]


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message (all fragments joined, inflated)."""

    is_text: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A data message over ``MAX_MESSAGE_BYTES`` that was skipped: ``size``
    as far as known (``max_message_bytes + 1`` when it grew too large while
    being inflated), ``prefix`` its first bytes (at most ``PREFIX_BYTES``),
    enough to read a protocol message's envelope."""

    is_text: bool
    size: int
    prefix: bytes


PREFIX_BYTES = 4096

DataMessage = _core.WsMessage | _core.WsTooLarge | Message | TooLarge
TOO_LARGE = (_core.WsTooLarge, TooLarge)
