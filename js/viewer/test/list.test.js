// Unit tests of the session list's rows, its filters' query and the
// shareable links.
import assert from "node:assert/strict";
import { test } from "node:test";
import { durationMs, filterQuery, formatDuration, linkedSession, rowFacts, sessionLink } from "../src/list.js";

test("durations read at the scale they have", () => {
  const cases = [
    [0, "0 ms"],
    [850, "850 ms"],
    [42_000, "42 s"],
    [185_000, "3 min 05 s"],
    [7_620_000, "2 h 07 min"],
    [-1, null],
    [NaN, null],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, String(ms));
});

test("a live session lasts until its last event, an ended one until its end", () => {
  const startedAt = "2026-12-06T08:00:00.000Z";
  assert.equal(durationMs({ startedAt, lastEventAt: "2026-12-06T08:01:30.000Z", endedAt: null }), 90_000);
  assert.equal(durationMs({ startedAt, lastEventAt: "2026-12-06T08:01:30.000Z", endedAt: "2026-12-06T08:02:00.000Z" }), 120_000);
  assert.equal(durationMs({ startedAt }), 0);
  assert.equal(durationMs({ startedAt: "later" }), null);
});

test("a row says who, where, when, how long, how much, and whether live", () => {
  const row = rowFacts(
    {
      sessionId: "s1",
      userId: "u-42",
      url: "https://shop.example/checkout",
      startedAt: "2026-12-06T08:00:00.000Z",
      lastEventAt: "2026-12-06T08:00:42.000Z",
      eventCount: 221,
      live: true,
      viewers: 2,
    },
    { timeZone: "UTC" },
  );
  assert.equal(row.user, "u-42");
  assert.equal(row.url, "https://shop.example/checkout");
  assert.match(row.started, /8:00:00/);
  assert.deepEqual([row.duration, row.events, row.state, row.watchers], ["42 s", "221 events", "live", "2 watching"]);
  const ended = rowFacts({ sessionId: "s2", startedAt: "2026-12-06T08:00:00Z", status: "ended", live: false, viewers: 0 });
  assert.deepEqual([ended.user, ended.state, ended.watchers, ended.events], ["anonymous", "ended", "", "0 events"]);
});

test("the filters become GET /sessions' query; empty fields are left out", () => {
  assert.equal(filterQuery({}).toString(), "");
  const query = filterQuery({ user: " u-1 ", url: "checkout", live: true, minDuration: "30", since: "2026-12-06T08:00" });
  assert.equal(query.get("user"), "u-1");
  assert.equal(query.get("url"), "checkout");
  assert.equal(query.get("live"), "true");
  assert.equal(query.get("min_duration"), "30");
  assert.equal(query.get("since"), new Date("2026-12-06T08:00").toISOString()); // local time, sent in UTC
  assert.equal(query.has("until"), false);
  assert.equal(filterQuery({ minDuration: "0", since: "not a date" }).toString(), "");
});

test("shareable links name the session and the moment, and read back", () => {
  assert.equal(sessionLink("s 1/2"), "/viewer/sessions/s%201%2F2");
  assert.equal(sessionLink("s1", 12_345.6), "/viewer/sessions/s1?t=12346");
  assert.equal(sessionLink("s1", 0), "/viewer/sessions/s1");
  assert.deepEqual(linkedSession("http://h/viewer/sessions/s%201%2F2?t=500"), { sessionId: "s 1/2", t: 500 });
  assert.deepEqual(linkedSession("http://h/viewer/sessions/s1/"), { sessionId: "s1", t: null });
  assert.deepEqual(linkedSession("http://h/viewer?session=s9&t=x"), { sessionId: "s9", t: null });
  assert.deepEqual(linkedSession("http://h/viewer/"), { sessionId: null, t: null });
  assert.deepEqual(linkedSession("http://h/viewer/sessions/%E0%A4%A"), { sessionId: null, t: null });
});
