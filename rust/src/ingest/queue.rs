//! Accepted chunks on their way to storage, numbered by flush.
//!
//! The queue is the writer's input. Chunks are queued here by the tracker
//! engine as they are accepted, without becoming Python objects; the
//! storage writer takes a whole flush at once ([`ChunkQueue::take`]) and
//! hands it to the COPY encoder or the row binding. Every flush has a
//! *generation*: a chunk queued now belongs to [`ChunkQueue::generation`],
//! which is what a durable ack waits for. A chunk stays *pending*
//! (findable by session and seq, for duplicate checks, resumes and history
//! reads) until its flush is committed ([`ChunkQueue::commit`]).
//!
//! Bounds: `max_pending_bytes` of payload may be pending; past it the
//! engine holds trackers back (backpressure) until a commit frees room.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use crate::codec::Compressor;
use crate::error::Error;
use crate::pgcopy::{ChunkCopy, ChunkRow, RowError, Timestamptz};

/// A chunk's payload: the events as received, or already encoded.
#[derive(Debug, Clone)]
pub enum Body {
    /// The events' raw JSON; the payload is their array.
    Events(Vec<Bytes>),
    /// An encoded payload (`codec` "none": the JSON array itself; else the
    /// array's contents compressed, see `replaywire.storage.Chunk`).
    Encoded { codec: Arc<str>, payload: Bytes },
}

/// One accepted batch, waiting for storage.
#[derive(Debug, Clone)]
pub struct PendingChunk {
    pub key: Arc<str>,
    pub seq: u64,
    pub first_index: u64,
    pub count: u32,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub received_at: Option<f64>,
    /// The flush it belongs to.
    pub generation: u64,
    pub body: Body,
    /// The payload's length (what `max_pending_bytes` counts).
    pub nbytes: usize,
}

impl PendingChunk {
    /// A chunk of raw events; `nbytes` is their array's length.
    pub fn from_events(
        key: Arc<str>,
        seq: u64,
        first_index: u64,
        events: Vec<Bytes>,
        first_ts: Option<f64>,
        last_ts: Option<f64>,
        received_at: Option<f64>,
    ) -> Self {
        let raw: usize = events.iter().map(Bytes::len).sum();
        let nbytes = raw + events.len().saturating_sub(1) + 2;
        PendingChunk {
            key,
            seq,
            first_index,
            count: u32::try_from(events.len()).unwrap_or(u32::MAX),
            first_ts,
            last_ts,
            received_at,
            generation: 0,
            body: Body::Events(events),
            nbytes,
        }
    }

    pub fn end_index(&self) -> u64 {
        self.first_index + u64::from(self.count)
    }

    pub fn codec(&self) -> &str {
        match &self.body {
            Body::Events(_) => "none",
            Body::Encoded { codec, .. } => codec,
        }
    }

    /// The stored payload: the JSON array for raw events (built now), or
    /// the encoded bytes.
    pub fn payload(&self) -> Bytes {
        match &self.body {
            Body::Events(_) => {
                let mut out = vec![0; self.nbytes];
                self.write_payload(&mut out);
                Bytes::from(out)
            }
            Body::Encoded { payload, .. } => payload.clone(),
        }
    }

    /// Write the payload into `out`, which is exactly `nbytes` long.
    pub fn write_payload(&self, out: &mut [u8]) {
        match &self.body {
            Body::Events(events) => {
                crate::protocol::chunks::write_array(events.iter().map(|e| &e[..]), out)
            }
            Body::Encoded { payload, .. } => out.copy_from_slice(payload),
        }
    }

