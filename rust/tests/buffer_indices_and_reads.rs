//! Event indices (stable, resumable after a restart) and reads by index
//! with event and byte caps.

mod rrweb;

use _core::buffer::{BufferLimits, SessionBuffers};
use rrweb::{event, uniform, INCREMENTAL};

fn buffers() -> SessionBuffers {
    SessionBuffers::new(BufferLimits::default())
}

#[test]
fn open_is_idempotent_and_close_forgets() {
    let mut b = buffers();
    assert!(b.open("s", 0));
    assert!(!b.open("s", 50), "a second open changes nothing");
    assert_eq!(b.session("s").unwrap().next_index(), 0);
    assert_eq!(
        (b.len(), b.contains("s"), b.contains("t")),
        (1, true, false)
    );
    assert!(b.close("s"));
    assert!(!b.close("s"));
    assert!(b.is_empty());
}

#[test]
fn unknown_sessions_are_none() {
    let mut b = buffers();
    assert_eq!(b.append("nope", &uniform(1, INCREMENTAL, 60)), None);
    assert!(b.session("nope").is_none());
    assert!(b.read("nope", 0, 10, 10).is_none());
    assert_eq!(b.stats().events, 0);
}

#[test]
fn indices_continue_from_next_index() {
    let mut b = buffers();
    b.open("s", 100);
    let ring = b.session("s").unwrap();
    assert_eq!((ring.first_index(), ring.next_index()), (100, 100));
    assert_eq!(b.append("s", &uniform(3, INCREMENTAL, 60)), Some(100));
    assert_eq!(b.append("s", &uniform(0, INCREMENTAL, 60)), Some(103));
    assert_eq!(b.append("s", &uniform(2, INCREMENTAL, 60)), Some(103));
    let ring = b.session("s").unwrap();
    assert_eq!(
        (ring.first_index(), ring.next_index(), ring.len()),
        (100, 105, 5)
    );
}

#[test]
fn reads_start_at_the_oldest_event_kept() {
    let mut b = SessionBuffers::new(BufferLimits {
        max_events_per_session: 5,
        ..BufferLimits::default()
    });
    b.open("s", 0);
    let events: Vec<String> = (0..8).map(|i| event(INCREMENTAL, i, 60)).collect();
    b.append("s", &rrweb::batch(&events));
    let slice = b.read("s", 0, 100, usize::MAX).unwrap();
    assert_eq!((slice.first_index(), slice.count()), (3, 5));
    assert_eq!(
        slice.json(),
        format!("[{}]", events[3..].join(",")).into_bytes()
    );
    let slice = b.read("s", 6, 100, usize::MAX).unwrap();
    assert_eq!(
        (slice.first_index(), slice.count(), slice.nbytes()),
        (6, 2, 120)
    );
}

#[test]
fn reads_past_the_end_are_empty_at_next_index() {
    let mut b = buffers();
    b.open("s", 0);
    b.append("s", &uniform(3, INCREMENTAL, 60));
    for from in [3, 4, 1000] {
        let slice = b.read("s", from, 10, 1000).unwrap();
        assert_eq!(
            (slice.first_index(), slice.count(), slice.nbytes()),
            (3, 0, 0)
        );
        assert_eq!(slice.json(), b"[]");
    }
}

#[test]
fn reads_stop_before_a_cap_is_passed_but_return_at_least_one_event() {
    let mut b = buffers();
    b.open("s", 0);
    b.append("s", &uniform(10, INCREMENTAL, 100));
    let count =
        |from, max_events, max_bytes| b.read("s", from, max_events, max_bytes).unwrap().count();
    assert_eq!(count(0, 4, usize::MAX), 4);
    assert_eq!(count(0, 100, 350), 3);
    assert_eq!(count(0, 100, 400), 4);
    assert_eq!(count(0, 2, 350), 2);
    assert_eq!(count(0, 100, 10), 1, "at least one event");
    assert_eq!(count(8, 100, 10_000), 2);
}

#[test]
fn reads_share_bytes_with_the_batch() {
    let mut b = buffers();
    b.open("s", 0);
    let batch = uniform(3, INCREMENTAL, 80);
    b.append("s", &batch);
    let slice = b.read("s", 0, 10, usize::MAX).unwrap();
    for (read, sent) in slice.events().iter().zip(batch.events()) {
        assert_eq!(read.as_ptr(), sent.raw().as_ptr());
    }
}
