/**
 * The tracker: records the page with rrweb and streams it to replaywire.
 *
 * Protocol (docs/protocol.md): on every (re)connect it sends `session_start`
 * and waits for `session_started`; it then resends, in seq order, every batch
 * the server has not acknowledged (from the server's `nextSeq`), and sends new
 * `events_batch` messages as they fill. A batch leaves memory only when its
 * `ack` arrives, so a server crash or restart loses nothing the tracker still
 * holds, and the server's seq deduplication makes resending always safe.
 * Messages of `compressMinBytes` or more go as compressed binary frames
 * where the browser has CompressionStream (large ones compressed in a
 * worker, off the main thread; see compress.js).
 *
 * Full snapshots: a heavy page's full snapshot is tens of MB, and without it
 * nothing replays, so it is never dropped for the tracker's memory budget.
 * An event of more than `maxBatchBytes` travels in a batch of its own (so
 * the meta event before a snapshot never shares its fate). The server's
 * limits arrive with `session_started`: a snapshot over them is not
 * uploaded; the tracker tells the server (`snapshot_missing`), keeps
 * recording incremental events and takes no new snapshot until the page
 * has shrunk (see snapshots.js, which also spaces out every retake).
 *
 * Resource handling: incremental events are bounded by `maxUnackedBytes`
 * (unacked batches plus the batch being filled); when that is full, new
 * incremental events are dropped, not queued, and once acks have freed half
 * of it the tracker takes a new full snapshot, so the replay goes on from a
 * consistent page. On top of that budget it holds at most one full snapshot.
 * `stop()` ends recording, waits for the acks (bounded by `stopTimeoutMs`),
 * sends `session_end` and closes the socket.
 *
 * Error handling (answers.js): a lost connection is retried forever with
 * exponential backoff that starts over only once the server acknowledged
 * something; an error carrying `retryAfterMs` pauses sending for that long,
 * then resends; a batch over the server's size limit is resent once without
 * the oversized event, and any other error for a batch (refused for good)
 * keeps the seq but drops its events, so the session goes on. A close that
 * says a message will never fit (1009 and the like) cuts down the batch it
 * most likely means instead of resending it forever. Nothing here throws
 * into the page: failures are reported through `onError` and `stats()`.
 */
import * as answers from "./answers.js";
import { backoffDelay } from "./backoff.js";
import { Batcher } from "./batcher.js";
import { compressMessage, compressionSupported } from "./compress.js";
import { body, FULL_SNAPSHOT, Outbox } from "./outbox.js";
import * as persist from "./persist.js";
import { SnapshotPolicy } from "./snapshots.js";

const META = 4; // rrweb's meta event, emitted just before each full snapshot

export const DEFAULTS = Object.freeze({
  flushIntervalMs: 250, // a batch leaves at most this long after its first event
  maxBatchEvents: 200,
  maxBatchBytes: 256 * 1024, // a larger event travels in a batch of its own
  maxUnackedBytes: 8 * 1024 * 1024, // incremental events held unacked; full snapshots come on top
  persistBytes: 1024 * 1024, // unacked batches carried over a navigation via sessionStorage
  checkoutEveryNms: 5 * 60 * 1000, // a fresh full snapshot every 5 minutes: late viewers start from it
  compress: true, // send large messages as compressed binary frames (deflate-raw), where the browser can
  compressMinBytes: 1024, // smaller messages go as text: compressing them gains nothing
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  policyBackoffMaxMs: 5 * 60_000, // after a close for policy (1008, 4xxx): reconnect at most this slowly
  snapshotBackoffBaseMs: 2_000, // tracker-initiated full snapshots are spaced from this...
  snapshotBackoffMaxMs: 10 * 60_000, // ...doubling up to this
  stopTimeoutMs: 10_000,
  storageKey: "replaywire",
});

const OPEN = 1; // WebSocket.OPEN, also where no WebSocket global exists (tests)
const HEALTHY_MS = 10_000; // a connection open this long resets the backoff

