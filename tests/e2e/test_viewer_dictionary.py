"""``codec=zstd-dict``: live deltas compressed with the server's trained zstd
dictionary (``VIEWER_DICTIONARY``). A viewer learns the dictionary's id in
``viewer_joined``, fetches the bytes from ``GET /dictionaries/{id}``, and
decodes every frame with the ``zstandard`` package; small deltas come out
smaller than plain zstd's. Without a dictionary the codec is refused before
the upgrade. ``replaywire train-dictionary`` makes the file from stored
sessions."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import zstandard
from trio_websocket import open_websocket_url

from conftest import make_config
from e2e.backends import ws_backend  # noqa: F401  (runs every test on both WebSocket codecs)
from e2e.clients import http, start_session, ws_url
from replaywire import Server
from replaywire.client import ViewerStream, decode_message
from replaywire.config import ConfigError
from replaywire.protocol import dictionary
from replaywire.storage import Chunk, SessionRecord, open_storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_corpus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dictionary_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file of a dictionary trained on other visits of the corpus's
    site (seeds 100-111) than the session the tests stream (seed 3)."""
    events = make_corpus.incremental_events(range(100, 112), 1000)
    trained = dictionary.train(list(dictionary.deltas(events, random.Random(1))), 16 * 1024)
    path = tmp_path_factory.mktemp("dict") / "rrweb.zdict"
    path.write_bytes(trained.data)
    return path


async def watch(server: Server, session_id: str, codec: str, joined: trio.Semaphore) -> list:
    """Join, then every frame up to ``session_ended``; the first is ``viewer_joined``."""
    join = {"type": "viewer_join_session", "data": {"sessionId": session_id}}
    async with open_websocket_url(f"{ws_url(server, 'viewer')}&codec={codec}") as ws:
        await ws.send_message(json.dumps(join))
        frames: list = [await ws.get_message()]
        joined.release()
        while not (isinstance(frames[-1], str) and '"session_ended"' in frames[-1]):
            with trio.fail_after(60):
                frames.append(await ws.get_message())
    return frames


async def test_zstd_dict_viewer_gets_every_event_in_smaller_frames(
    start_server, dictionary_file: Path
) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(viewer_dictionary=str(dictionary_file))
    events = make_corpus.incremental_events([3], 600)
    results: dict[str, list] = {}
    joined = trio.Semaphore(0)

    async def viewer(codec: str) -> None:
        results[codec] = await watch(server, "shop", codec, joined)

    async with open_websocket_url(ws_url(server)) as tracker:
        await start_session(tracker, "shop")
        async with trio.open_nursery() as nursery:
            for codec in ("zstd", "zstd-dict"):
                nursery.start_soon(viewer, codec)
            await joined.acquire()
            await joined.acquire()
            # A busy page's pace: a few events per 50 ms tick.
            for seq in range(len(events) // 5):
                await tracker.send_message(_batch(seq, events[seq * 5 : seq * 5 + 5]))
                await trio.sleep(0.01)
            await tracker.send_message(json.dumps({"type": "session_end", "data": {}}))

    joined_msg = json.loads(results["zstd-dict"][0])
    assert joined_msg["type"] == "viewer_joined"
    dict_id = joined_msg["data"]["dictionaryId"]
    status, headers, body = await http(server, f"/dictionaries/{dict_id}")
    assert status == 200 and body == server.dictionary.data  # the file's bytes
    assert headers["content-type"] == "application/octet-stream"
    assert "immutable" in headers["cache-control"]
    assert "dictionaryId" not in json.loads(results["zstd"][0])["data"]

    sent = [json.loads(e) for e in events]
    stream = ViewerStream(dictionary=body)
    received = [e for frame in results["zstd-dict"][1:] for e in stream.feed(frame)]
    assert received == sent and stream.ended
    deltas = {
        codec: [f for f in frames if isinstance(f, bytes) and f[1] == 2]  # kind 2: delta
        for codec, frames in results.items()
    }
    # Every frame names the dictionary (RFC 8878 frame header); a zstd
    # decoder without it cannot read them.
    frame = deltas["zstd-dict"][0]
    assert decode_message(frame, dictionary=body).codec == "zstd-dict"
    assert zstandard.get_frame_parameters(_payload(frame)).dict_id == dict_id
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(_payload(frame))
    plain = sum(map(len, deltas["zstd"]))
    with_dict = sum(map(len, deltas["zstd-dict"]))
    assert with_dict < 0.8 * plain, (with_dict, plain)


def _batch(seq: int, events: list[bytes]) -> str:
    data = b'{"type":"events_batch","data":{"seq":%d,"events":[%b]}}' % (seq, b",".join(events))
    return data.decode()


def _payload(frame: bytes) -> bytes:
    """The compressed part of a binary events frame (docs/protocol.md)."""
    from replaywire.client import BINARY_HEADER

    id_length = BINARY_HEADER.unpack_from(frame)[-1]
    return frame[BINARY_HEADER.size + id_length :]


async def test_zstd_dict_is_refused_without_a_dictionary(server: Server) -> None:
    """(The upgrade's 400 is a row of the bad-input table: test_bad_input.)"""
    status, _, body = await http(server, "/dictionaries/1234")
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_dictionary"


async def test_unknown_dictionary_id_is_404(start_server, dictionary_file: Path) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(viewer_dictionary=str(dictionary_file))
    assert server.dictionary is not None
    status, _, body = await http(server, f"/dictionaries/{server.dictionary.id + 1}")
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_dictionary"


def test_a_file_that_is_no_dictionary_stops_the_server_from_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zdict"
    bad.write_bytes(b"not a dictionary at all")
    with pytest.raises(ConfigError, match=r"VIEWER_DICTIONARY=.*bad magic"):
        Server(make_config(tmp_path, viewer_dictionary=str(bad)))
    with pytest.raises(ConfigError, match=r"VIEWER_DICTIONARY=.*missing"):
        Server(make_config(tmp_path, viewer_dictionary=str(tmp_path / "missing.zdict")))


def _store_sessions(url: str, seeds: range) -> None:
    storage = open_storage(url)
    storage.open()
    try:
        for seed in seeds:
            events = make_corpus.incremental_events([seed], 400)
            sid = f"default:visit-{seed}"
            chunks = [
                Chunk(sid, n, n * 50, len(part), None, None, "none", make_corpus.join(part))
                for n, part in enumerate(events[i : i + 50] for i in range(0, len(events), 50))
            ]
            storage.write([SessionRecord(sid, started_at=1_700_000_000.0 + seed)], chunks, [])
    finally:
        storage.close()


def test_train_dictionary_from_stored_sessions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'visits.db'}"
    out = tmp_path / "trained.zdict"
    command = [sys.executable, "-m", "replaywire", "train-dictionary", "--out", str(out)]
    env_args = ["--database-url", url]
    empty = subprocess.run([*command, *env_args], capture_output=True, text=True, cwd=ROOT)
    assert empty.returncode == 1 and "too few" in empty.stderr, empty.stderr
    assert not out.exists()

    _store_sessions(url, range(10, 30))
    done = subprocess.run([*command, *env_args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    trained = dictionary.parse(out.read_bytes())
    assert f"dictionary id {trained.id}" in done.stdout
    assert "of 16 sessions" in done.stdout  # every fifth is held out to measure it
    assert "deltas of 4 held-out sessions" in done.stdout
    # It is a dictionary the server starts with.
    assert Server(make_config(tmp_path, viewer_dictionary=str(out))).dictionary == trained
