/**
 * When the tracker may ask rrweb for a new full snapshot.
 *
 * Why a policy: a full snapshot is the one costly thing the tracker does to
 * the page. rrweb walks the whole DOM and the tracker serialises the result
 * on the main thread: on a page of 135,000 table cells that is a 30 MB
 * string and a second of frozen page. Retaking it in a loop (after every
 * overflow, or every time the server refuses it) makes the page unusable,
 * so retakes are spaced and bounded:
 *
 * - At most one full snapshot in flight: the owner asks only when no
 *   unacked batch carries one (`Outbox.keyframe()`).
 * - Retakes back off exponentially (`baseMs`, doubling, capped at `maxMs`);
 *   the count starts over once `calmMs` went by without a snapshot (less
 *   than the periodic checkout, so that alone never backs off).
 * - After a snapshot was too large for the server, none is taken until the
 *   page holds few enough elements that the next one would likely fit: the
 *   element count is read (cheaply) at the backoff times, and a snapshot is
 *   taken only once it fell below `limitBytes / bytes` of what it was
 *   (with 10% to spare). The page's next load starts afresh anyway.
 *
 * Pure: time and the element count come from the caller.
 */
export class SnapshotPolicy {
  /** @param {{baseMs?: number, maxMs?: number, calmMs?: number}} [options] */
  constructor({ baseMs = 2_000, maxMs = 10 * 60_000, calmMs = 4 * 60_000 } = {}) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.calmMs = calmMs;
    this.attempt = 0;
    this.lastTakenAt = -Infinity;
    this.taken = 0;
    /** @type {{bytes: number, limitBytes: number|null, elements: number} | null} */
    this.tooLarge = null;
  }

  delay(attempt) {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempt, 30));
  }

  /** A full snapshot was recorded (rrweb's first, or one the tracker asked for). */
  recorded(now) {
    this.attempt = now - this.lastTakenAt >= this.calmMs ? 0 : this.attempt + 1;
    this.lastTakenAt = now;
    this.taken++;
  }

  /** The server took a full snapshot: the page fits again. */
  delivered() {
    this.tooLarge = null;
  }

  /** The latest snapshot was over the server's limit (`limitBytes` may be null). */
  refused({ bytes, limitBytes }, elements) {
    this.tooLarge = { bytes, limitBytes: limitBytes ?? null, elements };
  }

  /** Milliseconds from `now` before the next snapshot may be taken (0: now). */
  waitMs(now) {
    return Math.max(0, this.lastTakenAt + this.delay(this.attempt) - now);
  }

  /**
   * May a snapshot be taken now, on a page of `elements` elements? When the
   * last one was too large and the page has not shrunk enough, the wait
   * grows as if one had been taken (the caller asks again later).
   */
  allows(now, elements) {
    if (this.waitMs(now) > 0) return false;
    if (this.tooLarge && elements > this.fittingElements()) {
      this.attempt++;
      this.lastTakenAt = now;
      return false;
    }
    return true;
  }

  /** How many elements a page may hold for its snapshot to likely fit. */
  fittingElements() {
    const { bytes, limitBytes, elements } = this.tooLarge;
    const share = limitBytes && bytes > 0 ? limitBytes / bytes : 0.5;
    return Math.floor(elements * Math.min(share, 1) * 0.9);
  }
}
