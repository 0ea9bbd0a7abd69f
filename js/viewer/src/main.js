/**
 * The viewer page (/viewer): token prompt (only where the server asks for
 * one, see `start`), session lists, and the replay of
 * one session, live over the WebSocket or, once ended, from
 * `GET /sessions/{id}/events`.
 *
 * The session list (`GET /sessions`, with its filters and pages) is on the
 * left; each session has a shareable link, `/viewer/sessions/{id}`, with
 * `?t=` (ms from the replay's start) for a moment in a finished one.
 * URL parameters: `session=ID` opens a session too, `codec=zstd|deflate|none`
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
 * - "paused": a live replay paused (Pause), with the timeline controls over
 *   what was received, until "Jump to live";
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
import { filterQuery, linkedSession, rowFacts, sessionLink as linkTo } from "./list.js";
import { errorMarks, markOffset } from "./marks.js";
import { Screen, replayable } from "./screen.js";

const $ = (id) => document.getElementById(id);
const params = new URL(location.href).searchParams;
const codec = ["zstd", "deflate", "none"].includes(params.get("codec")) ? params.get("codec") : "zstd";
const LIST_REFRESH_MS = 5000;

const EMPTY = { sessionId: null, mode: null, status: null, progress: null, notice: null, missing: null, stream: null, screen: null };
const state = { ...EMPTY, listTimer: null, listCursor: null, listExtended: false, seekTo: null, marks: [] };
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
  /** The error marks on a finished session's timeline: `[{timestamp, title}]`. */
  get marks() {
    return state.marks.map((m) => ({ ...m }));
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
  showControls();
  if (screen.paused) show("paused", { text: ended ? "paused; the session ended" : "paused: scrub back, or jump to live" });
  else if (screen.player) show(ended ? "ended" : "live", { text: ended ? "session ended" : "live" });
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
  const { sessionId: wanted, t } = linkedSession(location.href);
  if (wanted && !state.sessionId) {
    state.seekTo = t;
    open(wanted);
  }
}

function sessionLink(session, extra) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = linkTo(session.sessionId);
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
    // The first page again, unless more were asked for (they would be lost).
    if (!state.listExtended) await loadSessions();
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      api.forgetToken();
      showLogin();
    }
    status(`cannot list sessions: ${err.message}`);
  }
}

/** The filter form's values, as `GET /sessions`' query (see list.js). */
function filters() {
  const form = $("filters");
  const value = (name) => form.elements[name].value;
  return filterQuery({
    user: value("user"),
    url: value("url"),
    since: value("since"),
    until: value("until"),
    minDuration: value("minDuration"),
    live: form.elements.live.checked,
  });
}

/** The session list: its first page, or (`more`) the next one, added below. */
async function loadSessions({ more = false } = {}) {
  const page = await api.listSessions(filters(), { cursor: more ? state.listCursor : null });
  const rows = page.sessions.map(sessionRow);
  if (more) $("session-list").append(...rows);
  else $("session-list").replaceChildren(...rows);
  state.listCursor = page.nextCursor;
  state.listExtended = more; // past the first page, the refresh leaves the list alone
  $("more").hidden = page.nextCursor === null;
}

