"""JavaScript expressions about the viewer page's replay, for ``wait_for``.

rrweb-player renders the replayed page into ``.replayer-wrapper iframe``
(same origin, so its document can be read); these look into it.
"""

from __future__ import annotations

import json

REPLAY_DOC = "document.querySelector('.replayer-wrapper iframe')?.contentDocument"


def replay_has(selector: str, text: str | None = None) -> str:
    """True once the replayed DOM has ``selector`` (with ``text`` in it)."""
    found = f"{REPLAY_DOC}?.querySelector({json.dumps(selector)})"
    if text is None:
        return f"!!{found}"
    return f"({found}?.textContent ?? '').includes({json.dumps(text)})"


def replay_value(selector: str) -> str:
    """The value of a replayed form field (rrweb replays input values)."""
    return f"{REPLAY_DOC}?.querySelector({json.dumps(selector)})?.value ?? null"


TRACKER_STATS = "window.replaywire.tracker.stats()"
TRACKER_IDLE = (
    "(() => { const s = window.replaywire?.tracker?.stats();"
    " return !!s && s.connected && s.unackedBatches === 0 && s.pendingEvents === 0; })()"
)
