//! Arbitrary bytes into `codec::decompress` for each codec under a small
//! `max_size`: it must never panic nor return (or hold) more than the
//! limit, and a larger limit must agree with it. See
//! `../decompress_harness.rs` for the input layout and the checks.

#![no_main]

use _core::codec::{decompress, Codec};
use _core::Error;
use libfuzzer_sys::fuzz_target;

#[path = "../decompress_harness.rs"]
mod decompress_harness;

fuzz_target!(|data: &[u8]| {
    let _ = decompress_harness::run(data);
});
