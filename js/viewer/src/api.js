/**
 * The REST side of the viewer and the access token. The token comes from
 * `?token=` on the page URL or the login prompt and is kept in
 * localStorage; REST calls send it as `Authorization: Bearer`, WebSocket
 * URLs as `?token=` (browsers cannot set headers on a WebSocket).
 */
const TOKEN_KEY = "replaywire.token";
const RECENT_KEY = "replaywire.recent";
const RECENT_MAX = 20;
export const PAGE_EVENTS = 5000; // events per REST page of a historical session

export function getToken() {
  const fromUrl = new URL(location.href).searchParams.get("token");
  if (fromUrl !== null) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    return fromUrl;
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

/**
 * GET `path` as JSON. With `onBytes`, the body's bytes are counted as they
 * arrive (after any content coding is undone, so they compare with a
 * session's `byteCount`) and the browser still collects and parses them
 * itself: no copy of the text is ever held here, only the parsed result.
 */
async function getJson(path, onBytes) {
  const token = getToken();
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { headers });
  if (!response.ok) {
    let detail = "";
    try {
      detail = (await response.json()).error?.message ?? "";
    } catch {
      /* not JSON */
    }
    throw Object.assign(new Error(`${path}: ${response.status} ${detail}`), { status: response.status });
  }
  if (!onBytes || !response.body || typeof TransformStream !== "function") return response.json();
  const counter = new TransformStream({
    transform(chunk, controller) {
      onBytes(chunk.byteLength);
      controller.enqueue(chunk);
    },
  });
  return new Response(response.body.pipeThrough(counter)).json();
}

export const activeSessions = () => getJson("/sessions/active?limit=200");

/**
 * A page of the session list: `GET /sessions` with the filters in `query`
 * (URLSearchParams, see list.js) and `cursor` (the previous page's
 * `nextCursor`): `{sessions, nextCursor}`. Where the server has no such
 * route, the sessions opened in this browser (kept in localStorage).
 */
let listRoute = true; // false once the server said it has no GET /sessions

export async function listSessions(query = new URLSearchParams(), { cursor = null, limit = 50 } = {}) {
  if (listRoute) {
    const params = new URLSearchParams(query);
    params.set("limit", String(limit));
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await getJson(`/sessions?${params}`);
      return { sessions: page.sessions ?? [], nextCursor: page.nextCursor ?? null };
    } catch (err) {
      if (err.status !== 404 && err.status !== 405) throw err;
      listRoute = false;
    }
  }
  return { sessions: rememberedSessions().map((sessionId) => ({ sessionId })), nextCursor: null };
}

export const sessionInfo = (id) => getJson(`/sessions/${encodeURIComponent(id)}`);

/**
 * Every stored event of a session, page by page, in order (bounded by
 * `maxEvents`). `onProgress({bytes, events})` follows the bytes read so
 * far (see getJson) and the events parsed. Each page's events are moved
 * into one array and the page is dropped before the next is fetched, so a
 * session is held once, as parsed events, whatever its size.
 */
export async function sessionEvents(id, { maxEvents = 1_000_000, onProgress } = {}) {
  const events = [];
  let from = 0;
  let bytes = 0;
  const counted = (n) => {
    bytes += n;
    onProgress?.({ bytes, events: events.length });
  };
  while (events.length < maxEvents) {
    const path = `/sessions/${encodeURIComponent(id)}/events?from_index=${from}&limit=${PAGE_EVENTS}`;
    let page = await getJson(path, counted);
    // A loop, not push(...): spreading a large page overflows the stack.
    for (const event of page.events) events.push(event);
    const { count, nextIndex } = page;
    page = null;
    onProgress?.({ bytes, events: events.length });
    if (count === 0 || nextIndex <= from) break;
    from = nextIndex;
  }
  return events;
}

/**
 * The session's recorded errors, newest first (`GET /sessions/{id}/errors`);
 * empty where the server has no such route yet.
 */
export async function sessionErrors(id) {
  try {
    return (await getJson(`/sessions/${encodeURIComponent(id)}/errors`)).errors ?? [];
  } catch (err) {
    if (err.status === 404 || err.status === 405) return [];
    throw err;
  }
}

export function viewerSocketUrl(codec) {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("type", "viewer");
  url.searchParams.set("codec", codec);
  const token = getToken();
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

export function remember(id) {
  const ids = [id, ...rememberedSessions().filter((x) => x !== id)].slice(0, RECENT_MAX);
  localStorage.setItem(RECENT_KEY, JSON.stringify(ids));
}

function rememberedSessions() {
  try {
    const ids = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(ids) ? ids.filter((x) => typeof x === "string") : [];
  } catch {
    return [];
  }
}
