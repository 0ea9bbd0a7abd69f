//! The global byte budget: the least recently appended sessions are trimmed
//! first, events before keyframes go before any keyframe, and the session
//! being appended is trimmed last.

mod rrweb;

use _core::buffer::{BufferLimits, SessionBuffers};
use rrweb::{batch, event, uniform, FULL_SNAPSHOT, INCREMENTAL, META};

fn buffers(max_total_bytes: usize, sessions: &[&str]) -> SessionBuffers {
    let mut b = SessionBuffers::new(BufferLimits {
        max_events_per_session: 1_000_000,
        max_session_bytes: usize::MAX,
        max_total_bytes,
    });
    for s in sessions {
        b.open(s, 0);
    }
    b
}

fn first(b: &SessionBuffers, id: &str) -> u64 {
    b.session(id).unwrap().first_index()
}

/// 5 incremental events, meta, snapshot, 3 incremental: keyframe at 5.
fn with_keyframe() -> Vec<String> {
    let mut events: Vec<String> = (0..5).map(|i| event(INCREMENTAL, i, 100)).collect();
    events.push(event(META, 5, 100));
    events.push(event(FULL_SNAPSHOT, 6, 100));
    events.extend((7..10).map(|i| event(INCREMENTAL, i, 100)));
    events
}

#[test]
fn least_recently_appended_sessions_are_trimmed_first() {
    let mut b = buffers(2500, &["a", "b", "c"]);
    for s in ["a", "b", "c"] {
        b.append(s, &uniform(10, INCREMENTAL, 100));
    }
    assert_eq!((first(&b, "a"), first(&b, "b"), first(&b, "c")), (5, 0, 0));
    assert_eq!(b.stats().bytes, 2500);
    // Appending to `a` makes `b` the least recently appended.
    b.append("a", &uniform(2, INCREMENTAL, 100));
    assert_eq!((first(&b, "a"), first(&b, "b"), first(&b, "c")), (5, 2, 0));
    // A large append empties `b`, then cuts into `a`, never `c` first.
    b.append("c", &uniform(9, INCREMENTAL, 100));
    assert_eq!(b.session("b").unwrap().len(), 0);
    assert_eq!((first(&b, "a"), first(&b, "c")), (6, 0));
    assert_eq!(b.stats().bytes, 2500);
    assert!(b.contains("b"), "trimming never closes a session");
}

#[test]
fn events_before_keyframes_go_before_any_keyframe() {
    let mut b = buffers(2200, &["a", "b", "c"]);
    b.append("a", &batch(&with_keyframe())); // keyframe at 5
    b.append("b", &uniform(10, INCREMENTAL, 100)); // no keyframe: all spare
    b.append("c", &uniform(10, INCREMENTAL, 100)); // 3000 bytes: 800 over
                                                   // `a` loses only its 5 events before the keyframe, then `b` its 3 oldest.
    assert_eq!(first(&b, "a"), 5);
    assert_eq!(b.session("a").unwrap().keyframe_index(), Some(5));
    assert_eq!(first(&b, "b"), 3);
    assert_eq!(first(&b, "c"), 0);
}

#[test]
fn the_appended_sessions_spare_events_go_before_other_keyframes() {
    let mut b = buffers(1500, &["a", "c"]);
    b.append("a", &batch(&with_keyframe()));
    b.append("c", &batch(&with_keyframe())); // 2000 bytes: 500 over
                                             // `a`'s spare 500 bytes cover it.
    assert_eq!((first(&b, "a"), first(&b, "c")), (5, 0));
    b.append("c", &uniform(3, INCREMENTAL, 100)); // 300 over, `a` has no spare
    assert_eq!((first(&b, "a"), first(&b, "c")), (5, 3));
    assert_eq!(b.session("a").unwrap().keyframe_index(), Some(5));
}

#[test]
fn keyframes_are_cut_least_recently_appended_first_when_nothing_else_is_left() {
    let mut b = buffers(1000, &["a", "c"]);
    b.append(
        "a",
        &batch(&[event(META, 0, 100), event(FULL_SNAPSHOT, 1, 400)]),
    );
    b.append(
        "c",
        &batch(&[event(META, 0, 100), event(FULL_SNAPSHOT, 1, 400)]),
    );
    assert_eq!(b.stats().bytes, 1000);
    b.append("c", &uniform(1, INCREMENTAL, 100));
    // Only keyframes left: `a` (older) loses its meta first.
    assert_eq!(first(&b, "a"), 1);
    assert_eq!(b.session("a").unwrap().keyframe_index(), Some(1));
    assert_eq!(first(&b, "c"), 0);
    b.append("c", &uniform(1, INCREMENTAL, 100));
    assert_eq!(b.session("a").unwrap().len(), 0);
    assert_eq!(b.session("a").unwrap().keyframe_index(), None);
    assert_eq!(first(&b, "c"), 0);
    assert_eq!(b.stats().bytes, 700);
}

#[test]
fn the_appended_session_is_trimmed_last_and_partially() {
    let mut b = buffers(1000, &["a"]);
    b.append("a", &uniform(25, INCREMENTAL, 100));
    let ring = b.session("a").unwrap();
    assert_eq!(
        (ring.first_index(), ring.next_index(), ring.nbytes()),
        (15, 25, 1000)
    );
    assert_eq!(b.stats().trimmed_events, 15);
}

#[test]
fn closing_a_session_frees_its_share() {
    let mut b = buffers(1000, &["a", "b"]);
    b.append("a", &uniform(5, INCREMENTAL, 100));
    b.append("b", &uniform(5, INCREMENTAL, 100));
    assert!(b.close("a"));
    assert_eq!(b.stats().bytes, 500);
    b.append("b", &uniform(5, INCREMENTAL, 100));
    assert_eq!(first(&b, "b"), 0, "the budget has room again");
    let stats = b.stats();
    assert_eq!(
        (
            stats.sessions,
            stats.events,
            stats.bytes,
            stats.trimmed_events
        ),
        (1, 10, 1000, 0)
    );
}
