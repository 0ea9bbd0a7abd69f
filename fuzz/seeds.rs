//! The committed `seed-*` inputs of a fuzz target, for the tests that
//! replay them (`rust/tests/fuzz_seeds.rs`) and mutate them
//! (`rust/tests/fuzz_random/`).

use std::fs;
use std::path::{Path, PathBuf};

/// The `fuzz/corpus/<target>/seed-*` files, sorted; at least `min` of them.
pub fn seed_paths(target: &str, min: usize) -> Vec<PathBuf> {
    // The includers are the tests of rust/Cargo.toml.
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus")).join(target);
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        })
        .collect();
    paths.sort();
    assert!(
        paths.len() >= min,
        "expected the committed seeds in {}",
        dir.display()
    );
    paths
}
