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

/// The whole corpus as one large text (hundreds of KiB, so the engine runs its rules over the
/// windows found so far many times, and the keyword pass hands hits on across many blocks) is
/// redacted exactly as its lines are one by one.
#[test]
fn a_large_text_is_redacted_as_its_lines_are() {
    let red = Redactor::standard();
    let lines: Vec<String> = include_str!("redact_corpus.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').nth(2).unwrap_or_default().to_string())
        // Key blocks span lines; every other rule stays within its line.
        .filter(|t| !t.contains('\u{23ce}'))
        .collect();
    let filler = "   Compiling serde v1.0.200 (path=/srv/app) key size ok\n";
    let (mut whole, mut expected, mut markers) = (String::new(), String::new(), 0);
    let mut k = 0;
    while whole.len() < 600 << 10 {
        // Lines of filler between secrets, a different number each time, so secrets and their
        // windows fall on every side of the engine's 64 KiB steps.
        for _ in 0..(k * 7) % 23 {
            whole.push_str(filler);
            expected.push_str(filler);
        }
        let line = &lines[k % lines.len()];
        let (out, n) = red.redact(line);
        whole.push_str(line);
        whole.push('\n');
        expected.push_str(&out);
        expected.push('\n');
        markers += n;
        k += 1;
    }
    let (got, n) = red.redact(&whole);
    assert!(markers > 500, "{markers}");
    assert_eq!(n, markers);
    assert!(
        got == expected,
        "the large text differs from its lines redacted one by one"
    );
}
