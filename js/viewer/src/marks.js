/**
 * Marks on a replay's timeline: a finished session's recorded errors
 * (`GET /sessions/{id}/errors`: oversized events, refused snapshots, …)
 * placed at the moment they happened. Pure functions, tested in
 * test/marks.test.js.
 *
 * Errors are timed by the server's clock (`at`), events by the tracker's
 * (`timestamp`, ms); the session's `clockSkewMs` (how far the tracker's
 * clock is ahead of the server's) turns one into the other.
 */

const CUSTOM = 5; // rrweb's EventType.Custom: drawn on the timeline, ignored by the replay
export const MARK_TAG = "error";

/** The session's errors as marks `{timestamp, title}` on the events' clock. */
export function errorMarks(errors, clockSkewMs) {
  const skew = Number.isFinite(clockSkewMs) ? clockSkewMs : 0;
  return errors
    .map((error) => ({
      timestamp: Date.parse(error.at) + skew,
      title: [error.code, error.message].filter(Boolean).join(": "),
    }))
    .filter((mark) => Number.isFinite(mark.timestamp));
}

/**
 * `events` with a custom event per mark, in timestamp order, each moved
 * inside the events' span: one before the first event would move the
 * replay's start, and the Meta event must stay first.
 */
export function withMarks(events, marks) {
  if (marks.length === 0 || events.length === 0) return events;
  const first = events[0].timestamp;
  const last = events[events.length - 1].timestamp;
  const custom = marks
    .filter((m) => Number.isFinite(m.timestamp))
    .map((m) => ({
      type: CUSTOM,
      timestamp: Math.min(Math.max(m.timestamp, first), last),
      data: { tag: MARK_TAG, payload: { title: m.title } },
    }))
    .sort((a, b) => a.timestamp - b.timestamp);
  const out = [];
  let i = 0;
  for (const event of events) {
    while (i < custom.length && custom[i].timestamp < event.timestamp) out.push(custom[i++]);
    out.push(event);
  }
  while (i < custom.length) out.push(custom[i++]);
  return out;
}

/** Where a mark sits in the replay: ms from the first event. */
export function markOffset(events, mark) {
  if (events.length === 0) return 0;
  const first = events[0].timestamp;
  return Math.max(0, Math.min(mark.timestamp, events[events.length - 1].timestamp) - first);
}
