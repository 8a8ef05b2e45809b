use super::*;

/// Deterministic pseudo-random numbers (xorshift64) for the randomised comparisons (also the
/// keyword filter's).
pub(super) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn r(text: &str) -> String {
    Redactor::standard().redact_str(text)
}

/// `input` contains `secret`; the output must be `expected` and not contain it.
fn check(input: &str, secret: &str, expected: &str) {
    let out = r(input);
    assert_eq!(out, expected, "input: {input}");
    assert!(!out.contains(secret), "secret leaked: {out}");
}

#[test]
fn anthropic() {
    let k = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789";
    check(
        &format!("key {k} end"),
        k,
        "key [REDACTED:ANTHROPIC_API_KEY] end",
    );
}

#[test]
fn openai() {
    check(
        "OPENAI sk-1234567890abcdefghijklmnop",
        "1234567890abcdef",
        "OPENAI [REDACTED:OPENAI_API_KEY]",
    );
    check(
        "k=sk-proj-Ab3_def-ghijklmnopqrstuvwx.",
        "Ab3_def",
        "k=[REDACTED:OPENAI_API_KEY].",
    );
    check(
        "use sk-1234567890 here",
        "1234567890",
        "use [REDACTED:OPENAI_API_KEY] here",
    );
}

#[test]
fn aws_access_key() {
    check(
        "id AKIAIOSFODNN7EXAMPLE,",
        "IOSFODNN7",
        "id [REDACTED:AWS_ACCESS_KEY],",
    );
}

