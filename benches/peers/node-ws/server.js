'use strict';
// A reference ingest server on Node.js and `ws`, speaking the tracker side of
// replaywire's protocol (docs/protocol.md), so the benchmark suite can put
// replaywire next to what people would otherwise write. It does the work
// replaywire does in its memory mode, the way an idiomatic Node server would
// (the protocol handling, shared with bun/server.js, is ../protocol.js):
//
// - `GET /ws?type=tracker` upgrades (no credentials: replaywire's development
//   mode); any other path or type is answered 400/404;
// - every text message is JSON.parse'd; `session_start` answers
//   `session_started` with `nextSeq` and `nextIndex`, `session_end` answers
//   `session_ended`;
// - `events_batch`: every event must be an object with an integer `type` and
//   a numeric `timestamp`, or the batch is refused whole (`invalid_event`);
//   accepted events go into the session's ring buffer (bounded by count, like
//   MAX_EVENTS_PER_SESSION), and the batch is acked with
//   `{"type":"ack","data":{"sessionId":…,"seq":…}}`. A seq already accepted is
//   acked again and not stored twice; one too far ahead is refused.
// - Acks answering the messages of one socket read leave in one write (the
//   socket is corked until the end of the tick), as replaywire writes all the
//   answers of one read at once.
//
// Sessions live in a process-wide map, so a reconnecting tracker resumes.
// What it leaves out: storage, viewers, compressed binary messages,
// credentials and rate limits (none of which the ingest benchmark uses).
//
//     node server.js --port 9000          # serves until SIGTERM/SIGINT
//     node server.js --version            # versions, as JSON

const http = require('http');
const { WebSocketServer } = require('ws');

const { answer, main, MAX_MESSAGE_BYTES } = require('../protocol.js');

function serve(port, host) {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    clientTracking: false,
  });
  const server = http.createServer((req, res) => {
    res.writeHead(426, { 'Content-Type': 'application/json' });
    res.end('{"error":{"code":"upgrade_required","message":"this server speaks WebSocket on /ws"}}');
  });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname !== '/ws' || url.searchParams.get('type') !== 'tracker') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.setNoDelay(true);
    wss.handleUpgrade(req, socket, head, (ws) => track(ws, socket));
  });
  server.listen(port, host);
  return server;
}

/** One tracker connection: the sessions it started, and its replies. */
function track(ws, socket) {
  const own = new Map();
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  ws.on('message', (raw, isBinary) => {
    // ws emits every message of one socket read in the same tick: hold the
    // replies until the tick ends, then write them at once.
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    ws.send(answer(own, raw, isBinary));
  });
  ws.on('error', () => ws.terminate());
}

main(process.argv.slice(2), {
  runtime: 'node',
  versions: () => ({ node: process.versions.node, ws: require('ws/package.json').version }),
  serve,
});
