"""``replaywire bench``: a thin entry to the benchmark suite.

The suite lives in the repository's ``benches/`` folder, not in the
package: it drives a server process with load generators, needs the test
corpus (``tests/rrweb.py``, ``tests/data/``) and heavy extras (matplotlib,
rich: ``pip install -e '.[bench]'``), none of which belongs in a server
wheel. So the command runs ``python -m benches`` from a source checkout
(the current folder, or the one this package was installed from in
editable mode) and says so when there is none.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def find_checkout() -> Path | None:
    """The folder holding ``benches/suite.py``: the current one, or the
    source tree of an editable install."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / "benches" / "suite.py").is_file():
            return root
    return None


def run_bench(argv: Sequence[str]) -> int:
    root = find_checkout()
    if root is None:
        print(
            "replaywire bench: no benches/ folder here: the benchmark suite runs from a"
            " source checkout (cd into it, or `python -m benches` there)",
            file=sys.stderr,
        )
        return 2
    return subprocess.call([sys.executable, "-m", "benches", *argv], cwd=root)
