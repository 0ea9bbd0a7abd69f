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

async function getJson(path) {
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
  return response.json();
}

export const activeSessions = () => getJson("/sessions/active?limit=200");

/**
 * Recently ended sessions: from `GET /sessions?limit=` where the server has
 * it, otherwise the ones opened in this browser (kept in localStorage).
 */
let listRoute = true; // false once the server said it has no GET /sessions

export async function recentSessions() {
  if (listRoute) {
    try {
      return (await getJson("/sessions?status=ended&limit=50")).sessions ?? [];
    } catch (err) {
      if (err.status !== 404 && err.status !== 405) throw err;
      listRoute = false;
    }
  }
  return rememberedSessions().map((sessionId) => ({ sessionId }));
}

export const sessionInfo = (id) => getJson(`/sessions/${encodeURIComponent(id)}`);

/** Every stored event of a session, page by page (bounded by `maxEvents`). */
export async function sessionEvents(id, { maxEvents = 1_000_000 } = {}) {
  const events = [];
  let from = 0;
  while (events.length < maxEvents) {
    const page = await getJson(`/sessions/${encodeURIComponent(id)}/events?from_index=${from}&limit=${PAGE_EVENTS}`);
    events.push(...page.events);
    if (page.count === 0 || page.nextIndex <= from) break;
    from = page.nextIndex;
  }
  return events;
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
