//! A structure-aware script of tracker messages (starts, batches, ends,
//! garbage, fragmented and compressed frames) fed in pieces to
//! `TrackerEngine::feed`: it must never panic and must keep its
//! invariants. See `../engine_harness.rs` for the script and the checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

// `seeds()` is for the cargo tests that replay the corpus.
#[allow(dead_code)]
#[path = "../engine_harness.rs"]
mod engine_harness;

fuzz_target!(|data: &[u8]| {
    let _ = engine_harness::run(data);
});
