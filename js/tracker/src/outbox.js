/**
 * The batches sent but not yet acknowledged, numbered by seq.
 *
 * The server stores a seq at most once and tells, on `session_start`, the
 * lowest seq it has not accepted (`nextSeq`), so the tracker keeps every
 * unacked batch and, after a reconnect, drops those below `nextSeq` and
 * resends the rest.
 *
 * A batch holds its events as serialised JSON parts (`parts`, joined into
 * the message body only when sent) with their rrweb types (`types`), so a
 * single event the server refused can be taken out and the rest resent.
 * A part may hold several events already joined by commas (what was saved
 * over a navigation comes back so): its type is then unknown (`null`).
 *
 * Memory: `bytes` counts every batch; `incrementalBytes` leaves out the
 * batches that carry a full snapshot (`keyframe`). The owner bounds the
 * incremental bytes (`hasRoom`) and never drops a full snapshot for that
 * budget: it takes at most one at a time instead (see snapshots.js), so
 * what is held is the budget plus one snapshot.
 *
 * Seqs stay contiguous on purpose. A batch that cannot be delivered (refused
 * for good by the server, or too big to carry over a page navigation) keeps
 * its seq and has its events removed: a missing seq would hold the server's
 * `nextSeq` back for the rest of the session.
 */
export const EMPTY_BODY = "[]";

/** rrweb's event type of a full snapshot. */
export const FULL_SNAPSHOT = 2;

/** The length of `body()` without building it. */
const partsBytes = (parts) => (parts.length === 0 ? 2 : parts.reduce((sum, p) => sum + p.length + 1, 1));

export class Outbox {
  /** @param {{maxBytes: number, nextSeq?: number}} options */
  constructor({ maxBytes, nextSeq = 0 }) {
    this.maxBytes = maxBytes;
    this.nextSeq = nextSeq;
    /**
     * In seq order.
     * @type {{seq: number, parts: string[], types: (number|null)[], bytes: number,
     *   keyframe: boolean, sent: boolean, refusals: number}[]}
     */
    this.batches = [];
    this.bytes = 0;
    this.keyframeBytes = 0;
  }

  get incrementalBytes() {
    return this.bytes - this.keyframeBytes;
  }

  /** Room for `bytes` more of incremental events? */
  hasRoom(bytes) {
    return this.incrementalBytes + bytes <= this.maxBytes;
  }

  /** Number a new batch and keep it until acked. */
  push({ parts, types }) {
    const batch = {
      seq: this.nextSeq++,
      parts,
      types,
      bytes: partsBytes(parts),
      keyframe: types.includes(FULL_SNAPSHOT),
      sent: false,
      refusals: 0,
    };
    this.batches.push(batch);
    this.count(batch, 1);
    return batch;
  }

  count(batch, sign) {
    this.bytes += sign * batch.bytes;
    if (batch.keyframe) this.keyframeBytes += sign * batch.bytes;
  }

  get(seq) {
    return this.batches.find((b) => b.seq === seq);
  }

  /** @returns {number} bytes freed */
  ack(seq) {
    const i = this.batches.findIndex((b) => b.seq === seq);
    if (i < 0) return 0;
    const [batch] = this.batches.splice(i, 1);
    this.count(batch, -1);
    return batch.bytes;
  }

  /**
   * Keep only the events `keep(part, type, index)` says yes to (none when
   * `keep` is omitted); the seq stays (see the module comment).
   * @returns {{part: string, type: number|null}[]} what was taken out
   */
  remove(seq, keep = () => false) {
    const batch = this.get(seq);
    if (!batch) return [];
    const removed = [];
    const parts = [];
    const types = [];
    batch.parts.forEach((part, i) => {
      if (keep(part, batch.types[i], i)) {
        parts.push(part);
        types.push(batch.types[i]);
      } else removed.push({ part, type: batch.types[i] });
    });
    this.count(batch, -1);
    batch.parts = parts;
    batch.types = types;
    batch.bytes = partsBytes(parts);
    batch.keyframe = types.includes(FULL_SNAPSHOT);
    this.count(batch, 1);
    return removed;
  }

  /** Keep the seq, drop the events (see the module comment). */
  empty(seq) {
    return this.remove(seq);
  }

  /**
   * The server accepted every seq below `serverNextSeq`: forget those and
   * send the rest again. A server ahead of our counter (our state was lost
   * but the session id kept) moves the counter on, so new batches are not
   * taken for duplicates.
   */
  resume(serverNextSeq) {
    for (const b of this.batches) if (b.seq < serverNextSeq) this.count(b, -1);
    this.batches = this.batches.filter((b) => b.seq >= serverNextSeq);
    if (this.nextSeq < serverNextSeq) this.nextSeq = serverNextSeq;
    this.markUnsent();
  }

  markUnsent(fromSeq = -Infinity) {
    for (const b of this.batches) if (b.seq >= fromSeq) b.sent = false;
  }

  unsent() {
    return this.batches.filter((b) => !b.sent);
  }

  /** The unacked batch carrying a full snapshot, if any. */
  keyframe() {
    return this.batches.find((b) => b.keyframe);
  }

  get length() {
    return this.batches.length;
  }

  /**
   * A JSON snapshot for sessionStorage of at most about `budget` characters:
   * the oldest batches first; the newest that do not fit travel empty.
   */
  serialize(budget) {
    let used = 0;
    const batches = this.batches.map((b) => {
      used += b.bytes;
      const fits = used <= budget && b.parts.length > 0;
      return { seq: b.seq, body: fits ? body(b) : EMPTY_BODY, count: fits ? b.parts.length : 0 };
    });
    return { nextSeq: this.nextSeq, batches };
  }

  /** The outbox saved by `serialize`, every batch to be sent again. */
  static restore(saved, maxBytes) {
    const outbox = new Outbox({ maxBytes });
    for (const b of saved.batches) {
      const inner = b.body.slice(1, -1);
      outbox.nextSeq = b.seq;
      outbox.push({ parts: inner ? [inner] : [], types: inner ? [null] : [] });
    }
    outbox.nextSeq = saved.nextSeq;
    return outbox;
  }
}

/** The JSON array text of a batch's events, as it goes on the wire. */
export function body(batch) {
  return batch.parts.length === 0 ? EMPTY_BODY : `[${batch.parts.join(",")}]`;
}
