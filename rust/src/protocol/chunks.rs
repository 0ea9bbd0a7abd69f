//! Stored chunks: JSON arrays of raw events.
//!
//! A chunk is what [`super::EventsBatch::payload`] and a buffer read produce,
//! `[e0,e1,...]` with each event byte-for-byte as the tracker sent it. These
//! helpers split a chunk back into events and join chunks into one array
//! without building a value tree or re-encoding anything.

use serde_json::value::RawValue;
use thiserror::Error;

/// Split a chunk into its events' raw JSON texts.
///
/// Fails with serde_json's error (which says where) when `payload` is not a
/// JSON array. This is a local fault, stored data that is corrupt, not a
/// client's, so it is not a [`crate::Error`].
pub fn split_events(payload: &[u8]) -> serde_json::Result<Vec<&RawValue>> {
    serde_json::from_slice(payload)
}

/// A part given to [`join_events`] is not bracketed like a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("part {index} is not a JSON array")]
pub struct NotAnArray {
    pub index: usize,
}

/// Join JSON arrays of events (`[]` allowed) into one array.
///
/// Only the outer brackets are checked and stripped; the contents are
/// trusted to be what [`split_events`] would accept, since every part was
/// produced by this crate.
pub fn join_events<P: AsRef<[u8]>>(parts: &[P]) -> Result<Vec<u8>, NotAnArray> {
    let mut inners = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let inner = array_contents(part.as_ref()).ok_or(NotAnArray { index })?;
        if !inner.is_empty() {
            inners.push(inner);
        }
    }
    let nbytes = inners.iter().map(|i| i.len()).sum();
    let mut out = vec![0; array_len(inners.len(), nbytes)];
    write_array(inners.iter().copied(), &mut out);
    Ok(out)
}

/// What is between the brackets of `[ ... ]`, without surrounding whitespace.
pub fn array_contents(part: &[u8]) -> Option<&[u8]> {
    let inner = part.trim_ascii().strip_prefix(b"[")?.strip_suffix(b"]")?;
    Some(inner.trim_ascii())
}

/// Length of `[a,b,...]` for `count` items of `nbytes` bytes in total.
pub(crate) fn array_len(count: usize, nbytes: usize) -> usize {
    2 + nbytes + count.saturating_sub(1)
}

/// Write `[a,b,...]` into `out`, which must be exactly [`array_len`] long.
pub fn write_array<'a>(items: impl Iterator<Item = &'a [u8]>, out: &mut [u8]) {
    let last = out.len() - 1;
    out[0] = b'[';
    let mut at = 1;
    for item in items {
        if at > 1 {
            out[at] = b',';
            at += 1;
        }
        out[at..at + item.len()].copy_from_slice(item);
        at += item.len();
    }
    debug_assert_eq!(at, last, "output length does not match the items");
    out[last] = b']';
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_each_event_verbatim() {
        let events = split_events(br#"[ {"a": 1} ,{"b":[1, 2]}]"#).unwrap();
        let texts: Vec<&str> = events.iter().map(|e| e.get()).collect();
        assert_eq!(texts, [r#"{"a": 1}"#, r#"{"b":[1, 2]}"#]);
    }

    #[test]
    fn split_rejects_non_arrays() {
        assert!(split_events(b"{}").is_err());
        assert!(split_events(b"[1,").is_err());
        assert!(split_events(b"").is_err());
    }

    #[test]
    fn join_skips_empty_parts() {
        let joined = join_events(&[&b"[]"[..], b" [1,2] ", b"[ ]", b"[3]"]).unwrap();
        assert_eq!(joined, b"[1,2,3]");
        assert_eq!(join_events::<&[u8]>(&[]).unwrap(), b"[]");
        assert_eq!(join_events(&[b"[]"]).unwrap(), b"[]");
    }

    #[test]
    fn join_names_the_bad_part() {
        assert_eq!(
            join_events(&[&b"[1]"[..], b"{}"]),
            Err(NotAnArray { index: 1 })
        );
        assert_eq!(join_events(&[b"["]), Err(NotAnArray { index: 0 }));
    }
}