#[test]
fn aws_secret_key() {
    let v = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    check(
        &format!("aws_secret_access_key = {v}\n"),
        v,
        "aws_secret_access_key = [REDACTED:AWS_SECRET_KEY]\n",
    );
    check(
        &format!("AWS_SECRET_ACCESS_KEY={v}"),
        v,
        "AWS_SECRET_ACCESS_KEY=[REDACTED:AWS_SECRET_KEY]",
    );
    check(
        &format!(r#"{{"SecretAccessKey": "{v}"}}"#),
        v,
        r#"{"SecretAccessKey": "[REDACTED:AWS_SECRET_KEY]"}"#,
    );
}

#[test]
fn google() {
    let k = "AIzaSyA1234567890abcdefghijklmnopqrstuv";
    assert_eq!(k.len(), 39);
    check(&format!("g={k}"), k, "g=[REDACTED:GOOGLE_API_KEY]");
}

#[test]
fn github() {
    let k = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    check(&format!("push {k}"), k, "push [REDACTED:GITHUB_TOKEN]");
    let k = "github_pat_11ABCDEFG0123456789_abcdefghijklmnop";
    check(&format!("{k} "), k, "[REDACTED:GITHUB_TOKEN] ");
}

#[test]
fn stripe() {
    let k = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    check(&format!("stripe {k}"), k, "stripe [REDACTED:STRIPE_KEY]");
}

#[test]
fn slack() {
    let k = "xoxb-1234567890-abcdefghijkl";
    check(&format!("t {k}"), k, "t [REDACTED:SLACK_TOKEN]");
    check(
        "hook https://hooks.slack.com/services/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 ok",
        "T0A1B2C3D/B0E4F5G6H",
        "hook https://hooks.slack.com/services/[REDACTED:SLACK_WEBHOOK] ok",
    );
}

#[test]
fn jwt() {
    let k = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    check(&format!("jwt: {k}"), k, "jwt: [REDACTED:JWT]");
    // Inside a bearer header the more specific JWT type wins, no nesting.
    check(
        &format!("Authorization: Bearer {k}"),
        k,
        "Authorization: Bearer [REDACTED:JWT]",
    );
}

#[test]
fn private_key() {
    let pem =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----";
    check(
        &format!("before\n{pem}\nafter"),
        "MIIEowIBAAKCAQEA",
        "before\n[REDACTED:PRIVATE_KEY]\nafter",
    );
}

#[test]
fn private_key_without_end_is_redacted_to_end_of_text() {
    check(
        "log\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\nAAAABG5vbmU",
        "b3BlbnNz",
        "log\n[REDACTED:PRIVATE_KEY]",
    );
}

#[test]
fn password() {
    check(
        "password=hunter2",
        "hunter2",
        "password=[REDACTED:PASSWORD]",
    );
    check(
        r#"PASSWORD: "hunter2 x""#,
        "hunter2",
        r#"PASSWORD: "[REDACTED:PASSWORD]""#,
    );
    check(
        "passwd = 'hunter2'",
        "hunter2",
        "passwd = '[REDACTED:PASSWORD]'",
    );
    check("pwd=hunter2&x=1", "hunter2", "pwd=[REDACTED:PASSWORD]&x=1");
    check(
        r#"{"password": "hunter2"}"#,
        "hunter2",
        r#"{"password": "[REDACTED:PASSWORD]"}"#,
    );
    check(
        "DB_PASSWORD=hunter2; next",
        "hunter2",
        "DB_PASSWORD=[REDACTED:PASSWORD]; next",
    );
    check("DB_PASS=hunter2", "hunter2", "DB_PASS=[REDACTED:PASSWORD]");
}

#[test]
fn bearer_and_basic() {
    check(
        "Authorization: Bearer abc123.def456-ghi",
        "abc123",
        "Authorization: Bearer [REDACTED:BEARER_TOKEN]",
    );
    check(
        "authorization: basic dXNlcjpwYXNzd29yZA==",
        "dXNlcjpw",
        "authorization: basic [REDACTED:BASIC_AUTH]",
    );
}

#[test]
fn url_credentials() {
    check(
        "postgres://admin:s3cr3t@db.internal:5432/app",
        "s3cr3t",
        "postgres://[REDACTED:POSTGRES_CREDENTIALS]@db.internal:5432/app",
    );
    check(
        "redis://:p@ss@cache/0",
        "p@ss",
        "redis://[REDACTED:REDIS_CREDENTIALS]@cache/0",
    );
}

#[test]
fn generic_secret() {
    check(
        "API_KEY=abcdef123456",
        "abcdef123456",
        "API_KEY=[REDACTED:GENERIC_SECRET]",
    );
    check(
        r#""client_secret": "xyz12345678""#,
        "xyz12345678",
        r#""client_secret": "[REDACTED:GENERIC_SECRET]""#,
    );
    check(
        "x-auth-token: 0a1b2c3d4e5f",
        "0a1b2c3d4e5f",
        "x-auth-token: [REDACTED:GENERIC_SECRET]",
    );
}

#[test]
fn specific_type_wins_over_generic() {
    let k = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    assert_eq!(
        r(&format!("GITHUB_TOKEN={k}")),
        "GITHUB_TOKEN=[REDACTED:GITHUB_TOKEN]"
    );
    assert_eq!(
        r("password=sk-ant-abcdefghijklmnopqrstuvwxyz"),
        "password=[REDACTED:ANTHROPIC_API_KEY]"
    );
    // Generic value longer than the specific token: the rest is redacted
    // too, in a separate marker, rather than leaking or nesting.
    assert_eq!(
        r(&format!("api_key={k}.tail")),
        "api_key=[REDACTED:GITHUB_TOKEN][REDACTED:GENERIC_SECRET]"
    );
}

#[test]
fn ordinary_text_is_unchanged() {
    for text in [
        "npm install",
        "exit code 0",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "see https://example.com/path?q=1",
        "mail user@example.com",
        "ssh://git@github.com:22/org/repo.git",
        "password reset link sent",
        "Bearer",
        "Bearer authentication is required",
        "the secret is out",
        "secret: foo",
        "Password:\nnext line",
        "total_tokens: 123456789",
        "require_password: true",
        "PWD=/home/me/project",
        "scikit-learn and task-1234567890abc",
        "a risk-free plan",
        "",
    ] {
        assert_eq!(r(text), text);
        assert_eq!(Redactor::standard().redact(text).1, 0, "{text}");
        assert!(Redactor::standard().scan(text).is_empty(), "{text}");
    }
}

#[test]
fn literals() {
    let red = Redactor::standard().with_literals(["abc", "abcdef", " xy ", "", "  hunter22  "]);
    let (out, n) = red.redact("abcdef abc xy hunter22 zabcz");
    assert_eq!(
        out,
        "[REDACTED:ENV_VALUE] [REDACTED:ENV_VALUE] xy [REDACTED:ENV_VALUE] z[REDACTED:ENV_VALUE]z"
    );
    assert_eq!(n, 4);
    // Overlapping values are merged so neither leaks.
    let red = Redactor::standard().with_literals(["abcd", "cdefgh"]);
    assert_eq!(red.redact_str("xabcdefghx"), "x[REDACTED:ENV_VALUE]x");
    // Literals run before patterns and accumulate across calls.
    let red = red.with_literals(["secretvalue1"]);
    assert_eq!(
        red.redact_str("password=secretvalue1 abcd"),
        "password=[REDACTED:ENV_VALUE] [REDACTED:ENV_VALUE]"
    );
    // Short values and markers are never touched.
    let red = Redactor::standard().with_literals(["ab", "RED", "ENV_VALUE"]);
    assert_eq!(
        red.redact_str("ab [REDACTED:ENV_VALUE]"),
        "ab [REDACTED:ENV_VALUE]"
    );
}

#[test]
fn custom_pattern() {
    let red = Redactor::standard()
        .with_pattern("custom token", r"ctk_[a-z0-9]{8}")
        .unwrap()
        .with_pattern("KV", r"kv=(?P<secret>\w+)")
        .unwrap();
    assert_eq!(
        red.redact_str("ctk_abcd1234 kv=zzz"),
        "[REDACTED:CUSTOM_TOKEN] kv=[REDACTED:KV]"
    );
    assert!(Redactor::standard().with_pattern("X", "(").is_err());
    // The original is not modified.
    assert_eq!(r("ctk_abcd1234"), "ctk_abcd1234");
}

#[test]
fn idempotent_and_counts() {
    let text = "API_KEY=abcdef123456 password=hunter2\nAKIAIOSFODNN7EXAMPLE https://u:p4ss@h \
                Bearer abc123.def456 [REDACTED:JWT]";
    let red = Redactor::standard().with_literals(["hunter2"]);
    let (once, n) = red.redact(text);
    assert_eq!(n, 5);
    let (twice, n2) = red.redact(&once);
    assert_eq!(twice, once);
    assert_eq!(n2, 0);
    assert!(!once.contains("[REDACTED:[REDACTED"));
}

#[test]
fn scan_reports_type_and_line_only() {
    let text = "ok\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
                token=zz\npassword=hunter2 AKIAIOSFODNN7EXAMPLE\n";
    let found = Redactor::standard().scan(text);
    assert_eq!(
        found,
        vec![
            Finding {
                type_name: "PRIVATE_KEY".into(),
                line: 2
            },
            Finding {
                type_name: "PASSWORD".into(),
                line: 6
            },
            Finding {
                type_name: "AWS_ACCESS_KEY".into(),
                line: 6
            },
        ]
    );
    let debug = format!("{found:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("AAAA") && !debug.contains("IOSF"));
}

#[test]
fn clone_and_standard_are_cheap_and_shared() {
    let a = Redactor::standard();
    let b = Redactor::standard();
    assert!(Arc::ptr_eq(&a.inner, &b.inner));
    assert!(Arc::ptr_eq(&a.inner, &a.clone().inner));
}

/// Pseudo-random fuzzing from a fixed seed (no extra dev-dependencies):
/// `redact` never panics, is idempotent, and never nests markers.
#[test]
fn fuzz_idempotent() {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "7",
        "_",
        "-",
        ".",
        "/",
        "=",
        ":",
        " ",
        "\n",
        "\t",
        "\"",
        "'",
        "@",
        "&",
        ";",
        ",",
        "[",
        "]",
        "{",
        "é",
        "ß",
        "password",
        "pwd",
        "token",
        "secret",
        "api_key",
        "aws_",
        "SecretAccess",
        "Bearer ",
        "Authorization: Basic ",
        "sk-",
        "sk-ant-",
        "sk_live_",
        "AKIA",
        "AIza",
        "ghp_",
        "xoxb-",
        "eyJ",
        "https://",
        "://",
        "u:p@",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "[REDACTED:",
        "[REDACTED:JWT]",
        "REDACTED",
        "0123456789",
        "abcdefghijklmnop",
        "ABCDEFGHIJKLMNOP",
        "hunter2",
        "envsecret",
    ];
    let red = Redactor::standard()
        .with_literals(["hunter2", "envsecret", "ter2env", "D:J"])
        .with_pattern("CUST", r"ab(?P<secret>cd)")
        .unwrap();
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3_000 {
        let len = (next() % 40) as usize;
        let text: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let (once, _) = red.redact(&text);
        let (twice, n) = red.redact(&once);
        assert_eq!(twice, once, "not idempotent for {text:?}");
        assert_eq!(n, 0, "{text:?}");
        let _ = red.scan(&text);
    }
}

#[test]
fn large_input_is_fast() {
    let mut text = String::new();
    while text.len() < 1 << 20 {
        text.push_str("line with é words, password reset, token count 12 sk- AKIA ");
        text.push_str("-----BEGIN PRIVATE KEY----- ");
    }
    let start = std::time::Instant::now();
    let (out, n) = Redactor::standard().redact(&text);
    assert_eq!(n, 1);
    assert!(out.ends_with("[REDACTED:PRIVATE_KEY]"));
    let elapsed = start.elapsed();
    assert!(elapsed.as_secs() < 5, "took {elapsed:?}");
}

/// Shapes the corpus does not use: other contexts, quoting and spellings.
#[test]
fn generalises_to_other_contexts() {
    let gh = ["ghp_", "Zx8Qw2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2V"].concat();
    let secrets = [
        (format!("export OPENAI_API_KEY=\"sk-proj-{}\"", "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4bC6"), "aB3dE5fG7h"),
        (format!("Authorization: token {gh}"), "Zx8Qw2Er4T"),
        (format!("git clone https://x-access-token:{gh}@github.com/o/r.git"), "Zx8Qw2Er4T"),
        ("MYSQL_PWD=Tr0ub4dor&3x".into(), "Tr0ub4dor"),
        ("PGPASSWORD='correct horse battery'".into(), "correct horse"),
        ("\"password\":\"n0tH1ddEn!\"".into(), "n0tH1ddEn"),
        ("DB_PASSWORD=correcthorsebatterystaple".into(), "correcthorse"),
        ("SECRET_KEY_BASE=9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddccbbaa99887766554433221100".into(), "9f8e7d6c5b4a"),
        ("aws_session_token = IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6q8Zz+mN0pQ4rS6tU8vW0xY2zA4bC6dE8fG0hJ2kL4mN6pQ8rS0tU2vW4xY6zA8bC0dE2fG4hJ6kL8mN0pQ2rS4tU6vW8xY0zA2bC4dE6fG8hJ0kL2mN4".into(), "IQoJb3JpZ2lu"),
        ("--api-key=Qm9vbTE2MzQ1Njc4OTA".into(), "Qm9vbTE2"),
        ("mysqldump -uroot -pS3cretPw! app > dump.sql".into(), "S3cretPw"),
        ("X-Api-Key: 7d9f3b2a1c8e4f6a0b5d2e9c7a3f1b8d".into(), "7d9f3b2a1c8e"),
        ("<add key=\"ClientSecret\" value=\"abc\" /> client_secret=Zq3Xw9Lm2Np7Rt5V".into(), "Zq3Xw9Lm2Np7"),
        ("amqps://svc:Rabb1tPw@mq.internal/vh".into(), "Rabb1tPw"),
        ("jdbc:postgresql://db:5432/app?user=app&password=JdbcPw123".into(), "JdbcPw123"),
    ];
    for (text, leak) in &secrets {
        let out = r(text);
        assert!(!out.contains(leak), "leaked {leak:?}: {out}");
    }
    for text in [
        "xoxb-your-token-here",
        "password: !vault |",
        "api_key: ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]",
        "password = \"${var.db_password}\"",
        "\"password\": \"%(password)s\"",
        "POSTGRES_PASSWORD_FILE=/run/secrets/postgres",
        "password_hash: $2b$12$KIXQJ5n9Qw7mR0rD3gq3eO8vYpU6wJ1zH4sT2aB5cD7eF9gH1iJ2k",
        "TOKENIZERS_PARALLELISM=false",
        "api_key_id: 4e3b2a10-9c8d-4f7e-a6b5-c4d3e2f1a0b9",
        "WWW-Authenticate: Basic realm=\"api\"",
        "authorization: required",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "ENCRYPTION_KEY_LENGTH=32",
        "OAUTH_TOKEN_URL=https://auth.example.com/oauth/token",
        "npm_config_cache=/tmp/.npm",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host",
    ] {
        assert_eq!(r(text), text);
    }
}

#[test]
fn idempotent_edge_case() {
    let red = Redactor::standard().with_literals(["hunter22", "envsecret"]);
    let text =
        "hunter22xoxb-Authorization: Basic ask------END RSA PRIVATE KEY-----Authorization: Basic ";
    let once = red.redact_str(text);
    assert_eq!(red.redact_str(&once), once);
}

/// Differential test: the fast paths (keyword filter, hand-scanned `KEY SEP value` rules) give
/// the same output as the plain automaton and the rules' regexes, on random text made of the
/// corpus' secrets and look-alikes, their fragments, and separators.
#[test]
fn fast_paths_equal_slow_paths() {
    let corpus = include_str!("../../tests/redact_corpus.tsv");
    let mut pieces: Vec<String> = corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split('\t').nth(2))
        .map(|t| t.replace('\u{23ce}', "\n"))
        .collect();
    for p in [
        "=",
        ":",
        ":=",
        "=>",
        "?=",
        " ",
        "\t",
        "\n",
        "\"",
        "'",
        "`",
        "\\",
        "\\\"",
        "&",
        ";",
        ",",
        "[REDACTED:PASSWORD]",
        "[REDACTED:",
        "password",
        "PASSWORD_MIN_LENGTH",
        "db_pass",
        "pwd",
        "token",
        "API_KEY",
        "client_secret",
        "secret",
        "key",
        "KEY",
        "pat",
        "path=",
        "s3cr3tV4lue",
        "Xk9#mP2qR7!z",
        "${API_KEY}",
        "changeme",
        "ghp_",
        "é",
    ] {
        pieces.push(p.to_string());
    }
    let fast = Redactor::standard();
    let slow = Redactor::slow_for_tests();
    let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2_000 {
        let mut text = String::new();
        for _ in 0..(next() % 12) {
            let p = &pieces[(next() % pieces.len() as u64) as usize];
            // Whole pieces or a fragment of one (cut at character boundaries).
            if next().is_multiple_of(3) {
                let cut: Vec<char> = p.chars().collect();
                let a = (next() as usize) % (cut.len() + 1);
                let b = a + (next() as usize) % (cut.len() - a + 1);
                text.extend(&cut[a..b]);
            } else {
                text.push_str(p);
            }
        }
        assert_eq!(fast.redact(&text), slow.redact(&text), "{text:?}");
    }
}

