"""The codec registry (replaywire.codecs) is the one place a codec is
declared: the JavaScript viewer, docs/protocol.md and the OpenAPI document
must say what it says, and a test here fails when one of them drifts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from replaywire import codecs
from replaywire.config import Config

ROOT = Path(__file__).resolve().parent.parent
FRAMES_JS = ROOT / "js" / "viewer" / "src" / "frames.js"
MAIN_JS = ROOT / "js" / "viewer" / "src" / "main.js"
PROTOCOL_MD = ROOT / "docs" / "protocol.md"
OPENAPI = ROOT / "python" / "replaywire" / "openapi.json"


def test_wire_ids_and_names_are_unique() -> None:
    assert len(codecs.BY_NAME) == len(codecs.BY_WIRE_ID) == len(codecs.REGISTRY)


def test_every_level_knob_is_a_config_knob() -> None:
    config = Config()
    for codec in codecs.REGISTRY:
        if codec.level is not None:
            assert isinstance(getattr(config, codec.level), int), codec


def test_the_javascript_viewer_decodes_every_codec_without_a_dictionary() -> None:
    source = FRAMES_JS.read_text(encoding="utf-8")
    block = re.search(r"const CODECS = \{([^}]*)\}", source)
    assert block is not None, "frames.js has no CODECS map"
    decoded = {int(i): name for i, name in re.findall(r'(\d+):\s*"([^"]+)"', block.group(1))}
    assert decoded == {c.wire_id: c.name for c in codecs.REGISTRY if not c.dictionary}, (
        "js/viewer/src/frames.js disagrees with replaywire/codecs.py"
    )
    offered = re.search(r"const codec = \[([^\]]*)\]\.includes", MAIN_JS.read_text("utf-8"))
    assert offered is not None, "main.js no longer lists the codecs it offers"
    assert set(re.findall(r'"([^"]+)"', offered.group(1))) == set(decoded.values())


def test_docs_protocol_lists_the_codecs_and_their_wire_ids() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| 2 | 1 | codec:"))
    documented = {int(i): name for i, name in re.findall(r"`(\d+)` ([\w-]+)", header)}
    assert documented == {c.wire_id: c.name for c in codecs.REGISTRY}
    url = re.search(r"`/ws\?type=viewer&codec=([\w|-]+)`", text)
    assert url is not None
    assert url.group(1).split("|") == list(codecs.VIEWER_CODECS)


def test_the_openapi_document_names_only_registered_codecs() -> None:
    text = json.dumps(json.loads(OPENAPI.read_text(encoding="utf-8")))
    named = set(re.findall(r"codec=([\w-]+)", text))
    assert named and named <= set(codecs.BY_NAME)
    dictionary = [c.name for c in codecs.REGISTRY if c.dictionary]
    assert all(f"codec={name}" in text for name in dictionary)
