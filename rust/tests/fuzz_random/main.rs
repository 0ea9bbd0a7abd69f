//! Randomized fuzzing in `cargo test`: the fuzz targets' properties on
//! thousands of inputs per run, where no nightly toolchain (and so no
//! coverage-guided `cargo fuzz`) is at hand, as in CI.
//!
//! Each test calls the very harness function its cargo-fuzz target calls
//! (`fuzz/*harness.rs`), so the property checked is the same: no panic on
//! any input, and the target's consistency checks. Inputs are the
//! committed seeds mutated (bytes, and the format's structure: frames and
//! their headers, JSON values and members, compressed frame headers),
//! inputs built from scratch in the format, and pure random bytes.
//! Without coverage feedback nothing is learned from run to run; every
//! run draws a new seed instead (printed with the counts of outcomes; see
//! `fuzz_random/driver.rs` for `FUZZ_SEED`, `FUZZ_ITERS`, `FUZZ_SECONDS`
//! and how a failure is reported).
//!
//! The default budget is a few seconds per target (the three run side by
//! side); CI runs the same.

#[path = "../../../fuzz/decompress_harness.rs"]
mod decompress_harness;
#[path = "../../../fuzz/engine_harness.rs"]
mod engine_harness;
#[path = "../../../fuzz/harness.rs"]
mod harness;
#[path = "../../../fuzz/protocol_harness.rs"]
mod protocol_harness;
#[path = "../../../fuzz/seeds.rs"]
mod seeds;

mod bytes;
mod compressed;
mod driver;
mod frames;
mod json;

use std::collections::BTreeMap;
use std::fs;

use _core::codec::{decompress, Codec};
use _core::ws::WsEvent;
use _core::{Error, MessageCode};
use driver::{fuzz, Rng};
use seeds::seed_paths;

/// Seconds per target unless `FUZZ_SECONDS` or `FUZZ_ITERS` says otherwise.
const DEFAULT_SECONDS: f64 = 4.0;

/// The committed `seed-*` inputs of a fuzz target.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let paths = seed_paths(target, 3);
    paths.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// A run long enough to say something also reached each of `expected`
/// outcomes: a generator that only ever makes garbage tests little.
fn assert_reached(runs: u64, outcomes: &BTreeMap<&str, u64>, expected: &[&str]) {
    if runs < 2_000 {
        return;
    }
    for label in expected {
        assert!(
            outcomes.contains_key(label),
            "no input reached {label:?} in {runs}: {outcomes:?}"
        );
    }
}

#[test]
fn frame_decoder_keeps_its_property_on_random_streams() {
    let seeds = seeds("frame_decoder");
    let others: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let parsed: Vec<frames::Stream> = seeds.iter().map(|s| frames::Stream::parse(s)).collect();
    let generate = |pool: &frames::Pool, rng: &mut Rng| {
        let mut input = match rng.below(10) {
            0 => return bytes::random_input(rng, 512),
            1..=3 => {
                let mut input = rng.pick_ref(&seeds).clone();
                bytes::havoc(rng, &mut input, &others, 4);
                return input;
            }
            4..=6 => {
                let mut stream = rng.pick_ref(&parsed).clone();
                for _ in 0..rng.range(1, 3) {
                    frames::mutate(rng, &mut stream, &parsed, pool);
                }
                stream.encode()
            }
            _ => {
                let mut stream = frames::generate(rng, pool);
                for _ in 0..rng.range(0, 2) {
                    frames::mutate(rng, &mut stream, &parsed, pool);
                }
                stream.encode()
            }
        };
        if rng.one_in(5) {
            bytes::mutate(rng, &mut input, &others);
        }
        input
    };
    let (runs, outcomes) = fuzz(
        "frame_decoder",
        DEFAULT_SECONDS,
        frames::Pool::new,
        generate,
        |input| match harness::run(input) {
            None => "empty",
            Some((events, None))
                if events.iter().any(|e| matches!(e, WsEvent::TooLarge { .. })) =>
            {
                "skipped"
            }
            Some((_, None)) => "decoded",
            Some((_, Some(Error::WebSocket { close_code, .. }))) => match close_code {
                1002 => "1002",
                1007 => "1007",
                1009 => "1009",
                _ => "other close code",
            },
            Some((_, Some(_))) => "not a WebSocket error",
        },
    );
    assert!(!outcomes.contains_key("other close code"), "{outcomes:?}");
    assert_reached(
        runs,
        &outcomes,
        &["decoded", "skipped", "1002", "1007", "1009"],
    );
}

