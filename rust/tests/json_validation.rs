//! Which JSON reader should validate the events of a batch? Measured
//! on our corpus, ignored by default; run in release:
//!
//! ```text
//! cargo test --release --features json-candidates --test json_validation -- --ignored --nocapture
//! ```
//!
//! (The candidates are optional dependencies behind the `json-candidates`
//! feature, so that a plain `cargo test` neither builds them nor runs this.)
//!
//! Every candidate does the same job as `protocol::one_pass`: read an
//! `events_batch` message whose `type` comes first, and for every event
//! (an object) its integer `type`, its numeric `timestamp` and its byte
//! range in the message, refusing (None) anything unusual. Candidates:
//!
//! - `serde_json`: today's path, `one_pass`'s cursor rebuilt here (a
//!   `StreamDeserializer` per value, its `byte_offset` giving each event's
//!   end);
//! - `sonic-rs`: its serde `Deserializer` over the `data` object, each event
//!   borrowed as a `LazyValue` (SIMD skipping), then its head read from that
//!   span;
//! - `simd-json`: stage 1 (SIMD structural indexes) and stage 2 (the tape)
//!   over a reused padded copy of the message, the tape walked for the
//!   heads and the structural indexes for the spans.
//!
//! Workloads: the corpus of `tests/data/make_corpus.py` (generated into
//! `target/json-corpus/` on first run): its `chunks.jsonl` (batches of 50
//! incremental events, ~270 bytes each) wrapped as `events_batch`
//! messages, and its 3 MB full snapshot as a batch of one. The VM's speed
//! drifts by tens of percent over minutes, so the candidates are
//! interleaved round by round and compared by their ratio within a round.
//!
//! Two reference rows do less than the job, to show where the floor is:
//! serde_json validating the whole message and reading nothing
//! (`IgnoredAny`), and simd-json building its tape and reading nothing.
//! Heap allocations are counted in a separate, untimed pass.
//!
//! Only the comparison is printed; nothing is asserted about time.
//!
//! What it found (2026-12-06, this 2-core VM, sonic-rs 0.5.12, simd-json
//! 0.19.0 with runtime AVX2), as the median of the per-round ratios to
//! today's path: batches of 50 events, sonic-rs 0.47x and simd-json 0.50x;
//! the 3 MB snapshot, 0.53x and 0.47x. Built with `-C target-cpu=native`
//! (sonic-rs picks its SIMD at compile time) they are 0.47x and 0.49x,
//! 0.60x and 0.48x.
//! simd-json's tape alone, reading nothing, is 0.7x (batches) and 0.57x
//! (snapshot) of today's whole job, and serde_json validating the message
//! while reading nothing is only 1.1x: today's one-pass path is already
//! within about 10% of what serde_json can validate, and no SIMD reader
//! does the job faster on rrweb JSON (short strings and small numbers, so
//! structure-dense). So serde_json stays. Today's path does make about 0.6
//! heap allocations per event: each event gets a fresh serde_json
//! deserializer, whose scratch buffer grows when it skips nested values.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// What each candidate reads from one event.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Head {
    kind: i64,
    timestamp: f64,
    start: usize,
    end: usize,
}

/// What a candidate reads from a batch: `seq` and the events' heads.
#[derive(Debug, Default, PartialEq)]
struct Read {
    seq: Option<i64>,
    heads: Vec<Head>,
}

#[derive(Deserialize, Clone, Copy)]
struct EventHead {
    #[serde(rename = "type")]
    kind: i64,
    timestamp: f64,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EnvelopeField {
    Type,
    Data,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    SessionId,
    Seq,
    Events,
    #[serde(other)]
    Other,
}

// ---------------------------------------------------------------- serde_json

mod with_serde_json {
    use super::*;

