/**
 * The replay on screen: an rrweb-player (rrweb's Replayer with controls).
 *
 * Live sessions play in rrweb's live mode: events are added as they arrive
 * and played `LIVE_DELAY_MS` behind `clock()`, "now" on the tracker's
 * clock (LiveStream's TrackerClock: measured from the server's time and the
 * session's clock skew, so neither the tracker's nor the viewer's clock
 * needs to be right), which absorbs the tracker's batching and network
 * jitter. The player's timeline controls are hidden in live mode, where
 * the end of the timeline is "now".
 *
 * A live replay can be paused (`pauseLive`): the live player gives way to
 * one with the timeline controls over every event received since the join,
 * at the moment that was on screen, so the viewer can scrub back; events
 * that arrive meanwhile extend its timeline. `jumpToLive` builds the live
 * player again from those events and follows "now" as before.
 *
 * A finished session's replay can carry marks on its timeline (`replay`'s
 * `marks`: the session's recorded errors), as rrweb custom events, which
 * rrweb-player draws on its progress bar and the replay itself ignores.
 *
 * rrweb can only start from a Meta + FullSnapshot pair; events that come
 * before one (a join in the middle of nowhere) are held, at most
 * `MAX_WAITING_EVENTS` of them, until it arrives.
 */
import Player from "rrweb-player";
import "rrweb-player/dist/style.css";
import { MARK_TAG, withMarks } from "./marks.js";

export const LIVE_DELAY_MS = 300;
const MAX_WAITING_EVENTS = 100_000;
const META = 4;
const FULL_SNAPSHOT = 2;
const MARK_COLOURS = { [MARK_TAG]: "#c01c28" };

export class Screen {
  constructor(target, clock = () => Date.now()) {
    this.target = target;
    this.clock = clock;
    this.player = null;
    this.waiting = [];
    this.applied = 0;
    this.events = []; // a live replay's events since its start, for pauseLive
    this.live = false; // the player follows "now"
    this.paused = false; // a live session, paused: the player has controls
  }

  destroy() {
    this.drop();
    this.waiting = [];
    this.events = [];
    this.paused = false;
    this.target.replaceChildren();
  }

  drop() {
    this.player?.getReplayer().destroy();
    this.player?.$destroy();
    this.player = null;
    this.live = false;
  }

  /** Start over (new session or resync) with these events, live. */
  resetLive(events) {
    this.destroy();
    this.addLive(events);
  }

  addLive(events) {
    if (this.player && this.paused) {
      // The player's addEvent: its timeline grows with them.
      for (const event of events) {
        this.events.push(event);
        this.player.addEvent(event);
      }
      this.applied += events.length;
      return;
    }
    if (this.player) {
      // Straight to the Replayer: the player's own addEvent also updates
      // its controller, which live mode does not show.
      const replayer = this.player.getReplayer();
      for (const event of events) {
        this.events.push(event);
        replayer.addEvent(event);
      }
      this.applied += events.length;
      return;
    }
    for (const event of events) this.waiting.push(event); // no push(...): a join may bring 100,000
    const start = startOf(this.waiting);
    if (start < 0) {
      if (this.waiting.length > MAX_WAITING_EVENTS) this.waiting = this.waiting.slice(-MAX_WAITING_EVENTS);
      return;
    }
    const initial = this.waiting.slice(start);
    this.waiting = [];
    // As rrweb's live mode wants it: start the live clock, then add events;
    // those older than the clock's start are applied at once. (The player
    // needs one event to be built with; it is added again to be applied.)
    // useVirtualDom off: rrweb applies events older than the live clock to
    // its virtual DOM and only copies that to the page when a seek ends,
    // which in live mode never happens.
    this.player = this.make(initial.slice(0, 1), {
      liveMode: true,
      showController: false,
      autoPlay: false,
      useVirtualDom: false,
    });
    this.player.getReplayer().startLive(this.clock() - LIVE_DELAY_MS);
    this.live = true;
    this.events = [];
    this.addLive(initial);
  }

  /** The live moment on screen, in ms from the first event held. */
  liveOffset() {
    if (this.events.length === 0) return 0;
    const first = this.events[0].timestamp;
    const last = this.events[this.events.length - 1].timestamp;
    return Math.max(0, Math.min(this.clock() - LIVE_DELAY_MS, last) - first);
  }

  /** Stop following a live session: the same moment, with the timeline controls. */
  pauseLive() {
    if (!this.live || this.paused) return;
    const at = this.liveOffset();
    const events = this.events;
    this.drop();
    this.target.replaceChildren();
    this.paused = true;
    this.events = events;
    this.player = this.make(events, { liveMode: false, showController: true, autoPlay: false, useVirtualDom: false });
    this.player.goto(at, false);
  }

  /** Follow "now" again after `pauseLive`. */
  jumpToLive() {
    if (!this.paused) return;
    const { events, applied } = this;
    this.destroy();
    this.addLive(events);
    this.applied = applied; // the same events, applied again
  }

  /**
   * A finished session, with the player's controls; `marks`
   * (`{timestamp, title}`, on the events' clock) are drawn on its timeline.
   */
  replay(events, { marks = [] } = {}) {
    this.destroy();
    const start = events.findIndex((e) => e.type === META);
    if (!replayable(events)) throw new Error("the session has no full snapshot to start from");
    const played = withMarks(events.slice(start), marks);
    this.player = this.make(played, { liveMode: false, showController: true, autoPlay: true, tags: MARK_COLOURS });
    this.applied = events.length - start;
  }

  /** Go to `ms` from the replay's start, paused there. */
  seek(ms) {
    this.player?.goto(Math.max(0, ms), false);
  }

  make(events, props) {
    const width = Math.max(320, this.target.clientWidth || 1024);
    return new Player({
      target: this.target,
      props: { events, width, height: Math.round((width * 9) / 16), mouseTail: false, ...props },
    });
  }
}

/** True if a replay can start from these events: a Meta, then a full snapshot. */
export function replayable(events) {
  return startOf(events) >= 0;
}

/** Index of the last Meta event followed by a full snapshot, or -1. One
 * pass from the end: it runs on every live message while events wait. */
function startOf(events) {
  let snapshotAfter = false;
  for (let i = events.length - 1; i >= 0; i--) {
    if (events[i].type === FULL_SNAPSHOT) snapshotAfter = true;
    else if (events[i].type === META && snapshotAfter) return i;
  }
  return -1;
}