export class Tracker {
  /**
   * @param {object} options see DEFAULTS; `server` (ws://, wss://, http:// or
   *   https:// base URL of replaywire) is required, and so is `key`, the
   *   tenant's public write key, unless the server runs in development
   *   mode (no tenants). Optional: `sessionId`,
   *   `userId`, `recordOptions` (passed to rrweb's record), `onError(err)`,
   *   and for tests `record`, `WebSocket` and `countElements` in place of
   *   rrweb's, the browser's and the DOM's.
   */
  constructor(options) {
    if (!options || !options.server) throw new TypeError("replaywire: the `server` option is required");
    this.options = { ...DEFAULTS, ...options };
    this.url = trackerUrl(this.options.server, this.options.key);
    this.batcher = new Batcher({ maxEvents: this.options.maxBatchEvents, maxBytes: this.options.maxBatchBytes });
    this.outbox = new Outbox({ maxBytes: this.options.maxUnackedBytes });
    this.snapshots = new SnapshotPolicy({
      baseMs: this.options.snapshotBackoffBaseMs,
      maxMs: this.options.snapshotBackoffMaxMs,
      calmMs: Math.min(this.options.snapshotBackoffMaxMs, this.options.checkoutEveryNms * 0.8 || Infinity),
    });
    this.countElements =
      this.options.countElements || (() => globalThis.document?.getElementsByTagName("*").length ?? 0);
    this.sessionId = null;
    this.ws = null;
    this.started = false; // session_started received on the current socket
    this.stopped = true;
    this.limits = null; // the server's size limits, from session_started
    this.attempt = 0;
    this.reconnects = 0;
    this.recordedEvents = 0; // accepted into batches in this session and tab, less those refused
    this.droppedEvents = 0;
    this.overflow = false;
    this.snapshotWanted = false;
    this.notice = null; // a snapshot_missing message waiting for a connection
    this.lastError = null;
    this.pausedUntil = 0;
    this.sendChain = Promise.resolve();
    this.timers = { flush: null, reconnect: null, resume: null, snapshot: null, checkout: null, healthy: null };
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
      // The periodic checkout is the tracker's own (below), not rrweb's, so
      // that it goes through the snapshot policy like every other retake.
      this.stopRecording = record({
        ...this.options.recordOptions,
        emit: (event) => this.addEvent(event),
      });
      if (this.options.checkoutEveryNms > 0) {
        this.timers.checkout = setInterval(() => this.wantSnapshot(), this.options.checkoutEveryNms);
      }
    }
    return this;
  }

  /** Queue one rrweb event (what rrweb's `emit` calls). */
  addEvent(event) {
    if (this.stopped) return;
    const json = JSON.stringify(event);
    const type = event.type;
    if (type === FULL_SNAPSHOT) this.snapshots.recorded(Date.now());
    const keyframe = type === FULL_SNAPSHOT || type === META;
    if (!keyframe && !this.outbox.hasRoom(this.batcher.bytes + json.length + 2)) {
      this.droppedEvents++;
      this.overflow = true;
      return;
    }
    this.recordedEvents++;
    if (json.length > this.options.maxBatchBytes) {
      this.flush();
      this.send(this.outbox.push({ parts: [json], types: [type] }));
    } else if (this.batcher.add(json, type)) this.flush();
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
      snapshotsTaken: this.snapshots.taken,
      snapshotMissing: this.snapshotMissing(),
      lastError: this.lastError,
    };
  }

  /** The last full snapshot the server could not take, `{bytes, limitBytes}`, until one gets through. */
  snapshotMissing() {
    const tooLarge = this.snapshots.tooLarge;
    return tooLarge && { bytes: tooLarge.bytes, limitBytes: tooLarge.limitBytes };
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
   * Never throws.
   */
  async stop({ end = true } = {}) {
    if (this.stopped) return;
    try {
      this.stopRecording?.();
    } catch (err) {
      this.report(err);
    }
    this.stopRecording = null;
    this.flush();
    clearTimeout(this.timers.snapshot);
    clearInterval(this.timers.checkout);
    globalThis.removeEventListener?.("pagehide", this._onPageHide);
    globalThis.document?.removeEventListener?.("visibilitychange", this._onVisibility);
    if (end) {
      const ended = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), this.options.stopTimeoutMs);
        this.onEnded = () => {
          clearTimeout(timer);
          resolve(true);
        };
        this.maybeEnd();
      });
      // Out of time with batches unacked: end the session all the same, so
      // it does not show as live until the server's idle timeout.
      if (!ended && this.started) this.sendEnd();
      persist.clear(this.options.storageKey);
    } else {
      this.save();
    }
    await this.sendChain; // what is queued (session_end last) goes out before the close
    this.stopped = true;
    this.onEnded = null;
    for (const name of Object.keys(this.timers)) {
      clearTimeout(this.timers[name]);
      clearInterval(this.timers[name]);
    }
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
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.started = false;
      clearTimeout(this.timers.healthy);
      const action = answers.closeAction(event?.code);
      if (action === answers.TAKEN_OVER) {
        this.fail("session_taken_over", "a newer connection of this session took it over; this tracker stopped");
        this.stop({ end: false });
        return;
      }
      if (action === answers.BLAME) this.blame(event.code);
      this.reconnectLater(action === answers.POLICY ? this.options.policyBackoffMaxMs : this.options.backoffMaxMs);
    };
    ws.onerror = () => {}; // onclose follows and does the work
  }

  reconnectLater(maxMs = this.options.backoffMaxMs) {
    if (this.stopped || this.timers.reconnect !== null) return;
    const delay = backoffDelay(this.attempt++, { baseMs: this.options.backoffBaseMs, maxMs });
    this.reconnects++;
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  /** The server is taking what we send: reconnects may start fast again. */
  healthy() {
    this.attempt = 0;
    clearTimeout(this.timers.healthy);
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
        this.limits = data.limits || null;
        if (this.limits?.maxEventsPerBatch > 0) {
          this.batcher.maxEvents = Math.min(this.options.maxBatchEvents, this.limits.maxEventsPerBatch);
        }
        this.outbox.resume(data.nextSeq ?? 0);
        this.started = true;
        // Backoff starts over on an ack or once the connection has lasted,
        // not here: a server that accepts and then closes at once (a message
        // it will never take) must not get a reconnect storm.
        clearTimeout(this.timers.healthy);
        this.timers.healthy = setTimeout(() => this.healthy(), HEALTHY_MS);
        this.sendNotice();
        this.sendUnsent();
        this.maybeEnd();
        break;
      case "ack": {
        this.healthy();
        const batch = this.outbox.get(data.seq);
        this.outbox.ack(data.seq);
        if (batch?.keyframe) this.snapshots.delivered();
        if (this.overflow && this.outbox.incrementalBytes <= this.options.maxUnackedBytes / 2) {
          this.overflow = false;
          this.wantSnapshot();
        } else if (batch?.keyframe) this.scheduleSnapshot(); // one may have waited for this one
        this.maybeEnd();
        break;
      }
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
    this.fail(data.code, data.message, data);
    const seq = typeof data.seq === "number" ? data.seq : null;
    const batch = seq === null ? null : this.outbox.get(seq);
    switch (answers.errorAction(data)) {
      case answers.RETRY_LATER:
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
        break;
      case answers.TOO_LARGE:
        if (batch) this.refuse(batch, { tooLarge: true });
        break;
      case answers.REFUSED:
        if (!batch) break;
        if (data.code === "invalid_compression" && !batch.plain) {
          batch.plain = true; // perhaps this browser's compression: once as text
          this.send(batch);
        } else this.refuse(batch, { tooLarge: false });
        break;
      case answers.RESTART:
        // A session-level refusal (e.g. the session ended on the server):
        // start over on a new connection after the backoff delay.
        if (this.ws) {
          this.started = false;
          this.ws.close(1000);
        }
        break;
      default:
        break; // reported above; asking again would get the same answer
    }
  }

  /**
   * The server will never take `batch` as it is. Over a size limit, the
   * first time: resend it without the events over the limit (or, when none
   * is by our count, without its largest). Otherwise: keep the seq, drop
   * the events; a batch refused even empty gives its seq up.
   */
  refuse(batch, { tooLarge }) {
    batch.refusals++;
    if (batch.parts.length === 0 && batch.refusals > 1) {
      this.outbox.ack(batch.seq);
      this.maybeEnd();
      return;
    }
    let removed;
    if (tooLarge && batch.refusals === 1 && batch.parts.length > 0) {
      const limit = this.limits?.maxEventBytes;
      removed = limit ? this.outbox.remove(batch.seq, (part) => part.length <= limit) : [];
      if (removed.length === 0) {
        let largest = 0;
        batch.parts.forEach((part, i) => {
          if (part.length > batch.parts[largest].length) largest = i;
        });
        removed = this.outbox.remove(batch.seq, (_part, _type, i) => i !== largest);
      }
    } else removed = this.outbox.empty(batch.seq);
    this.lost(removed, tooLarge ? (this.limits?.maxEventBytes ?? null) : undefined);
    batch.sent = false;
    this.send(batch);
  }

  /**
   * Events the server will never have. Later incremental events refer to
   * DOM it never got, so a new full snapshot is wanted, unless what was
   * lost is the snapshot itself for its size: then the server is told,
   * and the policy waits for the page to shrink.
   */
  lost(removed, limitBytes) {
    if (removed.length === 0) return;
    this.recordedEvents -= removed.length;
    this.droppedEvents += removed.length;
    const snapshot = removed.find((r) => r.type === FULL_SNAPSHOT);
    if (snapshot && limitBytes !== undefined) {
      const bytes = snapshot.part.length;
      this.snapshots.refused({ bytes, limitBytes }, this.countElements());
      const over = limitBytes ? `over the server's limit of ${limitBytes} bytes` : "refused by the server as too large";
      this.fail("snapshot_too_large", `the page's full snapshot of ${bytes} bytes is ${over}; recording goes on without it`);
      this.notice = { type: "snapshot_missing", data: { sessionId: this.sessionId, reason: "too_large", bytes, limitBytes } };
      this.sendNotice();
    }
    this.wantSnapshot();
  }

  /** A close that says something we sent will never be taken: cut down the likely one. */
  blame(code) {
    const sent = this.outbox.batches.filter((b) => b.sent);
    if (sent.length === 0) return;
    const culprit = code === 1009 ? sent.reduce((a, b) => (b.bytes > a.bytes ? b : a)) : sent[0];
    this.refuse(culprit, { tooLarge: code === 1009 });
  }

  // --- full snapshots ---------------------------------------------------------

  /** Ask for a new full snapshot, as soon as the policy allows. */
  wantSnapshot() {
    this.snapshotWanted = true;
    this.scheduleSnapshot();
  }

  scheduleSnapshot() {
    if (!this.snapshotWanted || this.stopped || !this.stopRecording || this.timers.snapshot !== null) return;
    this.timers.snapshot = setTimeout(() => {
      this.timers.snapshot = null;
      this.trySnapshot();
    }, this.snapshots.waitMs(Date.now()));
  }

  trySnapshot() {
    if (!this.snapshotWanted || this.stopped || !this.stopRecording) return;
    if (this.outbox.keyframe()) return; // one in flight: its ack schedules the next
    if (!this.snapshots.allows(Date.now(), this.countElements())) {
      this.scheduleSnapshot();
      return;
    }
    this.snapshotWanted = false;
    try {
      this.options.record?.takeFullSnapshot?.(true);
    } catch (err) {
      this.report(err);
    }
  }

  // --- sending --------------------------------------------------------------

  send(batch) {
    if (!this.started || Date.now() < this.pausedUntil) return;
    // An event over the server's limit is never uploaded (a 70 MB snapshot
    // would only be refused): take it out before sending.
    const limit = this.limits?.maxEventBytes;
    if (limit && batch.parts.some((part) => part.length > limit)) {
      this.lost(
        this.outbox.remove(batch.seq, (part) => part.length <= limit),
        limit,
      );
    }
    batch.sent = true;
    const message = `{"type":"events_batch","data":{"sessionId":${JSON.stringify(this.sessionId)},"seq":${batch.seq},"events":${body(batch)}}}`;
    const ws = this.ws;
    const compress =
      this.options.compress && !batch.plain && compressionSupported() && message.length >= this.options.compressMinBytes;
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
    if (ws?.readyState === OPEN) ws.send(text);
  }

  sendUnsent() {
    for (const batch of this.outbox.unsent()) this.send(batch);
  }

  /** The latest snapshot_missing, once there is a session to send it in. */
  sendNotice() {
    if (!this.notice || !this.started) return;
    const notice = this.notice;
    this.notice = null;
    // After the batches before it, so the server has them when it flags the session.
    this.sendChain = this.sendChain.then(() => this.sendText(this.ws, JSON.stringify(notice)));
  }

  /** During stop(): once everything is acked, end the session. */
  maybeEnd() {
    if (!this.onEnded || !this.started || this.outbox.length > 0 || this.batcher.size > 0) return;
    this.sendEnd();
  }

  sendEnd() {
    const ws = this.ws;
    this.sendChain = this.sendChain.then(() =>
      this.sendText(ws, JSON.stringify({ type: "session_end", data: { sessionId: this.sessionId } })),
    );
  }

  /** Keep the error for `stats()` and tell the page's `onError`. */
  fail(code, message, data = { code, message }) {
    this.lastError = { code, message, at: Date.now() };
    this.report(Object.assign(new Error(`replaywire: ${code}: ${message}`), { data }));
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
