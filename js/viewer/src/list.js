/**
 * The session list and its links, as pure functions of the server's JSON
 * and the page's URL (no DOM, no fetch), so test/list.test.js checks them:
 *
 * - a row's facts (`rowFacts`): user id, first URL, start time, duration,
 *   events, live or ended, watchers;
 * - the filter form's values as the query of `GET /sessions`
 *   (`filterQuery`);
 * - a session's shareable link, `/viewer/sessions/{id}` with `?t=` for a
 *   moment in it (ms from the replay's start), and reading one back
 *   (`sessionLink`, `linkedSession`).
 */

/** "850 ms", "42 s", "3 min 05 s", "2 h 07 min"; null if unknown. */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return null;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** Milliseconds from the session's start to its end (its last event while live). */
export function durationMs(session) {
  const start = Date.parse(session.startedAt);
  const end = Date.parse(session.endedAt ?? session.lastEventAt ?? session.startedAt);
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, end - start) : null;
}

/** What a row of the list says about `session` (a `GET /sessions` item). */
export function rowFacts(session, { timeZone } = {}) {
  const started = Date.parse(session.startedAt);
  const live = session.live ?? session.status === "active";
  return {
    sessionId: session.sessionId,
    user: session.userId || "anonymous",
    url: session.url || "",
    started: Number.isFinite(started)
      ? new Date(started).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium", timeZone })
      : "",
    duration: formatDuration(durationMs(session)) ?? "",
    events: `${session.eventCount ?? 0} events`,
    state: live ? "live" : "ended",
    watchers: session.viewers > 0 ? `${session.viewers} watching` : "",
  };
}

/**
 * The filter form's fields as `GET /sessions` query parameters: empty
 * fields are left out; `since`/`until` (a datetime-local value, local
 * time) go as ISO 8601 in UTC; `live` only when checked.
 */
export function filterQuery({ user = "", url = "", since = "", until = "", live = false, minDuration = "" } = {}) {
  const query = new URLSearchParams();
  if (user.trim()) query.set("user", user.trim());
  if (url.trim()) query.set("url", url.trim());
  for (const [name, value] of [
    ["since", since],
    ["until", until],
  ]) {
    const time = value ? new Date(value).getTime() : NaN;
    if (Number.isFinite(time)) query.set(name, new Date(time).toISOString());
  }
  if (live) query.set("live", "true");
  if (String(minDuration).trim() !== "" && Number(minDuration) > 0) query.set("min_duration", String(Number(minDuration)));
  return query;
}

/** The shareable path of a session, at `t` ms into its replay when given. */
export function sessionLink(sessionId, t = null) {
  const path = `/viewer/sessions/${encodeURIComponent(sessionId)}`;
  return Number.isFinite(t) && t > 0 ? `${path}?t=${Math.round(t)}` : path;
}

/**
 * The session a page URL names, and the moment: `/viewer/sessions/{id}?t=`,
 * or the older `/viewer?session={id}`. `{sessionId: null}` when none.
 */
export function linkedSession(href) {
  const url = new URL(href);
  const match = url.pathname.match(/^\/viewer\/sessions\/([^/]+)\/?$/);
  let sessionId = null;
  if (match) {
    try {
      sessionId = decodeURIComponent(match[1]);
    } catch {
      sessionId = null; // a malformed escape names no session
    }
  }
  sessionId ??= url.searchParams.get("session") || null;
  const t = Number(url.searchParams.get("t"));
  return { sessionId, t: Number.isFinite(t) && t > 0 ? t : null };
}
