/**
 * What the viewer tells people in words: sizes, loading progress, and why a
 * session cannot be replayed. Pure functions of the server's JSON (no DOM,
 * no fetch), so test/notices.test.js can check every sentence.
 *
 * Sizes follow the units they were set in: a snapshot's size is a count of
 * bytes and reads in decimal units (71.6 MB); the server's limits are powers
 * of two (`MAX_MESSAGE_BYTES` is 64 MiB) and read in binary units.
 */

const DECIMAL = { base: 1000, units: ["bytes", "kB", "MB", "GB", "TB"] };
const BINARY = { base: 1024, units: ["bytes", "KiB", "MiB", "GiB", "TiB"] };

export const WAITING_SNAPSHOT = "Waiting for the page's first full snapshot…";
export const NO_SNAPSHOT =
  "This session has no full snapshot to start a replay from: the page's snapshot never reached the server.";

/** `bytes` in decimal units: "512 bytes", "1.5 kB", "71.6 MB", "135 MB"; null if not a size. */
export function formatBytes(bytes) {
  return scaled(bytes, DECIMAL);
}

/** `bytes` in binary units: "64 MiB", "1.5 KiB"; null if not a size. */
export function formatBinaryBytes(bytes) {
  return scaled(bytes, BINARY);
}

function scaled(bytes, { base, units }) {
  if (!isSize(bytes)) return null;
  let value = bytes;
  let unit = 0;
  // One decimal under 100, none above; step up when rounding reaches the
  // next unit (999,999 bytes is "1 MB", not "1000 kB").
  while (unit < units.length - 1 && rounded(value) >= base) {
    value /= base;
    unit++;
  }
  if (unit === 0) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  return `${rounded(value)} ${units[unit]}`;
}

function rounded(value) {
  return Number(value.toFixed(value < 100 ? 1 : 0));
}

function isSize(x) {
  return typeof x === "number" && Number.isFinite(x) && x >= 0;
}

/**
 * The session record's `snapshotMissing`, normalised: null when absent
 * (servers before it, or a session whose snapshot arrived), otherwise
 * `{reason, bytes, limitBytes, at}` with null for whatever is not given
 * (`true` alone is accepted as "missing, reason unknown").
 */
export function snapshotMissingOf(record) {
  const missing = record?.snapshotMissing;
  if (!missing) return null;
  const given = typeof missing === "object" ? missing : {};
  return {
    reason: typeof given.reason === "string" ? given.reason : null,
    bytes: isSize(given.bytes) ? given.bytes : null,
    limitBytes: isSize(given.limitBytes) ? given.limitBytes : null,
    at: typeof given.at === "string" ? given.at : null,
  };
}

/** Why the player cannot start, in one paragraph, from `snapshotMissingOf`. */
export function snapshotMissingMessage(missing) {
  const size = formatBytes(missing.bytes);
  if (missing.reason === "too_large" || (missing.reason === null && size)) {
    const limit = formatBinaryBytes(missing.limitBytes);
    const over = `over the server's ${limit ? `${limit} ` : "size "}limit`;
    return (
      `This page's full snapshot ${size ? `was ${size}, ${over}` : `was ${over}`}: ` +
      "the session has its incremental events but cannot be replayed until the page takes a smaller snapshot."
    );
  }
  const why = missing.reason ? ` (${missing.reason})` : "";
  return (
    `This page's full snapshot never reached the server${why}: ` +
    "the session has its incremental events but cannot be replayed until the page sends one."
  );
}

/** The session list's mark: `{text, title}` (title: the tooltip). */
export function snapshotMissingBadge(missing) {
  const size = formatBytes(missing.bytes);
  const limit = formatBinaryBytes(missing.limitBytes);
  let title = "The page's full snapshot never reached the server";
  if (missing.reason === "too_large") {
    title = `The page's full snapshot${size ? ` (${size})` : ""} was over the server's ${limit ? `${limit} ` : ""}limit`;
  } else if (missing.reason) {
    title += ` (${missing.reason})`;
  }
  if (missing.at) title += `, at ${missing.at}`;
  return { text: "no snapshot", title: `${title}: it cannot be replayed.` };
}

/**
 * Loading progress for the status line: `{unit: "bytes"|"events", loaded,
 * total}` (total null when unknown). "loading 12.3 of 28.9 MB (43%)".
 */
export function progressText(progress) {
  if (!progress) return "loading";
  const { unit, loaded, total } = progress;
  const fmt = unit === "bytes" ? formatBytes : (n) => `${n} events`;
  if (!isSize(total) || total === 0) return `loading ${fmt(loaded)}`;
  const percent = Math.min(100, Math.floor((loaded / total) * 100));
  if (unit === "bytes") {
    // "12.3 of 28.9 MB" when both read in the same unit, else both in full.
    const [a, b] = [fmt(loaded), fmt(total)];
    const [na, ua] = a.split(" ");
    const [nb, ub] = b.split(" ");
    const both = ua === ub ? `${na} of ${nb} ${ub}` : `${a} of ${b}`;
    return `loading ${both} (${percent}%)`;
  }
  return `loading ${loaded} of ${total} events (${percent}%)`;
}

/** The newest `max` of a session's errors (`GET /sessions/{id}/errors`), one line each. */
export function errorLines(errors, max = 3) {
  if (!Array.isArray(errors)) return [];
  return errors
    .slice(0, max)
    .map((e) => [e?.at, e?.code, e?.message].filter((part) => typeof part === "string" && part).join(": "))
    .filter(Boolean);
}
