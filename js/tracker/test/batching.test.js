// Unit tests of the tracker's pure parts: batching, the outbox (acks,
// resume, bounds, what survives a navigation) and the backoff delays.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../src/backoff.js";
import { Batcher } from "../src/batcher.js";
import { EMPTY_BODY, Outbox } from "../src/outbox.js";

test("a batch is full by count or by bytes, and take() empties it", () => {
  const b = new Batcher({ maxEvents: 3, maxBytes: 1000 });
  assert.equal(b.add('{"a":1}'), false);
  assert.equal(b.add('{"a":2}'), false);
  assert.equal(b.add('{"a":3}'), true);
  assert.deepEqual(b.take(), { body: '[{"a":1},{"a":2},{"a":3}]', count: 3, bytes: 25 });
  assert.equal(b.take(), null);
  const small = new Batcher({ maxEvents: 100, maxBytes: 10 });
  assert.equal(small.add('{"big":"xxxxx"}'), true);
  assert.equal(JSON.parse(small.take().body).length, 1);
});

test("the outbox numbers batches, forgets acked ones and counts bytes", () => {
  const o = new Outbox({ maxBytes: 100 });
  const a = o.push({ body: "[1]", count: 1 });
  const b = o.push({ body: "[2,3]", count: 2 });
  assert.deepEqual([a.seq, b.seq], [0, 1]);
  assert.equal(o.bytes, 8);
  assert.equal(o.ack(0), 3);
  assert.equal(o.ack(0), 0, "a second ack of the same seq is harmless");
  assert.deepEqual(o.batches.map((x) => x.seq), [1]);
  assert.equal(o.bytes, 5);
  assert.equal(o.hasRoom(95), true);
  assert.equal(o.hasRoom(96), false);
});

test("resume drops what the server has, resends the rest, and never reuses a seq", () => {
  const o = new Outbox({ maxBytes: 1000 });
  for (let i = 0; i < 4; i++) o.push({ body: `[${i}]`, count: 1 }).sent = true;
  o.resume(2);
  assert.deepEqual(o.unsent().map((b) => b.seq), [2, 3]);
  assert.equal(o.bytes, 6);
  const fresh = new Outbox({ maxBytes: 1000 });
  fresh.resume(7); // state lost, the server already has seqs 0..6
  assert.equal(fresh.push({ body: "[]", count: 0 }).seq, 7);
});

test("a refused batch keeps its seq with no events", () => {
  const o = new Outbox({ maxBytes: 1000 });
  o.push({ body: "[1,2,3]", count: 3 });
  o.empty(0);
  assert.deepEqual(o.batches[0], { seq: 0, body: EMPTY_BODY, count: 0, sent: false });
  assert.equal(o.bytes, 2);
});

test("what is saved for the next page is bounded; the newest batches travel empty", () => {
  const o = new Outbox({ maxBytes: 1000 });
  o.push({ body: "[11111]", count: 1 });
  o.push({ body: "[22222]", count: 1 });
  o.push({ body: "[33333]", count: 1 });
  const saved = JSON.parse(JSON.stringify(o.serialize(14)));
  assert.deepEqual(
    saved.batches.map((b) => b.body),
    ["[11111]", "[22222]", EMPTY_BODY],
  );
  const restored = Outbox.restore(saved, 1000);
  assert.equal(restored.nextSeq, 3);
  assert.deepEqual(restored.unsent().map((b) => b.seq), [0, 1, 2], "seqs stay contiguous");
});

test("backoff doubles up to the cap, with jitter in the upper half", () => {
  const low = (attempt) => backoffDelay(attempt, { baseMs: 100, maxMs: 1000, random: () => 0 });
  const high = (attempt) => backoffDelay(attempt, { baseMs: 100, maxMs: 1000, random: () => 1 });
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(high), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(low), [50, 100, 200, 400, 500, 500]);
  assert.equal(high(1e6), 1000, "no overflow for huge attempt numbers");
});
