//! The corpus (recall and false refusals), unit cases for context-aware checks and rules
//! files, and property tests (no panic, bounded time) for the parser and analyser.

use super::*;

const CORPUS: &str = include_str!("../../tests/policy_corpus.tsv");

#[test]
fn corpus_recall_is_total_and_nothing_ordinary_is_refused() {
    let policy = Policy::standard();
    let cases = table::parse(CORPUS).expect("corpus parses");
    let (mut bad, mut bad_caught, mut ok, mut ok_refused) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for c in &cases {
        let r = table::run(&policy, c);
        if c.expect == "allow" {
            ok += 1;
        } else {
            bad += 1;
        }
        let d = match &r {
            Ok(d) | Err(d) => d,
        };
        if c.expect == "allow" && d.verdict() != "allow" {
            ok_refused += 1;
        }
        if c.expect != "allow" && d.verdict() != "allow" {
            bad_caught += 1;
        }
        if let Err(d) = r {
            failures.push(format!(
                "line {}: expected {}{} got {} {:?}: {}",
                c.line,
                c.expect,
                c.rule.as_deref().map(|r| format!(":{r}")).unwrap_or_default(),
                d.verdict(),
                d.rule,
                c.command
            ));
        }
    }
    let recall = 100.0 * bad_caught as f64 / bad as f64;
    let fr = 100.0 * ok_refused as f64 / ok as f64;
    println!(
        "policy corpus: {bad} destructive/approval cases, recall {recall:.1}%; {ok} ordinary cases, false-refusal rate {fr:.1}%; {} exact mismatches",
        failures.len()
    );
    assert!(bad >= 200 && ok >= 200, "corpus too small");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
