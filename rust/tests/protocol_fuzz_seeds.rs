//! Replays every committed seed of the `protocol_decode` fuzz target through
//! the property the fuzzer checks. Seeds named `seed-invalid-*` must be
//! refused with a message error, every other seed must decode.

#[path = "../../fuzz/protocol_harness.rs"]
mod protocol_harness;

use std::fs;
use std::path::Path;

#[test]
fn every_seed_keeps_the_property() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/protocol_decode");
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 10,
        "expected the committed seeds in {}",
        dir.display()
    );
    for path in seeds {
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
fn truncations_and_bit_flips_of_seeds_keep_the_property() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/protocol_decode");
    for entry in fs::read_dir(&dir).unwrap() {
        let seed = fs::read(entry.unwrap().path()).unwrap();
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