    pub fn read(text: &str, out: &mut Read) -> Option<()> {
        let mut c = Cursor { text, pos: 0 };
        let mut is_batch = false;
        let mut data = false;
        c.expect(b'{')?;
        if !c.eat(b'}') {
            loop {
                match c.key::<EnvelopeField>()? {
                    EnvelopeField::Type if is_batch => return None,
                    EnvelopeField::Type => {
                        let kind: &str = c.value()?;
                        is_batch = kind == "events_batch";
                        if !is_batch {
                            return None;
                        }
                    }
                    EnvelopeField::Data if !is_batch || data => return None,
                    EnvelopeField::Data => {
                        read_data(&mut c, out)?;
                        data = true;
                    }
                    EnvelopeField::Other => {
                        c.value::<IgnoredAny>()?;
                    }
                }
                if !c.next_member(b'}')? {
                    break;
                }
            }
        }
        c.skip_whitespace();
        (c.pos == text.len() && data).then_some(())
    }

    fn read_data(c: &mut Cursor<'_>, out: &mut Read) -> Option<()> {
        let (mut sid, mut seq, mut events) = (false, false, false);
        c.expect(b'{')?;
        if !c.eat(b'}') {
            loop {
                match c.key::<Field>()? {
                    Field::SessionId if sid => return None,
                    Field::SessionId => {
                        let _: Option<&str> = c.value()?;
                        sid = true;
                    }
                    Field::Seq if seq => return None,
                    Field::Seq => {
                        out.seq = c.value()?;
                        seq = true;
                    }
                    Field::Events if events => return None,
                    Field::Events => {
                        read_events(c, out)?;
                        events = true;
                    }
                    Field::Other => {
                        c.value::<IgnoredAny>()?;
                    }
                }
                if !c.next_member(b'}')? {
                    break;
                }
            }
        }
        events.then_some(())
    }

    fn read_events(c: &mut Cursor<'_>, out: &mut Read) -> Option<()> {
        c.expect(b'[')?;
        if c.eat(b']') {
            return Some(());
        }
        loop {
            c.skip_whitespace();
            if c.peek() != Some(b'{') {
                return None;
            }
            let start = c.pos;
            let head: EventHead = c.value()?;
            out.heads.push(Head {
                kind: head.kind,
                timestamp: head.timestamp,
                start,
                end: c.pos,
            });
            if !c.next_member(b']')? {
                return Some(());
            }
        }
    }

    struct Cursor<'a> {
        text: &'a str,
        pos: usize,
    }

    impl<'a> Cursor<'a> {
        fn skip_whitespace(&mut self) {
            let rest = &self.text.as_bytes()[self.pos..];
            self.pos += rest
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
                .count();
        }
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }
        fn eat(&mut self, byte: u8) -> bool {
            self.skip_whitespace();
            let found = self.peek() == Some(byte);
            self.pos += usize::from(found);
            found
        }
        fn expect(&mut self, byte: u8) -> Option<()> {
            self.eat(byte).then_some(())
        }
        fn next_member(&mut self, close: u8) -> Option<bool> {
            if self.eat(b',') {
                Some(true)
            } else {
                self.expect(close).map(|()| false)
            }
        }
        fn key<T: Deserialize<'a>>(&mut self) -> Option<T> {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return None;
            }
            let key = self.value()?;
            self.expect(b':')?;
            Some(key)
        }
        fn value<T: Deserialize<'a>>(&mut self) -> Option<T> {
            let rest = self.text.get(self.pos..)?;
            let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<T>();
            let value = stream.next()?.ok()?;
            self.pos += stream.byte_offset();
            Some(value)
        }
    }
}

// ------------------------------------------------------------------ sonic-rs

mod with_sonic_rs {
    use super::*;
    use sonic_rs::LazyValue;

    pub fn read(text: &str, out: &mut Read) -> Option<()> {
        let base = text.as_ptr() as usize;
        let mut de = sonic_rs::Deserializer::from_str(text);
        let ok = Envelope { base, out }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        ok.then_some(())
    }

