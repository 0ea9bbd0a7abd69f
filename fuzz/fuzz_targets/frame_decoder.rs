//! Arbitrary bytes, cut at arbitrary points, into `FrameDecoder`: it must
//! never panic, and how the stream is cut must never change what it
//! decodes. See `../harness.rs` for the input layout and the checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    let _ = harness::run(data);
});
