/**
 * The tracker's state in the tab's sessionStorage, so a session goes on
 * across page navigations within the tab (same origin): its id, its seq
 * counter and the batches not yet acknowledged when the page went away.
 *
 * sessionStorage holds a few MiB per origin, shared with the page itself,
 * so what is saved is bounded by `budget` (see `Outbox.serialize`); a write
 * that fails anyway (quota, storage disabled) is dropped: the session then
 * goes on without the unsaved batches rather than breaking the page.
 */
const VERSION = 1;

export function load(key) {
  try {
    const text = globalThis.sessionStorage?.getItem(key);
    if (!text) return null;
    const saved = JSON.parse(text);
    return saved && saved.v === VERSION ? saved : null;
  } catch {
    return null;
  }
}

export function save(key, state) {
  try {
    globalThis.sessionStorage?.setItem(key, JSON.stringify({ v: VERSION, ...state }));
    return true;
  } catch {
    return false;
  }
}

export function clear(key) {
  try {
    globalThis.sessionStorage?.removeItem(key);
  } catch {
    /* storage disabled: nothing to clear */
  }
}
