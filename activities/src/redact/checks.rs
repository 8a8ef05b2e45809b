//! Checks run on a candidate match after its regex: what keeps look-alikes intact.
//!
//! Regexes cannot cheaply say "is not `${API_KEY}`" or "the key is a setting, not a secret";
//! these functions do, on the (short) match only.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

/// Which check a rule's matches go through: `(whole match, secret part) -> keep?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every match is a secret.
    None,
    /// A fixed-format token: refused only when it is visibly a placeholder (`xxxxxx…`).
    Token,
    /// A token that must contain a digit (so kebab-case words are not tokens).
    HasDigit,
    /// `VENDOR_..._KEY=value`: the value must look random (letters and digits, no placeholder).
    Vendor,
    /// `*secret*|*token*|*api_key*=value`.
    Generic,
    /// `*pass*|*pwd*=value`, `--password value`.
    Password,
    /// `Bearer X`, `Authorization: scheme X`.
    Bearer,
    /// `scheme://user:password@`: the password part must not be a placeholder.
    UrlCreds,
}

impl Check {
    pub(crate) fn keep(self, whole: &[u8], secret: &[u8]) -> bool {
        if secret.is_empty() {
            return false;
        }
        match self {
            Check::None => true,
            Check::Token => !token_placeholder(secret),
            Check::HasDigit => has_digit(secret) && !token_placeholder(secret),
            Check::Vendor => {
                has_digit(secret) && has_alpha(secret) && !placeholder(secret) && key_ok(whole)
            }
            Check::Generic => generic_ok(whole, secret),
            Check::Password => password_ok(whole, secret),
            Check::Bearer => bearer_ok(secret),
            Check::UrlCreds => {
                let pass = match secret.iter().position(|&b| b == b':') {
                    Some(i) => &secret[i + 1..],
                    None => secret,
                };
                !pass.is_empty() && !placeholder(pass) && !is_word_placeholder(pass)
            }
        }
    }
}

fn has_digit(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit)
}

fn has_alpha(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_alphabetic)
}

/// Six or more of the same character in a row (`xxxxxx`, `******`, `000000`): a mask or a
/// placeholder, not a random token.
fn placeholder_run(s: &[u8]) -> bool {
    let mut run = 1;
    for w in s.windows(2) {
        if w[0] == w[1] && matches!(w[0], b'x' | b'X' | b'*' | b'0' | b'.' | b'#' | b'-' | b'_') {
            run += 1;
            if run >= 6 {
                return true;
            }
        } else {
            run = 1;
        }
    }
    false
}

/// A fixed-format token that is visibly a placeholder (`xoxb-your-token`, `ghp_xxxxxx…`).
fn token_placeholder(s: &[u8]) -> bool {
    placeholder_run(s) || has_placeholder_word(&TOKEN_PLACEHOLDER_AC, s)
}

/// Words that make a fixed-format token a placeholder, in any case, in one automaton.
static TOKEN_PLACEHOLDER_AC: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build([
            "your",
            "xxxx",
            "placeholder",
            "changeme",
            "redacted",
            "dummy",
            "<",
            "${",
        ])
        .expect("token placeholder words")
});

const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "change_me",
    "change-me",
    "changeit",
    "password",
    "passwd",
    "secret",
    "example",
    "placeholder",
    "redacted",
    "dummy",
    "sample",
    "none",
    "null",
    "nil",
    "undefined",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "todo",
    "tbd",
    "fixme",
    "test",
    "testing",
    "foo",
    "bar",
    "foobar",
    "pass",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "secretkey",
    "secret_key",
    "mysecret",
    "mypassword",
    "letmein",
    "default",
    "empty",
    "unset",
    "required",
    "optional",
    "string",
    "str",
    "int",
    "bool",
    "boolean",
    "number",
    "any",
    "bytes",
    "object",
    "hidden",
    "masked",
    "private",
    "value",
    "xxx",
    "admin",
    "root",
    "user",
    "username",
    "notasecret",
    "password123",
    "secret123",
];

