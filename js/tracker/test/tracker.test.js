// The Tracker against a fake WebSocket and a fake rrweb: the protocol
// exchange, acks, resend after reconnect, every server answer and close
// code, full snapshots of heavy pages, and the memory bound.
import assert from "node:assert/strict";
import { test } from "node:test";
import { inflateRawSync } from "node:zlib";
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
    if (typeof data === "string") this.sent.push(JSON.parse(data));
    else this.sent.push({ ...JSON.parse(inflateRawSync(data.subarray(8)).toString()), binary: data.length });
  }
  close(code = 1000) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code });
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
    compress: false,
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
  const t = tracker({ maxUnackedBytes: 200, record, snapshotBackoffBaseMs: 1 });
  await tick();
  const ws = FakeSocket.all[0];
  ws.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 });
  for (let n = 0; n < 20; n++) t.addEvent(event(n));
  await tick();
  const stats = t.stats();
  assert.ok(stats.droppedEvents > 0);
  assert.ok(stats.unackedBytes <= 200);
  for (const b of ws.batches()) ws.reply("ack", { sessionId: "s1", seq: b.data.seq });
  await until(() => snapshots === 1);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(snapshots, 1, "recovered with one fresh full snapshot");
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
  await tick();
  assert.equal(ws.sent.at(-1).type, "session_end");
  ws.reply("session_ended", { sessionId: "s1" });
  await stopped;
  assert.equal(ws.readyState, 3);
});

// --- heavy pages: full snapshots over the budget or the server's limits ------

const LIMITS = { maxEventBytes: 4000, maxMessageBytes: 5000, maxEventsPerBatch: 10_000 };
const meta = { type: 4, data: { href: "http://shop.test/" }, timestamp: 1 };
const snapshotOf = (chars) => ({ type: 2, data: { node: "x".repeat(chars) }, timestamp: 2 });

/** A fake rrweb: `emit` what the test says; takeFullSnapshot counted (and refused once stopped, as rrweb does). */
function fakeRecord(snapshotChars) {
  const rec = (options) => {
    rec.emit = options.emit;
    rec.recording = true;
    return () => {
      rec.recording = false;
    };
  };
  rec.taken = 0;
  rec.takeFullSnapshot = () => {
    if (!rec.recording) throw new Error("please take full snapshot after start recording");
    rec.taken++;
    rec.emit({ ...meta, timestamp: 100 + rec.taken });
    rec.emit(snapshotOf(snapshotChars()));
  };
  return rec;
}

async function connected(t, data = { nextSeq: 0, nextIndex: 0, limits: LIMITS }) {
  await until(() => FakeSocket.all.at(-1)?.sent.length > 0);
  const ws = FakeSocket.all.at(-1);
  ws.reply("session_started", { sessionId: "s1", ...data });
  await tick();
  return ws;
}

test("a full snapshot larger than the memory budget is kept and sent, never dropped", async () => {
  const t = tracker({ maxUnackedBytes: 500, maxBatchBytes: 1000 });
  const ws = await connected(t, { nextSeq: 0, nextIndex: 0 });
  t.addEvent(meta);
  t.addEvent(snapshotOf(3000)); // 6x the budget
  t.addEvent(event(1));
  await tick();
  assert.equal(t.stats().droppedEvents, 0);
  const sent = ws.batches();
  assert.deepEqual(sent.map((b) => b.data.events.map((e) => e.type)), [[4], [2]], "the meta before, the snapshot alone");
  await t.stop({ end: false });
});

test("a snapshot over the server's limit is not uploaded: the server is told, recording goes on", async () => {
  const errors = [];
  let elements = 135_000;
  const record = fakeRecord(() => 6000);
  const t = tracker({
    record,
    maxBatchBytes: 1000,
    onError: (e) => errors.push(e.data.code),
    countElements: () => elements,
    snapshotBackoffBaseMs: 2,
    snapshotBackoffMaxMs: 20,
  });
  const ws = await connected(t);
  record.takeFullSnapshot(); // rrweb's first, at record start
  t.addEvent(event(1));
  t.flush();
  await tick();
  const batches = ws.batches();
  assert.deepEqual(batches.map((b) => b.data.events.map((e) => e.type)), [[4], [], [3]], "seq kept, snapshot left out");
  const notice = ws.sent.find((m) => m.type === "snapshot_missing");
  assert.deepEqual(notice.data, { sessionId: "s1", reason: "too_large", bytes: JSON.stringify(snapshotOf(6000)).length, limitBytes: 4000 });
  assert.deepEqual(t.stats().snapshotMissing, { bytes: notice.data.bytes, limitBytes: 4000 });
  assert.equal(t.stats().lastError.code, "snapshot_too_large");
  assert.deepEqual(errors, ["snapshot_too_large"]);
  for (const b of batches) ws.reply("ack", { sessionId: "s1", seq: b.data.seq });
  t.wantSnapshot(); // e.g. the periodic checkout
  await new Promise((resolve) => setTimeout(resolve, 300)); // ~15 backoff periods
  assert.equal(record.taken, 1, "the same page is not snapshotted again");
  elements = 10_000; // the page shrank: a new snapshot is worth a try
  await until(() => record.taken === 2, 1000);
  await t.stop({ end: false });
});

