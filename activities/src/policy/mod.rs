//! The command policy: decides, before anything runs, whether an untrusted shell command (run
//! as `/bin/sh -c <command>`) is refused, allowed, or allowed only after a human approval.
//!
//! The command is parsed as a shell parses it ([`shell`]), walked as a shell would run it
//! ([`analyze`]: expansions, working directory, functions, aliases, wrappers, pipes), and
//! what each command *does* ([`effects`], [`git`], [`sql`], [`deploy`], [`pkg`]) is reported
//! under a rule id. Which ids deny, which need approval and in which environments is data:
//! `rules.toml` compiled in, overridable with `AE_POLICY_FILE` ([`rules`]). Anything the
//! analyser cannot follow completely is reported under a fail-closed rule, never allowed.
//!
//! This module does not enforce anything, collect approvals or sandbox the process: callers
//! do that, and the sandbox stays the real security boundary.

mod analyze;
mod deploy;
mod effects;
mod git;
mod pkg;
pub mod rules;
pub mod shell;
mod sql;
pub mod table;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use rules::{Action, RuleSpec};

/// Commands longer than this are refused outright: AI-written commands are short, and the
/// cap keeps the cost of checking bounded.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The outcome of checking one command.
///
/// The reason is meant for people and logs. It never quotes the command, so it is safe to
/// show even when the command holds secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDecision {
    /// Whether the command may run (possibly after an approval).
    pub allowed: bool,
    /// Human explanation; names the rule but never includes the command.
    pub reason: String,
    /// When true the command may run only once a human approves it.
    pub requires_approval: bool,
    /// The id of the rule that decided, e.g. `rm-rf-root`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl PolicyDecision {
    fn allow() -> PolicyDecision {
        PolicyDecision {
            allowed: true,
            reason: "no policy rule matched".to_string(),
            requires_approval: false,
            rule: None,
        }
    }

    fn deny(rule: &str, why: &str) -> PolicyDecision {
        PolicyDecision {
            allowed: false,
            reason: format!("refused by policy rule '{rule}': {why}"),
            requires_approval: false,
            rule: Some(rule.to_string()),
        }
    }

    fn approval(rule: &str, why: &str) -> PolicyDecision {
        PolicyDecision {
            allowed: true,
            reason: format!("human approval required by policy rule '{rule}': {why}"),
            requires_approval: true,
            rule: Some(rule.to_string()),
        }
    }

    /// `allow`, `approve` or `deny`.
    pub fn verdict(&self) -> &'static str {
        if !self.allowed {
            "deny"
        } else if self.requires_approval {
            "approve"
        } else {
            "allow"
        }
    }
}

/// Where the command will run (rules list the environments they apply to): the sandbox
/// profiles of `config`, one type for both.
pub use crate::config::Profile;

/// What the policy knows besides the command: the profile, and the workspace files (so
/// `npm run X` is judged by the script X in package.json and `make X` by the Makefile).
#[derive(Debug, Clone, Default)]
pub struct PolicyContext<'a> {
    pub profile: Profile,
    /// `(path, content)`: paths relative to `/workspace` or absolute under it.
    pub files: Vec<(&'a str, &'a str)>,
}

impl<'a> PolicyContext<'a> {
    pub fn new(profile: Profile) -> PolicyContext<'a> {
        PolicyContext {
            profile,
            files: Vec::new(),
        }
    }
    pub fn with_file(mut self, path: &'a str, content: &'a str) -> PolicyContext<'a> {
        self.files.push((path, content));
        self
    }
}

/// One effect the analyser found, reported under a rule id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: &'static str,
    pub why: String,
}

/// A compiled rule set. Cheap to clone and safe to share between threads.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: rules::RuleSet,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::standard()
    }
}

impl Policy {
    /// The built-in rule set (`rules.toml`).
    pub fn standard() -> Policy {
        Policy {
            rules: rules::RuleSet::builtin(),
        }
    }

    /// The built-in rules, plus the operator's rules file (`AE_POLICY_FILE`) when given.
    pub fn configured(file: Option<&std::path::Path>) -> Result<Policy, rules::RulesError> {
        match file {
            Some(path) => Policy::load(path),
            None => Ok(Policy::standard()),
        }
    }