/// Time stays linear on inputs made of nothing but separators, keys or keywords (8× the input
/// takes well under 64× the time), and the fast paths still agree with the regexes there.
#[test]
fn pathological_inputs_are_linear_and_agree() {
    let fast = Redactor::standard();
    let slow = Redactor::slow_for_tests();
    // The fastest of three runs: a machine busy with other tests stalls a run now and then;
    // the engine's growth shows in every run.
    let timed = |text: &str| {
        let start = std::time::Instant::now();
        let out = owned(fast.redact(text));
        let mut best = start.elapsed();
        for _ in 0..2 {
            let start = std::time::Instant::now();
            let _ = fast.redact(text);
            best = best.min(start.elapsed());
        }
        (out, best)
    };
    for unit in ["=", "a="] {
        let text = unit.repeat(1 << 20);
        let (got, elapsed) = timed(&text);
        assert!(elapsed.as_secs() < 10, "{unit:?}: took {elapsed:?}");
        assert_eq!(got, owned(slow.redact(&text)), "{unit:?}");
    }
    for unit in [
        ":",
        "password=",
        "token=",
        "key=",
        "token=\"",
        "api_key: '",
        "pat",
        "aaaa",
        "[REDACTED:",
        "x_token := ",
        "DB_PASSWORD=hunter2 ",
        // One long token full of refused look-alikes: each refusal used to rescan the rest of
        // the token (quadratic: 256 KiB of `sk-` took 42 s in a release build).
        "sk-",
        "TOKEN:",
        "ABSK",
        "Authorization: Bearer /",
    ] {
        let small = unit.repeat((32 << 10) / unit.len());
        let big = unit.repeat((256 << 10) / unit.len());
        let (_, t_small) = timed(&small);
        let (got, t_big) = timed(&big);
        let bound = t_small.max(std::time::Duration::from_millis(5)) * 24;
        assert!(
            t_big < bound,
            "{unit:?}: {t_small:?} then {t_big:?} for 8x the input"
        );
        assert_eq!(got, owned(slow.redact(&big)), "{unit:?}");
    }
    // Long lines with a keyword every 4.4 KiB or so, in windows that do not touch: each
    // window's search may run to its line's end, so the line's end is found once per rule,
    // a search past a window remembers what it found, and a long kept match is not searched
    // again from the keywords inside it (16x the input: at most 48x the time).
    let mut next = xorshift(7);
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let noise: String = (0..4400)
        .map(|_| ALNUM[(next() % 62) as usize] as char)
        .collect();
    let words = "ab cd ".repeat(750);
    for (head, unit) in [
        // A kept match every 4.4 KiB, each ending at the next `/`.
        (String::new(), format!("/sk-{noise}")),
        // One header value over the whole line, with keywords inside it.
        (
            "Authorization: Digest ".to_string(),
            format!("{words} authorization: x "),
        ),
        // Quoted values opened and closed 4.5 KiB apart.
        (String::new(), format!("password=\"{words}")),
        // Keywords that never make a match (`SK` not at a word start).
        (String::new(), format!("{noise}SK{words}")),
    ] {
        let small = format!("{head}{}", unit.repeat(32));
        let big = format!("{head}{}", unit.repeat(512));
        let (_, t_small) = timed(&small);
        let (got, t_big) = timed(&big);
        let bound = t_small.max(std::time::Duration::from_millis(5)) * 48;
        assert!(
            t_big < bound,
            "{head}{}…: {t_small:?} then {t_big:?}",
            &unit[..20]
        );
        assert_eq!(got, owned(slow.redact(&big)));
    }
}

