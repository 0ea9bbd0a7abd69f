"""The REST API against its own OpenAPI document, with schemathesis.

A live server (the tenants of ``auth.tenants``, with a recorded and a live
session of acme) serves ``GET /openapi.json``; schemathesis loads it from
there and calls every operation, in two phases: *coverage* (boundary and
missing values of each parameter, wrong types, missing credentials, methods
the document does not list) and *fuzzing* (hypothesis, valid and invalid
parameters). Every answer is checked: no server error, a status code the
document lists for the operation, its content type, a body matching its
schema, its headers, and for other methods 405 with an ``Allow`` naming
exactly the documented ones. The run is repeated with an admin token, a
read token, another tenant's token on acme's session ids, a token that
proves nothing, and no token at all.

schemathesis is synchronous (requests): it runs in a worker thread while
trio serves. Failures are collected over all operations and reported
together, each with a curl command that reproduces it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import FailureGroup

from auth.tenants import ACME_ADMIN, ACME_READ, BETA_READ, open_tracker, start
from e2e.clients import send_batches, start_session
from rrweb import session_events

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.allow_header_conformance,
]
EXAMPLES = 15  # fuzzing examples per operation and generation mode
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


class Run:
    """One schemathesis run against ``base_url`` with ``headers`` on every
    request; ``failures`` maps (operation, failure) to how to reproduce it."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.headers = headers
        self.failures: dict[tuple[str, str], str] = {}

    def check(self, case: Any) -> None:
        """Call and validate one case; remember its failures."""
        try:
            case.call_and_validate(
                base_url=self.base_url, headers=self.headers, checks=CHECKS, timeout=10
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                self._fail(case, failure.title, str(failure))
        except requests.RequestException as exc:  # e.g. closed without an answer
            self._fail(case, type(exc).__name__, f"no answer: {exc}")

    def _fail(self, case: Any, title: str, text: str) -> None:
        curl = case.as_curl_command(headers=self.headers)
        self.failures.setdefault((case.operation.label, title), f"{text}\n    {curl}")

    def coverage(self, schema: Any, operation: Any) -> None:
        generation = schema.config.generation_for(operation=operation, phase="coverage")
        for case in schema.iter_coverage_cases(
            operation, generation_modes=MODES, generation_config=generation
        ):
            self.check(case)

    def fuzzing(self, operation: Any, path_parameters: dict[str, str] | None) -> None:
        for mode in MODES:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def call(case: Any) -> None:
                self.check(case)

            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no parameter to make invalid


def run_schemathesis(
    base_url: str, headers: dict[str, str], path_parameters: dict[str, str] | None
) -> dict[tuple[str, str], str]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    run = Run(base_url, headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        run.coverage(schema, operation)
        run.fuzzing(operation, path_parameters)
    return run.failures


@pytest.mark.parametrize(
    ("token", "session_id"),
    [
        (ACME_ADMIN, "recorded"),
        (ACME_READ, "live"),
        (BETA_READ, "recorded"),  # another tenant's session: 404, as for none
        ("rwt_proves-nothing", None),
        (None, None),
    ],
    ids=["admin", "read", "other-tenant", "bad-token", "no-token"],
)
async def test_the_api_conforms_to_its_openapi_document(
    start_server: Any, token: str | None, session_id: str | None
) -> None:
    server = await start(start_server)
    async with open_tracker(server, "acme") as ws:
        await start_session(ws, "recorded")
        await send_batches(ws, "recorded", list(session_events(30, seed=3)), batch=10)
        # snapshotMissing set and an error recorded: GET /sessions/{id} and
        # /sessions/{id}/errors answer with every field filled.
        notice = {"sessionId": "recorded", "reason": "too_large", "bytes": 9, "limitBytes": 8}
        await ws.send_message(json.dumps({"type": "snapshot_missing", "data": notice}))
    async with open_tracker(server, "acme") as ws:
        await start_session(ws, "live")
        await send_batches(ws, "live", list(session_events(20, seed=4)), batch=10)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        path_parameters = {"session_id": session_id} if session_id else None
        failures = await trio.to_thread.run_sync(
            run_schemathesis, f"http://127.0.0.1:{server.port}", headers, path_parameters
        )
    assert not failures, "\n\n".join(f"{op}: {text}" for (op, _), text in failures.items())