test("payload_too_large: the seq is resent once without the oversized event, with its others", async () => {
  const record = fakeRecord(() => 100);
  const t = tracker({ record, maxBatchEvents: 10, snapshotBackoffBaseMs: 60_000 });
  const ws = await connected(t, { nextSeq: 0, nextIndex: 0 }); // an older server: no limits
  t.addEvent(meta);
  t.addEvent(snapshotOf(300));
  t.addEvent(event(1));
  t.flush();
  await tick();
  assert.deepEqual(ws.batches()[0].data.events.map((e) => e.type), [4, 2, 3]);
  ws.reply("error", { code: "payload_too_large", message: "too big", seq: 0 });
  await tick();
  assert.deepEqual(ws.batches()[1].data.events.map((e) => e.type), [4, 3], "the largest event out, the rest kept");
  assert.equal(ws.sent.filter((m) => m.type === "snapshot_missing").length, 1);
  ws.reply("error", { code: "payload_too_large", message: "still too big", seq: 0 });
  await tick();
  assert.deepEqual(ws.batches()[2].data.events, [], "a second refusal: resent empty");
  ws.reply("error", { code: "payload_too_large", message: "even empty", seq: 0 });
  await tick();
  assert.equal(ws.batches().length, 3, "refused even empty: the seq is given up, no loop");
  assert.equal(t.stats().unackedBatches, 0);
  await t.stop({ end: false });
});

test("every error code gets its answer, and none makes the tracker loop", async () => {
  const cases = {
    rate_limited: "held and resent",
    storage_unavailable: "held and resent",
    payload_too_large: "resent without its largest event",
    invalid_message: "resent empty",
    invalid_event: "resent empty",
    seq_out_of_window: "resent empty",
    invalid_compression: "resent uncompressed",
    unknown_session: "resent empty",
    "unknown_session:no-seq": "new connection",
    unknown_message_type: "reported only",
    not_allowed: "reported only",
    session_limit: "reported only",
    viewer_limit: "reported only",
    some_future_code: "resent empty",
  };
  for (const [name, expected] of Object.entries(cases)) {
    const [code, variant] = name.split(":");
    const errors = [];
    const t = tracker({ onError: (e) => errors.push(e.data.code) });
    const ws = await connected(t);
    t.addEvent(event(1));
    t.addEvent(event(2));
    await tick();
    const data = { code, message: "m" };
    if (variant !== "no-seq") data.seq = 0;
    if (expected === "held and resent") data.retryAfterMs = 5;
    ws.reply("error", data);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const batches = ws.batches();
    const outcome = {
      "held and resent": () => batches.length === 2 && batches[1].data.events.length === 2,
      "resent without its largest event": () => batches.length === 2 && batches[1].data.events.length === 1,
      "resent empty": () => batches.length === 2 && batches[1].data.events.length === 0,
      "resent uncompressed": () => batches.length === 2 && batches[1].data.events.length === 2,
      "new connection": () => FakeSocket.all.length === 2,
      "reported only": () => batches.length === 1 && FakeSocket.all.length === 1,
    }[expected];
    assert.ok(outcome(), `${name}: expected "${expected}", sent ${JSON.stringify(batches)}`);
    assert.deepEqual(errors, [code], `${name}: reported through onError`);
    assert.equal(t.stats().lastError.code, code);
    await t.stop({ end: false });
  }
});

test("every close code: reconnect after a backoff, and a refused message is cut down, not resent forever", async () => {
  for (const code of [1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4000]) {
    const t = tracker({ maxBatchEvents: 3 });
    const ws = await connected(t);
    t.addEvent(event(1));
    t.addEvent(snapshotOf(200));
    t.addEvent(event(2));
    await tick();
    ws.close(code);
    await until(() => FakeSocket.all.length === 2, 1000);
    const next = await connected(t);
    const resent = next.batches()[0].data.events.map((e) => e.type);
    const expected = { 1009: [3, 3], 1002: [], 1003: [], 1007: [] }[code] ?? [3, 2, 3];
    assert.deepEqual(resent, expected, `close ${code}`);
    assert.equal(t.stats().reconnects, 1);
    await t.stop({ end: false });
  }
});

