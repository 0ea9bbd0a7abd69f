"""Metrics: one registry per server, every metric named and documented,
collect hooks run before each scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from replaywire.observability.metrics import Metrics

# name -> (type, label names); the server code and dashboards rely on these.
EXPECTED = {
    "replaywire_connections": ("counter", ("kind",)),
    "replaywire_connections_active": ("gauge", ("kind",)),
    "replaywire_ws_closes": ("counter", ("code",)),
    "replaywire_tcp_connections_open": ("gauge", ()),
    "replaywire_connections_refused": ("counter", ()),
    "replaywire_handshake_timeouts": ("counter", ()),
    "replaywire_ws_ping_timeouts": ("counter", ()),
    "replaywire_messages": ("counter", ("kind", "type")),
    "replaywire_events_ingested": ("counter", ()),
    "replaywire_bytes_ingested": ("counter", ()),
    "replaywire_batches_acked": ("counter", ()),
    "replaywire_ack_seconds": ("histogram", ()),
    "replaywire_batches_duplicate": ("counter", ()),
    "replaywire_protocol_errors": ("counter", ("code",)),
    "replaywire_http_requests": ("counter", ("route", "status")),
    "replaywire_http_request_seconds": ("histogram", ("route",)),
    "replaywire_sessions_active": ("gauge", ()),
    "replaywire_sessions_started": ("counter", ()),
    "replaywire_sessions_ended": ("counter", ("reason",)),
    "replaywire_snapshots_missing": ("counter", ("reason",)),
    "replaywire_viewers_active": ("gauge", ()),
    "replaywire_viewer_messages": ("counter", ()),
    "replaywire_viewer_bytes": ("counter", ()),
    "replaywire_viewer_ticks": ("counter", ()),
    "replaywire_viewer_resyncs": ("counter", ()),
    "replaywire_viewer_fanout_seconds": ("counter", ()),
    "replaywire_http_write_timeouts": ("counter", ()),
    "replaywire_storage_flushes": ("counter", ()),
    "replaywire_storage_flush_seconds": ("histogram", ()),
    "replaywire_storage_flush_chunks": ("histogram", ()),
    "replaywire_storage_pending_chunks": ("gauge", ()),
    "replaywire_db_up": ("gauge", ()),
    "replaywire_storage_pending_bytes": ("gauge", ()),
    "replaywire_storage_write_failures": ("counter", ()),
    "replaywire_storage_chunks_written": ("counter", ()),
    "replaywire_storage_spooling": ("gauge", ()),
    "replaywire_storage_spool_bytes": ("gauge", ()),
    "replaywire_storage_spooled_chunks": ("counter", ()),
    "replaywire_memory_storage_evicted_chunks": ("counter", ()),
    "replaywire_storage_drained_chunks": ("counter", ()),
    "replaywire_buffer_bytes": ("gauge", ()),
    "replaywire_buffer_events": ("gauge", ()),
    "replaywire_buffer_trimmed_events": ("counter", ()),
    "replaywire_build_info": ("gauge", ("version",)),
    "replaywire_draining": ("gauge", ()),
    "replaywire_log_records_dropped": ("counter", ()),
    "replaywire_log_lines_suppressed": ("counter", ("event",)),
    "replaywire_task_crashes": ("counter", ("task",)),
    "replaywire_inflight_bytes": ("gauge", ()),
    "replaywire_inflight_waits": ("counter", ()),
    "replaywire_viewer_tick_stretch": ("gauge", ()),
    "replaywire_rate_limited": ("counter", ("limit",)),
    "replaywire_relay_messages": ("counter", ("direction",)),
    "replaywire_redis_up": ("gauge", ()),
}
# prometheus_client's process, platform and GC collectors, as in its default
# registry (process_* only where /proc exists, i.e. Linux).
PROCESS = {
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "python_info",
    "python_gc_collections",
}


def scrape(metrics: Metrics) -> dict[str, float]:
    """Sample name with sorted labels -> value, from the rendered text."""
    body, _ = metrics.render()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_every_metric_is_exported_named_typed_and_documented() -> None:
    metrics = Metrics()
    metrics.http_request_seconds.labels("/health/live").observe(0.002)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")

    families = {
        f.name: f
        for f in text_string_to_metric_families(body.decode())
        # prometheus_client's creation timestamps of counters and histograms
        if not f.name.endswith("_created")
    }
    ours = {name for name in families if name.startswith("replaywire_")}
    assert ours == EXPECTED.keys()
    assert families.keys() >= PROCESS
    for name, (kind, labels) in EXPECTED.items():
        family = families[name]
        assert family.type == kind, name
        assert family.documentation.strip(), name
        for sample in family.samples:
            assert set(labels) <= sample.labels.keys(), (name, sample)
    assert b"replaywire_connections_total" in body


def test_attributes_match_the_exported_names() -> None:
    metrics = Metrics()
    for name in EXPECTED:
        attribute = name.removeprefix("replaywire_")
        if EXPECTED[name][0] == "counter":
            attribute += "_total"
        assert hasattr(metrics, attribute), attribute


def test_two_instances_do_not_collide() -> None:
    a, b = Metrics(), Metrics()  # would raise "Duplicated timeseries" on a shared registry
    a.events_ingested_total.inc(5)
    a.connections_active.labels("tracker").inc()
    b.events_ingested_total.inc(2)

    assert scrape(a)["replaywire_events_ingested_total{}"] == 5
    assert scrape(b)["replaywire_events_ingested_total{}"] == 2
    assert scrape(a)["replaywire_connections_active{kind=tracker}"] == 1
    assert scrape(b)["replaywire_connections_active{kind=tracker}"] == 0


def test_known_label_values_start_at_zero() -> None:
    samples = scrape(Metrics())
    for kind in ("tracker", "viewer"):
        assert samples[f"replaywire_connections_total{{kind={kind}}}"] == 0
        assert samples[f"replaywire_connections_active{{kind={kind}}}"] == 0
    for reason in ("client", "idle", "cleanup", "shutdown"):
        assert samples[f"replaywire_sessions_ended_total{{reason={reason}}}"] == 0


def test_collect_hooks_run_before_every_render_in_order() -> None:
    metrics = Metrics()
    calls: list[str] = []
    stats = {"bytes": 100}

    def refresh_buffers() -> None:
        calls.append("buffers")
        metrics.buffer_bytes.set(stats["bytes"])

    metrics.add_collect_hook(refresh_buffers)
    metrics.add_collect_hook(lambda: calls.append("second"))

    assert scrape(metrics)["replaywire_buffer_bytes{}"] == 100
    stats["bytes"] = 250
    assert scrape(metrics)["replaywire_buffer_bytes{}"] == 250
    assert calls == ["buffers", "second", "buffers", "second"]


def test_a_failing_hook_does_not_break_the_scrape() -> None:
    metrics = Metrics()
    ran: list[bool] = []

    def broken() -> None:
        raise RuntimeError("stats unavailable")

    metrics.add_collect_hook(broken)
    metrics.add_collect_hook(lambda: ran.append(True))
    metrics.sessions_active.set(3)

    assert scrape(metrics)["replaywire_sessions_active{}"] == 3
    assert ran == [True]
