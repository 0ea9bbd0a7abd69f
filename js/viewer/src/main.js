/**
 * The viewer page (/viewer): token prompt (only where the server asks for
 * one, see `start`), session lists, and the replay of
 * one session, live over the WebSocket or, once ended, from
 * `GET /sessions/{id}/events`.
 *
 * URL parameters: `session=ID` opens a session, `codec=zstd|deflate|none`
 * picks the live codec (zstd by default), `token=` sets the access token.
 * `window.__replaywireViewer` exposes the replay's state for tests and
 * debugging: `mode` ("live", "history", "ended") says which replay was
 * started; `status` says what the pane shows:
 * - "loading": the session's record, its history pages or the live join's
 *   span are on their way; `progress` is `{unit, loaded, total}` (bytes of
 *   history of the session's `byteCount`, or events of the joined span);
 * - "waiting-snapshot": joined live, but no full snapshot has come yet;
 * - "snapshot-missing": no replay because the session's record says its
 *   full snapshot was refused (`snapshotMissing`, normalised);
 * - "no-snapshot": no replay, and the record does not say why;
 * - "live", "ended" (a live replay, then its session ended), "history";
 * - "error": the session could not be opened or read.
 * `notice` is the sentence shown in the pane instead of a replay, or null.
 */
import "./viewer.css";
import * as api from "./api.js";
import { LiveStream } from "./live.js";
import {
  NO_SNAPSHOT,
  WAITING_SNAPSHOT,
  errorLines,
  progressText,
  snapshotMissingBadge,
  snapshotMissingMessage,
  snapshotMissingOf,
} from "./notices.js";
import { Screen, replayable } from "./screen.js";

const $ = (id) => document.getElementById(id);
const params = new URL(location.href).searchParams;
const codec = ["zstd", "deflate", "none"].includes(params.get("codec")) ? params.get("codec") : "zstd";
const LIST_REFRESH_MS = 5000;

