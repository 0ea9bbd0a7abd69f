//! Per-session limits trim the oldest events, keep the latest keyframe (the
//! meta event before the latest full snapshot) while it fits, and cut into
//! it only when the span from it alone is over the limit.

mod rrweb;

use _core::buffer::{BufferLimits, SessionBuffers};
use rrweb::{batch, event, uniform, FULL_SNAPSHOT, INCREMENTAL, META};

fn buffers(max_events: usize, max_bytes: usize) -> SessionBuffers {
    let mut b = SessionBuffers::new(BufferLimits {
        max_events_per_session: max_events,
        max_session_bytes: max_bytes,
        max_total_bytes: usize::MAX,
    });
    b.open("s", 0);
    b
}

fn keyframe(b: &SessionBuffers) -> Option<u64> {
    b.session("s").unwrap().keyframe_index()
}

fn first(b: &SessionBuffers) -> u64 {
    b.session("s").unwrap().first_index()
}

#[test]
fn keyframe_is_the_meta_before_the_latest_full_snapshot() {
    let mut b = buffers(1000, usize::MAX);
    assert_eq!(keyframe(&b), None);
    b.append("s", &uniform(3, INCREMENTAL, 60));
    assert_eq!(keyframe(&b), None);
    // A meta alone is no keyframe.
    b.append("s", &batch(&[event(META, 1, 60)]));
    assert_eq!(keyframe(&b), None);
    // The snapshot arrives in the next batch: the meta before it counts.
    b.append(
        "s",
        &batch(&[event(INCREMENTAL, 2, 60), event(FULL_SNAPSHOT, 3, 60)]),
    );
    assert_eq!(keyframe(&b), Some(3));
    // A newer meta without a snapshot does not move it; the next snapshot does.
    b.append(
        "s",
        &batch(&[event(META, 4, 60), event(INCREMENTAL, 5, 60)]),
    );
    assert_eq!(keyframe(&b), Some(3));
    b.append(
        "s",
        &batch(&[event(FULL_SNAPSHOT, 6, 60), event(META, 7, 60)]),
    );
    assert_eq!(
        keyframe(&b),
        Some(6),
        "the meta before the snapshot, not after"
    );
    // Meta and snapshot in one batch.
    b.append(
        "s",
        &batch(&[event(META, 8, 60), event(FULL_SNAPSHOT, 9, 60)]),
    );
    assert_eq!(keyframe(&b), Some(10));
}

#[test]
fn a_snapshot_without_a_meta_is_its_own_keyframe() {
    let mut b = buffers(1000, usize::MAX);
    b.append(
        "s",
        &batch(&[event(INCREMENTAL, 1, 60), event(FULL_SNAPSHOT, 2, 60)]),
    );
    assert_eq!(keyframe(&b), Some(1));
}

#[test]
fn trimming_drops_older_events_but_keeps_the_keyframe_span() {
    let mut b = buffers(10, usize::MAX);
    b.append("s", &uniform(6, INCREMENTAL, 60)); // 0..6
    b.append(
        "s",
        &batch(&[event(META, 1, 60), event(FULL_SNAPSHOT, 2, 60)]),
    ); // 6, 7
    b.append("s", &uniform(6, INCREMENTAL, 60)); // 8..14
                                                 // 14 events, limit 10: the 4 oldest go, the span 6.. (8 events) stays.
    assert_eq!(first(&b), 4);
    assert_eq!(keyframe(&b), Some(6));
    b.append("s", &uniform(2, INCREMENTAL, 60)); // 14, 15: span 6..16 is exactly 10
    assert_eq!((first(&b), keyframe(&b)), (6, Some(6)));
}

#[test]
fn limits_win_over_the_keyframe() {
    let mut b = buffers(10, usize::MAX);
    b.append(
        "s",
        &batch(&[event(META, 1, 60), event(FULL_SNAPSHOT, 2, 60)]),
    ); // 0, 1
    b.append("s", &uniform(8, INCREMENTAL, 60)); // 2..10
    assert_eq!((first(&b), keyframe(&b)), (0, Some(0)));
    // One more: the meta goes, the snapshot is still there.
    b.append("s", &uniform(1, INCREMENTAL, 60));
    assert_eq!((first(&b), keyframe(&b)), (1, Some(1)));
    // And then the snapshot.
    b.append("s", &uniform(1, INCREMENTAL, 60));
    assert_eq!((first(&b), keyframe(&b)), (2, None));
    assert_eq!(b.session("s").unwrap().len(), 10);
}

#[test]
fn byte_limit_trims_oldest_first() {
    let mut b = buffers(1000, 1000);
    let state = |b: &SessionBuffers| {
        let ring = b.session("s").unwrap();
        (ring.first_index(), ring.keyframe_index(), ring.nbytes())
    };
    b.append("s", &uniform(5, INCREMENTAL, 100)); // 0..5
    b.append(
        "s",
        &batch(&[event(META, 1, 100), event(FULL_SNAPSHOT, 2, 300)]),
    ); // 5, 6
    b.append("s", &uniform(2, INCREMENTAL, 100)); // 7, 8: 1100 bytes
    assert_eq!(state(&b), (1, Some(5), 1000));
    b.append("s", &uniform(3, INCREMENTAL, 100)); // 9..12: the span 5.. is 900
    assert_eq!(state(&b), (4, Some(5), 1000));
    b.append("s", &uniform(2, INCREMENTAL, 100)); // 12, 13: the span 5.. is 1100
    assert_eq!(state(&b), (6, Some(6), 1000));
}

#[test]
fn a_batch_over_the_limits_keeps_its_newest_events() {
    let mut b = buffers(4, usize::MAX);
    let first_index = b.append("s", &uniform(10, INCREMENTAL, 60)).unwrap();
    assert_eq!(first_index, 0);
    let ring = b.session("s").unwrap();
    assert_eq!(
        (ring.first_index(), ring.next_index(), ring.len()),
        (6, 10, 4)
    );
    assert_eq!(b.stats().trimmed_events, 6);

    let mut b = buffers(1000, 250);
    b.append("s", &uniform(10, INCREMENTAL, 100));
    let ring = b.session("s").unwrap();
    assert_eq!((ring.first_index(), ring.len(), ring.nbytes()), (8, 2, 200));

    // Even a single event over the byte limit is dropped: limits win.
    let mut b = buffers(1000, 50);
    assert_eq!(b.append("s", &uniform(1, INCREMENTAL, 60)), Some(0));
    let ring = b.session("s").unwrap();
    assert_eq!(
        (ring.first_index(), ring.next_index(), ring.len()),
        (1, 1, 0)
    );
}
