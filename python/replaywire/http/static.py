"""The browser assets: the live viewer page at ``GET /viewer`` (and
``/viewer/``, and ``/viewer/sessions/{id}``, a session's shareable link),
the tracker script at ``GET /tracker.js``, and the viewer's icon, also at
``GET /favicon.ico`` (where browsers look for it first).

They are built from ``js/`` by esbuild (``make js``) into the package's
``static/`` folder and ship inside the wheel, so serving them needs no
Node.js. Files are found with :mod:`importlib.resources` and read once, on
first use; the folder holds a few hundred KiB.

Only names that are files in that folder are served: a request names one
path segment, which is looked up in the folder's listing, so no request can
reach outside it (``..``, encoded slashes and the like are simply unknown
names and answer 404).

Caching: ``viewer-<hash>.js``/``.css`` carry a content hash in their name
and are cached for a year (``immutable``); ``index.html`` and
``tracker.js`` keep stable names, so browsers revalidate them every time
(``no-cache``) with the ``ETag`` and get ``304`` while they are unchanged.

A package built without its assets (``maturin develop`` before ``make js``,
or a wheel or sdist built where Node.js was missing) answers 404 with a
message saying so and how to build them; on ``/viewer`` that message is a
page a browser shows (:func:`viewer_page`), not a bare 404.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from ..errors import HttpError
from .responses import Response

CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".map": b"application/json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".woff2": b"font/woff2",
}
# A page, not JSON: whoever opens /viewer on such a build reads it in a browser.
NO_ASSETS_PAGE = b"""<!doctype html>
<html lang="en"><meta charset="utf-8"><title>replaywire: no viewer in this build</title>
<h1>This replaywire was built without its browser assets</h1>
<p>The viewer and <code>/tracker.js</code> are built from <code>js/</code> with Node.js
(18 or later) into the package's <code>static/</code> folder, and this package has none:
it was built where Node.js was missing, or before the assets were built.
Recording from a page needs <code>/tracker.js</code> too.</p>
<p>In a source checkout, run <code>make js</code> (or <code>make build-dev</code>) and start the
server again; or install a wheel built with them (<code>make build-prod</code>).</p>
</html>
"""
HASHED_NAME = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9]+$")
IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"no-cache"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes
    etag: bytes
    cache_control: bytes


_ASSETS: dict[str, Asset] | None = None


def assets() -> dict[str, Asset]:
    """Every file of the static folder by name, read on first use."""
    global _ASSETS
    if _ASSETS is None:
        found: dict[str, Asset] = {}
        folder = resources.files("replaywire").joinpath("static")
        if folder.is_dir():
            for entry in folder.iterdir():
                suffix = "." + entry.name.rpartition(".")[2]
                if not entry.is_file() or suffix not in CONTENT_TYPES:
                    continue
                body = entry.read_bytes()
                digest = hashlib.sha256(body).hexdigest()[:32]
                found[entry.name] = Asset(
                    body=body,
                    content_type=CONTENT_TYPES[suffix],
                    etag=f'"{digest}"'.encode(),
                    cache_control=IMMUTABLE if HASHED_NAME.search(entry.name) else REVALIDATE,
                )
        _ASSETS = found
    return _ASSETS


def viewer_page(if_none_match: str = "") -> Response:
    """``/viewer``: the viewer's page, or a page saying this build has none."""
    if not assets():
        return Response(
            404, NO_ASSETS_PAGE, CONTENT_TYPES[".html"], [(b"cache-control", b"no-store")]
        )
    return serve("index.html", if_none_match)


def serve(name: str, if_none_match: str = "") -> Response:
    """The response for one static file; 404 for anything not in the folder."""
    asset = assets().get(name)
    if asset is None:
        hint = (
            ""
            if assets()
            else "; this build has no browser assets (built without Node.js: run `make js`)"
        )
        raise HttpError(404, "not_found", f"no static file {name!r}{hint}")
    headers = [(b"etag", asset.etag), (b"cache-control", asset.cache_control)]
    if asset.etag.decode() in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(304, b"", asset.content_type, headers)
    return Response(200, asset.body, asset.content_type, headers)
