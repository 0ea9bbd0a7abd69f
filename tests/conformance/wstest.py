"""The Autobahn|Testsuite fuzzing client (``wstest``), installed on demand.

``autobahntestsuite`` 0.8.2 runs only on Python 2.7. Its virtualenv is
built from pyenv's CPython 2.7.18 (or ``AUTOBAHN_PYTHON27``) with every
dependency pinned by ``constraints-py27.txt``, under ``.venv-autobahn/`` at
the project root, and reused while the constraints stay the same. The
stdlib ``venv`` does not exist on 2.7: a small Python 3 venv holds
``virtualenv`` 20.21.1, the last release that still creates 2.7
environments.

Error handling: anything missing or failing raises :class:`WstestUnavailable`
with what to do about it; the tests fail on it, never skip. Builds run
under a file lock, and an environment counts only once its ``.complete``
marker is written, so an interrupted or concurrent build never leaves a
client that looks ready and is not.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".venv-autobahn"
CONSTRAINTS = Path(__file__).with_name("constraints-py27.txt")
CLIENT = "autobahntestsuite==0.8.2"
VIRTUALENV = "virtualenv==20.21.1"
PYTHON27_VERSION = "2.7.18"


class WstestUnavailable(Exception):
    """wstest cannot be installed here; the message says why."""


def wstest() -> Path:
    """The path of a working ``wstest``, building its virtualenv if needed."""
    HOME.mkdir(exist_ok=True)
    with (HOME / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = HOME / f"py27-{_fingerprint()}"
        if not (env / ".complete").exists():
            _build(env)
        return env / "bin" / "wstest"


def python27() -> Path:
    """CPython 2.7: ``AUTOBAHN_PYTHON27``, else pyenv's 2.7.18."""
    explicit = os.environ.get("AUTOBAHN_PYTHON27")
    if explicit:
        candidates = [Path(explicit)]
    else:
        roots = [os.environ.get("PYENV_ROOT"), _pyenv_root(), str(Path.home() / ".pyenv")]
        candidates = [
            Path(root) / "versions" / PYTHON27_VERSION / "bin" / "python"
            for root in dict.fromkeys(r for r in roots if r)
        ]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise WstestUnavailable(
        f"no Python {PYTHON27_VERSION} for the Autobahn client: looked for "
        f"{', '.join(map(str, candidates))}. Install it with `pyenv install "
        f"{PYTHON27_VERSION}` or set AUTOBAHN_PYTHON27 to a 2.7 interpreter."
    )


def _fingerprint() -> str:
    """Names the environment after what went into it, so a changed pin
    builds a new one instead of reusing a stale one."""
    digest = hashlib.sha256(CONSTRAINTS.read_bytes() + f"{CLIENT} {VIRTUALENV}".encode())
    return digest.hexdigest()[:12]


def _pyenv_root() -> str | None:
    if shutil.which("pyenv") is None:
        return None
    done = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def _build(env: Path) -> None:
    """Builds the client's virtualenv in ``env`` (a virtualenv cannot be
    moved: its scripts name their folder); ``.complete`` marks it done."""
    interpreter = python27()
    tools = HOME / "tools"
    if not (tools / ".complete").exists():
        shutil.rmtree(tools, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(tools)], "create the helper venv")
        _pip(tools / "bin" / "pip", VIRTUALENV)
        (tools / ".complete").touch()
    shutil.rmtree(env, ignore_errors=True)
    try:
        _run(
            [str(tools / "bin" / "virtualenv"), "--quiet", "-p", str(interpreter), str(env)],
            f"create a Python 2.7 virtualenv from {interpreter}",
        )
        _pip(env / "bin" / "pip", "-c", str(CONSTRAINTS), CLIENT)
        _run([str(env / "bin" / "wstest"), "--help"], "run the installed wstest")
    except WstestUnavailable:
        shutil.rmtree(env, ignore_errors=True)
        raise
    (env / ".complete").touch()


def _pip(pip: Path, *args: str) -> None:
    _run(
        [str(pip), "install", "--quiet", "--disable-pip-version-check", *args],
        f"pip install {' '.join(args)}",
    )


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = done.stdout[-2000:] + done.stderr[-4000:]
        raise WstestUnavailable(f"could not {what} (exit {done.returncode}):\n{output}")


if __name__ == "__main__":
    print(wstest())
