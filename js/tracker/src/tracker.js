/**
 * The tracker: records the page with rrweb and streams it to replaywire.
 *
 * Protocol (docs/protocol.md): on every (re)connect it sends `session_start`
 * and waits for `session_started`; it then resends, in seq order, every batch
 * the server has not acknowledged (from the server's `nextSeq`), and sends new
 * `events_batch` messages as they fill. A batch leaves memory only when its
 * `ack` arrives, so a server crash or restart loses nothing the tracker still
 * holds, and the server's seq deduplication makes resending always safe.
 *
 * Resource handling: memory is bounded by `maxUnackedBytes` (unacked batches
 * plus the batch being filled). When that is full, new events are dropped,
 * not queued; once acks have freed half of it the tracker takes a new rrweb
 * full snapshot, so the replay goes on from a consistent page (a viewer sees
 * the page jump over the dropped span). `stop()` ends recording, waits for
 * the acks (bounded by `stopTimeoutMs`), sends `session_end` and closes the
 * socket.
 *
 * Error handling: a lost connection is retried forever with exponential
 * backoff; an error carrying `retryAfterMs` (`rate_limited`,
 * `storage_unavailable`) pauses sending for that long, then resends; any
 * other error for a batch (the server refused it for good) keeps the seq but
 * drops its events, so the session goes on. Nothing here throws into the
 * page: failures are reported through `onError`.
 */
import { backoffDelay } from "./backoff.js";
import { Batcher } from "./batcher.js";
import { compressMessage, compressionSupported } from "./compress.js";
import { EMPTY_BODY, Outbox } from "./outbox.js";
import * as persist from "./persist.js";

export const DEFAULTS = Object.freeze({
  flushIntervalMs: 250, // a batch leaves at most this long after its first event
  maxBatchEvents: 200,
  maxBatchBytes: 256 * 1024,
  maxUnackedBytes: 8 * 1024 * 1024, // must exceed the page's largest full snapshot
  persistBytes: 1024 * 1024, // unacked batches carried over a navigation via sessionStorage
  checkoutEveryNms: 5 * 60 * 1000, // a fresh full snapshot every 5 minutes: late viewers start from it
  compress: false, // send batches as compressed binary frames (deflate-raw)
  compressMinBytes: 1024, // smaller messages go as text: compressing them gains nothing
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  stopTimeoutMs: 10_000,
  storageKey: "replaywire",
});

const OPEN = 1; // WebSocket.OPEN, also where no WebSocket global exists (tests)

export class Tracker {
  /**
   * @param {object} options see DEFAULTS; `server` (ws://, wss://, http:// or
   *   https:// base URL of replaywire) is required, and so is `key`, the
   *   tenant's public write key, unless the server runs in development
   *   mode (no tenants). Optional: `sessionId`,
   *   `userId`, `recordOptions` (passed to rrweb's record), `onError(err)`,
   *   and for tests `record` and `WebSocket` in place of rrweb's and the
   *   browser's.
   */
  constructor(options) {
    if (!options || !options.server) throw new TypeError("replaywire: the `server` option is required");
    this.options = { ...DEFAULTS, ...options };
    this.url = trackerUrl(this.options.server, this.options.key);
    this.batcher = new Batcher({ maxEvents: this.options.maxBatchEvents, maxBytes: this.options.maxBatchBytes });
    this.outbox = new Outbox({ maxBytes: this.options.maxUnackedBytes });
    this.sessionId = null;
    this.ws = null;
    this.started = false; // session_started received on the current socket
    this.stopped = true;
    this.attempt = 0;
    this.reconnects = 0;
    this.recordedEvents = 0; // accepted into batches in this session and tab (dropped ones not counted)
    this.droppedEvents = 0;
    this.overflow = false;
    this.pausedUntil = 0;
    this.sendChain = Promise.resolve();
    this.timers = { flush: null, reconnect: null, resume: null };
    this.stopRecording = null;
    this.onEnded = null;
    this._onPageHide = () => this.save();
    this._onVisibility = () => {
      if (globalThis.document?.visibilityState === "hidden") this.save();
    };
  }

