"""Development mode (no tenants): no credentials asked for, loopback only
unless DEV_MODE_ANY_HOST says otherwise, and said loudly at start."""

from __future__ import annotations

import json
from typing import Any

import pytest
from trio_websocket import open_websocket_url

from e2e.clients import get_json, http, recv_json, send_batches, start_session
from replaywire import Config, cli
from replaywire.config import ConfigError
from rrweb import session_events


async def test_no_credentials_needed(start_server: Any) -> None:
    server = await start_server()
    assert server.auth.dev_mode
    async with open_websocket_url(f"ws://127.0.0.1:{server.port}/ws?type=tracker") as ws:
        await start_session(ws, "dev")
        await send_batches(ws, "dev", list(session_events(10)))
    # Keys and tokens are ignored, whatever they are.
    async with open_websocket_url(f"ws://127.0.0.1:{server.port}/ws?type=viewer&token=x") as ws:
        await ws.send_message(
            json.dumps({"type": "get_session_events", "data": {"sessionId": "dev"}})
        )
        assert (await recv_json(ws))["data"]["count"] == 10
    assert (await get_json(server, "/sessions/dev"))["eventCount"] == 10
    assert "storage" in await get_json(server, "/stats")  # admin details too
    status, _, _ = await http(server, "/sessions/cleanup?idle_seconds=0", "DELETE")
    assert status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_refused_beyond_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match="DEV_MODE_ANY_HOST") as caught:
        Config(host=host)
    assert caught.value.setting == "host"
    Config(host=host, dev_mode_any_host=True)  # the documented override
    Config(host=host, tenants={"acme": {"write_keys": ["k"]}})  # or tenants


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert Config(host=host).dev_mode


def test_cli_refuses_to_serve_publicly_without_tenants(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--host", "0.0.0.0", "--port", "0"])
    assert exited.value.code == 2
    assert "development mode" in capsys.readouterr().err
