"""HTTP responses as plain values; every error has the JSON shape
``{"error":{"code","message"}}``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = b"application/json"


@dataclass(slots=True)
class Response:
    """An answer. A large body may be given as ``parts`` instead of
    ``body``: they are sent one after the other, never joined, so a page
    holding a 50 MB event is not copied into one more object."""

    status: int
    body: bytes = b""
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    parts: tuple[bytes | memoryview, ...] = ()
    # The content-length to announce instead of the body's: the answer to
    # HEAD carries GET's length and no body (RFC 9110 section 9.3.2).
    head_length: int | None = None

    @property
    def length(self) -> int:
        if self.head_length is not None:
            return self.head_length
        return sum(len(p) for p in self.parts) if self.parts else len(self.body)

    def strip_body(self) -> None:
        """Drop the body, keeping the length GET would have announced."""
        self.head_length = self.length
        self.body, self.parts = b"", ()


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode())


def error_response(
    status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(
        status,
        json.dumps({"error": {"code": code, "message": message}}).encode(),
        headers=list(headers or []),
    )
