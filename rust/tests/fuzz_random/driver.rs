//! The loop behind every randomized fuzz test: a budget, a generator, the
//! fuzz target's own property, and a report that makes a failure
//! reproducible.
//!
//! Iteration `i` of a run draws its input from its own generator, seeded by
//! `FUZZ_SEED`, the target's name and `i` alone, so the same seed replays
//! the same inputs whatever the time budget let run before. A panic in the
//! property is caught, the input shrunk (bytes dropped while the panic
//! stays at the same place), and the test fails with the seed, the
//! iteration, both inputs in hex and where they were written.
//!
//! Knobs (environment):
//! - `FUZZ_SEED`: the run's seed, decimal or `0x` hex; random when unset,
//!   and printed either way.
//! - `FUZZ_ITERS`: run exactly this many inputs per target (no time limit
//!   unless `FUZZ_SECONDS` is set too).
//! - `FUZZ_SECONDS`: time budget per target; the default keeps the
//!   additions to `cargo test` to a few seconds each.
//! - `FUZZ_DUMP`: a folder to write every input to (`DIR/TARGET/N`), to
//!   measure what they cover with a cargo-fuzz build
//!   (`fuzz/target/…/release/TARGET -runs=0 DIR/TARGET`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

/// SplitMix64: tiny, fast, and good enough to drive mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True once in `n` draws on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A size up to `max`, small ones far likelier (log-uniform).
    pub fn size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros();
        let cap = 1usize.checked_shl(self.below(bits as usize + 1) as u32);
        self.below(cap.unwrap_or(usize::MAX).min(max) + 1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// How long and from which seed a target runs; see the module docs.
struct Budget {
    seed: u64,
    iters: Option<u64>,
    time: Option<Duration>,
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

impl Budget {
    fn from_env(default_seconds: f64) -> Self {
        let seed = env_number("FUZZ_SEED").unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut rng = Rng::new(nanos ^ u64::from(std::process::id()) << 32);
            rng.next_u64() >> 16 // short enough to retype
        });
        let seconds = std::env::var("FUZZ_SECONDS").ok().map(|s| {
            s.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("FUZZ_SECONDS={s:?} is not a number"))
        });
        let iters = env_number("FUZZ_ITERS");
        let seconds = match (iters, seconds) {
            (_, Some(s)) => Some(s),
            (Some(_), None) => None,
            (None, None) => Some(default_seconds),
        };
        Budget {
            seed,
            iters,
            time: seconds.map(Duration::from_secs_f64),
        }
    }
}

/// The seed of one iteration: FNV-1a of the target's name, mixed with the
/// run's seed and the iteration number.
fn iteration_seed(seed: u64, target: &str, i: u64) -> u64 {
    let name = target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Rng::new(seed ^ name ^ i.wrapping_mul(0xa076_1d64_78bd_642f)).next_u64()
}

/// Where and why the property panicked.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Failure {
    location: String,
    message: String,
}

thread_local! {
    /// Set while an input runs: the hook records the panic here instead of
    /// printing it (other tests' threads keep the default hook's output).
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<Failure>> = const { RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                return default(info);
            }
            let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".to_owned()
            };
            let location = info
                .location()
                .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
            CAUGHT.with(|c| *c.borrow_mut() = Some(Failure { location, message }));
        }));
    });
}

/// Runs the property on `input`: its outcome label, or how it panicked.
fn check<F: Fn(&[u8]) -> &'static str>(
    property: &F,
    input: &[u8],
) -> Result<&'static str, Failure> {
    CATCHING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| property(input)));
    CATCHING.with(|c| c.set(false));
    result.map_err(|_| {
        CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or(Failure {
            location: String::new(),
            message: "(panic not recorded)".to_owned(),
        })
    })
}

/// Drops byte ranges of `input` (never its settings byte) for as long as
/// the property still panics at the same place, within a bounded effort.
fn shrink<F: Fn(&[u8]) -> &'static str>(property: &F, input: &[u8], failure: &Failure) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut best = input.to_vec();
    let mut chunk = best.len() / 2;
    while chunk >= 1 && Instant::now() < deadline {
        let mut at = 1;
        while at + chunk <= best.len() && Instant::now() < deadline {
            let candidate = [&best[..at], &best[at + chunk..]].concat();
            match check(property, &candidate) {
                Err(f) if f.location == failure.location => best = candidate,
                _ => at += chunk,
            }
        }
        chunk /= 2;
    }
    best
}