test("a server that closes with 1009 on every message gets a few reconnects, not a storm", async () => {
  class Refusing extends FakeSocket {
    send(data) {
      super.send(data);
      const m = this.sent.at(-1);
      if (m.type === "session_start") queueMicrotask(() => this.reply("session_started", { sessionId: "s1", nextSeq: 0, nextIndex: 0 }));
      if (m.type === "events_batch") queueMicrotask(() => this.close(1009));
    }
  }
  FakeSocket.all = [];
  const t = new Tracker({
    server: "http://replay.test:8080",
    sessionId: "s1",
    WebSocket: Refusing,
    compress: false,
    backoffBaseMs: 5,
    backoffMaxMs: 10_000,
    storageKey: `test-${Math.random()}`,
  }).start();
  t.addEvent(snapshotOf(500));
  t.flush();
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.ok(FakeSocket.all.length <= 6, `${FakeSocket.all.length} connections in 0.5 s`);
  assert.equal(t.stats().unackedBatches, 0, "the message was cut down to nothing and given up");
  await t.stop({ end: false });
});

test("stop() after a dropped snapshot ends the session cleanly and throws nothing", async () => {
  const record = fakeRecord(() => 6000);
  const errors = [];
  const t = tracker({ record, maxBatchBytes: 1000, onError: (e) => errors.push(e), snapshotBackoffBaseMs: 1 });
  const ws = await connected(t);
  record.takeFullSnapshot();
  t.wantSnapshot();
  const stopped = t.stop();
  await tick();
  for (const b of ws.batches()) ws.reply("ack", { sessionId: "s1", seq: b.data.seq });
  await until(() => ws.sent.at(-1)?.type === "session_end");
  ws.reply("session_ended", { sessionId: "s1" });
  await stopped;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(record.taken, 1, "no snapshot asked of a stopped recorder");
  assert.ok(errors.every((e) => e.data?.code === "snapshot_too_large"), String(errors));
});

test("stop() that runs out of time still ends the session", async () => {
  const t = tracker({ stopTimeoutMs: 30 });
  const ws = await connected(t);
  t.addEvent(event(1));
  await t.stop(); // the ack never comes
  assert.equal(ws.sent.at(-1).type, "session_end");
  assert.equal(ws.readyState, 3);
});

test("large messages go compressed by default, in seq order with the others", async () => {
  FakeSocket.all = [];
  const t = new Tracker({
    server: "http://replay.test:8080",
    sessionId: "s1",
    WebSocket: FakeSocket,
    maxBatchEvents: 1,
    storageKey: `test-${Math.random()}`,
  }).start();
  const ws = await connected(t, { nextSeq: 0, nextIndex: 0, limits: { ...LIMITS, maxEventBytes: 1e6 } });
  t.addEvent(snapshotOf(50_000));
  t.addEvent(event(1));
  await until(() => ws.batches().length === 2);
  const [big, small] = ws.batches();
  assert.ok(big.binary > 0 && big.binary < 2000, `50 kB of snapshot compressed to ${big.binary} bytes`);
  assert.equal(big.data.events[0].data.node.length, 50_000);
  assert.equal(small.binary, undefined, "a small message stays text");
  assert.deepEqual([big.data.seq, small.data.seq], [0, 1]);
  await t.stop({ end: false });
});

test("at most one full snapshot in flight", async () => {
  const record = fakeRecord(() => 100);
  const t = tracker({ record, maxUnackedBytes: 200, snapshotBackoffBaseMs: 1 });
  const ws = await connected(t, { nextSeq: 0, nextIndex: 0, limits: LIMITS });
  record.takeFullSnapshot();
  for (let n = 0; n < 20; n++) t.addEvent(event(n)); // overflow
  await tick();
  for (const b of ws.batches()) if (!b.data.events.some((e) => e.type === 2)) ws.reply("ack", { sessionId: "s1", seq: b.data.seq });
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(record.taken, 1, "the first is still unacked: no second one");
  const snapshotSeq = ws.batches().find((b) => b.data.events.some((e) => e.type === 2)).data.seq;
  ws.reply("ack", { sessionId: "s1", seq: snapshotSeq });
  await until(() => record.taken === 2);
  await t.stop({ end: false });
});

test("a session taken over by a newer connection (4409): the tracker stops, reports it and does not reconnect", async () => {
  const errors = [];
  const t = tracker({ onError: (err) => errors.push(err.data.code) });
  const ws = await connected(t);
  t.addEvent(event(1));
  await tick();
  ws.close(4409);
  await tick();
  await new Promise((resolve) => setTimeout(resolve, 20)); // past any reconnect backoff
  assert.equal(FakeSocket.all.length, 1);
  assert.deepEqual(errors, ["session_taken_over"]);
  assert.equal(t.stats().lastError.code, "session_taken_over");
  assert.equal(t.stats().reconnects, 0);
});
