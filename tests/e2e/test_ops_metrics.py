"""GET /metrics, parsed with prometheus_client's own parser: the counters
match what the test sent, and /health and /stats say the same."""

from __future__ import annotations

import json

import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

from e2e.clients import http, recv_json, send_batches, start_session, ws_url
from replaywire import Server
from rrweb import session_events


async def scrape(server: Server) -> dict[str, float]:
    status, headers, body = await http(server, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def test_counters_match_what_was_sent(server: Server) -> None:
    sessions = {"m1": list(session_events(400, seed=1)), "m2": list(session_events(250, seed=2))}
    batches = sum(-(-len(events) // 50) for events in sessions.values())
    event_bytes = sum(len(e) for events in sessions.values() for e in events)
    async with open_websocket_url(ws_url(server)) as ws:
        for sid, events in sessions.items():
            await start_session(ws, sid)
            await send_batches(ws, sid, events)
        # One duplicate (a resend of seq 0) and one bad message.
        await send_batches(ws, "m1", sessions["m1"][:50])
        await ws.send_message("{not json")
        assert (await recv_json(ws))["type"] == "error"
        before_close = await scrape(server)
    # The server's side of the connection finishes its cleanup.
    with trio.fail_after(10):
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    after = await scrape(server)

    assert before_close["replaywire_connections_active{kind=tracker}"] == 1
    assert after["replaywire_connections_active{kind=tracker}"] == 0
    assert after["replaywire_connections_total{kind=tracker}"] == 1
    assert after["replaywire_sessions_started_total{}"] == 2
    assert after["replaywire_sessions_active{}"] == 2  # not ended: kept until idle
    assert after["replaywire_events_ingested_total{}"] == 650
    assert after["replaywire_bytes_ingested_total{}"] == event_bytes
    assert after["replaywire_messages_total{kind=tracker,type=events_batch}"] == batches + 1
    assert after["replaywire_batches_duplicate_total{}"] == 1
    assert after["replaywire_batches_acked_total{}"] == batches + 1  # the duplicate is acked too
    assert after["replaywire_ack_seconds_count{}"] == batches + 1
    assert after["replaywire_ack_seconds_sum{}"] > 0
    assert after["replaywire_protocol_errors_total{code=invalid_message}"] == 1
    assert after["replaywire_log_lines_suppressed_total{event=tracker_message_rejected}"] == 0
    # Durable acks (SQLite): every acked batch was in a committed flush.
    assert after["replaywire_storage_chunks_written_total{}"] == batches
    assert after["replaywire_storage_flush_chunks_sum{}"] == batches
    assert (
        after["replaywire_storage_flush_chunks_count{}"]
        == after["replaywire_storage_flushes_total{}"]
    )
    assert after["replaywire_storage_flush_seconds_count{}"] >= 1
    assert after["replaywire_storage_pending_chunks{}"] == 0
    assert after["replaywire_db_up{}"] == 1
    assert after["replaywire_draining{}"] == 0
    assert after["replaywire_buffer_events{}"] == 650
    assert after["replaywire_http_requests_total{route=/ws,status=101}"] == 1
    # The earlier scrape; this one is counted once answered.
    assert after["replaywire_http_requests_total{route=/metrics,status=200}"] == 1
    assert after["replaywire_build_info{version=0.1.0}"] == 1
    assert after["process_resident_memory_bytes{}"] > 0
    assert after["process_cpu_seconds_total{}"] > 0

    status, _, body = await http(server, "/stats")
    stats = json.loads(body)
    assert status == 200 and stats["sessions"]["active"] == 2
    assert stats["storage"]["chunksWritten"] == batches


async def test_a_flood_of_bad_messages_is_sampled(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(log_sample_seconds=60.0)
    async with open_websocket_url(ws_url(server)) as ws:
        for _ in range(300):
            await ws.send_message("{not json")
        for _ in range(300):
            assert (await recv_json(ws))["data"]["code"] == "invalid_message"
    samples = await scrape(server)
    assert samples["replaywire_protocol_errors_total{code=invalid_message}"] == 300
    assert samples["replaywire_log_lines_suppressed_total{event=tracker_message_rejected}"] == 299
