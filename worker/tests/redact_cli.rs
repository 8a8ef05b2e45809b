//! `ae-worker redact` and `ae-worker scan` as users run them.

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ae-worker"));
    c.env_remove("AE_REDACT_PATTERNS_FILE");
    c
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ae-redact-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_redact(c: &mut Command, input: &str) -> String {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redact_filters_stdin_with_env_file_and_custom_patterns() {
    let dir = tmpdir("redact");
    let env = dir.join("ci.env");
    std::fs::write(
        &env,
        "export DEPLOY_TOKEN=\"tok-9f8e7d6c5b4a-secret\"\nNODE_ENV=production\n",
    )
    .unwrap();
    let patterns = dir.join("patterns");
    std::fs::write(&patterns, "# ours\nACME_KEY acme_[a-z0-9]{12}\n").unwrap();
    let key = ["gh", "p_", "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4"].concat();
    let input =
        format!("push {key}\nusing tok-9f8e7d6c5b4a-secret in production\nacme_0123456789ab\n");
    let out = run_redact(
        bin()
            .args(["redact", "--env-file"])
            .arg(&env)
            .env("AE_REDACT_PATTERNS_FILE", &patterns),
        &input,
    );
    assert_eq!(
        out,
        "push [REDACTED:GITHUB_TOKEN]\nusing [REDACTED:ENV_VALUE] in production\n[REDACTED:ACME_KEY]\n"
    );
    // Without configuration: the built-in rules only.
    assert_eq!(
        run_redact(bin().arg("redact"), "plain text\n"),
        "plain text\n"
    );
}

#[test]
fn scan_prints_file_line_type_and_exits_1_on_findings() {
    let dir = tmpdir("scan");
    let secret = ["AK", "IA", "Q3EGRIXTZ5JUO7VB"].concat();
    std::fs::write(
        dir.join("clean.txt"),
        "nothing here\nPASSWORD_MIN_LENGTH=8\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("sub/leak.env"),
        format!("a=1\nAWS_ACCESS_KEY_ID={secret}\ndb_password=Xk9#mP2q7\n"),
    )
    .unwrap();
    let out = bin().arg("scan").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let leak = dir.join("sub/leak.env");
    assert_eq!(
        stdout,
        format!("{0}:2:AWS_ACCESS_KEY\n{0}:3:PASSWORD\n", leak.display())
    );
    assert!(!stdout.contains(&secret) && !stdout.contains("Xk9#"));
    let out = bin()
        .arg("scan")
        .arg(dir.join("clean.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}
