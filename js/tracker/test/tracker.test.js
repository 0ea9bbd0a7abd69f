// The Tracker against a fake WebSocket and a fake rrweb: the protocol
// exchange, acks, resend after reconnect, retryAfterMs and the memory bound.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tracker, trackerUrl } from "../src/tracker.js";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.();
    });
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
    this.onclose?.();
  }
  reply(type, data) {
    this.onmessage?.({ data: JSON.stringify({ type, data }) });
  }
  batches() {
    return this.sent.filter((m) => m.type === "events_batch");
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Wait (bounded) until `check()` holds: timers fire late on a busy machine. */
async function until(check, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not true within ${ms} ms: ${check}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function tracker(options = {}) {
  FakeSocket.all = [];
  return new Tracker({
    server: "http://replay.test:8080",
    sessionId: "s1",
    WebSocket: FakeSocket,
    flushIntervalMs: 60_000,
    maxBatchEvents: 2,
    backoffBaseMs: 1,
    backoffMaxMs: 2,
    storageKey: `test-${Math.random()}`,
    ...options,
  }).start();
}

const event = (n) => ({ type: 3, data: { n }, timestamp: 1000 + n });

test("tracker URL from a server base URL", () => {
  assert.equal(trackerUrl("https://r.example.com/base/"), "wss://r.example.com/base/ws?type=tracker");
  assert.equal(trackerUrl("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws?type=tracker");
  assert.equal(
    trackerUrl("https://r.example.com", "pk_acme 1&2"),
    "wss://r.example.com/ws?type=tracker&key=pk_acme+1%262",
  );
});

test("session_start, batches with seq, acks free memory", async () => {
  const t = tracker();
  await tick();
  const ws = FakeSocket.all[0];
  assert.equal(ws.sent[0].type, "session_start");
  assert.equal(ws.sent[0].data.sessionId, "s1");
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  for (let n = 0; n < 4; n++) t.addEvent(event(n));
  await tick();
  assert.deepEqual(ws.batches().map((b) => [b.data.seq, b.data.events.length]), [[0, 2], [1, 2]]);
  ws.reply("ack", { sessionId: "s1", seq: 0 });
  assert.equal(t.stats().unackedBatches, 1);
  await t.stop({ end: false });
});

test("after a reconnect, unacked batches are resent from the server's nextSeq", async () => {
  const t = tracker();
  await tick();
  let ws = FakeSocket.all[0];
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  for (let n = 0; n < 6; n++) t.addEvent(event(n)); // seqs 0, 1, 2
  await tick();
  ws.reply("ack", { sessionId: "s1", seq: 0 });
  ws.close(); // the server went away; it had stored seq 1 but the ack was lost
  t.addEvent(event(6));
  t.addEvent(event(7)); // seq 3, made while disconnected
  await until(() => FakeSocket.all.length === 2 && FakeSocket.all[1].sent.length === 1);
  ws = FakeSocket.all.at(-1);
  ws.reply("session_started", { sessionId: "s1", nextSeq: 2, nextIndex: 4 });
  await tick();
  assert.deepEqual(ws.batches().map((b) => b.data.seq), [2, 3]);
  assert.equal(t.stats().reconnects, 1);
  await t.stop({ end: false });
});

test("an error with retryAfterMs holds the batch and resends it later", async () => {
  const t = tracker();
  await tick();
  const ws = FakeSocket.all[0];
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  t.addEvent(event(0));
  t.addEvent(event(1));
  await tick();
  ws.reply("error", { code: "storage_unavailable", message: "spool full", seq: 0, retryAfterMs: 15 });
  t.addEvent(event(2));
  t.addEvent(event(3)); // seq 1: held while paused
  await tick();
  assert.deepEqual(ws.batches().map((b) => b.data.seq), [0]);
  await until(() => ws.batches().length === 3);
  assert.deepEqual(ws.batches().map((b) => b.data.seq), [0, 0, 1]);
  await t.stop({ end: false });
});

test("a batch refused for good is resent empty, keeping seqs contiguous", async () => {
  const t = tracker();
  await tick();
  const ws = FakeSocket.all[0];
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  t.addEvent(event(0));
  t.addEvent(event(1));
  await tick();
  ws.reply("error", { code: "invalid_event", message: "bad", seq: 0 });
  await tick();
  const resent = ws.batches().at(-1);
  assert.deepEqual([resent.data.seq, resent.data.events], [0, []]);
  await t.stop({ end: false });
});

test("memory is bounded: past maxUnackedBytes events are dropped, then a full snapshot is taken", async () => {
  let snapshots = 0;
  const record = Object.assign(() => () => {}, { takeFullSnapshot: () => snapshots++ });
  const t = tracker({ maxUnackedBytes: 200, record });
  await tick();
  const ws = FakeSocket.all[0];
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  for (let n = 0; n < 20; n++) t.addEvent(event(n));
  await tick();
  const stats = t.stats();
  assert.ok(stats.droppedEvents > 0);
  assert.ok(stats.unackedBytes <= 200);
  for (const b of ws.batches()) ws.reply("ack", { sessionId: "s1", seq: b.data.seq });
  assert.equal(snapshots, 1, "recovered with a fresh full snapshot");
  await t.stop({ end: false });
});

test("stop() waits for the acks, then ends the session", async () => {
  const t = tracker();
  await tick();
  const ws = FakeSocket.all[0];
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  t.addEvent(event(0));
  const stopped = t.stop();
  await tick();
  assert.equal(ws.sent.at(-1).type, "events_batch", "the pending event was flushed first");
  ws.reply("ack", { sessionId: "s1", seq: 0 });
  assert.equal(ws.sent.at(-1).type, "session_end");
  ws.reply("session_ended", { sessionId: "s1" });
  await stopped;
  assert.equal(ws.readyState, 3);
});
