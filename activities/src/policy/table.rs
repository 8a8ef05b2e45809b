//! Tables of commands with expected decisions (`policy test FILE`, the corpus test).
//!
//! One case per line: `EXPECT<TAB>COMMAND`. EXPECT is `allow`, `approve` or `deny`,
//! optionally followed by `:rule-id` (the rule that must decide) and `@production` (the
//! profile; sandbox by default). In COMMAND, `⏎` stands for a newline. Blank lines and lines
//! starting with `#` are ignored.

use super::{Policy, PolicyContext, PolicyDecision, Profile};

#[derive(Debug, Clone)]
pub struct Case {
    pub line: usize,
    pub expect: String,
    pub rule: Option<String>,
    pub profile: Profile,
    pub command: String,
}

/// Parses a table; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((head, cmd)) = line.split_once('\t') else {
            return Err(format!("line {line_no}: expected EXPECT<TAB>COMMAND"));
        };
        let (head, profile) = match head.split_once('@') {
            Some((h, p)) => (
                h,
                Profile::parse(p)
                    .ok_or_else(|| format!("line {line_no}: unknown profile {p:?}"))?,
            ),
            None => (head, Profile::Sandbox),
        };
        let (expect, rule) = match head.split_once(':') {
            Some((e, r)) => (e, Some(r.to_string())),
            None => (head, None),
        };
        if !matches!(expect, "allow" | "approve" | "deny") {
            return Err(format!(
                "line {line_no}: expected allow, approve or deny, not {expect:?}"
            ));
        }
        out.push(Case {
            line: line_no,
            expect: expect.to_string(),
            rule,
            profile,
            command: cmd.replace('⏎', "\n"),
        });
    }
    Ok(out)
}

/// Checks one case; `Err` holds the decision when it does not match.
pub fn run(policy: &Policy, case: &Case) -> Result<PolicyDecision, PolicyDecision> {
    let d = policy.check(&case.command, &PolicyContext::new(case.profile));
    let ok = d.verdict() == case.expect
        && case
            .rule
            .as_ref()
            .is_none_or(|r| d.rule.as_deref() == Some(r.as_str()));
    if ok { Ok(d) } else { Err(d) }
}