    /// The payload compressed with `compressor` (the array's contents, so
    /// that stored chunks concatenate); `None` for a chunk encoded already.
    /// The contents are joined in `scratch.raw` and compressed into
    /// `scratch.out`, both reused from chunk to chunk; the payload is an
    /// exact-size copy of the output, so that a pending chunk holds its
    /// compressed size, not zstd's bound on it.
    fn compressed(
        &self,
        compressor: &mut Compressor,
        name: &Arc<str>,
        scratch: &mut Scratch,
    ) -> Result<Option<Self>, Error> {
        let Scratch { raw, out } = scratch;
        let contents = match &self.body {
            Body::Events(events) => {
                raw.clear();
                raw.reserve(self.nbytes);
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        raw.push(b',');
                    }
                    raw.extend_from_slice(e);
                }
                // As `array_contents` reads `[e0,e1,...]`.
                raw.trim_ascii()
            }
            Body::Encoded { codec, payload } if &**codec == "none" => {
                crate::protocol::array_contents(payload).unwrap_or(payload)
            }
            Body::Encoded { .. } => return Ok(None),
        };
        compressor.compress_to(contents, out)?;
        Ok(Some(PendingChunk {
            key: self.key.clone(),
            seq: self.seq,
            first_index: self.first_index,
            count: self.count,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            received_at: self.received_at,
            generation: self.generation,
            body: Body::Encoded {
                codec: name.clone(),
                payload: Bytes::copy_from_slice(out),
            },
            nbytes: out.len(),
        }))
    }
}

/// Buffers one compression pass reuses from chunk to chunk.
#[derive(Debug, Default)]
pub struct Scratch {
    raw: Vec<u8>,
    out: Vec<u8>,
}

/// What [`ChunkQueue::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Queued in this generation; `first`: the queue was empty (the writer
    /// starts its interval clock); `full`: `batch_size` chunks are queued.
    Queued { first: bool, full: bool },
    /// The same (session, seq) is already pending, in this generation.
    Pending(u64),
}

/// One flush: the chunks queued since the previous one, and the sessions
/// whose counters they changed.
#[derive(Debug, Default, Clone)]
pub struct Flush {
    pub generation: u64,
    pub chunks: Vec<Arc<PendingChunk>>,
    pub sessions: Vec<Arc<str>>,
}

impl Flush {
    pub fn payload_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.nbytes).sum()
    }

    /// Every raw chunk compressed (the writer's thread, once per flush).
    pub fn compress(&mut self, compressor: &mut Compressor, name: &str) -> Result<(), Error> {
        let name: Arc<str> = Arc::from(name);
        let mut scratch = Scratch::default();
        for chunk in &mut self.chunks {
            if chunk.codec() == "none" {
                if let Some(compressed) = chunk.compressed(compressor, &name, &mut scratch)? {
                    *chunk = Arc::new(compressed);
                }
            }
        }
        Ok(())
    }

    /// The flush as a PostgreSQL binary COPY stream of chunk rows (the
    /// first of each (session, seq) only); `started_at` gives each
    /// session's partition time. Errors name the row.
    pub fn encode_copy(
        &self,
        started_at: &dyn Fn(&str) -> Option<f64>,
        stored_at: Timestamptz,
    ) -> Result<Vec<u8>, String> {
        let mut payloads = Vec::with_capacity(self.chunks.len());
        let mut seen = HashSet::with_capacity(self.chunks.len());
        let mut picked = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            if seen.insert((chunk.key.clone(), chunk.seq)) {
                payloads.push(chunk.payload());
                picked.push(chunk);
            }
        }
        let mut rows = Vec::with_capacity(picked.len());
        for (chunk, payload) in picked.iter().zip(&payloads) {
            let start = started_at(&chunk.key)
                .ok_or_else(|| format!("no start time for session {:?}", &*chunk.key))?;
            let ts = |what: &str, v: f64| {
                Timestamptz::from_epoch_seconds(v)
                    .map_err(|e| format!("chunk of session {:?}: {what}: {e}", &*chunk.key))
            };
            rows.push(ChunkRow {
                session_id: &chunk.key,
                session_started_at: ts("session_started_at", start)?,
                seq: i64::try_from(chunk.seq)
                    .map_err(|_| format!("seq {} does not fit in int8", chunk.seq))?,
                first_index: i64::try_from(chunk.first_index).map_err(|_| {
                    format!("first_index {} does not fit in int8", chunk.first_index)
                })?,
                event_count: i32::try_from(chunk.count)
                    .map_err(|_| format!("event_count {} does not fit in int4", chunk.count))?,
                first_ts: chunk.first_ts,
                last_ts: chunk.last_ts,
                codec: chunk.codec(),
                received_at: chunk
                    .received_at
                    .map(|v| ts("received_at", v))
                    .transpose()?,
                payload,
            });
        }
        let copy = ChunkCopy::new(&rows, stored_at).map_err(|e: RowError| e.to_string())?;
        Ok(copy.to_vec())
    }
}

