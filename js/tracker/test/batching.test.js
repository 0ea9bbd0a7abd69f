// Unit tests of the tracker's pure parts: batching, the outbox (acks,
// resume, bounds, what survives a navigation), the backoff delays and the
// snapshot policy.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../src/backoff.js";
import { Batcher } from "../src/batcher.js";
import { body, EMPTY_BODY, FULL_SNAPSHOT, Outbox } from "../src/outbox.js";
import { SnapshotPolicy } from "../src/snapshots.js";

test("a batch is full by count or by bytes, and take() empties it", () => {
  const b = new Batcher({ maxEvents: 3, maxBytes: 1000 });
  assert.equal(b.add('{"a":1}', 3), false);
  assert.equal(b.add('{"a":2}', 3), false);
  assert.equal(b.add('{"a":3}', 2), true);
  assert.deepEqual(b.take(), { parts: ['{"a":1}', '{"a":2}', '{"a":3}'], types: [3, 3, 2], bytes: 25 });
  assert.equal(b.take(), null);
  const small = new Batcher({ maxEvents: 100, maxBytes: 10 });
  assert.equal(small.add('{"big":"xxxxx"}', 3), true);
  assert.equal(small.take().parts.length, 1);
});

const batch = (...events) => ({ parts: events.map((e) => JSON.stringify(e)), types: events.map(() => 3) });

test("the outbox numbers batches, forgets acked ones and counts bytes", () => {
  const o = new Outbox({ maxBytes: 100 });
  const a = o.push(batch(1));
  const b = o.push(batch(2, 3));
  assert.deepEqual([a.seq, b.seq], [0, 1]);
  assert.equal(body(b), "[2,3]");
  assert.equal(o.bytes, 8);
  assert.equal(o.ack(0), 3);
  assert.equal(o.ack(0), 0, "a second ack of the same seq is harmless");
  assert.deepEqual(o.batches.map((x) => x.seq), [1]);
  assert.equal(o.bytes, 5);
  assert.equal(o.hasRoom(95), true);
  assert.equal(o.hasRoom(96), false);
});

test("full snapshots are held on top of the budget, which bounds incremental events only", () => {
  const o = new Outbox({ maxBytes: 10 });
  const snapshot = o.push({ parts: ['{"type":2,"big":"xxxxxxxxxxxxxxxxxxxx"}'], types: [FULL_SNAPSHOT] });
  assert.equal(snapshot.keyframe, true);
  assert.equal(o.keyframe(), snapshot);
  assert.equal(o.incrementalBytes, 0);
  assert.equal(o.hasRoom(10), true);
  o.push(batch(12345));
  assert.equal(o.incrementalBytes, 7);
  assert.equal(o.hasRoom(4), false);
  o.ack(snapshot.seq);
  assert.equal(o.keyframe(), undefined);
  assert.equal(o.bytes, 7);
});

test("resume drops what the server has, resends the rest, and never reuses a seq", () => {
  const o = new Outbox({ maxBytes: 1000 });
  for (let i = 0; i < 4; i++) o.push(batch(i)).sent = true;
  o.resume(2);
  assert.deepEqual(o.unsent().map((b) => b.seq), [2, 3]);
  assert.equal(o.bytes, 6);
  const fresh = new Outbox({ maxBytes: 1000 });
  fresh.resume(7); // state lost, the server already has seqs 0..6
  assert.equal(fresh.push(batch()).seq, 7);
});

test("a refused batch keeps its seq with no events; one event can be taken out", () => {
  const o = new Outbox({ maxBytes: 1000 });
  o.push(batch(1, 2, 3));
  const removed = o.remove(0, (part) => part !== "2");
  assert.deepEqual(removed, [{ part: "2", type: 3 }]);
  assert.equal(body(o.batches[0]), "[1,3]");
  assert.equal(o.bytes, 5);
  o.empty(0);
  assert.equal(body(o.batches[0]), EMPTY_BODY);
  assert.equal(o.batches[0].seq, 0);
  assert.equal(o.bytes, 2);
});

test("what is saved for the next page is bounded; the newest batches travel empty", () => {
  const o = new Outbox({ maxBytes: 1000 });
  o.push(batch(11111));
  o.push(batch(22222));
  o.push(batch(33333));
  const saved = JSON.parse(JSON.stringify(o.serialize(14)));
  assert.deepEqual(
    saved.batches.map((b) => b.body),
    ["[11111]", "[22222]", EMPTY_BODY],
  );
  const restored = Outbox.restore(saved, 1000);
  assert.equal(restored.nextSeq, 3);
  assert.deepEqual(restored.unsent().map((b) => b.seq), [0, 1, 2], "seqs stay contiguous");
  assert.deepEqual(restored.batches.map(body), ["[11111]", "[22222]", EMPTY_BODY]);
});

test("snapshot retakes back off, and start over after a calm spell", () => {
  const p = new SnapshotPolicy({ baseMs: 1000, maxMs: 8000, calmMs: 60_000 });
  p.recorded(0); // rrweb's first
  assert.equal(p.waitMs(0), 1000);
  const takes = [];
  let now = 0;
  while (now < 60_000) {
    now += p.waitMs(now) || 1;
    if (p.allows(now, 100)) {
      p.recorded(now);
      takes.push(now);
    }
  }
  assert.deepEqual(takes.slice(0, 5), [1000, 3000, 7000, 15000, 23000], "2x each time up to the cap");
  assert.ok(takes.length <= 10, `at most ~one per maxMs once capped: ${takes}`);
  p.recorded(200_000);
  assert.equal(p.attempt, 0, "a calm spell starts over");
});

test("after a snapshot too large for the server, none is taken until the page shrank", () => {
  const p = new SnapshotPolicy({ baseMs: 1000, maxMs: 60_000 });
  p.recorded(0);
  p.refused({ bytes: 70_000_000, limitBytes: 64 * 1024 * 1024 }, 135_000);
  assert.equal(p.fittingElements(), Math.floor(135_000 * ((64 * 1024 * 1024) / 70_000_000) * 0.9));
  let checks = 0;
  let now = 0;
  while (now < 5 * 60_000) {
    now += p.waitMs(now) || 1;
    checks++;
    assert.equal(p.allows(now, 135_000), false, "same page, same outcome: no new snapshot");
  }
  assert.ok(checks <= 10, `element counts only now and then: ${checks}`);
  now += p.waitMs(now);
  assert.equal(p.allows(now, 50_000), true, "a page that shrank enough may try again");
  p.delivered();
  assert.equal(p.tooLarge, null);
});

test("backoff doubles up to the cap, with jitter in the upper half", () => {
  const low = (attempt) => backoffDelay(attempt, { baseMs: 100, maxMs: 1000, random: () => 0 });
  const high = (attempt) => backoffDelay(attempt, { baseMs: 100, maxMs: 1000, random: () => 1 });
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(high), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(low), [50, 100, 200, 400, 500, 500]);
  assert.equal(high(1e6), 1000, "no overflow for huge attempt numbers");
});