pub fn hex(data: &[u8], max: usize) -> String {
    let mut out = String::new();
    for b in data.iter().take(max) {
        let _ = write!(out, "{b:02x}");
    }
    if data.len() > max {
        let _ = write!(out, "... ({} bytes)", data.len());
    }
    out
}

/// Writes a failing input for `cargo fuzz run TARGET FILE` or to commit as
/// a `seed-regress-*`; returns its path.
fn save(target: &str, name: &str, data: &[u8]) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz_random");
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{target}-{name}"));
    std::fs::write(&path, data).ok()?;
    Some(path)
}

/// Runs `property` (the fuzz target's harness, answering a label for the
/// kind of outcome) on inputs from `generate` until the budget is spent.
/// `prepare` makes, once per run and from the run's seed, what `generate`
/// draws from (compressing is slow in a debug build: compressed messages
/// are made there, not per input). Prints the seed, then the counts of
/// outcomes; panics with a report on a failure. Returns how many inputs ran and the count
/// of each outcome.
pub fn fuzz<P, G, F, C>(
    target: &str,
    default_seconds: f64,
    prepare: P,
    generate: G,
    property: F,
) -> (u64, BTreeMap<&'static str, u64>)
where
    P: FnOnce(&mut Rng) -> C,
    G: Fn(&C, &mut Rng) -> Vec<u8>,
    F: Fn(&[u8]) -> &'static str,
{
    install_hook();
    let budget = Budget::from_env(default_seconds);
    // Straight to stderr, as libtest captures `eprintln!` of passing tests:
    // a CI log shows the seed even if the process dies (a stack overflow
    // aborts, it does not unwind).
    let _ = writeln!(
        std::io::stderr(),
        "fuzz_random {target}: FUZZ_SEED={:#x}",
        budget.seed
    );
    let start = Instant::now();
    let pool = prepare(&mut Rng::new(iteration_seed(budget.seed, target, u64::MAX)));
    let dump = std::env::var_os("FUZZ_DUMP").map(|dir| PathBuf::from(dir).join(target));
    if let Some(dir) = &dump {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    let mut outcomes = BTreeMap::new();
    let mut i = 0u64;
    while budget.iters.is_none_or(|n| i < n) && budget.time.is_none_or(|t| start.elapsed() < t) {
        let input = generate(&pool, &mut Rng::new(iteration_seed(budget.seed, target, i)));
        if let Some(dir) = &dump {
            let _ = std::fs::write(dir.join(i.to_string()), &input);
        }
        match check(&property, &input) {
            Ok(label) => *outcomes.entry(label).or_insert(0) += 1,
            Err(failure) => report(target, &budget, i, &input, &failure, &property),
        }
        i += 1;
    }
    let counts: Vec<String> = outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz_random {target}: {i} inputs in {:.1}s ({})",
        start.elapsed().as_secs_f64(),
        counts.join(", ")
    );
    (i, outcomes)
}

fn report<F: Fn(&[u8]) -> &'static str>(
    target: &str,
    budget: &Budget,
    i: u64,
    input: &[u8],
    failure: &Failure,
    property: &F,
) -> ! {
    let small = shrink(property, input, failure);
    let name = format!("{:x}-{i}", budget.seed);
    let saved = save(target, &name, input);
    let saved_small = save(target, &format!("{name}-min"), &small);
    let shown =
        |p: Option<PathBuf>| p.map_or("(not saved)".to_owned(), |p| p.display().to_string());
    panic!(
        "{target}: the property failed on input {i} of FUZZ_SEED={seed:#x}\n\
         panicked at {loc}: {msg}\n\
         input ({n} bytes): {input_hex}\n  saved as {saved}\n\
         shrunk ({m} bytes): {small_hex}\n  saved as {saved_small}\n\
         replay: FUZZ_SEED={seed:#x} FUZZ_ITERS={next} cargo test --test fuzz_random {target}\n\
         or: RUSTC_BOOTSTRAP=1 cargo fuzz run {target} <saved file>",
        seed = budget.seed,
        loc = failure.location,
        msg = failure.message,
        n = input.len(),
        input_hex = hex(input, 256),
        saved = shown(saved),
        m = small.len(),
        small_hex = hex(&small, 256),
        saved_small = shown(saved_small),
        next = i + 1,
    );
}