    /// The message object, `type` first; true if it was a batch with data.
    struct Envelope<'o> {
        base: usize,
        out: &'o mut Read,
    }

    impl<'de> DeserializeSeed<'de> for Envelope<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Envelope<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a batch")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let (mut is_batch, mut data) = (false, false);
            while let Some(key) = map.next_key::<EnvelopeField>()? {
                match key {
                    EnvelopeField::Type if is_batch => return Ok(false),
                    EnvelopeField::Type => {
                        let kind: &str = map.next_value()?;
                        is_batch = kind == "events_batch";
                        if !is_batch {
                            return Ok(false);
                        }
                    }
                    EnvelopeField::Data if !is_batch || data => return Ok(false),
                    EnvelopeField::Data => {
                        if !map.next_value_seed(Data {
                            base: self.base,
                            out: &mut *self.out,
                        })? {
                            return Ok(false);
                        }
                        data = true;
                    }
                    EnvelopeField::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(data)
        }
    }

    struct Data<'o> {
        base: usize,
        out: &'o mut Read,
    }

    impl<'de> DeserializeSeed<'de> for Data<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Data<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("batch data")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let (mut sid, mut seq, mut events) = (false, false, false);
            while let Some(key) = map.next_key::<Field>()? {
                match key {
                    Field::SessionId if sid => return Ok(false),
                    Field::SessionId => {
                        let _: Option<&str> = map.next_value()?;
                        sid = true;
                    }
                    Field::Seq if seq => return Ok(false),
                    Field::Seq => {
                        self.out.seq = map.next_value()?;
                        seq = true;
                    }
                    Field::Events if events => return Ok(false),
                    Field::Events => {
                        if !map.next_value_seed(Events {
                            base: self.base,
                            out: &mut *self.out,
                        })? {
                            return Ok(false);
                        }
                        events = true;
                    }
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(events)
        }
    }

    struct Events<'o> {
        base: usize,
        out: &'o mut Read,
    }

    impl<'de> DeserializeSeed<'de> for Events<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Events<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("events")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            while let Some(event) = seq.next_element::<LazyValue<'de>>()? {
                let raw = event.as_raw_str();
                if !raw.starts_with('{') {
                    return Ok(false);
                }
                let Ok(head) = sonic_rs::from_str::<EventHead>(raw) else {
                    return Ok(false);
                };
                let start = raw.as_ptr() as usize - self.base;
                self.out.heads.push(Head {
                    kind: head.kind,
                    timestamp: head.timestamp,
                    start,
                    end: start + raw.len(),
                });
            }
            Ok(true)
        }
    }
}

// ----------------------------------------------------------------- simd-json

mod with_simd_json {
    use super::*;
    use simd_json::{fill_tape_padded, Buffers, Node, StaticNode, Tape, INPUT_PADDING};

    /// What is reused from message to message (per connection).
    pub struct Reader {
        input: Vec<u8>,
        buffers: Buffers,
        tape: Tape<'static>,
    }

    impl Reader {
        pub fn new() -> Self {
            Reader {
                input: Vec::new(),
                buffers: Buffers::default(),
                tape: Tape::null(),
            }
        }

        pub fn read(&mut self, text: &str, out: &mut Read) -> Option<()> {
            self.parse(text, |nodes, structurals| {
                walk(text, nodes, structurals, out)
            })
        }

        /// Stage 1 and 2 alone, nothing read: the floor of [`Self::read`].
        pub fn tape_only(&mut self, text: &str) -> Option<()> {
            self.parse(text, |_, _| Some(()))
        }

