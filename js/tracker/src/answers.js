/**
 * What the tracker does with each answer the server can give: every error
 * code of docs/protocol.md ("Errors") and every WebSocket close code.
 *
 * The rule that keeps a tracker from looping: an answer that says "this
 * message will never be accepted" is never treated like a network drop.
 * The message it names (or, for a close, the one most likely to blame) is
 * cut down or emptied, so each such answer makes progress, and reconnects
 * back off without starting over until the server acknowledged something.
 */

/** Hold the batch (or everything) and resend after `retryAfterMs`. */
export const RETRY_LATER = "retry_later";
/** The batch is over a size limit: resend it without the oversized event. */
export const TOO_LARGE = "too_large";
/** The batch is refused for good: resend it empty (its seq must stay). */
export const REFUSED = "refused";
/** The connection's session is gone: start over on a new connection. */
export const RESTART = "restart";
/** Nothing to do but report it (a message this server does not know, ...). */
export const IGNORE = "ignore";

/** @param {{code?: string, seq?: number, retryAfterMs?: number}} data an error frame's data */
export function errorAction(data) {
  if (typeof data.retryAfterMs === "number") return RETRY_LATER; // rate_limited, storage_unavailable
  const hasSeq = typeof data.seq === "number";
  switch (data.code) {
    case "payload_too_large":
      return hasSeq ? TOO_LARGE : IGNORE;
    case "invalid_message":
    case "invalid_compression":
    case "invalid_event":
    case "seq_out_of_window":
      return hasSeq ? REFUSED : IGNORE;
    case "unknown_session":
      return hasSeq ? REFUSED : RESTART;
    // An older server and a newer message (snapshot_missing), or answers
    // meant for viewers: reconnecting would get the same answer.
    case "unknown_message_type":
    case "not_allowed":
    case "session_limit":
    case "viewer_limit":
      return IGNORE;
    // A code this tracker does not know yet: a batch it names is refused
    // (temporary refusals carry retryAfterMs, handled above).
    default:
      return hasSeq ? REFUSED : IGNORE;
  }
}

/** Reconnect after the backoff delay: the network, a restart, a timeout. */
export const RECONNECT = "reconnect";
/** The server refused a message we sent: blame one, then reconnect. */
export const BLAME = "blame";
/** The server refused the connection itself (policy): reconnect, slowly. */
export const POLICY = "policy";
/**
 * A newer connection of the same session took it over (another tab with
 * the same session, docs/protocol.md "Two connections of one session"):
 * stop, for reconnecting would take it back and the two would alternate.
 */
export const TAKEN_OVER = "taken_over";

/** @param {number | undefined} code a WebSocket close code */
export function closeAction(code) {
  switch (code) {
    case 1002: // protocol error
    case 1003: // unsupported data
    case 1007: // invalid payload (not UTF-8)
    case 1009: // message too big
      return BLAME;
    case 1008: // policy violation: a key, an origin or a quota
      return POLICY;
    case 4409: // session taken over by a newer connection
      return TAKEN_OVER;
    default:
      // 1000, 1001 going away, 1005/1006 no close frame, 1011 internal
      // error or heartbeat, 1012 restart, 1013 try again later, ...
      return code >= 4000 && code <= 4999 ? POLICY : RECONNECT;
  }
}
