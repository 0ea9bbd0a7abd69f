'use strict';
// What the JavaScript peers (node-ws/server.js, bun/server.js) share: the
// tracker side of replaywire's protocol (docs/protocol.md) over plain
// objects, with no I/O. Each server hands every WebSocket message of a
// connection to `answer` and sends back what it returns; the servers differ
// only in how they accept connections and write replies, which is what the
// benchmark compares. Sessions live in a process-wide map, so a
// reconnecting tracker resumes.

const MAX_EVENTS_PER_SESSION = 20000; // replaywire's default
const MAX_EVENTS_PER_BATCH = 10000;
const MAX_SESSIONS_PER_CONNECTION = 16;
const MAX_SEQ_WINDOW = 4096;
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024 + 256 * 1024;

/** The newest `capacity` events of a session, and the index of the next. */
class Ring {
  constructor(capacity) {
    this.items = new Array(capacity);
    this.capacity = capacity;
    this.nextIndex = 0; // events ever appended
  }

  push(event) {
    this.items[this.nextIndex % this.capacity] = event;
    this.nextIndex += 1;
  }
}

/** Which batch seqs were accepted: a watermark plus the few above it. */
class Seqs {
  constructor() {
    this.next = 0;
    this.above = new Set();
  }

  seen(seq) {
    return seq < this.next || this.above.has(seq);
  }

  add(seq) {
    if (seq === this.next) {
      this.next += 1;
      while (this.above.delete(this.next)) this.next += 1;
    } else if (seq > this.next) {
      this.above.add(seq);
    }
  }
}

class Session {
  constructor(id) {
    this.id = id;
    this.idJson = JSON.stringify(id);
    this.events = new Ring(MAX_EVENTS_PER_SESSION);
    this.seqs = new Seqs();
  }
}

const sessions = new Map(); // live sessions by id

class Refused extends Error {
  constructor(code, message, seq) {
    super(message);
    this.code = code;
    this.seq = seq;
  }
}

function errorFrame(code, message, seq) {
  const data = { code, message };
  if (seq !== undefined && seq !== null) data.seq = seq;
  return JSON.stringify({ type: 'error', data });
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The session a message names, which must be started on this connection. */
function sessionOf(own, sessionId, seq) {
  if (sessionId === undefined) {
    if (own.size !== 1) {
      throw new Refused('unknown_session', 'sessionId is required when the connection has no or several sessions', seq);
    }
    return own.values().next().value;
  }
  const session = own.get(sessionId);
  if (session === undefined) {
    throw new Refused('unknown_session', `session ${JSON.stringify(sessionId)} was not started on this connection`, seq);
  }
  return session;
}

function start(own, data) {
  const id = data.sessionId;
  if (typeof id !== 'string' || id.length < 1 || id.length > 128) {
    throw new Refused('invalid_message', 'sessionId must be a string of 1-128 characters');
  }
  if (!own.has(id) && own.size >= MAX_SESSIONS_PER_CONNECTION) {
    throw new Refused('session_limit', `at most ${MAX_SESSIONS_PER_CONNECTION} sessions per connection`);
  }
  let session = sessions.get(id);
  if (session === undefined) {
    session = new Session(id);
    sessions.set(id, session);
  }
  own.set(id, session);
  return JSON.stringify({
    type: 'session_started',
    data: { sessionId: id, nextSeq: session.seqs.next, nextIndex: session.events.nextIndex },
  });
}

function batch(own, data) {
  let seq = data.seq;
  if (seq !== undefined && !(Number.isInteger(seq) && seq >= 0)) {
    throw new Refused('invalid_message', 'seq must be an integer >= 0');
  }
  const sessionId = data.sessionId;
  if (sessionId !== undefined && typeof sessionId !== 'string') {
    throw new Refused('invalid_message', 'sessionId must be a string', seq);
  }
  const events = data.events;
  if (!Array.isArray(events)) throw new Refused('invalid_message', 'events must be an array', seq);
  if (events.length > MAX_EVENTS_PER_BATCH) {
    throw new Refused('payload_too_large', `more than ${MAX_EVENTS_PER_BATCH} events in one batch`, seq);
  }
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    if (!isObject(event)) throw new Refused('invalid_event', `event ${i} of the batch is not an object`, seq);
    if (!Number.isInteger(event.type)) {
      throw new Refused('invalid_event', `event ${i} of the batch has no integer 'type'`, seq);
    }
    if (typeof event.timestamp !== 'number') {
      throw new Refused('invalid_event', `event ${i} of the batch has no numeric 'timestamp'`, seq);
    }
  }
  const session = sessionOf(own, sessionId, seq);
  if (seq === undefined) seq = session.seqs.next;
  if (!session.seqs.seen(seq)) {
    if (seq >= session.seqs.next + MAX_SEQ_WINDOW) {
      throw new Refused('seq_out_of_window', `seq ${seq} is more than ${MAX_SEQ_WINDOW} ahead of ${session.seqs.next}`, seq);
    }
    for (let i = 0; i < events.length; i++) session.events.push(events[i]);
    session.seqs.add(seq);
  }
  return `{"type":"ack","data":{"sessionId":${session.idJson},"seq":${seq}}}`;
}

function end(own, data) {
  const session = sessionOf(own, data.sessionId, undefined);
  own.delete(session.id);
  sessions.delete(session.id);
  return JSON.stringify({ type: 'session_ended', data: { sessionId: session.id } });
}

/** The answer to one message: an ack, another reply or an error. */
function answer(own, raw, isBinary) {
  let seq;
  try {
    if (isBinary) throw new Refused('invalid_message', 'this server takes no compressed binary messages');
    let message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      throw new Refused('invalid_message', `not JSON: ${err.message}`);
    }
    if (!isObject(message) || !isObject(message.data) || typeof message.type !== 'string') {
      throw new Refused('invalid_message', 'expected {"type": string, "data": object}');
    }
    const data = message.data;
    if (Number.isInteger(data.seq)) seq = data.seq;
    switch (message.type) {
      case 'events_batch':
        return batch(own, data);
      case 'session_start':
        return start(own, data);
      case 'session_end':
        return end(own, data);
      default:
        throw new Refused('unknown_message_type', `unknown message type ${JSON.stringify(message.type)}`);
    }
  } catch (err) {
    if (!(err instanceof Refused)) throw err;
    return errorFrame(err.code, err.message, err.seq !== undefined ? err.seq : seq);
  }
}

/**
 * The peers' command line: `--port PORT [--host HOST]` serves until
 * SIGTERM/SIGINT, `--version` prints `versions()` as JSON.
 */
function main(argv, { runtime, versions, serve }) {
  const options = { port: 0, host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--version') {
      process.stdout.write(JSON.stringify(versions()) + '\n');
      return;
    } else if (arg === '--port') {
      options.port = Number(argv[++i]);
    } else if (arg === '--host') {
      options.host = argv[++i];
    } else {
      process.stderr.write(`usage: ${runtime} server.js --port PORT [--host HOST] | --version\n`);
      process.exitCode = 2;
      return;
    }
  }
  serve(options.port, options.host);
  // Nothing is kept that outlives the process: stop at once.
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

module.exports = { answer, main, MAX_MESSAGE_BYTES };