const EMPTY = { sessionId: null, mode: null, status: null, progress: null, notice: null, missing: null, stream: null, screen: null };
const state = { ...EMPTY, listTimer: null };
window.__replaywireViewer = {
  get sessionId() {
    return state.sessionId;
  },
  get mode() {
    return state.mode;
  },
  get status() {
    return state.status;
  },
  get progress() {
    const progress = state.stream ? state.stream.progress : state.progress;
    return progress ? { ...progress } : null;
  },
  get notice() {
    return state.notice;
  },
  get snapshotMissing() {
    return state.missing ? { ...state.missing } : null;
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

/**
 * What the pane shows: `next` (see `status` above), the header's `text`,
 * and `notice` (a sentence in place of the replay, with the session's
 * `errors` listed under it).
 */
function show(next, { text = next, notice = null, errors = [] } = {}) {
  state.status = next;
  status(text);
  state.notice = notice;
  const element = (tag, textContent) => Object.assign(document.createElement(tag), { textContent });
  const parts = [element("p", notice ?? "")];
  if (errors.length > 0) {
    const list = document.createElement("ul");
    list.replaceChildren(...errors.map((line) => element("li", line)));
    parts.push(element("p", "Errors recorded for this session:"), list);
  }
  $("notice").replaceChildren(...parts);
  $("notice").hidden = notice === null;
  const loading = next === "loading";
  $("loading").hidden = !loading;
  if (loading) {
    const progress = window.__replaywireViewer.progress;
    const bar = $("progress");
    if (progress?.total > 0) Object.assign(bar, { max: progress.total, value: Math.min(progress.loaded, progress.total) });
    else bar.removeAttribute("value"); // indeterminate
  }
}

/** A live session's state, after every message: live once the screen plays. */
function showLive() {
  const { stream, screen } = state;
  if (!stream || !screen) return;
  const ended = state.mode === "ended";
  if (screen.player) show(ended ? "ended" : "live", { text: ended ? "session ended" : "live" });
  else if (stream.loading && !ended) show("loading", { text: progressText(stream.progress) });
  else if (state.missing) showMissing();
  else if (ended) showNoSnapshot();
  else show("waiting-snapshot", { text: "waiting for a full snapshot", notice: WAITING_SNAPSHOT });
}

function showMissing() {
  showNoReplay("snapshot-missing", snapshotMissingMessage(state.missing));
}

function showNoSnapshot() {
  showNoReplay("no-snapshot", NO_SNAPSHOT);
}

/** No replay: say why (`notice`), then list the session's newest errors, which may say more. */
function showNoReplay(next, notice) {
  if (state.status === next) return;
  show(next, { text: "no full snapshot", notice });
  const screen = state.screen;
  api.sessionErrors(state.sessionId).then(
    (errors) => {
      const lines = errorLines(errors);
      if (state.screen === screen && state.status === next && lines.length > 0) {
        show(next, { text: "no full snapshot", notice, errors: lines });
      }
    },
    () => {}, // the errors only add detail
  );
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
  const missing = snapshotMissingOf(session);
  if (missing) {
    const badge = snapshotMissingBadge(missing);
    const mark = Object.assign(document.createElement("span"), { className: "badge", textContent: badge.text, title: badge.title });
    li.append(mark);
  }
  if (extra) {
    const small = document.createElement("small");
    small.textContent = extra;
    li.append(" ", small);
  }
  return li;
}

async function refreshLists() {
  recheckMissing();
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

/**
 * A live session waiting for its snapshot: read its record again, which
 * says (`snapshotMissing`) once the server has refused the snapshot.
 */
async function recheckMissing() {
  const { sessionId, screen } = state;
  if (state.mode !== "live" || !screen || screen.player) return;
  try {
    const missing = snapshotMissingOf(await api.sessionInfo(sessionId));
    if (state.screen !== screen || JSON.stringify(missing) === JSON.stringify(state.missing)) return;
    state.missing = missing;
    showLive();
  } catch {
    /* the next refresh tries again */
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
  show("loading", { text: `opening ${sessionId}` });
  let info;
  try {
    info = await api.sessionInfo(sessionId);
  } catch (err) {
    show("error", { text: `cannot open ${sessionId}: ${err.message}` });
    return;
  }
  if (state.screen !== screen) return; // another session was opened meanwhile
  state.missing = snapshotMissingOf(info);
  if (info.live) {
    state.mode = "live";
    state.stream = new LiveStream({
      sessionId,
      codec,
      onEvents: (events, { reset }) => {
        if (reset) screen.resetLive(events);
        else screen.addLive(events);
        showLive();
      },
      onStatus: status,
      onJoined: showLive,
      onEnded: () => {
        state.mode = "ended";
        showLive();
      },
    }).start();
    showLive();
  } else {
    state.mode = "history";
    await replayHistory(sessionId, info, screen);
  }
  refreshLists();
}

/**
 * A finished session from its stored pages, fetched in order with progress
 * in bytes of its `byteCount`; the player is built once they are all in.
 * The pages' JSON around the events makes a little more than `byteCount`,
 * so `loaded` is capped at `total`, and set to it once every page is in.
 */
async function replayHistory(sessionId, info, screen) {
  const total = Number.isFinite(info.byteCount) && info.byteCount > 0 ? info.byteCount : null;
  state.progress = { unit: "bytes", loaded: 0, total };
  show("loading", { text: progressText(state.progress) });
  let events;
  try {
    events = await api.sessionEvents(sessionId, {
      onProgress: ({ bytes }) => {
        if (state.screen !== screen) return;
        state.progress = { unit: "bytes", loaded: total === null ? bytes : Math.min(bytes, total), total };
        show("loading", { text: progressText(state.progress) });
      },
    });
  } catch (err) {
    if (state.screen === screen) show("error", { text: `cannot replay ${sessionId}: ${err.message}` });
    return;
  }
  if (state.screen !== screen) return;
  if (total !== null) state.progress = { unit: "bytes", loaded: total, total };
  if (!replayable(events)) {
    if (state.missing) showMissing();
    else showNoSnapshot();
    return;
  }
  // Building a big page's DOM takes seconds with the main thread busy: say so first.
  show("loading", { text: `building the replay of ${events.length} events` });
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  if (state.screen !== screen) return;
  try {
    screen.replay(events);
  } catch (err) {
    show("error", { text: `cannot replay ${sessionId}: ${err.message}` });
    return;
  }
  // A later, smaller snapshot made the session replayable; the header still says one was refused.
  const refused = state.missing ? " (one full snapshot was refused: over the size limit)" : "";
  show("history", { text: `${events.length} events${refused}` });
}

function close() {
  state.stream?.close();
  state.screen?.destroy();
  Object.assign(state, EMPTY);
  show(null, { text: "" });
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

/**
 * The first screen: the session list when a token is known (from `?token=`
 * or kept from before), or when the server checks no credentials (no
 * TENANTS: development mode), which it says by listing sessions to a
 * request without one; the token prompt only when it answers 401 or 403.
 * Any other failure opens the list too, whose header then says what failed.
 */
async function start() {
  if (api.getToken() === null) {
    try {
      await api.activeSessions();
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        showLogin();
        return;
      }
    }
  }
  showApp();
}

start();