/// A value that is a well-known placeholder word, compared case-insensitively.
fn is_word_placeholder(s: &[u8]) -> bool {
    PLACEHOLDER_WORDS
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w.as_bytes()))
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    if hay.len() < n.len() {
        return false;
    }
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Whether lower-cased `hay` contains any of `needles` (lower-case).
fn contains_any(hay: &[u8], needles: &[&str]) -> bool {
    // Needles are lower case; values are short: a plain case-insensitive scan in place beats
    // lower-casing a copy or building a searcher per needle.
    needles.iter().any(|n| {
        let n = n.as_bytes();
        debug_assert!(!n.iter().any(u8::is_ascii_uppercase));
        hay.len() >= n.len()
            && hay
                .windows(n.len())
                .any(|w| w[0].to_ascii_lowercase() == n[0] && w.eq_ignore_ascii_case(n))
    })
}

/// Words that make a value a placeholder or a reference (any case), in one automaton: a value is
/// scanned once instead of once per word.
static PLACEHOLDER_AC: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let words: &[&str] = &[
        "your",
        "example",
        "placeholder",
        "changeme",
        "change_me",
        "change-me",
        "replace",
        "insert",
        "redacted",
        "dummy",
        "<",
        "_here",
        "-here",
        "process.env",
        "os.environ",
        "getenv",
        "env(",
        "env[",
        "environ",
        "secrets.",
        "vault:",
        "!vault",
        "enc[",
        "op://",
        "ssm:",
        "arn:aws:",
        "keyvault",
        "secretmanager",
        "secretsmanager",
        "not-a-",
        "not_a_",
        "notreal",
        "todo",
        "tbd",
        "fixme",
        "lorem",
        "xxx",
    ];
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(words)
        .expect("placeholder words")
});

/// Words naming a secret, in any case (`userPassword`, `authToken`).
static SECRET_WORDS_AC: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::DFA))
        .build(["pass", "pwd", "secret", "token", "key", "auth", "cred"])
        .expect("secret words")
});

/// Placeholders, references and masks: `${API_KEY}`, `$TOKEN`, `<your-key>`, `%KEY%`,
/// `{{ secret }}`, `xxxx…`, `****`, `your_api_key_here`, `os.environ[...]`, `op://…`.
pub(crate) fn placeholder(s: &[u8]) -> bool {
    let s = s.trim_ascii();
    let Some(&first) = s.first() else {
        return true;
    };
    let last = *s.last().unwrap_or(&first);
    if matches!(first, b'$' | b'<' | b'%' | b'@' | b'[' | b'{' | b'(')
        || (first == b'#' && s.get(1) == Some(&b'{'))
        || matches!(last, b'>' | b'}' | b')' | b'%')
    {
        return true;
    }
    if s.windows(2)
        .any(|w| w == b"${" || w == b"{{" || w == b"$(" || w == b"}}")
    {
        return true;
    }
    // Four `x` anywhere; three only where a word starts (`xxx` is one of `PLACEHOLDER_AC`'s
    // words): three inside random characters (`…CxXXkL…`) happen to about one 40-character
    // token in 800.
    if placeholder_run(s) || contains_ci(s, "xxxx") || s.windows(3).any(|w| w == b"***") {
        return true;
    }
    if s.iter().all(|&b| b == s[0]) {
        return true;
    }
    if is_word_placeholder(s) {
        return true;
    }
    has_placeholder_word(&PLACEHOLDER_AC, s)
}

/// Whether `s` holds one of `words` where a word starts: at its start, after a character that
/// is not a letter or digit, or at a camelCase hump (`my-your-key`, `insert_here`,
/// `myExampleKey`). Inside a run of random characters (`…SYouRKH…`, one token in a few thousand
/// holds `your` in some case) it is chance, not a placeholder. Words that do not start with a
/// letter (`<`, `${`, `_here`) count anywhere.
fn has_placeholder_word(words: &AhoCorasick, s: &[u8]) -> bool {
    words
        .find_overlapping_iter(s)
        .any(|m| !s[m.start()].is_ascii_alphabetic() || starts_word(s, m.start()))
}

/// Whether a word starts at `s[i]`: the start, after a character that is not a letter or
/// digit, or at a camelCase hump.
fn starts_word(s: &[u8], i: usize) -> bool {
    if i == 0 {
        return true;
    }
    let prev = s[i - 1];
    !prev.is_ascii_alphanumeric() || (prev.is_ascii_lowercase() && s[i].is_ascii_uppercase())
}

