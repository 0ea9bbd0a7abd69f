"""The README and docs/: every link resolves (files and anchors), and the
configuration tables say what :class:`~replaywire.config.Config` declares.

The full table in docs/configuration.md has one row per knob, in
declaration order, with its flag and default; the README's short table is
made of rows copied from it, word for word, so the two cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from replaywire.config import knobs

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 400

LINK = re.compile(r"(?<!!)\[(?:[^\]]|\\\])+\]\(([^)\s]+)\)")
AUTOLINK = re.compile(r"<(https?://[^>]+)>")


def without_code(text: str) -> str:
    """The text outside fenced blocks and inline code spans."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(path: Path) -> list[str]:
    return LINK.findall(without_code(path.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https://..., mailto: (not fetched)
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert broken == [], f"{page.name}: " + "; ".join(broken)


def test_the_link_checker_finds_what_it_must() -> None:
    assert slug("In the browser: tracker and viewer") == "in-the-browser-tracker-and-viewer"
    assert slug("### `session_start`".lstrip("# ")) == "session_start"
    assert links_of("see [Limits](docs/configuration.md#limits) and `[x](y)`") == [
        "docs/configuration.md#limits"
    ]


def links_of(text: str) -> list[str]:
    return LINK.findall(without_code(text))


def test_readme_reads_in_ten_minutes() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail under docs/"


def table_rows(path: Path) -> dict[str, list[str]]:
    """The configuration table's rows by environment variable: their cells."""
    rows = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"\| `([A-Z][A-Z0-9_]+)` \| (`--|\(file)", line):
            rows[m.group(1)] = [c.strip() for c in line.strip("|").split(" | ")]
    return rows


def shown_default(value: object) -> set[str]:
    """How a default may be written in the table."""
    if value == "" or value is None:
        return {"empty", "none", "host-pid"}
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    shown = {f"`{value}`"}
    if isinstance(value, int) and value >= 1024:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= size:
                shown.add(f"{value / size:g} {unit}")
                break
    return shown


def test_configuration_table_matches_config() -> None:
    rows = table_rows(ROOT / "docs" / "configuration.md")
    # TENANTS is a table, not a knob ([tenants.NAME] in the file, or JSON).
    assert rows.pop("TENANTS")[1].startswith("(file:")
    declared = [f.name.upper() for f in knobs()]
    assert list(rows) == declared, "one row per knob, in Config's order"
    for f in knobs():
        env, flag, default, meaning = rows[f.name.upper()]
        if isinstance(f.default, bool):
            assert flag == f"`--[no-]{f.name.replace('_', '-')}`", env
        else:
            assert flag == f"`--{f.name.replace('_', '-')}`", env
        assert default in shown_default(f.default), (env, default, f.default)
        assert meaning, env


def test_readme_configuration_rows_are_the_reference_rows() -> None:
    reference = table_rows(ROOT / "docs" / "configuration.md")
    readme = table_rows(ROOT / "README.md")
    assert len(readme) >= 10
    for env, cells in readme.items():
        # Links differ only by where each file sits (docs/ or the root).
        same = [re.sub(r"\]\((?:docs/)?", "](", c) for c in cells]
        assert same[:3] == reference[env][:3], env
        assert re.sub(r"\]\((?:docs/)?configuration\.md", "](", same[3]) == reference[env][3], env
