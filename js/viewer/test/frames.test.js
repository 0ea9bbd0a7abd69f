// Unit tests of the viewer's pure parts: decoding what the server sends
// (text and binary frames, header versions 1 and 2) and the tracker clock.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deflateRawSync } from "node:zlib";
import { TrackerClock } from "../src/clock.js";
import { decodeFrame } from "../src/frames.js";

const EVENTS = [{ type: 3, timestamp: 1_714_565_400_000 }, { type: 3, timestamp: 1_714_565_400_050 }];

/** A binary frame as the server builds it (protocol/frames.py). */
function binaryFrame({ version = 2, codec = 0, serverTime = 1_714_564_800_123, resync = false } = {}) {
  const json = new TextEncoder().encode(JSON.stringify(EVENTS));
  const payload = codec === 1 ? new Uint8Array(deflateRawSync(json)) : json;
  const id = new TextEncoder().encode("s-ü");
  const header = version === 2 ? 30 : 22;
  const bytes = new Uint8Array(header + id.length + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, version);
  view.setUint8(1, 2); // delta
  view.setUint8(2, codec);
  view.setUint8(3, resync ? 1 : 0);
  view.setUint32(4, EVENTS.length);
  view.setBigUint64(8, 41n);
  view.setUint32(16, json.length);
  if (version === 2) view.setBigUint64(20, BigInt(serverTime));
  view.setUint16(header - 2, id.length);
  bytes.set(id, header);
  bytes.set(payload, header + id.length);
  return bytes.buffer;
}

test("a version 2 binary frame carries serverTime", async () => {
  for (const codec of [0, 1]) {
    const m = await decodeFrame(binaryFrame({ codec, resync: true }));
    assert.deepEqual(m, {
      type: "delta",
      sessionId: "s-ü",
      firstIndex: 41,
      count: 2,
      codec: codec === 0 ? "none" : "deflate",
      resync: true,
      serverTime: 1_714_564_800_123,
      events: EVENTS,
    });
  }
});

test("a version 1 frame (an older server) decodes without serverTime", async () => {
  const m = await decodeFrame(binaryFrame({ version: 1 }));
  assert.equal(m.serverTime, null);
  assert.deepEqual([m.sessionId, m.firstIndex, m.events], ["s-ü", 41, EVENTS]);
  await assert.rejects(decodeFrame(binaryFrame({ version: 3 })), /version 3 is not supported/);
});

test("text events messages carry serverTime", async () => {
  const data = { sessionId: "s", firstIndex: 0, count: 2, codec: "none", serverTime: 1234, events: EVENTS };
  const m = await decodeFrame(JSON.stringify({ type: "snapshot", data }));
  assert.equal(m.serverTime, 1234);
  const old = await decodeFrame(JSON.stringify({ type: "delta", data: { ...data, serverTime: undefined } }));
  assert.equal(old.serverTime, null);
});

test("the tracker clock adds the server's offset and the session's skew", () => {
  let now = 1_000_000;
  const clock = new TrackerClock(() => now);
  assert.equal(clock.trackerNow(), now, "nothing known: the clocks are assumed to agree");
  clock.setSkew(600_000); // the tracker is 10 minutes fast
  now += 40; // a message built at server time 1_000_010 arrives 40 ms later: our clock is 30 ms ahead
  clock.observe(1_000_010, EVENTS);
  now += 5; // a faster trip improves the estimate; a slower one does not spoil it
  clock.observe(now - 20, []);
  clock.observe(now - 500, []);
  assert.equal(clock.serverOffset, -20);
  assert.equal(clock.trackerNow(), now - 20 + 600_000);
});

test("without the server's skew, events give a lower bound of it", () => {
  const now = 1_714_564_800_000;
  const clock = new TrackerClock(() => now);
  clock.setSkew(null); // joined before the server had measured anything
  clock.observe(now, [{ type: 4, timestamp: now + 600_000 - 3_000_000 }]); // an old snapshot
  clock.observe(now, [{ type: 3, timestamp: now + 600_000 - 120 }]); // a live event, 120 ms old
  clock.observe(now, [{ type: 3 }]);
  assert.equal(clock.skew, 600_000 - 120);
});