/// A value longer than a window (4 KiB after its keyword) is redacted to its end, spaces and
/// all, in one piece or streamed: quoted values, a header's value, a flag's quoted argument.
#[test]
fn a_value_longer_than_a_window_is_redacted_to_its_end() {
    // Words that hold no placeholder word (no d, e, o, t or x).
    const LETTERS: &[u8] = b"abcfghijklmnpqrsuvwyz23456789";
    let mut next = xorshift(11);
    for n in [100, 600, 2_000, 5_000] {
        let words: Vec<String> = (0..n)
            .map(|_| {
                (0..7)
                    .map(|_| LETTERS[(next() % 29) as usize] as char)
                    .collect()
            })
            .collect();
        let v = words.join(" ");
        for line in [
            format!("Authorization: Digest {v}"),
            format!("x Authorization: Digest {v} "),
            format!("password=\"{v}\""),
            format!("{{\"password\": \"{v}\"}}"),
            format!("API_KEY='{v}'"),
            format!("client_secret: \"{v}\""),
            format!("mysql --password \"{v}\""),
        ] {
            let text = format!("before\n{line}\nafter\n");
            let out = r(&text);
            let left: Vec<&String> = words.iter().filter(|w| out.contains(w.as_str())).collect();
            assert!(
                left.is_empty(),
                "{n} words, {}…: {} left",
                &line[..20],
                left.len()
            );
            assert!(
                out.starts_with("before\n") && out.ends_with("\nafter\n"),
                "{out}"
            );
            let mut stream = Redactor::standard().stream();
            let mut streamed = Vec::new();
            for chunk in text.as_bytes().chunks(1000) {
                streamed.extend(stream.push(chunk));
            }
            streamed.extend(stream.finish());
            assert_eq!(String::from_utf8(streamed).unwrap(), out);
        }
    }
}

