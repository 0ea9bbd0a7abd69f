"""HTTP responses as plain values; every error has the JSON shape
``{"error":{"code","message"}}``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = b"application/json"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


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