  /** Start (or, after a navigation in the same tab, continue) the session. */
  start() {
    if (!this.stopped) return this;
    this.stopped = false;
    const saved = persist.load(this.options.storageKey);
    const wanted = this.options.sessionId;
    if (saved && (!wanted || saved.sessionId === wanted)) {
      this.sessionId = saved.sessionId;
      this.outbox = Outbox.restore(saved.outbox, this.options.maxUnackedBytes);
      this.recordedEvents = saved.recordedEvents || 0;
    } else {
      this.sessionId = wanted || newSessionId();
    }
    this.save();
    globalThis.addEventListener?.("pagehide", this._onPageHide);
    globalThis.document?.addEventListener?.("visibilitychange", this._onVisibility);
    this.connect();
    const record = this.options.record;
    if (record) {
      this.stopRecording = record({
        checkoutEveryNms: this.options.checkoutEveryNms,
        ...this.options.recordOptions,
        emit: (event) => this.addEvent(event),
      });
    }
    return this;
  }

  /** Queue one rrweb event (what rrweb's `emit` calls). */
  addEvent(event) {
    if (this.stopped) return;
    const json = JSON.stringify(event);
    if (!this.outbox.hasRoom(this.batcher.bytes + json.length + 2)) {
      this.droppedEvents++;
      this.overflow = true;
      return;
    }
    this.recordedEvents++;
    if (this.batcher.add(json)) this.flush();
    else if (this.timers.flush === null) {
      this.timers.flush = setTimeout(() => this.flush(), this.options.flushIntervalMs);
    }
  }

  /** Close the batch being filled and send it (if connected). */
  flush() {
    clearTimeout(this.timers.flush);
    this.timers.flush = null;
    const pending = this.batcher.take();
    if (pending) this.send(this.outbox.push(pending));
  }

  /** Numbers a snapshot of the tracker for pages and tests. */
  stats() {
    return {
      sessionId: this.sessionId,
      connected: this.started,
      nextSeq: this.outbox.nextSeq,
      unackedBatches: this.outbox.length,
      unackedBytes: this.outbox.bytes,
      pendingEvents: this.batcher.size,
      recordedEvents: this.recordedEvents,
      droppedEvents: this.droppedEvents,
      reconnects: this.reconnects,
    };
  }

  /** Write the session's state to sessionStorage (done on pagehide). */
  save() {
    if (!this.sessionId) return;
    this.flush();
    persist.save(this.options.storageKey, {
      sessionId: this.sessionId,
      outbox: this.outbox.serialize(this.options.persistBytes),
      recordedEvents: this.recordedEvents,
    });
  }