fn owned((text, n): (std::borrow::Cow<'_, str>, usize)) -> (String, usize) {
    (text.into_owned(), n)
}

/// A match too long to resolve its secret group cheaply (over 16 KiB: here a header rule's
/// value running over a line of a thousand headers) is redacted whole, key and all.
#[test]
fn a_very_long_match_is_redacted_whole() {
    let line = "Authorization: Bearer /".repeat(1_000);
    let out = r(&format!("start\n{line}\nend\n"));
    assert!(
        out.starts_with("start\n[REDACTED:") && out.ends_with("]\nend\n"),
        "{out}"
    );
    assert!(
        !out.contains("Authorization") && !out.contains('/'),
        "{out}"
    );
    // An ordinary one keeps its key.
    assert_eq!(
        r("Authorization: Digest username=a, response=6629fae49393a05397450978507c4ef1\n"),
        "Authorization: Digest [REDACTED:AUTHORIZATION_HEADER]\n"
    );
}

/// A `#` in a connection string's password is part of it (drivers read it so), not the start
/// of a fragment: `mysql://root:jEwS62#KVM04M@…` kept its password in plain.
#[test]
fn a_hash_in_a_url_password_is_redacted_with_it() {
    for (url, kind) in [
        (
            "mysql://root:jEwS62#KVM04M@127.0.0.1:3306/shop",
            "MYSQL_CREDENTIALS",
        ),
        (
            "amqp://guest2:ihjr16#AYzPQ8@rabbit:5672/vhost",
            "AMQP_CREDENTIALS",
        ),
        ("postgres://app:p#ss9Word@db/app", "POSTGRES_CREDENTIALS"),
    ] {
        let out = r(url);
        assert!(out.contains(&format!("[REDACTED:{kind}]")), "{out}");
        assert!(!out.contains('#'), "{out}");
    }
    // A fragment after the host stays a fragment.
    let link = "https://example.com/docs#install@v2";
    assert_eq!(r(link), link);
}
