//! Arbitrary bytes as one client message into `ProtocolDecoder`: it must
//! never panic, and a batch it accepts must hold exactly the input's raw
//! events. See `../protocol_harness.rs` for the input layout and the checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../protocol_harness.rs"]
mod protocol_harness;

fuzz_target!(|data: &[u8]| {
    let _ = protocol_harness::run(data);
});
