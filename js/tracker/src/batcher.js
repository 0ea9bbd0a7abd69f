/**
 * Collects serialised rrweb events into batches, flushed by count, by size
 * or (by the caller's timer) by age. Events are serialised once, when they
 * are recorded, and from then on only joined: a batch is the list of its
 * events' JSON texts with their rrweb types (see outbox.js).
 *
 * Sizes are counted in UTF-16 code units (`string.length`), which equals
 * UTF-8 bytes for the ASCII that rrweb JSON mostly is; exact byte counts
 * would cost a TextEncoder pass per event.
 */
export class Batcher {
  /** @param {{maxEvents: number, maxBytes: number}} limits */
  constructor({ maxEvents, maxBytes }) {
    this.maxEvents = maxEvents;
    this.maxBytes = maxBytes;
    /** @type {string[]} */
    this.parts = [];
    /** @type {number[]} */
    this.types = [];
    this.bytes = 0;
  }

  /**
   * @param {string} json one serialised event
   * @param {number} type its rrweb type
   * @returns {boolean} true when the batch is full and should be flushed now
   */
  add(json, type) {
    this.parts.push(json);
    this.types.push(type);
    this.bytes += json.length + 1;
    return this.parts.length >= this.maxEvents || this.bytes >= this.maxBytes;
  }

  get size() {
    return this.parts.length;
  }

  /** @returns {{parts: string[], types: number[], bytes: number} | null} the pending batch, emptied */
  take() {
    if (this.parts.length === 0) return null;
    const batch = { parts: this.parts, types: this.types, bytes: this.bytes + 1 };
    this.parts = [];
    this.types = [];
    this.bytes = 0;
    return batch;
  }
}
