"""Each component gets what it uses, not the whole server (STYLE.md): the
HTTP room and the tracker and viewer protocols take small dependency
objects (``HttpDeps``, ``RouteDeps``, ``TrackerDeps``, ``ViewerDeps``) built
in ``replaywire.app``, and never import it -- not even for type checking."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import replaywire

PACKAGE = Path(replaywire.__file__).parent
LOWER_ROOMS = ("http", "protocol")  # must not know the layer above them


def server_imports(source: str, module: str) -> list[str]:
    """The imports in ``source`` (the module named ``module``) that reach
    ``replaywire.app`` or the ``Server`` it defines, however written."""
    found: list[str] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("replaywire.app")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target == "replaywire.app" or target.startswith("replaywire.app."):
                found.append(target)
            elif target == "replaywire":
                found += [f"replaywire.{a.name}" for a in node.names if a.name in ("app", "Server")]
    return found


def lower_modules() -> list[Path]:
    return sorted(p for room in LOWER_ROOMS for p in (PACKAGE / room).rglob("*.py"))


def test_the_rooms_are_there() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in lower_modules()}
    assert {"http/server.py", "http/routes.py", "protocol/tracker.py"} <= names
    assert {"protocol/viewer.py", "protocol/broadcast.py"} <= names


@pytest.mark.parametrize("path", lower_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_http_and_protocol_do_not_import_the_server(path: Path) -> None:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    module = ".".join(("replaywire", *parts))
    if parts[-1] == "__init__":  # a package's relative imports start at itself
        module = ".".join(("replaywire", *parts[:-1], "__init__"))
    assert server_imports(path.read_text(encoding="utf-8"), module) == []


@pytest.mark.parametrize(
    "source",
    [
        "from ..app import Server",
        "if TYPE_CHECKING:\n    from ..app import Server",
        "from .. import app",
        "from .. import Server",
        "import replaywire.app",
        "from replaywire.app import Server",
        "from replaywire import Server",
    ],
)
def test_the_check_sees_every_spelling(source: str) -> None:
    assert server_imports(source, "replaywire.protocol.tracker")


def test_the_check_leaves_other_imports_alone() -> None:
    source = "from .. import __version__\nfrom ..auth import Auth\nfrom .routes import Request"
    assert server_imports(source, "replaywire.http.server") == []
