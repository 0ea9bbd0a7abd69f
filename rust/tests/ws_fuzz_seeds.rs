//! Replays every committed seed of the `frame_decoder` fuzz target through
//! the same property the fuzzer checks (whole, byte-by-byte and chunked
//! decoding agree; events obey the rules). Seeds are valid streams, so each
//! must also decode without error.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::fs;
use std::path::Path;

#[test]
fn every_seed_decodes_the_same_however_it_is_split() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame_decoder");
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
        seeds.len() >= 3,
        "expected the committed seeds in {}",
        dir.display()
    );
    for path in seeds {
        let input = fs::read(&path).unwrap();
        let (events, error) = harness::run(&input).expect("seed is empty");
        assert_eq!(error, None, "{}", path.display());
        assert!(!events.is_empty(), "{} decodes to nothing", path.display());
    }
}