        /// Parse `text` into the reused tape and hand it, with the
        /// structural indexes, to `f`; None if simd-json refuses it.
        fn parse<R>(
            &mut self,
            text: &str,
            f: impl FnOnce(&[Node<'_>], &[u32]) -> Option<R>,
        ) -> Option<R> {
            self.input.clear();
            self.input.extend_from_slice(text.as_bytes());
            self.input.resize(text.len() + INPUT_PADDING, 0);
            let mut tape = std::mem::replace(&mut self.tape, Tape::null());
            let parsed =
                fill_tape_padded(&mut self.input, text.len(), &mut self.buffers, &mut tape);
            let found = match parsed {
                Ok(()) => f(&tape.0, self.buffers.structural_indexes()),
                Err(_) => None,
            };
            self.tape = tape.reset();
            found
        }
    }

    /// The tape's nodes are the structurals that are not `:`, `,`, `}` or
    /// `]`, in order; the walk steps through both side by side, counting
    /// the nesting depth so that it can tell where a container ends.
    struct Walk<'t, 'i> {
        text: &'t [u8],
        nodes: &'t [Node<'i>],
        structurals: &'t [u32],
        node: usize,
        structural: usize,
        depth: usize,
    }

    impl<'i> Walk<'_, 'i> {
        /// The next node and its byte offset; moves past it (not past its
        /// children).
        fn next(&mut self) -> Option<(Node<'i>, usize)> {
            let node = *self.nodes.get(self.node)?;
            loop {
                let at = *self.structurals.get(self.structural)? as usize;
                self.structural += 1;
                match self.text[at] {
                    b':' | b',' => {}
                    b'}' | b']' => self.depth -= 1,
                    open => {
                        self.depth += usize::from(matches!(open, b'{' | b'['));
                        self.node += 1;
                        return Some((node, at));
                    }
                }
            }
        }

        /// Skip the children of a container just returned by `next`.
        fn skip_children(&mut self, node: Node<'_>) {
            if let Node::Object { count, .. } | Node::Array { count, .. } = node {
                for _ in 0..count {
                    self.next();
                }
            }
        }

        /// After the last child of a container opened at `depth`: the end
        /// of the container (after its closing bracket).
        fn close(&mut self, depth: usize) -> Option<usize> {
            loop {
                let at = *self.structurals.get(self.structural)? as usize;
                self.structural += 1;
                match self.text[at] {
                    b':' | b',' => {}
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth < depth {
                            return Some(at + 1);
                        }
                    }
                    _ => return None,
                }
            }
        }
    }

    fn walk(text: &str, nodes: &[Node<'_>], structurals: &[u32], out: &mut Read) -> Option<()> {
        let mut w = Walk {
            text: text.as_bytes(),
            nodes,
            structurals,
            node: 0,
            structural: 0,
            depth: 0,
        };
        let Node::Object { len, .. } = w.next()?.0 else {
            return None;
        };
        let (mut is_batch, mut data) = (false, false);
        for _ in 0..len {
            let (Node::String(key), at) = w.next()? else {
                return None;
            };
            if text.as_bytes()[at + 1..at + 1 + key.len()].contains(&b'\\') {
                return None;
            }
            let (value, _) = w.next()?;
            match key {
                "type" if is_batch => return None,
                "type" => {
                    is_batch = value == Node::String("events_batch");
                    if !is_batch {
                        return None;
                    }
                }
                "data" if !is_batch || data => return None,
                "data" => {
                    let Node::Object { len, .. } = value else {
                        return None;
                    };
                    read_data(&mut w, text, len, out)?;
                    data = true;
                }
                _ => w.skip_children(value),
            }
        }
        data.then_some(())
    }

    fn read_data(w: &mut Walk<'_, '_>, text: &str, len: usize, out: &mut Read) -> Option<()> {
        let (mut sid, mut seq, mut events) = (false, false, false);
        for _ in 0..len {
            let (Node::String(key), _) = w.next()? else {
                return None;
            };
            let (value, at) = w.next()?;
            match key {
                "sessionId" if sid => return None,
                "sessionId" => {
                    if !matches!(value, Node::String(_) | Node::Static(StaticNode::Null)) {
                        return None;
                    }
                    sid = true;
                }
                "seq" if seq => return None,
                "seq" => {
                    out.seq = serde_json::from_str(scalar(text, at)).ok()?;
                    seq = true;
                }
                "events" if events => return None,
                "events" => {
                    let Node::Array { len, .. } = value else {
                        return None;
                    };
                    for _ in 0..len {
                        let (event, start) = w.next()?;
                        let Node::Object { len, .. } = event else {
                            return None;
                        };
                        let depth = w.depth;
                        let (kind, timestamp) = read_head(w, text, len)?;
                        let end = w.close(depth)?;
                        out.heads.push(Head {
                            kind,
                            timestamp,
                            start,
                            end,
                        });
                    }
                    events = true;
                }
                _ => w.skip_children(value),
            }
        }
        events.then_some(())
    }

    /// An event's members: `type` and `timestamp` read (by serde_json, from
    /// their text, so that they mean what they mean on the general path),
    /// the rest skipped.
    fn read_head(w: &mut Walk<'_, '_>, text: &str, len: usize) -> Option<(i64, f64)> {
        let (mut kind, mut timestamp) = (None, None);
        for _ in 0..len {
            let (Node::String(key), _) = w.next()? else {
                return None;
            };
            let (value, at) = w.next()?;
            match key {
                "type" if kind.is_some() => return None,
                "type" => kind = Some(serde_json::from_str::<i64>(scalar(text, at)).ok()?),
                "timestamp" if timestamp.is_some() => return None,
                "timestamp" => {
                    timestamp = Some(serde_json::from_str::<f64>(scalar(text, at)).ok()?)
                }
                _ => w.skip_children(value),
            }
        }
        Some((kind?, timestamp?))
    }

    /// The text of a scalar starting at `at`: up to the next delimiter.
    fn scalar(text: &str, at: usize) -> &str {
        let rest = &text[at..];
        let end = rest
            .bytes()
            .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r'))
            .unwrap_or(rest.len());
        &rest[..end]
    }
}

