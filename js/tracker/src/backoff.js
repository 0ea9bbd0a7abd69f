/**
 * Reconnect delays: exponential backoff with "equal jitter".
 *
 * Why jitter: after a server restart every tracker of every open tab
 * reconnects at once; spreading them out keeps the restarted server from
 * being hit by one synchronised wave. Why never below half the cap: a
 * tracker that just failed should not retry almost at once by chance.
 */

/**
 * @param {number} attempt 0 for the first retry after a failure.
 * @param {{baseMs?: number, maxMs?: number, random?: () => number}} [options]
 * @returns {number} milliseconds to wait before attempt number `attempt`.
 */
export function backoffDelay(attempt, { baseMs = 500, maxMs = 30_000, random = Math.random } = {}) {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}
