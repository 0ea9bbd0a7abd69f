//! `--version` prints the versions this binary was built with, as JSON: the
//! compiler's and those of the crates that do the work, read from Cargo.lock.

use std::process::Command;

const CRATES: [&str; 4] = ["tokio", "tokio-tungstenite", "tungstenite", "serde_json"];

fn main() {
    println!("cargo::rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut fields = Vec::new();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Ok(out) = Command::new(rustc).arg("--version").output() {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(version) = text.split_whitespace().nth(1) {
            fields.push(format!(r#""rustc":"{version}""#));
        }
    }
    for name in CRATES {
        let mut lines = lock.lines();
        while let Some(line) = lines.next() {
            if line == format!(r#"name = "{name}""#) {
                if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                    fields.push(format!(r#""{name}":{version}"#));
                }
                break;
            }
        }
    }
    println!("cargo::rustc-env=PEER_VERSIONS={{{}}}", fields.join(","));
}