#[test]
fn protocol_decoder_keeps_its_property_on_random_messages() {
    let seeds = seeds("protocol_decode");
    let texts: Vec<&[u8]> = seeds.iter().map(|s| &s[1..]).collect();
    let generate = |_: &(), rng: &mut Rng| {
        let settings = if rng.one_in(2) { 0x80 } else { rng.byte() };
        let text = match rng.below(10) {
            0 => return bytes::random_input(rng, 256),
            1 | 2 => {
                let mut input = rng.pick_ref(&seeds).clone();
                bytes::havoc(rng, &mut input, &texts, 4);
                return input;
            }
            3..=6 => {
                let mut text = rng.pick(&texts).to_vec();
                for _ in 0..rng.range(1, 3) {
                    json::mutate(rng, &mut text, &texts);
                }
                text
            }
            _ => {
                let mut text = json::message(rng);
                for _ in 0..rng.range(0, 2) {
                    json::mutate(rng, &mut text, &texts);
                }
                text
            }
        };
        [vec![settings], text].concat()
    };
    let (runs, outcomes) = fuzz(
        "protocol_decode",
        DEFAULT_SECONDS,
        |_| (),
        generate,
        |input| {
            match protocol_harness::run(input) {
                None => "empty",
                Some(Ok(_)) => "decoded",
                Some(Err(Error::Message { code, .. })) => match code {
                    MessageCode::InvalidMessage => "invalid_message",
                    MessageCode::InvalidEvent => "invalid_event",
                    MessageCode::UnknownMessageType => "unknown_message_type",
                    MessageCode::NotAllowed => "not_allowed",
                    MessageCode::PayloadTooLarge => "payload_too_large",
                    MessageCode::UnknownSession => "unknown_session",
                },
                // The harness already fails on these.
                Some(Err(_)) => "not a message error",
            }
        },
    );
    let expected = [
        "decoded",
        "invalid_message",
        "invalid_event",
        "unknown_message_type",
        "payload_too_large",
    ];
    assert_reached(runs, &outcomes, &expected);
}

#[test]
fn decompress_keeps_its_property_on_random_data() {
    let seeds = seeds("decompress");
    let others: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let generate = |pool: &compressed::Pool, rng: &mut Rng| {
        let mut input = match rng.below(10) {
            0 => return bytes::random_input(rng, 512),
            1..=3 => rng.pick_ref(&seeds).clone(),
            _ => compressed::generate(pool, rng),
        };
        match rng.below(4) {
            0 => {}
            1 => compressed::mutate_zstd_header(rng, &mut input),
            _ => bytes::havoc(rng, &mut input, &others, 3),
        }
        input
    };
    let (runs, outcomes) = fuzz(
        "decompress",
        DEFAULT_SECONDS,
        compressed::Pool::new,
        generate,
        |input| match decompress_harness::run(input) {
            None => "empty",
            Some(Ok(_)) => "decompressed",
            Some(Err(Error::TooLarge { .. })) => "too large",
            Some(Err(Error::WindowTooLarge { .. })) => "window too large",
            Some(Err(Error::Corrupt { .. })) => "corrupt",
            Some(Err(_)) => "other error",
        },
    );
    assert_reached(runs, &outcomes, &["decompressed", "too large", "corrupt"]);
}

#[test]
fn tracker_engine_keeps_its_invariants_on_random_scripts() {
    let seeds = engine_harness::seeds();
    let others: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let generate = |_: &(), rng: &mut Rng| {
        if rng.one_in(2) {
            // The harness reads any bytes as a script.
            return bytes::random_input(rng, 400);
        }
        let mut input = rng.pick_ref(&seeds).clone();
        bytes::havoc(rng, &mut input, &others, 4);
        input
    };
    let (runs, outcomes) = fuzz(
        "engine_feed",
        DEFAULT_SECONDS,
        |_| (),
        generate,
        |input| match engine_harness::run(input) {
            None => "empty",
            Some(s) if s.closed => "closed",
            Some(s) if s.backpressure > 0 => "backpressure",
            Some(s) if s.ends > 0 => "ended",
            Some(s) if s.chunks > 0 => "stored",
            Some(s) if s.acks > 0 => "acked",
            Some(_) => "refused",
        },
    );
    assert_reached(
        runs,
        &outcomes,
        &["closed", "backpressure", "ended", "stored"],
    );
}