/// A value that is code or configuration rather than a secret: a dotted or plain identifier
/// naming a secret (`settings.SECRET_KEY`, `API_KEY`, `userPassword`), a function call, a type,
/// a file path, a URL.
fn code_like(s: &[u8]) -> bool {
    if s.contains(&b'(') || s.contains(&b'[') {
        return true;
    }
    if s.starts_with(b"http://") || s.starts_with(b"https://") || s.starts_with(b"file://") {
        return true;
    }
    // Paths: `/run/secrets/db`, `./key.pem`, `~/.ssh/id_rsa`. A path has a segment that reads
    // as a name (lower-case letters, or a `.`, `-` or `_`); base64 may start with `/` and hold
    // more (`/9aC9DHYqR1Npu…/lOd8H=`), but has `+` or `=`, or only random segments.
    if (s.starts_with(b"/")
        || s.starts_with(b"./")
        || s.starts_with(b"~/")
        || s.starts_with(b"../"))
        && s.iter().filter(|&&b| b == b'/').count() >= 2
        && !s.iter().any(|&b| b == b'+' || b == b'=')
        && s.split(|&b| b == b'/').any(|seg| {
            !seg.is_empty()
                && (seg.iter().all(u8::is_ascii_lowercase)
                    || seg.iter().any(|&b| matches!(b, b'.' | b'-' | b'_')))
        })
    {
        return true;
    }
    let ident = |p: &[u8]| {
        !p.is_empty()
            && (p[0].is_ascii_alphabetic() || p[0] == b'_')
            && p.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    if s.contains(&b'.') && s.split(|&b| b == b'.').all(ident) && !has_digit(s) {
        return true;
    }
    if ident(s) {
        // `API_KEY`, `MY_SECRET`: a reference to a variable.
        if s.contains(&b'_') && !s.iter().any(u8::is_ascii_lowercase) {
            return true;
        }
        // `userPassword`, `authToken`, `secret_key`: an identifier naming a secret. Made of
        // words, so at most a couple of digits (`apiKeyV2`): a random token that happens to
        // hold `key` or `auth` (about one in a hundred of 40 characters) has more.
        if SECRET_WORDS_AC.is_match(s) && s.iter().filter(|b| b.is_ascii_digit()).count() <= 2 {
            debug_assert!(contains_any(
                s,
                &["pass", "pwd", "secret", "token", "key", "auth", "cred"]
            ));
            return true;
        }
    }
    // Hashes and integrity strings are not secrets: `sha256:…`, `sha512-…`.
    for p in [
        "sha1:", "sha256:", "sha384:", "sha512:", "sha1-", "sha256-", "sha384-", "sha512-", "md5:",
    ] {
        if s.len() > p.len() && s[..p.len()].eq_ignore_ascii_case(p.as_bytes()) {
            return true;
        }
    }
    false
}

/// Key segments that make a `*password*`/`*token*` key a setting about the secret rather than
/// the secret: `PASSWORD_MIN_LENGTH`, `TOKEN_TTL`, `API_KEY_FILE`, `SECRET_NAME`.
const SETTING_SEGMENTS: &[&str] = &[
    "min",
    "max",
    "length",
    "len",
    "size",
    "count",
    "ttl",
    "timeout",
    "expiry",
    "expires",
    "expiration",
    "age",
    "file",
    "path",
    "dir",
    "url",
    "uri",
    "endpoint",
    "host",
    "name",
    "id",
    "ids",
    "type",
    "header",
    "prefix",
    "suffix",
    "enabled",
    "enable",
    "disabled",
    "required",
    "policy",
    "rounds",
    "limit",
    "retries",
    "attempts",
    "algorithm",
    "algo",
    "hash",
    "hashed",
    "format",
    "version",
    "mode",
    "env",
    "var",
    "field",
    "param",
    "location",
    "region",
    "lifetime",
    "duration",
    "interval",
    "chars",
    "pattern",
    "regex",
    "rotation",
    "strength",
    "complexity",
    "reset",
    "hint",
    "label",
    "bits",
    "provider",
    "scope",
    "scopes",
    "method",
    "kind",
    "store",
    "source",
    "ref",
    "arn",
    "length8",
    "usage",
    "used",
    "count",
    "lock",
    "lockout",
    "history",
    "days",
    "hours",
    "minutes",
    "seconds",
    "secs",
    "ms",
    "validity",
    "valid",
    "changed",
    "updated",
    "created",
    "at",
    "set",
    "verify",
    "verified",
    "check",
    "cmd",
    "command",
    "prompt",
    "input",
    "output",
    "digest",
    "salt",
    "cost",
    "iterations",
    "complexity",
    "public",
    "pub",
    "pubkey",
    "index",
    "idx",
    "cache",
    "bucket",
    "table",
    "column",
    "length_min",
    "rule",
    "rules",
    "level",
    "stdin",
    "helper",
    "manager",
];

/// [`SETTING_SEGMENTS`] as a set (lower case).
static SETTINGS: LazyLock<std::collections::HashSet<&'static [u8]>> =
    LazyLock::new(|| SETTING_SEGMENTS.iter().map(|s| s.as_bytes()).collect());

fn is_setting_segment(seg: &[u8]) -> bool {
    let mut buf = [0u8; 16];
    if seg.len() > buf.len() {
        return false;
    }
    let low = &mut buf[..seg.len()];
    low.copy_from_slice(seg);
    low.make_ascii_lowercase();
    let hit = SETTINGS.contains(&*low);
    debug_assert_eq!(
        hit,
        SETTING_SEGMENTS
            .iter()
            .any(|w| w.as_bytes().eq_ignore_ascii_case(seg))
    );
    hit
}

/// The key of a `key=value` match: its leading identifier characters, split into lower-case
/// segments at `_`, `.`, `-` and camelCase humps.
fn key_segments(whole: &[u8]) -> Vec<String> {
    let start = whole
        .iter()
        .position(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .unwrap_or(0);
    let key = &whole[start..];
    let end = key
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
        .unwrap_or(key.len());
    let key = &key[..end];
    let mut segs = Vec::new();
    let mut cur = String::new();
    for (i, &b) in key.iter().enumerate() {
        if matches!(b, b'_' | b'.' | b'-') {
            if !cur.is_empty() {
                segs.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if b.is_ascii_uppercase() && i > 0 && key[i - 1].is_ascii_lowercase() && !cur.is_empty() {
            segs.push(std::mem::take(&mut cur));
        }
        cur.push(b.to_ascii_lowercase() as char);
    }
    if !cur.is_empty() {
        segs.push(cur);
    }
    segs
}

/// The key does not end in a segment that makes it a setting (`..._MIN_LENGTH`, `..._FILE`).
fn key_ok(whole: &[u8]) -> bool {
    let ok = key_ok_fast(whole);
    #[cfg(debug_assertions)]
    {
        let segs = key_segments(whole);
        let key: String = segs.concat();
        let slow = !(key.contains("tokeniz") || key.contains("public") || key.contains("keyboard"))
            && segs
                .last()
                .is_none_or(|last| !SETTING_SEGMENTS.contains(&last.as_str()));
        debug_assert_eq!(ok, slow, "{}", String::from_utf8_lossy(whole));
    }
    ok
}

/// [`key_ok`] without allocating: the key as [`key_segments`] splits it, read in place.
fn key_ok_fast(whole: &[u8]) -> bool {
    let start = whole
        .iter()
        .position(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .unwrap_or(0);
    let key = &whole[start..];
    let end = key
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
        .unwrap_or(key.len());
    let key = &key[..end];
    key_ok_words(key)
}

/// The segments' concatenation (lower case, separators dropped) must not name a tokenizer, a
/// public key or a keyboard; then the last segment is checked.
fn key_ok_words(key: &[u8]) -> bool {
    let sep = |b: u8| matches!(b, b'_' | b'.' | b'-');
    // `tokeniz` needs a `z`, `public` and `keyboard` a `b`: most keys have neither.
    if !key.iter().any(|b| matches!(b, b'z' | b'Z' | b'b' | b'B')) {
        return key_ok_last_segment(key);
    }
    for word in [&b"tokeniz"[..], b"public", b"keyboard"] {
        let mut i = 0;
        while i < key.len() {
            // Match `word` from `i`, skipping separators in the key.
            let (mut j, mut k) = (i, 0);
            while k < word.len() && j < key.len() {
                if sep(key[j]) {
                    j += 1;
                } else if key[j].to_ascii_lowercase() == word[k] {
                    j += 1;
                    k += 1;
                } else {
                    break;
                }
            }
            if k == word.len() {
                return false;
            }
            i += 1;
        }
    }
    key_ok_last_segment(key)
}

/// The key's last segment is not a setting word.
fn key_ok_last_segment(key: &[u8]) -> bool {
    let sep = |b: u8| matches!(b, b'_' | b'.' | b'-');
    // The last segment (split at separators and lower-to-upper case changes).
    let mut seg: Option<usize> = None;
    let mut last: Option<(usize, usize)> = None;
    for (i, &b) in key.iter().enumerate() {
        if sep(b) {
            if let Some(s) = seg.take() {
                last = Some((s, i));
            }
            continue;
        }
        if b.is_ascii_uppercase()
            && i > 0
            && key[i - 1].is_ascii_lowercase()
            && let Some(s) = seg
        {
            last = Some((s, i));
            seg = Some(i);
        }
        seg.get_or_insert(i);
    }
    if let Some(s) = seg {
        last = Some((s, key.len()));
    }
    match last {
        Some((s, e)) => !is_setting_segment(&key[s..e]),
        None => true,
    }
}

/// `*secret*`, `*token*`, `*api_key*` values: not a placeholder, not code, not a number or a
/// plain word; at least 8 characters with a digit, or long and mixed-case.
fn generic_ok(whole: &[u8], s: &[u8]) -> bool {
    if !key_ok(whole) || placeholder(s) || code_like(s) {
        return false;
    }
    if s.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let distinct = {
        let mut seen = [false; 256];
        s.iter()
            .filter(|&&b| !std::mem::replace(&mut seen[b as usize], true))
            .count()
    };
    if distinct < 5 {
        return false;
    }
    (has_digit(s) && has_alpha(s))
        || (s.len() >= 16
            && s.iter().any(u8::is_ascii_uppercase)
            && s.iter().any(u8::is_ascii_lowercase)
            && distinct >= 10)
        || s.iter().any(|b| {
            matches!(
                b,
                b'+' | b'/' | b'=' | b'!' | b'@' | b'#' | b'%' | b'^' | b'*' | b'~'
            )
        }) && s.len() >= 12
}

/// `*pass*`/`*pwd*` values. `pass` and `pwd` only count as whole key segments (`DB_PASS`, not
/// `bypass`, `compass`), and `PWD=/home/me` is a directory.
fn password_ok(whole: &[u8], s: &[u8]) -> bool {
    if s.len() < 3 {
        return false;
    }
    let flag_like = whole.starts_with(b"<")
        || whole.starts_with(b"--")
        || whole
            .first()
            .is_some_and(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\''));
    // The key first: settings (`PASSWORD_MIN_LENGTH=8`) are the common case and cheap to see.
    if !flag_like && whole.first().is_some_and(u8::is_ascii_alphabetic) && !key_ok(whole) {
        return false;
    }
    if placeholder(s) || code_like(s) || is_word_placeholder(s) {
        return false;
    }
    if whole.starts_with(b"<")
        || whole.starts_with(b"--")
        || whole
            .first()
            .is_some_and(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\''))
    {
        // XML elements and command-line flags: the flag already names the secret.
        return key_ok(whole) || whole.starts_with(b"<") || whole.contains(&b'-');
    }
    if whole.starts_with(b"jdbc:")
        || whole.starts_with(b"mysql")
        || whole.starts_with(b"maria")
        || whole.starts_with(b"sshpass")
        || whole.starts_with(b"redis-cli")
        || whole.starts_with(b"docker")
    {
        return true;
    }
    if !key_ok(whole) {
        return false;
    }
    let segs = key_segments(whole);
    let key: String = segs.concat();
    if [
        "password",
        "passwd",
        "passphrase",
        "passcode",
        "passwort",
        "contrasena",
    ]
    .iter()
    .any(|k| key.contains(k))
    {
        return true;
    }
    segs.iter().any(|seg| {
        seg == "pass"
            || seg == "pw"
            || (seg == "pwd" && !s.starts_with(b"/") && !s.starts_with(b"~"))
            || (seg.ends_with("pass")
                && seg.len() <= 8
                && ![
                    "bypass",
                    "compass",
                    "overpass",
                    "surpass",
                    "underpass",
                    "trespass",
                    "subpass",
                    "multipass",
                    "onepass",
                ]
                .contains(&seg.as_str()))
            || (seg.ends_with("pwd") && seg.len() <= 8)
    })
}

/// "Bearer authentication" is prose; real tokens have digits or punctuation, or are long.
fn bearer_ok(s: &[u8]) -> bool {
    if placeholder(s) || code_like(s) || is_word_placeholder(s) {
        return false;
    }
    s.len() >= 20 || s.iter().any(|b| !b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(
            key_segments(b"DB_PASSWORD_MIN=1"),
            ["db", "password", "min"]
        );
        assert_eq!(key_segments(b"\"apiKey\": x"), ["api", "key"]);
        assert!(!key_ok(b"PASSWORD_MIN_LENGTH=8"));
        assert!(key_ok(b"DB_PASSWORD=x"));
    }

    #[test]
    fn placeholders() {
        for p in [
            "${API_KEY}",
            "$TOKEN",
            "<your-key>",
            "xxxxxxxx",
            "changeme",
            "****",
            "{{ .Values.token }}",
            "%API_KEY%",
            "your_api_key_here",
        ] {
            assert!(placeholder(p.as_bytes()), "{p}");
        }
        for s in ["hunter2", "aB3dE5fG7h", "tok-9f8e7d6c5b4a-secret"] {
            assert!(!placeholder(s.as_bytes()), "{s}");
        }
    }

    /// A placeholder word counts where a word starts, not inside random characters: found in
    /// generated corpora, `…SYouRKH…` and `…IyoUraF…` made real keys placeholders.
    #[test]
    fn placeholder_words_count_where_a_word_starts() {
        for p in [
            "your-api-key",
            "YOUR_TOKEN",
            "myYourKey",
            "sk-your-key-here",
            "insert_key_here",
            "exampleKey123",
        ] {
            assert!(placeholder(p.as_bytes()), "{p}");
        }
        for p in ["sk-xxx", "xxx-key", "AKIAXXXXEXAMPLE", "abXxxx12"] {
            assert!(placeholder(p.as_bytes()), "{p}");
        }
        for s in [
            "jMJSahZ6Gw7dhpCxXXkL2YUPMKjf27AczusfAQ-5",
            "Tj8kC6uAp3MBPosVbxtrqDIYouSgRQB3cSYouRKHdm_X",
            "d12IyoUraFG8Y3I9GjnFMYdTtm4ly1Wo3jtW0BfO",
            "q8Xtbd9Lm2Kp4Rs7",
        ] {
            assert!(!placeholder(s.as_bytes()), "{s}");
        }
        assert!(token_placeholder(b"ghp_your_token"));
        assert!(!token_placeholder(
            b"ghp_Q8X2YoUrQ2k9Lm4Np6Rs8Tv1Wx3Yz5Ab7Cd9Ef"
        ));
    }

    /// An identifier naming a secret is words; a random token holding `key` is not.
    #[test]
    fn identifiers_naming_secrets_are_words() {
        for c in ["userPassword", "authToken", "secret_key", "apiKeyV2"] {
            assert!(code_like(c.as_bytes()), "{c}");
        }
        assert!(!code_like(b"b9vyEVODnJrpP1Edk9okeywub5OSKxpPZoEyF1_Z"));
        // Paths are code; base64 that starts with `/` is not a path.
        for p in [
            "/run/secrets/db",
            "./certs/key.pem",
            "~/.ssh/id_rsa",
            "/srv/app/v2/config",
        ] {
            assert!(code_like(p.as_bytes()), "{p}");
        }
        for b in [
            "/9aC9DHYqR1NpugGmxxv3kqJxJFzxzEtba76o/lOd8H=",
            "/9aC9DHYqR1NpugGmxxv3kqJxJFzxzEtba76o/lOd8HQ",
        ] {
            assert!(!code_like(b.as_bytes()), "{b}");
        }
    }
}
