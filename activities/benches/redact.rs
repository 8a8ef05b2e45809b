//! Redaction throughput on one core: `cargo bench -p ae-activities --bench redact`.
//!
//! Prints MiB/s for a 64 MiB build log without secrets and for 64 MiB of key=value-dense text
//! (an env dump where about one line in eight holds a secret), for the current engine (one-shot
//! and streamed in 64 KiB chunks) beside the engine before issue 11 (`old_redact.rs`), in the
//! same run. `REDACT_BENCH_MIB` changes the size; `REDACT_BENCH_ONLY=build|dense` runs one input
//! and `REDACT_BENCH_NEW_ONLY=1` skips the stream and the old engine (for profiling).
//! `AE_REDACT_SCALAR=1` measures the scalar keyword filter on a CPU that has the vector one.
//!
//! `REDACT_BENCH_HOSTILE=1` instead probes for inputs that are slow or grow worse than linearly:
//! every built-in keyword, alone and with a separator after it, repeated to 64 KiB; it prints
//! the slowest units and how their time grows for 4x the input (about 4 is linear).

mod old_redact;

use std::time::Instant;

use ae_activities::redact::Redactor;

/// Deterministic pseudo-random numbers (xorshift), so every run measures the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn word<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len())]
    }
    fn alnum(&mut self, n: usize) -> String {
        const C: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| C[self.below(C.len())] as char).collect()
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| b"0123456789abcdef"[self.below(16)] as char)
            .collect()
    }
}

const CRATES: &[&str] = &[
    "serde",
    "tokio",
    "regex",
    "hyper",
    "tracing",
    "futures-util",
    "bytes",
    "mio",
    "libc",
    "rand",
    "syn",
    "quote",
    "proc-macro2",
    "aho-corasick",
    "memchr",
    "clap",
    "anyhow",
    "thiserror",
];
const PATHS: &[&str] = &[
    "src/main.rs",
    "src/lib.rs",
    "src/config/mod.rs",
    "packages/web/src/index.tsx",
    "node_modules/.pnpm/react-dom@18.2.0/node_modules/react-dom/index.js",
    "tests/e2e/login.spec.ts",
];

fn build_log(bytes: usize) -> String {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = String::with_capacity(bytes + 256);
    while s.len() < bytes {
        let line = match r.below(8) {
            0 => format!(
                "   Compiling {} v{}.{}.{}\n",
                r.word(CRATES),
                r.below(3),
                r.below(40),
                r.below(20)
            ),
            1 => format!(
                "[{:02}:{:02}:{:02}] webpack: built {} in {} ms, chunk {} ({} KiB)\n",
                r.below(24),
                r.below(60),
                r.below(60),
                r.word(PATHS),
                r.below(5000),
                r.hex(8),
                r.below(900)
            ),
            2 => format!(
                "npm WARN deprecated {}@{}.{}.{}: this version is no longer supported\n",
                r.word(CRATES),
                r.below(9),
                r.below(9),
                r.below(9)
            ),
            3 => format!(
                "Step {}/{} : RUN cargo build --release --locked && strip target/release/app\n",
                r.below(20),
                20
            ),
            4 => format!(
                " ---> {}\nRemoving intermediate container {}\n",
                r.hex(12),
                r.hex(12)
            ),
            5 => format!(
                "test {}::tests::it_handles_case_{} ... ok\n",
                r.word(CRATES).replace('-', "_"),
                r.below(500)
            ),
            6 => format!(
                "warning: unused variable: `value` --> {}:{}:{}\n",
                r.word(PATHS),
                r.below(900),
                r.below(80)
            ),
            _ => format!(
                "2026-11-24T07:{:02}:{:02}.{:03}Z INFO request completed status=200 duration_ms={} path=/api/v1/items/{}\n",
                r.below(60),
                r.below(60),
                r.below(1000),
                r.below(400),
                r.below(100_000)
            ),
        };
        s.push_str(&line);
    }
    s
}

