//! `ae-worker policy check|test|rules`, run as the operator would.

use std::process::Command;

fn ae_worker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ae-worker"));
    c.env_remove("AE_POLICY_FILE");
    c
}

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ae-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_prints_decision_rule_and_why() {
    let out = ae_worker()
        .args(["policy", "check", "X=rm; $X -rf /"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("decision: deny"), "{s}");
    assert!(s.contains("rule:     rm-rf-root"), "{s}");
    assert!(s.contains("why:"), "{s}");

    let out = ae_worker()
        .args([
            "policy",
            "check",
            "npx prisma migrate deploy",
            "--profile",
            "production",
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("decision: approve") && s.contains("db-migrate"),
        "{s}"
    );

    let out = ae_worker()
        .args(["policy", "check", "npm test"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("decision: allow"));
}

#[test]
fn check_reads_workspace_files() {
    let d = dir();
    let pkg = d.join("package.json");
    std::fs::write(&pkg, r#"{"scripts":{"go":"wrangler deploy"}}"#).unwrap();
    let out = ae_worker()
        .current_dir(&d)
        .args(["policy", "check", "npm run go", "--file", "package.json"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("decision: approve") && s.contains("production-deploy"),
        "{s}"
    );
}

#[test]
fn test_passes_a_good_table_and_fails_a_bad_one() {
    let d = dir();
    let good = d.join("good.tsv");
    std::fs::write(
        &good,
        "# cases\nallow\tnpm ci && npm test\ndeny:rm-rf-root\tfind / -delete\napprove@production\tvercel --prod\ndeny\tsh <<'EOF'⏎rm -rf /⏎EOF\n",
    )
    .unwrap();
    let out = ae_worker()
        .args(["policy", "test", good.to_str().unwrap()])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("4 passed, 0 failed"), "{s}");

    let bad = d.join("bad.tsv");
    std::fs::write(&bad, "allow\trm -rf /\ndeny\tls\n").unwrap();
    let out = ae_worker()
        .args(["policy", "test", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        s.contains("FAIL") && s.contains("0 passed, 2 failed"),
        "{s}"
    );

    // The repository's corpus passes through the CLI too.
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../activities/tests/policy_corpus.tsv"
    );
    let out = ae_worker()
        .args(["policy", "test", corpus])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn rules_files_change_decisions() {
    let d = dir();
    let rules = d.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"no-terraform\"\ndescription = \"terraform is not run here\"\naction = \"deny\"\npattern = 'terraform'\n",
    )
    .unwrap();
    let out = ae_worker()
        .env("AE_POLICY_FILE", &rules)
        .args(["policy", "check", "terraform plan"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("decision: deny") && s.contains("no-terraform"),
        "{s}"
    );

    let out = ae_worker()
        .args(["policy", "rules", "--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("rm-rf-root") && s.contains("no-terraform"),
        "{s}"
    );

    std::fs::write(&rules, "[[rule]]\nid = \"x\"\n").unwrap();
    let out = ae_worker()
        .args(["policy", "check", "ls", "--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
