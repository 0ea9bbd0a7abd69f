/**
 * The tracker's clock, as seen from the viewer: what "now" is on the clock
 * that stamped a live session's events, so the replay can run a fixed delay
 * behind it even when the tracker's clock is minutes off (rrweb issue 1073).
 *
 * Two offsets, both measured, neither assumed:
 * - the server's clock against ours: every events message carries
 *   `serverTime` (when the server built it); `serverTime - arrival` is the
 *   offset minus the message's trip, so the largest value seen is the best
 *   estimate (trips only ever make it smaller);
 * - the tracker's clock against the server's: `clockSkewMs` from
 *   `viewer_joined`, which the server measures over every batch. When the
 *   server has none yet (no events when we joined), it is estimated here
 *   the same way: an event stamped `t` that reached a message built at
 *   `serverTime` says the tracker is at least `t - serverTime` ahead.
 *
 * Until anything is known both offsets are 0: the old assumption that the
 * clocks agree.
 */
export class TrackerClock {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.serverOffset = null; // server clock minus ours, ms
    this.skew = null; // tracker clock minus the server's, ms
    this.skewFromServer = false;
  }

  /** `clockSkewMs` of `viewer_joined` (null: not measured yet). */
  setSkew(ms) {
    if (typeof ms !== "number" || !Number.isFinite(ms)) return;
    this.skew = ms;
    this.skewFromServer = true;
  }

  /** An events message as it arrives: its `serverTime` and its events. */
  observe(serverTime, events) {
    if (typeof serverTime !== "number" || !Number.isFinite(serverTime)) return;
    const offset = serverTime - this.now();
    if (this.serverOffset === null || offset > this.serverOffset) this.serverOffset = offset;
    if (this.skewFromServer) return;
    let last = -Infinity;
    for (const event of events) if (typeof event?.timestamp === "number" && event.timestamp > last) last = event.timestamp;
    if (last === -Infinity) return;
    const bound = last - serverTime;
    if (this.skew === null || bound > this.skew) this.skew = bound;
  }

  /** Now on the tracker's clock, ms. */
  trackerNow() {
    return this.now() + (this.serverOffset ?? 0) + (this.skew ?? 0);
  }
}
