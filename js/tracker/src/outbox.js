/**
 * The batches sent but not yet acknowledged, numbered by seq.
 *
 * The server stores a seq at most once and tells, on `session_start`, the
 * lowest seq it has not accepted (`nextSeq`), so the tracker keeps every
 * unacked batch and, after a reconnect, drops those below `nextSeq` and
 * resends the rest. Memory is bounded by `maxBytes`: the owner asks
 * `hasRoom` before adding, and refuses events while there is none.
 *
 * Seqs stay contiguous on purpose. A batch that cannot be delivered (refused
 * for good by the server, or too big to carry over a page navigation) keeps
 * its seq and has its events replaced by `[]`: a missing seq would hold the
 * server's `nextSeq` back for the rest of the session.
 */
export const EMPTY_BODY = "[]";

export class Outbox {
  /** @param {{maxBytes: number, nextSeq?: number}} options */
  constructor({ maxBytes, nextSeq = 0 }) {
    this.maxBytes = maxBytes;
    this.nextSeq = nextSeq;
    /** @type {{seq: number, body: string, count: number, sent: boolean}[]} in seq order */
    this.batches = [];
    this.bytes = 0;
  }

  hasRoom(bytes) {
    return this.bytes + bytes <= this.maxBytes;
  }

  /** Number a new batch and keep it until acked. */
  push({ body, count }) {
    const batch = { seq: this.nextSeq++, body, count, sent: false };
    this.batches.push(batch);
    this.bytes += body.length;
    return batch;
  }

  /** @returns {number} bytes freed */
  ack(seq) {
    const i = this.batches.findIndex((b) => b.seq === seq);
    if (i < 0) return 0;
    const [batch] = this.batches.splice(i, 1);
    this.bytes -= batch.body.length;
    return batch.body.length;
  }

  /** Keep the seq, drop the events (see the module comment). */
  empty(seq) {
    const batch = this.batches.find((b) => b.seq === seq);
    if (!batch) return;
    this.bytes -= batch.body.length - EMPTY_BODY.length;
    batch.body = EMPTY_BODY;
    batch.count = 0;
  }

  /**
   * The server accepted every seq below `serverNextSeq`: forget those and
   * send the rest again. A server ahead of our counter (our state was lost
   * but the session id kept) moves the counter on, so new batches are not
   * taken for duplicates.
   */
  resume(serverNextSeq) {
    this.batches = this.batches.filter((b) => b.seq >= serverNextSeq);
    this.bytes = this.batches.reduce((sum, b) => sum + b.body.length, 0);
    if (this.nextSeq < serverNextSeq) this.nextSeq = serverNextSeq;
    this.markUnsent();
  }

  markUnsent(fromSeq = -Infinity) {
    for (const b of this.batches) if (b.seq >= fromSeq) b.sent = false;
  }

  unsent() {
    return this.batches.filter((b) => !b.sent);
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
      used += b.body.length;
      const body = used <= budget ? b.body : EMPTY_BODY;
      return { seq: b.seq, body, count: body === EMPTY_BODY ? 0 : b.count };
    });
    return { nextSeq: this.nextSeq, batches };
  }

  /** The outbox saved by `serialize`, every batch to be sent again. */
  static restore(saved, maxBytes) {
    const outbox = new Outbox({ maxBytes, nextSeq: saved.nextSeq });
    for (const b of saved.batches) {
      outbox.batches.push({ seq: b.seq, body: b.body, count: b.count, sent: false });
      outbox.bytes += b.body.length;
    }
    return outbox;
  }
}
