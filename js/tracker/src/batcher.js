/**
 * Collects serialised rrweb events into batches, flushed by count, by size
 * or (by the caller's timer) by age. Events are serialised once, when they
 * are recorded, and from then on only joined: the batch body is the JSON
 * array text that goes on the wire and into sessionStorage unchanged.
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
    this.events = [];
    this.bytes = 0;
  }

  /**
   * @param {string} json one serialised event
   * @returns {boolean} true when the batch is full and should be flushed now
   */
  add(json) {
    this.events.push(json);
    this.bytes += json.length + 1;
    return this.events.length >= this.maxEvents || this.bytes >= this.maxBytes;
  }

  get size() {
    return this.events.length;
  }

  /** @returns {{body: string, count: number, bytes: number} | null} the pending batch, emptied */
  take() {
    if (this.events.length === 0) return null;
    const batch = { body: `[${this.events.join(",")}]`, count: this.events.length, bytes: this.bytes + 1 };
    this.events = [];
    this.bytes = 0;
    return batch;
  }
}
