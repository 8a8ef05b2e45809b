//! Runs the generated corpus (`scripts/gen-redact-corpus.py`): every fake secret must be
//! redacted and every look-alike left byte-for-byte intact.

use ae_activities::redact::Redactor;

#[test]
fn corpus_recall_and_lookalikes() {
    let corpus = include_str!("redact_corpus.tsv");
    let red = Redactor::standard();
    let (mut secrets, mut caught, mut looks, mut intact) = (0, 0, 0, 0);
    let mut types = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (kind, typ, text) = (cols[0], cols[1], cols[2].replace('\u{23ce}', "\n"));
        let out = red.redact_str(&text);
        if kind == "secret" {
            let secret = cols[3].replace('\u{23ce}', "\n");
            secrets += 1;
            types.insert(typ);
            if !out.contains(&secret) && out.contains("[REDACTED:") {
                caught += 1;
            } else {
                failures.push(format!("missed {typ}: {text:?} -> {out:?}"));
            }
            // Streaming in small chunks gives the same result.
            let mut s = red.stream();
            let mut streamed = Vec::new();
            for chunk in text.as_bytes().chunks(7) {
                streamed.extend(s.push(chunk));
            }
            streamed.extend(s.finish());
            assert_eq!(streamed, red.redact_bytes(text.as_bytes()).0, "{text:?}");
        } else {
            looks += 1;
            if out == text {
                intact += 1;
            } else {
                failures.push(format!("mangled look-alike: {text:?} -> {out:?}"));
            }
        }
    }
    let recall = 100.0 * caught as f64 / secrets as f64;
    println!(
        "redaction corpus: recall {caught}/{secrets} ({recall:.1} %) over {} types; look-alikes intact {intact}/{looks}",
        types.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    assert!(secrets >= 300 && types.len() >= 100 && looks >= 100);
    assert!(failures.is_empty(), "{} failures", failures.len());
}

#[test]
fn rule_table_size() {
    assert!(Redactor::rule_count() >= 150, "{}", Redactor::rule_count());
    assert!(
        Redactor::rule_types().len() >= 150,
        "{}",
        Redactor::rule_types().len()
    );
}