// ------------------------------------------------------------------- corpus

fn corpus_dir() -> PathBuf {
    // The repository: the crate's manifest is rust/Cargo.toml.
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let dir = root.join("target/json-corpus");
    if !dir.join("chunks.jsonl").exists() {
        let venv = root.join(".venv/bin/python");
        let python = if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        };
        let status = Command::new(python)
            .arg(root.join("tests/data/make_corpus.py"))
            .arg("--out")
            .arg(&dir)
            .status()
            .expect("run tests/data/make_corpus.py");
        assert!(status.success());
    }
    dir
}

fn batch(seq: usize, events: &str) -> String {
    format!(
        r#"{{"type":"events_batch","data":{{"sessionId":"bench-session","seq":{seq},"events":{events}}}}}"#
    )
}

/// (name, messages) for each workload.
fn workloads() -> Vec<(&'static str, Vec<String>)> {
    let dir = corpus_dir();
    let chunks = std::fs::read_to_string(dir.join("chunks.jsonl")).unwrap();
    let batches: Vec<String> = chunks
        .lines()
        .enumerate()
        .map(|(i, line)| batch(i, line))
        .collect();
    let snapshot = std::fs::read_to_string(dir.join("snapshot.json")).unwrap();
    let snapshots = vec![batch(0, &format!("[{snapshot}]"))];
    vec![
        ("batches of 50 events", batches),
        ("3 MB full snapshot", snapshots),
    ]
}

type ReadFn = Box<dyn FnMut(&str, &mut Read) -> Option<()>>;

/// A candidate, and whether it does the whole job (or is a reference row).
struct Candidate {
    name: &'static str,
    read: ReadFn,
    whole_job: bool,
}

