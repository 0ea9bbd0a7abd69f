/**
 * The viewer page (/viewer): login prompt, session lists, and the replay of
 * one session, live over the WebSocket or, once ended, from
 * `GET /sessions/{id}/events`.
 *
 * URL parameters: `session=ID` opens a session, `codec=zstd|deflate|none`
 * picks the live codec (zstd by default), `token=` sets the access token.
 * `window.__replaywireViewer` exposes the replay's state for tests and
 * debugging.
 */
import "./viewer.css";
import * as api from "./api.js";
import { LiveStream } from "./live.js";
import { Screen } from "./screen.js";

const $ = (id) => document.getElementById(id);
const params = new URL(location.href).searchParams;
const codec = ["zstd", "deflate", "none"].includes(params.get("codec")) ? params.get("codec") : "zstd";
const LIST_REFRESH_MS = 5000;

const state = { sessionId: null, mode: null, stream: null, screen: null, listTimer: null };
window.__replaywireViewer = {
  get sessionId() {
    return state.sessionId;
  },
  get mode() {
    return state.mode;
  },
  get nextIndex() {
    return state.stream?.nextIndex ?? null;
  },
  get gaps() {
    return state.stream?.gaps ?? 0;
  },
  get joins() {
    return state.stream?.joins ?? 0;
  },
  get applied() {
    return state.screen?.applied ?? 0;
  },
  get player() {
    return state.screen?.player ?? null;
  },
  get clock() {
    const clock = state.stream?.clock;
    return clock ? { serverOffset: clock.serverOffset, skew: clock.skew } : null;
  },
};

function status(text) {
  $("status").textContent = text;
}

function showLogin() {
  $("login").hidden = false;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("token").focus();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !api.getToken();
  refreshLists();
  clearInterval(state.listTimer);
  state.listTimer = setInterval(refreshLists, LIST_REFRESH_MS);
  const wanted = params.get("session");
  if (wanted && !state.sessionId) open(wanted);
}

function sessionLink(session, extra) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = `?session=${encodeURIComponent(session.sessionId)}`;
  a.textContent = session.sessionId;
  a.title = session.url || session.sessionId;
  if (session.sessionId === state.sessionId) a.className = "current";
  a.onclick = (e) => {
    e.preventDefault();
    open(session.sessionId);
  };
  li.append(a);
  if (extra) {
    const small = document.createElement("small");
    small.textContent = extra;
    li.append(" ", small);
  }
  return li;
}

async function refreshLists() {
  try {
    const live = await api.activeSessions();
    $("live-list").replaceChildren(
      ...live.sessions.map((s) => sessionLink(s, `${s.nextIndex ?? 0} events, ${s.viewers} watching`)),
    );
    const liveIds = new Set(live.sessions.map((s) => s.sessionId));
    const recent = (await api.recentSessions()).filter((s) => !liveIds.has(s.sessionId));
    $("recent-list").replaceChildren(...recent.map((s) => sessionLink(s, s.endedAt ? "ended" : "")));
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      api.forgetToken();
      showLogin();
    }
    status(`cannot list sessions: ${err.message}`);
  }
}

async function open(sessionId) {
  close();
  state.sessionId = sessionId;
  api.remember(sessionId);
  history.replaceState(null, "", `?session=${encodeURIComponent(sessionId)}${codec === "zstd" ? "" : `&codec=${codec}`}`);
  $("title").textContent = sessionId;
  const screen = new Screen($("screen"), () => state.stream?.clock.trackerNow() ?? Date.now());
  state.screen = screen;
  let info;
  try {
    info = await api.sessionInfo(sessionId);
  } catch (err) {
    status(`cannot open ${sessionId}: ${err.message}`);
    return;
  }
  if (state.screen !== screen) return; // another session was opened meanwhile
  if (info.live) {
    state.mode = "live";
    state.stream = new LiveStream({
      sessionId,
      codec,
      onEvents: (events, { reset }) => (reset ? screen.resetLive(events) : screen.addLive(events)),
      onStatus: status,
      onEnded: () => {
        state.mode = "ended";
      },
    }).start();
  } else {
    state.mode = "history";
    status("loading events");
    try {
      const events = await api.sessionEvents(sessionId);
      if (state.screen !== screen) return;
      screen.replay(events);
      status(`${events.length} events`);
    } catch (err) {
      status(`cannot replay ${sessionId}: ${err.message}`);
    }
  }
  refreshLists();
}

function close() {
  state.stream?.close();
  state.screen?.destroy();
  Object.assign(state, { sessionId: null, mode: null, stream: null, screen: null });
}

$("login").onsubmit = (e) => {
  e.preventDefault();
  api.setToken($("token").value);
  showApp();
};
$("logout").onclick = () => {
  api.forgetToken();
  close();
  showLogin();
};
$("refresh").onclick = refreshLists;
$("open-form").onsubmit = (e) => {
  e.preventDefault();
  const id = $("open-id").value.trim();
  if (id) open(id);
};

if (api.getToken() === null) showLogin();
else showApp();
