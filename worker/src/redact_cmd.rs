//! `ae-worker redact` and `ae-worker scan`: the worker's own redaction engine as command-line
//! tools, to scrub CI logs and to check files before they are shipped.
//!
//! Both use the built-in rules plus the custom patterns of `AE_REDACT_PATTERNS_FILE`. `scan`
//! is the same engine as the pre-deploy scan and never prints a secret, only where and what.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ae_activities::redact::Redactor;
use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct RedactArgs {
    /// An env file (`NAME=VALUE` lines, `export` and quotes allowed) whose values are redacted
    /// too, with their encoded forms, unless obviously not secret.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScanArgs {
    /// Files or directories (scanned recursively, `.git` skipped).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn redactor() -> anyhow::Result<Redactor> {
    Redactor::configured().map_err(anyhow::Error::msg)
}

/// `NAME=VALUE` pairs of an env file.
fn env_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// Reads stdin, writes it redacted to stdout as it streams.
pub fn redact(args: RedactArgs) -> anyhow::Result<()> {
    let mut red = redactor()?;
    if let Some(path) = &args.env_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        red = red.with_env(env_pairs(&text));
    }
    let mut stream = red.stream();
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading stdin"),
        };
        output.write_all(&stream.push(&buf[..n]))?;
    }
    output.write_all(&stream.finish())?;
    output.flush()?;
    Ok(())
}

fn walk(path: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        if path.file_name().is_some_and(|n| n == ".git") {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, files)?;
        }
    } else if meta.is_file() {
        files.push(path.to_path_buf());
    }
    Ok(())
}

/// Prints `file:line:type` per finding; `Ok(true)` when there was any.
pub fn scan(args: ScanArgs) -> anyhow::Result<bool> {
    let red = redactor()?;
    let mut files = Vec::new();
    for p in &args.paths {
        walk(p, &mut files)?;
    }
    let mut out = std::io::stdout().lock();
    let mut any = false;
    for f in files {
        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        for finding in red.scan_bytes(&bytes) {
            any = true;
            writeln!(
                out,
                "{}:{}:{}",
                f.display(),
                finding.line,
                finding.type_name
            )?;
        }
    }
    out.flush()?;
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let pairs = env_pairs("# c\nexport A=\"x y\"\nB='z'\nC=plain\n\nnot a pair\n");
        assert_eq!(
            pairs,
            [("A", "x y"), ("B", "z"), ("C", "plain")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
}
