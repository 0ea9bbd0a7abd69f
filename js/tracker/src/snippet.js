/**
 * The `<script>` build (served by replaywire at /tracker.js): starts
 * recording as soon as it loads, configured by the tag's data attributes,
 * and exposes `window.replaywire` ({start, Tracker, tracker}).
 *
 *   <script src="https://replay.example.com/tracker.js" data-user-id="u1" defer></script>
 *
 * Every option of DEFAULTS can be set as a data attribute in kebab case
 * (`data-flush-interval-ms="250"`, `data-compress="true"`), plus
 * `data-key` (the tenant's write key), `data-server` (default: where the
 * script came from), `data-session-id`,
 * `data-user-id`, `data-on-error` (the name of a global function that gets
 * each error; `tracker.stats().lastError` keeps the last one), and
 * `data-auto="false"` to start it yourself later.
 */
import { DEFAULTS, start, Tracker } from "./index.js";

const script = globalThis.document?.currentScript;
const data = script?.dataset ?? {};
const options = {
  server: data.server || (script?.src ? new URL(script.src).origin : globalThis.location.origin),
};
for (const [name, fallback] of Object.entries(DEFAULTS)) {
  if (!(name in data)) continue;
  const raw = data[name];
  if (typeof fallback === "number") options[name] = Number(raw);
  else if (typeof fallback === "boolean") options[name] = raw === "" || raw === "true";
  else options[name] = raw;
}
if (data.key) options.key = data.key;
if (data.sessionId) options.sessionId = data.sessionId;
if (data.userId) options.userId = data.userId;
// `data-on-error="name"`: the page's global function `name` gets every error
// (looked up at each call, so it may be defined after this script).
if (data.onError) {
  options.onError = (err) => {
    const handler = globalThis[data.onError];
    if (typeof handler === "function") handler(err);
  };
}

const api = { start, Tracker, tracker: null };
globalThis.replaywire = api;
if (data.auto !== "false") api.tracker = start(options);
