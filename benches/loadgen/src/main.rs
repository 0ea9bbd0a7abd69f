//! `loadgen`: replaywire's benchmark load generator, and a discard sink.
//!
//! ```text
//! loadgen load --port P --payload FILE [--batch B] [--window W | --rate EV_PER_S]
//!              [--warmup S] [--duration S] [--grace S] [--cpu N]
//! loadgen sink --port P [--max-seconds S] [--cpu N]
//! loadgen viewers --port P --session ID --count N [--codec none|deflate|zstd]
//!                 [--max-seconds S] [--cpu N]
//! loadgen dump --payload FILE [--batch B] [--session N] [--count K]
//! ```
//!
//! `load` prints one JSON line (the result); `dump` prints the first K
//! `events_batch` messages of session N, one per line, unmasked, so a test
//! can check them against `tests/rrweb.py`. `viewers` watches session ID
//! with N live viewers and prints `joined` once all joined, then the
//! events delivered so far every 100 ms (`benches/fanout.py` reads them). `benches/loadgen.py` writes the
//! payload file and runs this binary; see there and docs/benchmarks.md.

mod frame;
mod generator;
mod handshake;
mod sink;
mod viewer;
mod viewers;
mod workload;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use generator::{Mode, Options};
use workload::Workload;

const USAGE: &str =
    "usage: loadgen load --port P --payload FILE [--batch B] [--window W | --rate R] \
[--warmup S] [--duration S] [--grace S] [--cpu N]\n       loadgen sink --port P [--max-seconds S] \
[--cpu N]\n       loadgen viewers --port P --session ID --count N \
[--codec none|deflate|zstd] [--max-seconds S] [--cpu N]\n       loadgen dump --payload FILE [--batch B] [--session N] [--count K]";

/// `--name value` pairs after the command.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(words: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let name = word
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {word:?}"))?;
            let value = words
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Args(map))
    }

    fn take<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        self.0
            .remove(name)
            .map(|v| v.parse().map_err(|_| format!("--{name}: bad value {v:?}")))
            .transpose()
    }

    fn need<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, String> {
        self.take(name)?
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn done(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(name) => Err(format!("unknown option --{name}")),
            None => Ok(()),
        }
    }
}

fn pin(cpu: Option<usize>) -> Result<(), String> {
    let Some(cpu) = cpu else {
        return Ok(());
    };
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| format!("--cpu {cpu}: {e}"))?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("--cpu {cpu}: {e}"))
}

fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{name}: bad duration {value}"))
}

fn load(mut args: Args) -> Result<(), String> {
    let port: u16 = args.need("port")?;
    let payload: PathBuf = args.need("payload")?;
    let batch: usize = args.take("batch")?.unwrap_or(50);
    let window: Option<usize> = args.take("window")?;
    let rate: Option<f64> = args.take("rate")?;
    let warmup = seconds(args.take("warmup")?.unwrap_or(2.0), "warmup")?;
    let duration = seconds(args.take("duration")?.unwrap_or(10.0), "duration")?;
    let grace = seconds(args.take("grace")?.unwrap_or(2.0), "grace")?;
    pin(args.take("cpu")?)?;
    args.done()?;
    let mode = match (window, rate) {
        (_, Some(rate)) if rate > 0.0 && rate.is_finite() => Mode::Open { rate },
        (_, Some(rate)) => return Err(format!("--rate: bad rate {rate}")),
        (Some(0), None) => return Err("--window must be at least 1".into()),
        (window, None) => Mode::Closed {
            window: window.unwrap_or(8),
        },
    };
    if duration.is_zero() {
        return Err("--duration must be above 0".into());
    }
    let workload = Workload::load(&payload, batch).map_err(|e| e.to_string())?;
    let opts = Options {
        port,
        mode,
        warmup,
        duration,
        grace,
    };
    let result = generator::run(&workload, &opts).map_err(|e| e.to_string())?;
    println!("{result}");
    Ok(())
}

fn serve_sink(mut args: Args) -> Result<(), String> {
    let port: u16 = args.need("port")?;
    let max_seconds: f64 = args.take("max-seconds")?.unwrap_or(600.0);
    pin(args.take("cpu")?)?;
    args.done()?;
    sink::serve(port, max_seconds).map_err(|e| format!("sink: {e}"))
}

fn watch(mut args: Args) -> Result<(), String> {
    let port: u16 = args.need("port")?;
    let session: String = args.need("session")?;
    let count: usize = args.need("count")?;
    let codec: String = args.take("codec")?.unwrap_or_else(|| "zstd".to_owned());
    let max_seconds = seconds(args.take("max-seconds")?.unwrap_or(600.0), "max-seconds")?;
    pin(args.take("cpu")?)?;
    args.done()?;
    if !["none", "deflate", "zstd"].contains(&codec.as_str()) {
        return Err(format!("--codec: bad codec {codec:?}"));
    }
    let opts = viewers::Options {
        port,
        session,
        count,
        codec,
        max_seconds,
    };
    viewers::run(&opts).map_err(|e| format!("viewers: {e}"))
}

fn dump(mut args: Args) -> Result<(), String> {
    let payload: PathBuf = args.need("payload")?;
    let batch: usize = args.take("batch")?.unwrap_or(50);
    let session: usize = args.take("session")?.unwrap_or(0);
    let count: u64 = args.take("count")?.unwrap_or(3);
    args.done()?;
    let workload = Workload::load(&payload, batch).map_err(|e| e.to_string())?;
    let sid = &workload
        .sessions
        .get(session)
        .ok_or_else(|| format!("--session {session}: no such session"))?
        .id_json;
    let mut stdout = std::io::stdout().lock();
    for seq in 0..count {
        let mut line = workload.batch_message(sid, seq);
        line.push(b'\n');
        stdout.write_all(&line).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = words.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let outcome = Args::parse(rest).and_then(|args| match command.as_str() {
        "load" => load(args),
        "sink" => serve_sink(args),
        "viewers" => watch(args),
        "dump" => dump(args),
        _ => Err(format!("unknown command {command:?}\n{USAGE}")),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
