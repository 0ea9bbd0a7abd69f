"""Autobahn|Testsuite, cases 1.* to 10.*, on both WebSocket codecs: no case
may FAIL. Each run prints a line of counts and every NON-STRICT case with
the client's reason, also under ``-q``.

The client (Python 2.7) is installed under ``.venv-autobahn/`` the first
time (about 40 s; see ``wstest.py``); when it cannot be, the test fails
with the reason, never skips. ``make conformance`` runs all 517 cases,
permessage-deflate included, and keeps the HTML report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.autobahn import BACKENDS, QUICK_CASES, run
from conformance.wstest import WstestUnavailable, wstest


@pytest.fixture(scope="session")
def autobahn_client() -> Path:
    try:
        return wstest()
    except WstestUnavailable as exc:
        pytest.fail(f"the Autobahn client cannot be installed: {exc}", pytrace=False)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_autobahn_cases_1_to_10(
    backend: str, autobahn_client: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = await run(backend, QUICK_CASES, tmp_path / "report", tmp_path / "work")
    with capsys.disabled():
        print(f"\n{results.summary()}")
    groups = {int(case.id.split(".")[0]) for case in results.cases}
    assert groups == set(range(1, 11)) - {8}, "not every group ran (the suite has no group 8)"
    failed = [case for case in results.cases if case.behavior == "FAILED"]
    assert not failed, results.summary()