fn key_value(bytes: usize) -> String {
    let mut r = Rng(0xD1B5_4A32_D192_ED03);
    const KEYS: &[&str] = &[
        "DB_HOST",
        "DB_PORT",
        "APP_ENV",
        "LOG_LEVEL",
        "FEATURE_FLAG_NEW_UI",
        "API_TIMEOUT_MS",
        "CACHE_TTL",
        "REGION",
        "WORKERS",
        "MAX_CONNECTIONS",
        "PASSWORD_MIN_LENGTH",
        "TOKEN_TTL",
        "SERVICE_NAME",
        "HOME",
        "PATH",
        "LANG",
        "KEY_SIZE",
        "SESSION_COOKIE_NAME",
    ];
    let mut s = String::with_capacity(bytes + 256);
    while s.len() < bytes {
        let line = match r.below(8) {
            0 => match r.below(4) {
                0 => format!("DB_PASSWORD={}\n", r.alnum(16)),
                1 => format!("API_TOKEN={}\n", r.alnum(32)),
                2 => format!("GITHUB_TOKEN=ghp_{}\n", r.alnum(36)),
                _ => format!("client_secret: \"{}\"\n", r.alnum(40)),
            },
            _ => {
                let k = r.word(KEYS);
                let v = match r.below(4) {
                    0 => r.below(100_000).to_string(),
                    1 => ["true", "false", "production", "debug", "eu-west-1"][r.below(5)].into(),
                    2 => format!("/srv/{}/{}", r.word(CRATES), r.below(100)),
                    _ => format!("{}.internal", r.word(CRATES)),
                };
                format!("{k}={v}\n")
            }
        };
        s.push_str(&line);
    }
    s
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`), if readable.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// MiB/s by wall time and by the thread's CPU time (`wall/cpu`): on a shared machine the
/// thread waits for a core, and only the CPU figure says what one core does.
struct Rate(f64, Option<f64>);

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.1 {
            Some(cpu) => format!("{:.0}/{cpu:.0}", self.0),
            None => format!("{:.0}", self.0),
        };
        f.pad(&s)
    }
}

fn mib_s(bytes: usize, f: impl FnOnce() -> usize) -> (Rate, usize) {
    let mib = bytes as f64 / (1 << 20) as f64;
    let (t, c) = (Instant::now(), cpu_ns());
    let n = f();
    let secs = t.elapsed().as_secs_f64();
    let cpu = c.zip(cpu_ns()).map(|(a, b)| mib / ((b - a) as f64 / 1e9));
    (Rate(mib / secs, cpu), n)
}

/// Every keyword with each suffix, repeated to 64 KiB; the slowest also to 256 KiB (past the
/// engine's rescan slack, so the growth says whether time is linear).
fn hostile(red: &Redactor) {
    const SUFFIXES: &[&str] = &[
        "", "-", "_", "=", ":", "a", "0", "/", ".", "@", " ", "\"", ": ", "=\"",
    ];
    let time = |unit: &str, kib: usize| {
        let text = unit.repeat((kib << 10) / unit.len());
        let start = Instant::now();
        std::hint::black_box(red.redact(&text));
        start.elapsed().as_secs_f64()
    };
    let mut rows = Vec::new();
    // Lines whose rules match to the end of the line, and multi-line blocks.
    for unit in [
        "Authorization: Bearer /",
        "Authorization: Basic /",
        "authorization=token ",
        "-----BEGIN PRIVATE KEY-----\n",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
    ] {
        rows.push((time(unit, 64), unit.to_string()));
    }
    for kw in Redactor::keywords() {
        for suffix in SUFFIXES {
            let unit = format!("{kw}{suffix}");
            rows.push((time(&unit, 64), unit));
        }
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total: f64 = rows.iter().map(|r| r.0).sum();
    println!(
        "hostile units: {} (every keyword x {} suffixes, and 5 lines) repeated to 64 KiB, one-shot: {:.0} MiB/s overall",
        rows.len(),
        SUFFIXES.len(),
        rows.len() as f64 / 16.0 / total
    );
    println!(
        "{:<36} {:>10} {:>10} {:>12}",
        "slowest units", "64 KiB ms", "MiB/s", "256 KiB / 64"
    );
    for (t, unit) in rows.iter().take(12) {
        let growth = time(unit, 256) / t;
        println!(
            "{:<36} {:>10.2} {:>10.0} {:>12.1}",
            format!("{unit:?}"),
            t * 1e3,
            1.0 / 16.0 / t,
            growth
        );
    }
}

fn main() {
    let mib: usize = std::env::var("REDACT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let size = mib << 20;
    let new = Redactor::standard();
    if std::env::var_os("REDACT_BENCH_HOSTILE").is_some() {
        hostile(&new);
        return;
    }
    let old = old_redact::Redactor::standard();
    // Compile the rules before timing.
    let _ = new.redact("warm up");
    let _ = old.redact("warm up");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "redaction throughput, one core, {mib} MiB inputs, {} built-in rules, {} keyword filter, load {}",
        Redactor::rule_count(),
        Redactor::keyword_stage(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("MiB/s as wall/cpu: by wall time / by this thread's CPU time");
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>11}",
        "input", "new MiB/s", "stream MiB/s", "old MiB/s", "redactions"
    );
    let only = std::env::var("REDACT_BENCH_ONLY").unwrap_or_default();
    let new_only = std::env::var_os("REDACT_BENCH_NEW_ONLY").is_some();
    for (key, name, gen_text) in [
        (
            "build",
            "build log, no secrets",
            build_log as fn(usize) -> String,
        ),
        ("dense", "key=value-dense (1 in 8 secret)", key_value),
    ] {
        if !only.is_empty() && only != key {
            continue;
        }
        let text = gen_text(size);
        let (new_rate, n) = mib_s(text.len(), || new.redact(&text).1);
        if new_only {
            println!("{name:<34} {new_rate:>12} {:>12} {:>12} {n:>11}", "-", "-");
            continue;
        }
        let (stream_rate, _) = mib_s(text.len(), || {
            let mut s = new.stream();
            let mut total = 0;
            for chunk in text.as_bytes().chunks(64 << 10) {
                total += s.push(chunk).len();
            }
            total + s.finish().len()
        });
        let (old_rate, old_n) = mib_s(text.len(), || old.redact(&text).1);
        println!(
            "{name:<34} {new_rate:>12} {stream_rate:>12} {old_rate:>12} {:>11}",
            format!("{n} / {old_n}")
        );
    }
}
