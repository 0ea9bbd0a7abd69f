//! The workload: tracker sessions and the rrweb-like event corpus, read
//! from the JSON file `benches/loadgen.py` writes, and the `events_batch`
//! messages built from them exactly as `benches/ingest_load.py` builds its
//! own (`tests/rrweb.py`'s `batch_message`), masked while they are copied
//! into the send buffer.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::frame::{put_client_header, put_masked, OP_TEXT};

/// One tracker connection's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id as a JSON string, quotes included.
    pub id_json: Vec<u8>,
    /// The whole `session_start` message.
    pub start: Vec<u8>,
}

/// The payload file did not say what the workload needs.
#[derive(Debug)]
pub struct WorkloadError(pub String);

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload file: {}", self.0)
    }
}

/// Sessions, the upgrade path, and events joined with commas, so that any
/// run of consecutive events is one slice of `joined`.
#[derive(Debug)]
pub struct Workload {
    pub path: String,
    pub sessions: Vec<Session>,
    pub batch: usize,
    joined: Vec<u8>,
    starts: Vec<usize>,
    ends: Vec<usize>,
}

const HEAD: &[u8] = br#"{"type":"events_batch","data":{"sessionId":"#;
const SEQ: &[u8] = br#","seq":"#;
const EVENTS: &[u8] = br#","events":["#;
const TAIL: &[u8] = b"]}}";

impl Workload {
    /// Reads `{"path": ..., "sessions": [{"id_json", "start"}], "events":
    /// [...]}` and checks that a batch of `batch` events fits.
    pub fn load(file: &Path, batch: usize) -> Result<Self, WorkloadError> {
        let text = std::fs::read(file)
            .map_err(|e| WorkloadError(format!("cannot read {}: {e}", file.display())))?;
        let value: Value =
            serde_json::from_slice(&text).map_err(|e| WorkloadError(e.to_string()))?;
        let text_of = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| WorkloadError(format!("{what} must be a string")))
        };
        let path = text_of(&value["path"], "path")?;
        let sessions = value["sessions"]
            .as_array()
            .ok_or_else(|| WorkloadError("sessions must be a list".into()))?
            .iter()
            .map(|s| {
                Ok(Session {
                    id_json: text_of(&s["id_json"], "id_json")?.into_bytes(),
                    start: text_of(&s["start"], "start")?.into_bytes(),
                })
            })
            .collect::<Result<Vec<_>, WorkloadError>>()?;
        let events = value["events"]
            .as_array()
            .ok_or_else(|| WorkloadError("events must be a list".into()))?
            .iter()
            .map(|e| text_of(e, "every event"))
            .collect::<Result<Vec<_>, _>>()?;
        if sessions.is_empty() {
            return Err(WorkloadError("no sessions".into()));
        }
        Self::new(path, sessions, &events, batch)
    }

    pub fn new(
        path: String,
        sessions: Vec<Session>,
        events: &[impl AsRef<[u8]>],
        batch: usize,
    ) -> Result<Self, WorkloadError> {
        if batch == 0 || events.len() <= batch {
            return Err(WorkloadError(format!(
                "{} events cannot make batches of {batch}",
                events.len()
            )));
        }
        let mut joined = Vec::new();
        let (mut starts, mut ends) = (Vec::new(), Vec::new());
        for event in events {
            if !joined.is_empty() {
                joined.push(b',');
            }
            starts.push(joined.len());
            joined.extend_from_slice(event.as_ref());
            ends.push(joined.len());
        }
        Ok(Workload {
            path,
            sessions,
            batch,
            joined,
            starts,
            ends,
        })
    }

    /// The events of batch `seq`, comma-joined, and their bytes without
    /// the commas: a window of B events sliding by B, wrapping before the
    /// corpus ends (`ingest_load.py`'s choice, so runs are comparable).
    fn events_of(&self, seq: u64) -> (&[u8], usize) {
        let n = self.starts.len() as u64;
        let first = ((seq * self.batch as u64) % (n - self.batch as u64)) as usize;
        let last = first + self.batch - 1;
        let slice = &self.joined[self.starts[first]..self.ends[last]];
        (slice, slice.len() - (self.batch - 1))
    }

    /// Batch `seq` of session `sid_json` as a masked text frame appended
    /// to `out`; returns the bytes of its events (what MB/s counts).
    pub fn put_batch_frame(
        &self,
        out: &mut Vec<u8>,
        sid_json: &[u8],
        seq: u64,
        mask: [u8; 4],
    ) -> usize {
        let (events, event_bytes) = self.events_of(seq);
        let mut digits = [0u8; 20];
        let digits = decimal(seq, &mut digits);
        let parts: [&[u8]; 7] = [HEAD, sid_json, SEQ, digits, EVENTS, events, TAIL];
        let len = parts.iter().map(|p| p.len()).sum();
        out.reserve(len + 14);
        put_client_header(out, OP_TEXT, len, mask);
        let mut offset = 0;
        for part in parts {
            put_masked(out, part, mask, offset);
            offset += part.len();
        }
        event_bytes
    }

    /// The bytes of batch `seq`'s events, commas not counted (what MB/s
    /// counts).
    pub fn event_bytes(&self, seq: u64) -> usize {
        self.events_of(seq).1
    }

    /// Batch `seq` of session `sid_json` as plain JSON (for `loadgen dump`
    /// and tests).
    pub fn batch_message(&self, sid_json: &[u8], seq: u64) -> Vec<u8> {
        let (events, _) = self.events_of(seq);
        [
            HEAD,
            sid_json,
            SEQ,
            seq.to_string().as_bytes(),
            EVENTS,
            events,
            TAIL,
        ]
        .concat()
    }
}

fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{apply_mask, parse_header};

    fn workload(batch: usize) -> Workload {
        let events: Vec<String> = (0..7)
            .map(|i| format!(r#"{{"type":3,"timestamp":{i}}}"#))
            .collect();
        let session = Session {
            id_json: br#""s-1""#.to_vec(),
            start: b"{}".to_vec(),
        };
        Workload::new("/ws".into(), vec![session], &events, batch).unwrap()
    }

    #[test]
    fn batches_slide_by_their_size_and_wrap_like_ingest_load() {
        let w = workload(2);
        // 7 events, B = 2: batch seq starts at (seq * 2) % 5.
        let firsts: Vec<u64> = (0..6)
            .map(|seq| {
                let msg = String::from_utf8(w.batch_message(br#""s-1""#, seq)).unwrap();
                let v: Value = serde_json::from_str(&msg).unwrap();
                assert_eq!(v["data"]["seq"], seq);
                assert_eq!(v["data"]["sessionId"], "s-1");
                assert_eq!(v["data"]["events"].as_array().unwrap().len(), 2);
                v["data"]["events"][0]["timestamp"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(firsts, [0, 2, 4, 1, 3, 0]);
    }

    #[test]
    fn the_frame_unmasks_to_the_message() {
        let w = workload(3);
        let mask = [1, 2, 3, 250];
        for seq in [0, 9, 10, 12_345_678_901] {
            let mut out = vec![0xEE]; // something already queued
            let bytes = w.put_batch_frame(&mut out, br#""s-1""#, seq, mask);
            let header = parse_header(&out[1..]).unwrap().unwrap();
            let mut payload = out[1 + header.header_len..].to_vec();
            assert_eq!(payload.len() as u64, header.payload_len);
            apply_mask(&mut payload, header.mask.unwrap(), 0);
            assert_eq!(payload, w.batch_message(br#""s-1""#, seq));
            assert_eq!(bytes, 3 * r#"{"type":3,"timestamp":0}"#.len());
        }
    }

    #[test]
    fn too_few_events_for_a_batch_is_refused() {
        let events = ["{}", "{}"];
        assert!(Workload::new("/ws".into(), vec![], &events, 2).is_err());
        assert!(Workload::new("/ws".into(), vec![], &events, 0).is_err());
    }
}