  /**
   * Stop recording. With `end` (the default) wait until every batch is
   * acked (at most `stopTimeoutMs`), end the session on the server and
   * forget it in this tab; without, keep it in sessionStorage to go on later.
   */
  async stop({ end = true } = {}) {
    if (this.stopped) return;
    this.stopRecording?.();
    this.stopRecording = null;
    this.flush();
    globalThis.removeEventListener?.("pagehide", this._onPageHide);
    globalThis.document?.removeEventListener?.("visibilitychange", this._onVisibility);
    if (end) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, this.options.stopTimeoutMs);
        this.onEnded = () => {
          clearTimeout(timer);
          resolve();
        };
        this.maybeEnd();
      });
      persist.clear(this.options.storageKey);
    } else {
      this.save();
    }
    this.stopped = true;
    this.onEnded = null;
    for (const name of Object.keys(this.timers)) clearTimeout(this.timers[name]);
    const ws = this.ws;
    this.ws = null;
    this.started = false;
    ws?.close(1000);
  }

  // --- connection -----------------------------------------------------------

  connect() {
    this.timers.reconnect = null;
    if (this.stopped && !this.onEnded) return;
    let ws;
    try {
      ws = new (this.options.WebSocket || globalThis.WebSocket)(this.url);
    } catch (err) {
      this.report(err);
      this.reconnectLater();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => this.sendText(ws, JSON.stringify({ type: "session_start", data: this.startData() }));
    ws.onmessage = (message) => {
      if (typeof message.data !== "string") return; // trackers get text only
      let parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      this.receive(parsed);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.started = false;
      this.reconnectLater();
    };
    ws.onerror = () => {}; // onclose follows and does the work
  }

  reconnectLater() {
    if (this.stopped || this.timers.reconnect !== null) return;
    const delay = backoffDelay(this.attempt++, {
      baseMs: this.options.backoffBaseMs,
      maxMs: this.options.backoffMaxMs,
    });
    this.reconnects++;
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  startData() {
    const data = { sessionId: this.sessionId, startTime: Date.now() };
    if (this.options.userId) data.userId = String(this.options.userId);
    const w = globalThis.window;
    if (w?.location) {
      data.url = w.location.href;
      data.userAgent = w.navigator?.userAgent;
      data.referrer = w.document?.referrer || undefined;
      data.viewport = { width: w.innerWidth, height: w.innerHeight, devicePixelRatio: w.devicePixelRatio };
      try {
        data.timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      } catch {
        /* no Intl time zone: leave it out */
      }
    }
    return data;
  }

  receive(message) {
    const data = message.data || {};
    switch (message.type) {
      case "session_started":
        this.outbox.resume(data.nextSeq ?? 0);
        this.started = true;
        this.attempt = 0;
        this.sendUnsent();
        this.maybeEnd();
        break;
      case "ack":
        this.outbox.ack(data.seq);
        if (this.overflow && this.outbox.bytes <= this.options.maxUnackedBytes / 2) {
          this.overflow = false;
          this.options.record?.takeFullSnapshot?.(true);
        }
        this.maybeEnd();
        break;
      case "error":
        this.onServerError(data);
        break;
      case "session_ended":
        this.onEnded?.();
        break;
      default:
        break;
    }
  }

  onServerError(data) {
    this.report(Object.assign(new Error(`replaywire: ${data.code}: ${data.message}`), { data }));
    const seq = typeof data.seq === "number" ? data.seq : null;
    if (typeof data.retryAfterMs === "number") {
      // Temporary: hold everything from this seq (or all) and resend later.
      this.outbox.markUnsent(seq ?? -Infinity);
      this.pausedUntil = Date.now() + data.retryAfterMs;
      clearTimeout(this.timers.resume);
      // The timer clears the pause itself: timers may fire a little before
      // Date.now() reaches pausedUntil, and nothing else would resend.
      this.timers.resume = setTimeout(() => {
        this.pausedUntil = 0;
        this.sendUnsent();
      }, data.retryAfterMs);
    } else if (seq !== null) {
      // Refused for good: keep the seq, drop the events (see outbox.js).
      const batch = this.outbox.batches.find((b) => b.seq === seq);
      if (!batch) return;
      if (batch.body === EMPTY_BODY) {
        this.outbox.ack(seq); // even empty is refused: give the seq up
        return;
      }
      this.outbox.empty(seq);
      this.send(batch);
      // An event over the server's limit is lost: later incremental events
      // refer to DOM the server never got, so take a fresh full snapshot,
      // at most once a minute (a page whose snapshot is itself too large
      // would otherwise loop).
      if (data.code === "payload_too_large" && Date.now() - (this.lastRetake || 0) > 60_000) {
        this.lastRetake = Date.now();
        this.options.record?.takeFullSnapshot?.(true);
      }
    } else if (this.ws) {
      // A session-level refusal (e.g. the session ended on the server):
      // start over on a new connection after the backoff delay.
      this.started = false;
      this.ws.close(1000);
    }
  }

  // --- sending --------------------------------------------------------------

  send(batch) {
    if (!this.started || Date.now() < this.pausedUntil) return;
    batch.sent = true;
    const message = `{"type":"events_batch","data":{"sessionId":${JSON.stringify(this.sessionId)},"seq":${batch.seq},"events":${batch.body}}}`;
    const ws = this.ws;
    const compress = this.options.compress && compressionSupported() && message.length >= this.options.compressMinBytes;
    // One chain keeps messages in seq order even when some are compressed
    // (asynchronously) and others not.
    this.sendChain = this.sendChain
      .then(async () => {
        const payload = compress ? await compressMessage(message) : message;
        if (this.ws === ws && ws.readyState === OPEN) ws.send(payload);
        else batch.sent = false;
      })
      .catch((err) => {
        batch.sent = false;
        this.report(err);
      });
  }

  sendText(ws, text) {
    if (ws.readyState === OPEN) ws.send(text);
  }

  sendUnsent() {
    for (const batch of this.outbox.unsent()) this.send(batch);
  }

  /** During stop(): once everything is acked, end the session. */
  maybeEnd() {
    if (!this.onEnded || !this.started || this.outbox.length > 0 || this.batcher.size > 0) return;
    this.sendText(this.ws, JSON.stringify({ type: "session_end", data: { sessionId: this.sessionId } }));
  }

  report(err) {
    try {
      this.options.onError?.(err);
    } catch {
      /* the page's handler failed: never let that break recording */
    }
  }
}

/**
 * `ws(s)://host[:port][/prefix]/ws?type=tracker&key=KEY` from a server base
 * URL and the tenant's write key (browsers cannot set headers on a
 * WebSocket, so the key travels in the URL; it is public anyway).
 */
export function trackerUrl(server, key) {
  const url = new URL(server);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws`;
  url.search = "?type=tracker";
  if (key) url.searchParams.set("key", key);
  url.hash = "";
  return url.toString();
}

function newSessionId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}