    /// The built-in rules with a TOML rules file added on top (same ids override).
    pub fn load(path: &std::path::Path) -> Result<Policy, rules::RulesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| rules::RulesError(format!("cannot read {}: {e}", path.display())))?;
        Policy::standard().with_rules_toml(&text)
    }

    /// Adds or overrides rules from TOML text.
    pub fn with_rules_toml(mut self, text: &str) -> Result<Policy, rules::RulesError> {
        self.rules.merge_toml(text)?;
        Ok(self)
    }

    /// Adds an extra deny rule (id, regex) matched against the raw command text and each
    /// resolved command line; for operator config. `reason` is shown to users.
    pub fn with_denied_pattern(
        mut self,
        name: &str,
        pattern: &str,
        reason: &str,
    ) -> Result<Policy, regex::Error> {
        self.rules
            .add_pattern(name, pattern, reason, Action::Deny)?;
        Ok(self)
    }

    /// The rules in force, in order.
    pub fn rules(&self) -> &[RuleSpec] {
        self.rules.specs()
    }

    /// Decides one command in the sandbox profile without workspace files.
    pub fn check_command(&self, command: &str) -> PolicyDecision {
        self.check(command, &PolicyContext::default())
    }

    /// Decides one command for a profile, with the workspace files it will see.
    pub fn check(&self, command: &str, ctx: &PolicyContext<'_>) -> PolicyDecision {
        if command.trim().is_empty() {
            return PolicyDecision::deny("empty-command", "the command is empty");
        }
        if command.len() > MAX_COMMAND_BYTES {
            return PolicyDecision::deny("command-too-long", "the command is longer than 64 KiB");
        }
        let hits = analyse(command, ctx);
        let env = ctx.profile;
        // Deny first, then approval; within each, the rules file's order.
        let mut deny: Option<(usize, &RuleSpec, &str)> = None;
        let mut approve: Option<(usize, &RuleSpec, &str)> = None;
        for h in &hits {
            let Some((idx, spec)) = self.rules.get(h.rule) else {
                // An effect without a rule entry still fails closed.
                return PolicyDecision::deny(h.rule, &h.why);
            };
            if !spec.enabled || !spec.applies(env) {
                continue;
            }
            let slot = match spec.action {
                Action::Deny => &mut deny,
                Action::Approve => &mut approve,
                Action::Allow => continue,
            };
            if slot.as_ref().is_none_or(|(i, _, _)| idx < *i) {
                *slot = Some((idx, spec, h.why.as_str()));
            }
        }
        // Pattern rules over the raw text and each resolved command line.
        for (idx, spec) in self.rules.pattern_rules() {
            if !spec.enabled || !spec.applies(env) {
                continue;
            }
            if spec.pattern_matches(command) {
                let slot = match spec.action {
                    Action::Deny => &mut deny,
                    Action::Approve => &mut approve,
                    Action::Allow => continue,
                };
                if slot.as_ref().is_none_or(|(i, _, _)| idx < *i) {
                    *slot = Some((idx, spec, spec.description.as_str()));
                }
            }
        }
        if let Some((_, spec, why)) = deny {
            return PolicyDecision::deny(&spec.id, &explain(spec, why));
        }
        if let Some((_, spec, why)) = approve {
            return PolicyDecision::approval(&spec.id, &explain(spec, why));
        }
        PolicyDecision::allow()
    }

    /// The effects found in a command, before rules apply (for `policy check` output).
    pub fn explain(&self, command: &str, ctx: &PolicyContext<'_>) -> Vec<Hit> {
        analyse(command, ctx)
    }
}

fn explain(spec: &RuleSpec, why: &str) -> String {
    if why.is_empty() || why == spec.description {
        spec.description.clone()
    } else {
        format!("{} ({why})", spec.description)
    }
}

fn analyse(command: &str, ctx: &PolicyContext<'_>) -> Vec<Hit> {
    analyze::PROC_TEXT.with(|m| m.borrow_mut().clear());
    let mut az = analyze::Analyzer::new(ctx);
    let mut st = analyze::State::new();
    az.script(&mut st, command);
    // Classic fork bombs are also recognised by shape, whatever the names.
    if is_fork_bomb_text(command) {
        az.hit("fork-bomb", "fork bomb");
    }
    az.hits
}

fn is_fork_bomb_text(s: &str) -> bool {
    use std::sync::LazyLock;
    static RE: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"([^\s(){};|&]+)\s*\(\s*\)\s*\{[^}]*\b?(\S+)\s*\|\s*(\S+)\s*&[^}]*\}")
            .unwrap()
    });
    RE.captures_iter(s).any(|c| {
        let name = c.get(1).map_or("", |m| m.as_str());
        let a = c.get(2).map_or("", |m| m.as_str());
        let b = c.get(3).map_or("", |m| m.as_str());
        a.ends_with(name) && b.trim_end_matches('&') == name
    })
}
