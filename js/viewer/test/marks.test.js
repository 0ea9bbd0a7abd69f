// Unit tests of the error marks on a finished session's timeline.
import assert from "node:assert/strict";
import { test } from "node:test";
import { errorMarks, markOffset, withMarks } from "../src/marks.js";

const events = [
  { type: 4, timestamp: 1000 },
  { type: 2, timestamp: 1000 },
  { type: 3, timestamp: 2000 },
  { type: 3, timestamp: 5000 },
];

test("errors are placed on the tracker's clock", () => {
  const errors = [
    { at: "1970-01-01T00:00:01.500Z", code: "payload_too_large", message: "event of 70 MB over 64 MiB" },
    { at: "not a time", code: "x" },
  ];
  assert.deepEqual(errorMarks(errors, 1000), [{ timestamp: 2500, title: "payload_too_large: event of 70 MB over 64 MiB" }]);
  assert.equal(errorMarks(errors, null)[0].timestamp, 1500);
});

test("marks go in timestamp order, inside the events' span, after the events of their time", () => {
  const marked = withMarks(events, [
    { timestamp: 3000, title: "b" },
    { timestamp: 0, title: "a" }, // before the first event: moved to it
    { timestamp: 9000, title: "c" }, // after the last: moved to it
  ]);
  assert.deepEqual(
    marked.map((e) => [e.type, e.timestamp, e.data?.payload?.title]),
    [
      [4, 1000, undefined],
      [2, 1000, undefined], // the Meta + full snapshot pair stays together
      [5, 1000, "a"],
      [3, 2000, undefined],
      [5, 3000, "b"],
      [3, 5000, undefined],
      [5, 5000, "c"],
    ],
  );
  assert.equal(marked.filter((e) => e.type === 5).every((e) => e.data.tag === "error"), true);
  assert.equal(withMarks(events, []), events);
});

test("a mark's place in the replay counts from the first event", () => {
  assert.equal(markOffset(events, { timestamp: 3500 }), 2500);
  assert.equal(markOffset(events, { timestamp: 0 }), 0);
  assert.equal(markOffset(events, { timestamp: 99_000 }), 4000);
});