/** A row of the session list: who, where, when, how long, how much, live or ended, watchers. */
function sessionRow(session) {
  const facts = rowFacts(session);
  const li = document.createElement("li");
  li.dataset.sessionId = session.sessionId;
  const a = Object.assign(document.createElement("a"), { href: linkTo(session.sessionId), title: session.sessionId });
  if (session.sessionId === state.sessionId) a.className = "current";
  a.onclick = (e) => {
    e.preventDefault();
    open(session.sessionId);
  };
  const span = (className, textContent) => Object.assign(document.createElement("span"), { className, textContent });
  const line = Object.assign(document.createElement("span"), { className: "line" });
  line.append(span("user", facts.user), span(`state ${facts.state}`, facts.state));
  if (facts.watchers) line.append(span("watchers", facts.watchers));
  const details = document.createElement("small");
  details.textContent = [facts.started, facts.duration, facts.events].filter(Boolean).join(" · ");
  a.append(line, span("url", facts.url), details);
  li.append(a);
  const missing = snapshotMissingOf(session);
  if (missing) {
    const badge = snapshotMissingBadge(missing);
    li.append(Object.assign(document.createElement("span"), { className: "badge", textContent: badge.text, title: badge.title }));
  }
  return li;
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
  history.replaceState(null, "", `${linkTo(sessionId)}${codec === "zstd" ? "" : `?codec=${codec}`}`);
  $("title").textContent = sessionId;
  $("toolbar").hidden = false;
  $("share-url").hidden = true;
  const screen = new Screen($("screen"), () => state.stream?.clock.trackerNow() ?? Date.now());
  state.screen = screen;
  showControls();
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
    state.seekTo = null; // a moment names a place in a finished replay
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
  // The errors, for the timeline, fetched meanwhile; they only add detail.
  const errors = api.sessionErrors(sessionId).catch(() => []);
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
  const marks = errorMarks(await errors, info.clockSkewMs);
  if (state.screen !== screen) return;
  try {
    screen.replay(events, { marks });
  } catch (err) {
    show("error", { text: `cannot replay ${sessionId}: ${err.message}` });
    return;
  }
  state.marks = marks;
  showErrorList(screen, marks);
  if (state.seekTo !== null) screen.seek(state.seekTo); // a link to a moment
  state.seekTo = null;
  // A later, smaller snapshot made the session replayable; the header still says one was refused.
  const refused = state.missing ? " (one full snapshot was refused: over the size limit)" : "";
  show("history", { text: `${events.length} events${refused}` });
}

/** The errors under a finished session's replay, each a button that seeks to it. */
function showErrorList(screen, marks) {
  const events = screen.player?.getReplayer().service.state.context.events ?? [];
  $("error-list").replaceChildren(
    ...marks.map((mark) => {
      const at = markOffset(events, mark);
      const button = Object.assign(document.createElement("button"), {
        type: "button",
        textContent: `${(at / 1000).toFixed(1)} s`,
        onclick: () => screen.seek(at),
      });
      const li = document.createElement("li");
      li.append(button, ` ${mark.title}`);
      return li;
    }),
  );
  $("errors").hidden = marks.length === 0;
}

/** Pause and Jump to live, for a live replay that has its player. */
function showControls() {
  const screen = state.screen;
  $("pause").hidden = !(screen?.live && !screen.paused);
  $("go-live").hidden = !(state.mode === "live" && screen?.paused);
}

/** The link to this session, at the moment on screen (a finished or paused replay). */
function shareLink() {
  const screen = state.screen;
  const t = screen?.player && !screen.live ? screen.player.getReplayer().getCurrentTime() : null;
  return new URL(linkTo(state.sessionId, t), location.href).href;
}

function close() {
  state.stream?.close();
  state.screen?.destroy();
  Object.assign(state, EMPTY, { marks: [] });
  show(null, { text: "" });
  $("toolbar").hidden = true;
  $("errors").hidden = true;
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
$("filters").onsubmit = (e) => {
  e.preventDefault();
  loadSessions().catch((err) => status(`cannot list sessions: ${err.message}`));
};
$("clear-filters").onclick = () => {
  $("filters").reset();
  $("filters").requestSubmit();
};
$("more").onclick = () => loadSessions({ more: true }).catch((err) => status(`cannot list sessions: ${err.message}`));
$("pause").onclick = () => {
  state.screen?.pauseLive();
  showLive();
};
$("go-live").onclick = () => {
  state.screen?.jumpToLive();
  showLive();
};
$("share").onclick = () => {
  const link = shareLink();
  Object.assign($("share-url"), { value: link, hidden: false });
  $("share-url").select();
  navigator.clipboard?.writeText(link).catch(() => {}); // the field shows it either way
};
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
