// Unit tests of what the viewer says: sizes, progress, and the sentences
// about a session whose full snapshot never reached the server.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  errorLines,
  formatBinaryBytes,
  formatBytes,
  progressText,
  snapshotMissingBadge,
  snapshotMissingMessage,
  snapshotMissingOf,
} from "../src/notices.js";

const MISSING = { reason: "too_large", bytes: 71_600_000, limitBytes: 67_108_864, at: "2026-12-06T07:55:14.012Z" };

test("snapshot sizes read in decimal units", () => {
  const cases = [
    [0, "0 bytes"],
    [1, "1 byte"],
    [999, "999 bytes"],
    [1000, "1 kB"],
    [1536, "1.5 kB"],
    [30_935_832, "30.9 MB"],
    [71_600_000, "71.6 MB"],
    [135_000_000, "135 MB"],
    [999_999, "1 MB"], // not "1000 kB"
    [2_500_000_000, "2.5 GB"],
  ];
  for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, String(bytes));
  for (const bad of [null, undefined, -1, Number.NaN, "12"]) assert.equal(formatBytes(bad), null);
});

test("limits read in binary units", () => {
  assert.equal(formatBinaryBytes(67_108_864), "64 MiB");
  assert.equal(formatBinaryBytes(8 * 1024 * 1024), "8 MiB");
  assert.equal(formatBinaryBytes(1536), "1.5 KiB");
  assert.equal(formatBinaryBytes(2 ** 30), "1 GiB");
  assert.equal(formatBinaryBytes(null), null);
});

test("snapshotMissing is normalised; absent or null means none", () => {
  assert.equal(snapshotMissingOf({}), null);
  assert.equal(snapshotMissingOf({ snapshotMissing: null }), null);
  assert.equal(snapshotMissingOf(undefined), null);
  assert.deepEqual(snapshotMissingOf({ snapshotMissing: MISSING }), MISSING);
  assert.deepEqual(snapshotMissingOf({ snapshotMissing: true }), { reason: null, bytes: null, limitBytes: null, at: null });
  assert.deepEqual(snapshotMissingOf({ snapshotMissing: { reason: "too_large", bytes: "big", limitBytes: null } }), {
    reason: "too_large",
    bytes: null,
    limitBytes: null,
    at: null,
  });
});

test("the player's message names the snapshot's size and the limit", () => {
  assert.equal(
    snapshotMissingMessage(MISSING),
    "This page's full snapshot was 71.6 MB, over the server's 64 MiB limit: the session has its incremental " +
      "events but cannot be replayed until the page takes a smaller snapshot.",
  );
  const noLimit = snapshotMissingMessage({ ...MISSING, limitBytes: null });
  assert.match(noLimit, /^This page's full snapshot was 71\.6 MB, over the server's size limit: /);
  const noSize = snapshotMissingMessage({ ...MISSING, bytes: null });
  assert.match(noSize, /^This page's full snapshot was over the server's 64 MiB limit: /);
  assert.match(snapshotMissingMessage(snapshotMissingOf({ snapshotMissing: true })), /never reached the server: /);
  assert.match(snapshotMissingMessage({ ...MISSING, reason: "storage_refused" }), /never reached the server \(storage_refused\)/);
});

test("the session list's badge has a tooltip that says why", () => {
  assert.deepEqual(snapshotMissingBadge(MISSING), {
    text: "no snapshot",
    title:
      "The page's full snapshot (71.6 MB) was over the server's 64 MiB limit, at 2026-12-06T07:55:14.012Z: " +
      "it cannot be replayed.",
  });
  const bare = snapshotMissingBadge(snapshotMissingOf({ snapshotMissing: true }));
  assert.equal(bare.title, "The page's full snapshot never reached the server: it cannot be replayed.");
});

test("progress reads as bytes or events of the total", () => {
  assert.equal(progressText({ unit: "bytes", loaded: 12_300_000, total: 28_947_492 }), "loading 12.3 of 28.9 MB (42%)");
  assert.equal(progressText({ unit: "bytes", loaded: 512, total: 28_947_492 }), "loading 512 bytes of 28.9 MB (0%)");
  assert.equal(progressText({ unit: "bytes", loaded: 4_000_000, total: null }), "loading 4 MB");
  assert.equal(progressText({ unit: "events", loaded: 10, total: 52 }), "loading 10 of 52 events (19%)");
  assert.equal(progressText({ unit: "events", loaded: 60, total: 52 }), "loading 60 of 52 events (100%)");
  assert.equal(progressText(null), "loading");
});

test("errors read newest first, at most three", () => {
  const errors = [
    { at: "2026-12-06T07:55:15Z", code: "payload_too_large", message: "message of 71600000 bytes", seq: 3 },
    { at: "2026-12-06T07:55:14Z", code: "snapshot_too_large", message: "full snapshot over the limit", seq: 2 },
    { at: "t2", code: "c2", message: "m2" },
    { at: "t3", code: "c3", message: "m3" },
  ];
  assert.deepEqual(errorLines(errors), [
    "2026-12-06T07:55:15Z: payload_too_large: message of 71600000 bytes",
    "2026-12-06T07:55:14Z: snapshot_too_large: full snapshot over the limit",
    "t2: c2: m2",
  ]);
  assert.deepEqual(errorLines(undefined), []);
});
