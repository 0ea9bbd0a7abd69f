//! Decoding throughput of the hot path (ignored by default; run in release):
//!
//! ```text
//! cargo test --release --test ws_throughput -- --ignored --nocapture
//! ```
//!
//! 1000 masked 12 KiB text frames (JSON-like ASCII), fed as 64 KiB reads.

mod ws_common;

use std::time::Instant;

use _core::ws::FrameDecoder;
use ws_common::*;

#[test]
#[ignore = "benchmark; run with --release --ignored --nocapture"]
fn decode_1000_masked_12k_text_frames_in_64k_reads() {
    let payload: Vec<u8> = br#"{"type":3,"data":{"source":1,"positions":[{"x":12,"y":34,"id":56,"timeOffset":-78}]},"timestamp":1700000000000},"#
        .iter()
        .copied()
        .cycle()
        .take(12 * 1024)
        .collect();
    let frame = client(1, &payload, true);
    let stream = frame.repeat(1000);
    let rounds = 50;
    let mut best = f64::INFINITY;
    let mut events = Vec::new();
    for _ in 0..rounds {
        let mut dec = FrameDecoder::new(cfg());
        let start = Instant::now();
        let mut n = 0;
        for chunk in stream.chunks(64 * 1024) {
            dec.feed(chunk, &mut events).unwrap();
            n += events.len();
            events.clear();
        }
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(n, 1000);
    }
    let mb = stream.len() as f64 / 1e6;
    println!(
        "{:.1} MB in {:.2} ms (best of {rounds}): {:.0} MB/s, {:.0} frames/s",
        mb,
        best * 1e3,
        mb / best,
        1000.0 / best
    );
}
