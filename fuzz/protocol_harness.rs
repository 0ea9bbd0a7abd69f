//! The property behind the `protocol_decode` fuzz target, shared with the
//! `protocol_fuzz_seeds` cargo test so that committed seeds are replayed on
//! every `cargo test`.
//!
//! Input layout: byte 0 picks the limits (bit 7: tight, 4 events of at most
//! 64 bytes, so the `payload_too_large` paths are reachable with small
//! inputs); the rest is one client message.
//!
//! Decoding must never panic; decoding from a borrowed slice and from shared
//! `Bytes` must agree, and agree with the general path alone (the one-pass
//! reading of a typical batch must change nothing, errors included); errors are always message errors (never WebSocket
//! ones); a batch must hold exactly the raw events of the input, within
//! the limits, with its summary consistent with them; and the viewer side
//! answers like the tracker side, except that what one side decodes the
//! other refuses as `not_allowed`.

use _core::protocol::{split_events, Bytes, DecoderLimits, ProtocolDecoder, TrackerMessage};
use _core::{Error, MessageCode};

/// The decoded message's `type`, on whichever side decodes it.
pub type Outcome = Result<&'static str, Error>;

pub fn limits(settings: u8) -> DecoderLimits {
    if settings & 0x80 != 0 {
        DecoderLimits {
            max_events_per_batch: 4,
            max_event_bytes: 64,
        }
    } else {
        DecoderLimits::default()
    }
}

/// Decode the message in `data` (after the settings byte) and check the
/// property; None for empty input.
pub fn run(data: &[u8]) -> Option<Outcome> {
    let (&settings, message) = data.split_first()?;
    let limits = limits(settings);
    let decoder = ProtocolDecoder::new(limits);
    let outcome = decoder.decode_tracker(message);
    let shared = decoder.decode_tracker_bytes(&Bytes::copy_from_slice(message));
    assert_eq!(outcome, shared, "borrowed and shared decoding disagree");
    let general = decoder.decode_general(message);
    assert_eq!(outcome, general, "the one-pass and general paths disagree");
    let not_allowed = |e: &Error| {
        matches!(
            e,
            Error::Message {
                code: MessageCode::NotAllowed,
                ..
            }
        )
    };
    let decoded = match (&outcome, decoder.decode_viewer(message)) {
        (Ok(t), Err(e)) if not_allowed(&e) => Ok(t.type_name()),
        (Err(e), Ok(v)) if not_allowed(e) => Ok(v.type_name()),
        (Err(t), Err(v)) if !not_allowed(t) && !not_allowed(&v) => {
            assert_eq!(t, &v, "the two sides answer differently");
            Err(v)
        }
        (t, v) => panic!("the sides disagree on whose message it is: {t:?} / {v:?}"),
    };
    if outcome.is_ok() {
        let text = std::str::from_utf8(message).expect("a decoded message is UTF-8");
        assert!(text.trim_start().starts_with('{'), "a message is an object");
    }
    match &outcome {
        Ok(TrackerMessage::EventsBatch(batch)) => {
            assert!(batch.count() <= limits.max_events_per_batch);
            let text = std::str::from_utf8(message).expect("a decoded message is UTF-8");
            let mut nbytes = 0;
            for event in batch.events() {
                let raw = std::str::from_utf8(event.raw()).expect("events are UTF-8");
                assert!(raw.len() <= limits.max_event_bytes);
                assert!(raw.starts_with('{') && raw.ends_with('}'), "{raw}");
                assert!(text.contains(raw), "event not found verbatim in the input");
                let alone = format!("[{raw}]");
                assert_eq!(
                    split_events(alone.as_bytes()).map(|v| v.len()).ok(),
                    Some(1),
                    "{raw}"
                );
                nbytes += raw.len();
            }
            assert_eq!(batch.nbytes(), nbytes);
            let payload = batch.payload();
            assert_eq!(payload.len(), batch.payload_len());
            let split = split_events(&payload).expect("a payload is a JSON array");
            assert_eq!(split.len(), batch.count());
            for (part, event) in split.iter().zip(batch.events()) {
                assert_eq!(part.get().as_bytes(), &event.raw()[..]);
            }
            let kinds = || batch.events().iter().map(|e| e.kind());
            assert_eq!(batch.has_full_snapshot(), kinds().any(|k| k == 2));
            assert_eq!(batch.has_meta(), kinds().any(|k| k == 4));
            match (batch.min_timestamp(), batch.max_timestamp()) {
                (Some(lo), Some(hi)) => assert!(lo <= hi),
                (None, None) => assert_eq!(batch.count(), 0),
                other => panic!("inconsistent timestamps {other:?}"),
            }
        }
        Ok(_) => {}
        Err(Error::Message { .. }) => {}
        Err(other) => panic!("not a message error: {other:?}"),
    }
    Some(decoded)
}
