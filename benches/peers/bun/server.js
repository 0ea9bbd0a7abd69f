// A reference ingest server on Bun (`Bun.serve` with its built-in WebSocket,
// uWebSockets underneath), speaking the tracker side of replaywire's protocol
// (docs/protocol.md), so the benchmark suite can put replaywire next to what
// people would otherwise write. It does the same work as node-ws/server.js
// (the protocol handling both share is ../protocol.js), the way an idiomatic
// Bun server would:
//
// - `GET /ws?type=tracker` upgrades (no credentials: replaywire's development
//   mode); any other path or type is answered 400, plain HTTP 426;
// - every text message is JSON.parse'd; `session_start` answers
//   `session_started` with `nextSeq` and `nextIndex`, `session_end` answers
//   `session_ended`;
// - `events_batch`: every event must be an object with an integer `type` and
//   a numeric `timestamp`, or the batch is refused whole (`invalid_event`);
//   accepted events go into the session's ring buffer (bounded by count, like
//   MAX_EVENTS_PER_SESSION), and the batch is acked with
//   `{"type":"ack","data":{"sessionId":…,"seq":…}}`. A seq already accepted is
//   acked again and not stored twice; one too far ahead is refused.
// - Acks answering the messages of one socket read leave in one write:
//   uWebSockets corks the socket for the whole data callback, which hands out
//   every message of that read, so nothing needs doing here.
//
// Sessions live in a process-wide map, so a reconnecting tracker resumes.
// What it leaves out: storage, viewers, compressed binary messages,
// credentials and rate limits (none of which the ingest benchmark uses).
//
//     bun server.js --port 9000          # serves until SIGTERM/SIGINT
//     bun server.js --version            # versions, as JSON

const { answer, main, MAX_MESSAGE_BYTES } = require('../protocol.js');

function serve(port, hostname) {
  return Bun.serve({
    port,
    hostname,
    fetch(req, server) {
      const url = new URL(req.url);
      if (req.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
        return new Response('{"error":{"code":"upgrade_required","message":"this server speaks WebSocket on /ws"}}', {
          status: 426,
          headers: { 'Content-Type': 'application/json' },
        });
      }
      if (url.pathname !== '/ws' || url.searchParams.get('type') !== 'tracker') {
        return new Response(null, { status: 400 });
      }
      // The connection's own sessions live in its data, one Map per socket.
      if (server.upgrade(req, { data: { own: new Map() } })) return undefined;
      return new Response(null, { status: 400 });
    },
    websocket: {
      maxPayloadLength: MAX_MESSAGE_BYTES,
      idleTimeout: 0, // replaywire does not time out or ping trackers either
      sendPings: false,
      perMessageDeflate: false,
      message(ws, raw) {
        ws.send(answer(ws.data.own, raw, typeof raw !== 'string'));
      },
    },
  });
}

main(process.argv.slice(2), {
  runtime: 'bun',
  versions: () => ({ bun: Bun.version, revision: Bun.revision.slice(0, 12) }),
  serve,
});
