"""The viewer page and the tracker script as replaywire serves them (from
the package's static folder, built by `make js`): types, caching, 304s,
nothing outside the folder, and a page saying so where a build has none."""

from __future__ import annotations

import http.client
import re

import pytest

from e2e.processes import ServerProcess
from replaywire.errors import HttpError
from replaywire.http import static


def fetch(
    server: ServerProcess, target: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_viewer_page_and_its_hashed_assets(replaywire: ServerProcess) -> None:
    status, headers, body = fetch(replaywire, "/viewer")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "no-cache" in headers.get_all("cache-control")
    assets = re.findall(rb'(?:src|href)="/viewer/(viewer-[A-Z0-9]{8}\.(?:js|css))"', body)
    assert sorted(a.rsplit(b".", 1)[1] for a in assets) == [b"css", b"js"]
    for name in assets:
        status, headers, asset = fetch(replaywire, "/viewer/" + name.decode())
        assert status == 200 and len(asset) > 1000
        kind = "javascript" if name.endswith(b".js") else "css"
        assert headers["content-type"] == f"text/{kind}; charset=utf-8"
        assert "public, max-age=31536000, immutable" in headers.get_all("cache-control")


def test_tracker_script_revalidates_with_its_etag(replaywire: ServerProcess) -> None:
    status, headers, body = fetch(replaywire, "/tracker.js")
    assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    assert b"session_start" in body
    etag = headers["etag"]
    status, headers, body = fetch(replaywire, "/tracker.js", headers={"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    status, _, body = fetch(replaywire, "/tracker.js", "HEAD")
    assert (status, body) == (200, b"")


def test_unknown_names_and_traversal_answer_404(replaywire: ServerProcess) -> None:
    for target in [
        "/viewer/nope.js",
        "/viewer/..",
        "/viewer/../openapi.json",
        "/viewer/..%2F..%2Fapp.py",
        "/viewer/%2e%2e%2fcli.py",
        "/viewer/__init__.py",
        "/viewer/index.html/x",
    ]:
        status, headers, body = fetch(replaywire, target)
        assert status == 404, (target, body)
        assert headers["content-type"] == "application/json"


def test_viewer_with_a_trailing_slash_and_the_icon(replaywire: ServerProcess) -> None:
    _, _, page = fetch(replaywire, "/viewer")
    status, headers, body = fetch(replaywire, "/viewer/")
    assert (status, headers["content-type"], body) == (200, "text/html; charset=utf-8", page)
    assert b'rel="icon" href="/viewer/favicon.svg"' in page
    for target in ["/favicon.ico", "/viewer/favicon.svg"]:
        status, headers, body = fetch(replaywire, target)
        assert status == 200 and headers["content-type"] == "image/svg+xml", target
        assert body.startswith(b"<svg") and len(body) < 1000


def test_a_build_without_assets_says_so_on_the_viewer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel or sdist built where Node.js was missing: /viewer is a page
    saying why there is no viewer and how to build it; the other names
    answer JSON 404s saying the same in a line."""
    monkeypatch.setattr(static, "_ASSETS", {})
    page = static.viewer_page()
    assert (page.status, page.content_type) == (404, b"text/html; charset=utf-8")
    assert b"built without its browser assets" in page.body and b"make js" in page.body
    with pytest.raises(HttpError) as raised:
        static.serve("tracker.js")
    assert raised.value.status == 404 and "built without Node.js" in str(raised.value)
