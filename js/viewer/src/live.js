/**
 * Follows one live session over the viewer WebSocket and hands its events,
 * in index order, without gaps or duplicates, to `onEvents`.
 *
 * Every message says the index of its first event. A message that starts
 * past the next expected index means events were missed (a dropped socket,
 * a server restart): the stream re-joins with `fromIndex` set to the next
 * expected index, and the server sends exactly the missing events (from
 * memory or storage) before the live deltas again. A message that starts
 * before it (an overlap after a re-join) has its already-seen events
 * dropped. A `resync` snapshot (the server dropped this viewer's backlog)
 * restarts the replay from the full snapshot it carries.
 *
 * `clock` follows the tracker's clock from the messages' `serverTime` and
 * the session's `clockSkewMs` (see clock.js), so the screen can play a
 * fixed delay behind the tracker whatever its clock says.
 *
 * `progress` follows the span the last join asked for: `viewer_joined`
 * says where it starts (`fromIndex`: the latest meta + full snapshot, for a
 * first join) and where the live deltas begin (`nextIndex`); until that
 * many events have arrived the stream is `loading`. A 30 MB snapshot comes
 * as one WebSocket message, so progress moves by whole messages.
 *
 * Resource handling: one socket at a time; `close()` ends it and stops the
 * reconnect timer. Frames are decoded one after the other (deflate is
 * asynchronous in browsers), so order is kept; each frame's bytes are only
 * referenced until it is decoded.
 */
import { viewerSocketUrl } from "./api.js";
import { TrackerClock } from "./clock.js";
import { decodeFrame } from "./frames.js";

export class LiveStream {
  /**
   * @param {{sessionId: string, codec: string, onEvents: (events: object[], info: {reset: boolean}) => void,
   *   onStatus?: (text: string) => void, onJoined?: () => void, onEnded?: () => void}} options
   */
  constructor(options) {
    this.options = options;
    this.sessionId = options.sessionId;
    this.clock = new TrackerClock();
    this.nextIndex = null; // index of the next event we expect
    this.gaps = 0;
    this.joins = 0;
    this.resyncs = 0;
    this.ended = false;
    this.closed = false;
    this.ws = null;
    this.queue = Promise.resolve();
    this.retry = 0;
    this.retryTimer = null;
    this.joined = null; // {from, to} of the last viewer_joined (to: null if not live)
  }

  /** Events of the joined span received so far: `{unit: "events", loaded, total}`. */
  get progress() {
    if (!this.joined) return { unit: "events", loaded: 0, total: null };
    const { from, to } = this.joined;
    const loaded = Math.max(0, (this.nextIndex ?? from) - from);
    return { unit: "events", loaded: to === null ? loaded : Math.min(loaded, to - from), total: to === null ? null : to - from };
  }

  /** True until the joined span has arrived (or before any join). */
  get loading() {
    if (!this.joined || this.nextIndex === null) return true;
    return this.joined.to !== null && this.nextIndex < this.joined.to;
  }

  start() {
    this.connect();
    return this;
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.ws?.close(1000);
    this.ws = null;
  }

  connect() {
    if (this.closed || this.ended) return;
    const ws = new WebSocket(viewerSocketUrl(this.options.codec));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.joins++;
      const data = { sessionId: this.sessionId };
      if (this.nextIndex !== null) data.fromIndex = this.nextIndex;
      ws.send(JSON.stringify({ type: "viewer_join_session", data }));
      this.status(this.nextIndex === null ? "joining" : `re-joining from event ${this.nextIndex}`);
    };
    ws.onmessage = (message) => {
      let frame = message.data; // dropped once decoded: a snapshot may be 30 MB
      this.queue = this.queue
        .then(async () => {
          const data = frame;
          frame = null;
          if (this.ws !== ws) return; // a message of a socket we left
          this.handle(await decodeFrame(data));
        })
        .catch((err) => this.status(`bad message: ${err.message}`));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed || this.ended) return;
      const delay = Math.min(10_000, 250 * 2 ** this.retry++);
      this.status(`connection lost; retrying in ${Math.round(delay / 100) / 10} s`);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  /** Leave the current socket and join again from the next expected index. */
  rejoin() {
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.connect();
  }

  handle(message) {
    switch (message.type) {
      case "viewer_joined":
        this.retry = 0;
        this.clock.setSkew(message.data.clockSkewMs);
        this.joined = joinedSpan(message.data, this.nextIndex);
        // Not "live" yet: that is for the screen to say, once it shows something.
        this.status(message.data.nextIndex === null ? "replaying a finished session" : "joined");
        this.options.onJoined?.();
        return;
      case "snapshot":
      case "delta":
        this.receive(message);
        return;
      case "session_ended":
        this.ended = true;
        this.status("session ended");
        this.options.onEnded?.();
        this.ws?.close(1000);
        return;
      case "error":
        this.status(`error: ${message.data.code}: ${message.data.message}`);
        return;
      default:
        return;
    }
  }

  receive(message) {
    const { firstIndex, events } = message;
    this.clock.observe(message.serverTime, events);
    let reset = false;
    if (message.type === "snapshot" && (message.resync || this.nextIndex === null)) {
      reset = true; // a fresh start from a full snapshot
      if (message.resync) this.resyncs++;
    } else if (firstIndex > this.nextIndex) {
      this.gaps++;
      this.status(`gap: expected event ${this.nextIndex}, got ${firstIndex}; re-joining`);
      this.rejoin();
      return;
    }
    const skip = reset ? 0 : this.nextIndex - firstIndex; // already seen (overlap)
    this.nextIndex = firstIndex + events.length;
    const fresh = skip > 0 ? events.slice(skip) : events;
    if (fresh.length > 0 || reset) this.options.onEvents(fresh, { reset });
  }

  status(text) {
    this.options.onStatus?.(text);
  }
}

/** The span a `viewer_joined` announces: from its `fromIndex` (or where we
 * asked to resume) to its `nextIndex` (null: the session is not live). */
function joinedSpan(data, resumeAt) {
  const from = Number.isInteger(data.fromIndex) ? data.fromIndex : (resumeAt ?? 0);
  const to = Number.isInteger(data.nextIndex) ? Math.max(from, data.nextIndex) : null;
  return { from, to };
}