fn candidates() -> Vec<Candidate> {
    let mut simd = with_simd_json::Reader::new();
    let mut tape = with_simd_json::Reader::new();
    let job = |name, read: ReadFn| Candidate {
        name,
        read,
        whole_job: true,
    };
    let reference = |name, read: ReadFn| Candidate {
        name,
        read,
        whole_job: false,
    };
    vec![
        job("serde_json (today)", Box::new(with_serde_json::read)),
        job("sonic-rs", Box::new(with_sonic_rs::read)),
        job("simd-json", Box::new(move |t, o| simd.read(t, o))),
        reference(
            "[serde_json, validate only]",
            Box::new(|t, _| serde_json::from_str::<IgnoredAny>(t).ok().map(drop)),
        ),
        reference(
            "[simd-json, tape only]",
            Box::new(move |t, _| tape.tape_only(t)),
        ),
    ]
}

#[test]
fn candidates_agree_on_the_corpus() {
    let mut cands = candidates();
    for (name, messages) in workloads() {
        for msg in &messages {
            let mut reference = Read::default();
            with_serde_json::read(msg, &mut reference).expect(name);
            assert!(!reference.heads.is_empty());
            for cand in cands.iter_mut().filter(|c| c.whole_job) {
                let mut out = Read::default();
                (cand.read)(msg, &mut out)
                    .unwrap_or_else(|| panic!("{} refused a {name}", cand.name));
                assert_eq!(out, reference, "{} on a {name}", cand.name);
            }
        }
    }
}

#[test]
#[ignore = "benchmark; run with --release --ignored --nocapture"]
fn validate_the_corpus() {
    let mut cands = candidates();
    let rounds = 7;
    println!(
        "simd-json implementation: {:?}; sonic-rs built with AVX2: {}",
        simd_json::Deserializer::algorithm(),
        cfg!(target_feature = "avx2"),
    );
    for (name, messages) in workloads() {
        let bytes: usize = messages.iter().map(String::len).sum();
        // Enough passes for ~30 MB per measurement.
        let passes = (30_000_000 / bytes).max(1);
        let mut out = Read::default();
        let mut events = 0;
        for msg in &messages {
            out.heads.clear();
            with_serde_json::read(msg, &mut out).unwrap();
            events += out.heads.len();
        }
        println!(
            "\n{name}: {} messages, {:.2} MB, {events} events; {passes} passes per round",
            messages.len(),
            bytes as f64 / 1e6
        );
        // Allocations per message, after a warm-up pass (reused buffers
        // have grown), not timed.
        let mut allocs = Vec::new();
        for cand in cands.iter_mut() {
            for msg in &messages {
                out.heads.clear();
                (cand.read)(msg, &mut out).unwrap();
            }
            let region = Region::new(GLOBAL);
            for msg in &messages {
                out.heads.clear();
                (cand.read)(msg, &mut out).unwrap();
            }
            allocs.push(region.change().allocations as f64 / messages.len() as f64);
        }
        let mut secs = vec![Vec::new(); cands.len()];
        for round in 0..rounds {
            // Interleaved, the order rotated each round.
            for k in 0..cands.len() {
                let i = (k + round) % cands.len();
                let read = &mut cands[i].read;
                let start = Instant::now();
                for _ in 0..passes {
                    for msg in &messages {
                        out.heads.clear();
                        out.seq = None;
                        read(msg, &mut out).unwrap();
                    }
                }
                secs[i].push(start.elapsed().as_secs_f64() / passes as f64);
            }
        }
        let base = &secs[0];
        for (i, cand) in cands.iter().enumerate() {
            let mut sorted = secs[i].clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[rounds / 2];
            let mut ratios: Vec<f64> = (0..rounds).map(|r| base[r] / secs[i][r]).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "  {:<28} {:6.0} MB/s {:>11.0} events/s (median of {rounds}); \
                 x today per round: min {:.2} median {:.2} max {:.2}; \
                 {:.1} allocations per message",
                cand.name,
                bytes as f64 / 1e6 / median,
                events as f64 / median,
                ratios[0],
                ratios[rounds / 2],
                ratios[rounds - 1],
                allocs[i],
            );
        }
    }
}
