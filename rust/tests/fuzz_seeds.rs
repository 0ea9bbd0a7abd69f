//! Replays every committed fuzz seed through the property its fuzz target
//! checks, so the seeds guard every `cargo test`, not only fuzzing runs.
//!
//! - `frame_decoder`: whole, byte-by-byte and chunked decoding agree and the
//!   events obey the rules; seeds named `seed-invalid-*` end in an error
//!   (after the events before it, if any), every other seed decodes to at
//!   least one event without one.
//!   Truncated and bit-flipped seeds must keep the property too (that is
//!   where inflating goes wrong: corrupt DEFLATE data, flipped RSV bits).
//! - `protocol_decode`: seeds named `seed-invalid-*` are refused with a
//!   message error, every other seed decodes.
//! - `decompress`: the seeds reach success, the size limit and invalid data;
//!   their truncations, bit flips and every codec/limit setting keep the
//!   property.

#[path = "../../fuzz/decompress_harness.rs"]
mod decompress_harness;
#[path = "../../fuzz/engine_harness.rs"]
mod engine_harness;
#[path = "../../fuzz/harness.rs"]
mod harness;
#[path = "../../fuzz/protocol_harness.rs"]
mod protocol_harness;
#[path = "../../fuzz/seeds.rs"]
mod seeds;

use _core::codec::{decompress, Codec};
use _core::Error;
use std::fs;
use std::path::PathBuf;

/// The committed `seed-*` files of a fuzz target, sorted; at least `min`.
fn seeds(target: &str, min: usize) -> Vec<PathBuf> {
    seeds::seed_paths(target, min)
}

#[test]
fn frame_seeds_decode_the_same_however_they_are_split() {
    for path in seeds("frame_decoder", 3) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let input = fs::read(&path).unwrap();
        let (events, error) = harness::run(&input).expect("seed is empty");
        if name.starts_with("seed-invalid-") {
            assert!(error.is_some(), "{name} decoded: {events:?}");
        } else {
            assert_eq!(error, None, "{name}");
            assert!(!events.is_empty(), "{name} decodes to nothing");
        }
    }
}

#[test]
fn truncations_and_bit_flips_of_frame_seeds_keep_the_property() {
    for path in seeds("frame_decoder", 3) {
        let seed = fs::read(path).unwrap();
        // Every cut and flip of short seeds; a sample of longer ones, so
        // that this stays a second or two in a debug build.
        let step = (seed.len() / 300).max(1);
        for cut in (1..seed.len()).step_by(step) {
            harness::run(&seed[..cut]);
        }
        for at in (1..seed.len()).step_by(step) {
            for bit in [0x01, 0x40, 0x80] {
                let mut mutated = seed.clone();
                mutated[at] ^= bit;
                harness::run(&mutated);
            }
        }
    }
}

#[test]
fn protocol_seeds_keep_the_property() {
    for path in seeds("protocol_decode", 10) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = protocol_harness::run(&fs::read(&path).unwrap()).expect("seed is empty");
        if name.starts_with("seed-invalid-") {
            assert!(outcome.is_err(), "{name} decoded: {outcome:?}");
        } else {
            assert!(outcome.is_ok(), "{name}: {outcome:?}");
        }
    }
}

#[test]
fn truncations_and_bit_flips_of_protocol_seeds_keep_the_property() {
    for path in seeds("protocol_decode", 10) {
        let seed = fs::read(path).unwrap();
        for cut in 1..seed.len() {
            protocol_harness::run(&seed[..cut]);
        }
        for at in 1..seed.len() {
            for bit in [0x01, 0x20, 0x80] {
                let mut mutated = seed.clone();
                mutated[at] ^= bit;
                protocol_harness::run(&mutated);
            }
        }
    }
}

/// Every committed `fuzz/corpus/decompress/seed-*`, then its truncations
/// and bit flips, through the fuzz target's property.
#[test]
fn decompress_seeds_keep_the_property() {
    let mut outcomes = [0usize; 3];
    for path in seeds("decompress", 4) {
        let seed = fs::read(&path).unwrap();
        let outcome = decompress_harness::run(&seed).expect("empty seed");
        outcomes[match outcome {
            Ok(_) => 0,
            Err(e) if e.codec_code() == Some("payload_too_large") => 1,
            Err(_) => 2,
        }] += 1;
        for cut in 1..seed.len() {
            decompress_harness::run(&seed[..cut]);
        }
        for at in 1..seed.len() {
            for bit in [0x01, 0x10, 0x80] {
                let mut mutated = seed.clone();
                mutated[at] ^= bit;
                decompress_harness::run(&mutated);
            }
        }
        // Every codec and limit on the same data.
        for settings in 0..12 {
            let mut other = seed.clone();
            other[0] = settings;
            decompress_harness::run(&other);
        }
    }
    // The seeds reach success, the limit and invalid data.
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
}

/// `engine_feed`: the harness's own seed scripts (built in code) reach
/// acks, errors, stored chunks, starts, ends and backpressure; their
/// truncations and bit flips keep the property.
#[test]
fn engine_seeds_keep_the_property() {
    let mut total = engine_harness::Summary::default();
    for seed in engine_harness::seeds() {
        let summary = engine_harness::run(&seed).expect("empty seed");
        total.acks += summary.acks;
        total.errors += summary.errors;
        total.chunks += summary.chunks;
        total.starts += summary.starts;
        total.ends += summary.ends;
        total.backpressure += summary.backpressure;
        total.closed |= summary.closed;
        for cut in 1..seed.len() {
            engine_harness::run(&seed[..cut]);
        }
        for at in 0..seed.len() {
            for bit in [0x01, 0x10, 0x80] {
                let mut mutated = seed.clone();
                mutated[at] ^= bit;
                engine_harness::run(&mutated);
            }
        }
    }
    assert!(
        total.acks > 0 && total.errors > 0 && total.chunks > 0 && total.ends > 0,
        "{total:?}"
    );
    assert!(total.backpressure > 0 && total.closed, "{total:?}");
}
