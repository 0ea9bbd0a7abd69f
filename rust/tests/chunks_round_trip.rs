//! Stored chunks: a batch payload splits back into its events, and joined
//! chunks equal one chunk of all their events.

mod rrweb;

use _core::protocol::{join_events, split_events, NotAnArray};
use rrweb::{batch, event, mouse_move};

#[test]
fn payload_splits_into_the_original_events() {
    let events: Vec<String> = (0..20)
        .map(|i| {
            if i % 3 == 0 {
                event(2, i, 500)
            } else {
                mouse_move(i)
            }
        })
        .collect();
    let payload = batch(&events).payload();
    let parts: Vec<&str> = split_events(&payload)
        .unwrap()
        .iter()
        .map(|r| r.get())
        .collect();
    assert_eq!(parts, events);
}

#[test]
fn joined_chunks_are_one_chunk_of_all_events() {
    let events: Vec<String> = (0..9).map(mouse_move).collect();
    let chunks = [
        batch(&events[..4]).payload(),
        batch(&[]).payload(),
        batch(&events[4..5]).payload(),
        batch(&events[5..]).payload(),
    ];
    let joined = join_events(&chunks).unwrap();
    assert_eq!(joined, batch(&events).payload());
    let parts: Vec<&str> = split_events(&joined)
        .unwrap()
        .iter()
        .map(|r| r.get())
        .collect();
    assert_eq!(parts, events);
}

#[test]
fn split_and_join_reject_what_is_not_an_array() {
    assert!(split_events(br#"{"type":3}"#).is_err());
    assert!(split_events(b"[1,2").is_err());
    assert!(split_events(b"[1] [2]").is_err());
    assert_eq!(
        join_events(&[&b"[1]"[..], b"1,2"]),
        Err(NotAnArray { index: 1 })
    );
}
