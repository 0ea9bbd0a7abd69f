/**
 * @replaywire/tracker: `start({server})` records the page with rrweb and
 * streams it to replaywire. See tracker.js for the behaviour and options.
 */
import { record } from "rrweb";
import { DEFAULTS, Tracker, trackerUrl } from "./tracker.js";

/** Start recording into `options.server`; returns the running Tracker. */
export function start(options) {
  return new Tracker({ record, ...options }).start();
}

export { DEFAULTS, Tracker, trackerUrl };