/// The chunks not yet committed, by flush.
#[derive(Debug)]
pub struct ChunkQueue {
    generation: u64,
    queued: Vec<Arc<PendingChunk>>,
    dirty: HashSet<Arc<str>>,
    pending: HashMap<Arc<str>, BTreeMap<u64, Arc<PendingChunk>>>,
    pending_bytes: usize,
    pending_count: usize,
    pub max_pending_bytes: usize,
    pub batch_size: usize,
    /// While the writer is spooling: bytes the spool can still take (a
    /// chunk that would not fit on top of everything pending is refused).
    pub spool_room: Option<u64>,
    /// The last batch offered while spooling was refused for want of room.
    pub refusing: bool,
}

impl ChunkQueue {
    pub fn new(batch_size: usize, max_pending_bytes: usize) -> Self {
        ChunkQueue {
            generation: 1,
            queued: Vec::new(),
            dirty: HashSet::new(),
            pending: HashMap::new(),
            pending_bytes: 0,
            pending_count: 0,
            max_pending_bytes: max_pending_bytes.max(1),
            batch_size: batch_size.max(1),
            spool_room: None,
            refusing: false,
        }
    }

    /// The generation that chunks queued now belong to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub fn pending_count(&self) -> usize {
        self.pending_count
    }

    /// Below `max_pending_bytes`: a chunk may be queued.
    pub fn has_room(&self) -> bool {
        self.pending_bytes < self.max_pending_bytes
    }

    /// While spooling: whether `nbytes` more fit in the spool on top of
    /// everything pending. Always true otherwise.
    pub fn spool_fits(&self, nbytes: usize) -> bool {
        self.spool_room
            .is_none_or(|room| (self.pending_bytes + nbytes) as u64 <= room)
    }

    /// `spool_fits`, remembered in `refusing` (readiness reports it).
    pub fn offer(&mut self, nbytes: usize) -> bool {
        let fits = self.spool_fits(nbytes);
        self.refusing = !fits;
        fits
    }

    /// The generation holding the pending chunk (session, seq), if any.
    pub fn pending_generation(&self, key: &str, seq: u64) -> Option<u64> {
        self.pending.get(key)?.get(&seq).map(|c| c.generation)
    }

    /// The session's pending chunks, ordered by first index.
    pub fn pending_for(&self, key: &str) -> Vec<Arc<PendingChunk>> {
        let mut out: Vec<_> = self
            .pending
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by_key(|c| (c.first_index, c.seq));
        out
    }

    /// Mark a session's record as changed in this generation.
    pub fn touch(&mut self, key: &Arc<str>) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
    }

    /// Queue a chunk (the caller checked `has_room`). A (session, seq)
    /// already pending is not queued again.
    pub fn put(&mut self, mut chunk: PendingChunk) -> Put {
        let by_seq = self.pending.entry(chunk.key.clone()).or_default();
        if let Some(existing) = by_seq.get(&chunk.seq) {
            return Put::Pending(existing.generation);
        }
        chunk.generation = self.generation;
        self.pending_bytes += chunk.nbytes;
        self.pending_count += 1;
        let chunk = Arc::new(chunk);
        by_seq.insert(chunk.seq, chunk.clone());
        let first = self.queued.is_empty();
        self.queued.push(chunk);
        Put::Queued {
            first,
            full: self.queued.len() >= self.batch_size,
        }
    }

    /// Everything queued, as the flush of the current generation; later
    /// chunks go to the next one.
    pub fn take(&mut self) -> Flush {
        let flush = Flush {
            generation: self.generation,
            chunks: std::mem::take(&mut self.queued),
            sessions: self.dirty.drain().collect(),
        };
        self.generation += 1;
        flush
    }

    /// A flush is committed (or spooled): its chunks stop being pending.
    pub fn commit(&mut self, flush: &Flush) {
        for chunk in &flush.chunks {
            let Some(by_seq) = self.pending.get_mut(&chunk.key) else {
                continue;
            };
            // The pending entry is the chunk as queued (its raw size), even
            // when the flush compressed its own copy.
            if let Some(queued) = by_seq.get(&chunk.seq) {
                if queued.generation == chunk.generation {
                    self.pending_bytes -= self.pending_bytes.min(queued.nbytes);
                    self.pending_count -= 1;
                    by_seq.remove(&chunk.seq);
                }
            }
            if by_seq.is_empty() {
                self.pending.remove(&chunk.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(key: &str, seq: u64, first: u64) -> PendingChunk {
        PendingChunk::from_events(
            Arc::from(key),
            seq,
            first,
            vec![Bytes::from_static(b"{\"type\":3,\"timestamp\":1}")],
            Some(1.0),
            Some(1.0),
            Some(2.0),
        )
    }

    #[test]
    fn chunks_stay_pending_until_their_flush_commits() {
        let mut q = ChunkQueue::new(2, 1 << 20);
        assert_eq!(
            q.put(chunk("s", 0, 0)),
            Put::Queued {
                first: true,
                full: false
            }
        );
        assert_eq!(q.put(chunk("s", 0, 0)), Put::Pending(1));
        assert_eq!(
            q.put(chunk("s", 1, 1)),
            Put::Queued {
                first: false,
                full: true
            }
        );
        let flush = q.take();
        assert_eq!((flush.generation, flush.chunks.len()), (1, 2));
        assert_eq!(q.pending_generation("s", 1), Some(1));
        q.put(chunk("s", 2, 2));
        q.commit(&flush);
        assert_eq!(q.pending_generation("s", 1), None);
        assert_eq!(q.pending_count(), 1);
        assert_eq!(q.pending_for("s")[0].seq, 2);
        assert_eq!(
            &*flush.chunks[0].payload(),
            b"[{\"type\":3,\"timestamp\":1}]"
        );
    }

    #[test]
    fn a_compressed_flush_holds_each_array_contents_in_a_frame_of_its_own() {
        use crate::codec::{decompress, Codec};
        let mut q = ChunkQueue::new(10, 1 << 20);
        let events = |n: u64| -> Vec<Bytes> {
            (0..n)
                .map(|i| Bytes::from(format!("{{\"type\":3,\"timestamp\":{i}}}")))
                .collect()
        };
        for (seq, n) in [(0, 3), (1, 1), (2, 0)] {
            let chunk = PendingChunk::from_events(
                Arc::from("s"),
                seq,
                seq * 3,
                events(n),
                None,
                None,
                None,
            );
            q.put(chunk);
        }
        let mut flush = q.take();
        let raw: Vec<Bytes> = flush.chunks.iter().map(|c| c.payload()).collect();
        let codec = Codec::Zstd { level: 1 };
        flush
            .compress(&mut Compressor::new(codec).unwrap(), "zstd")
            .unwrap();
        for (chunk, raw) in flush.chunks.iter().zip(&raw) {
            assert_eq!(chunk.codec(), "zstd");
            let payload = chunk.payload();
            assert_eq!(chunk.nbytes, payload.len());
            let contents = decompress(codec, &payload, 1 << 20, None).unwrap();
            assert_eq!(&contents[..], &raw[1..raw.len() - 1]);
        }
        // Queued chunks keep their raw size: commit frees what put counted.
        q.commit(&flush);
        assert_eq!((q.pending_count(), q.pending_bytes()), (0, 0));
    }
}
