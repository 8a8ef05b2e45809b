//! Policy as data: the built-in `rules.toml` and the operator's `AE_POLICY_FILE`.
//!
//! ```toml
//! [[rule]]
//! id = "production-deploy"          # a built-in id overrides that rule
//! description = "deploys need a person"
//! action = "approve"                # deny | approve | allow
//! environments = ["production"]     # sandbox and/or production (default: both)
//! enabled = true                    # false switches a rule off
//!
//! [[rule]]
//! id = "no-terraform-in-sandbox"    # a new id adds a rule; it needs a pattern
//! description = "terraform is not used from sandboxes"
//! action = "deny"
//! pattern = '(^|\s)terraform\s'      # regex over the command text
//! ```

use std::collections::HashMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;

use super::Profile;

const BUILTIN: &str = include_str!("rules.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deny,
    Approve,
    /// Switches an effect off without removing the rule (e.g. allow `db-migrate`).
    Allow,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Approve => "approve",
            Action::Allow => "allow",
        }
    }
}

/// One rule as written in TOML.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub id: String,
    pub description: String,
    pub action: Action,
    pub environments: Vec<Profile>,
    pub enabled: bool,
    /// Operator rules: a regex over the command text.
    pub pattern: Option<Regex>,
}

impl RuleSpec {
    pub fn applies(&self, p: Profile) -> bool {
        self.environments.contains(&p)
    }
    pub fn pattern_matches(&self, command: &str) -> bool {
        self.pattern.as_ref().is_some_and(|r| r.is_match(command))
    }
}

#[derive(Debug, Clone)]
pub struct RulesError(pub String);

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for RulesError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    description: Option<String>,
    action: Option<Action>,
    environments: Option<Vec<String>>,
    enabled: Option<bool>,
    pattern: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    specs: Vec<RuleSpec>,
    index: HashMap<String, usize>,
}

impl RuleSet {
    pub fn builtin() -> RuleSet {
        let mut rs = RuleSet {
            specs: Vec::new(),
            index: HashMap::new(),
        };
        rs.merge_toml(BUILTIN)
            .expect("built-in rules.toml is valid");
        rs
    }

    pub fn specs(&self) -> &[RuleSpec] {
        &self.specs
    }

    pub fn get(&self, id: &str) -> Option<(usize, &RuleSpec)> {
        self.index.get(id).map(|&i| (i, &self.specs[i]))
    }

    pub fn pattern_rules(&self) -> impl Iterator<Item = (usize, &RuleSpec)> {
        self.specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pattern.is_some())
    }

    pub fn add_pattern(
        &mut self,
        id: &str,
        pattern: &str,
        description: &str,
        action: Action,
    ) -> Result<(), regex::Error> {
        let re = Regex::new(pattern)?;
        self.upsert(RuleSpec {
            id: id.to_string(),
            description: description.to_string(),
            action,
            environments: vec![Profile::Sandbox, Profile::Production],
            enabled: true,
            pattern: Some(re),
        });
        Ok(())
    }

    fn upsert(&mut self, spec: RuleSpec) {
        match self.index.get(&spec.id) {
            Some(&i) => self.specs[i] = spec,
            None => {
                self.index.insert(spec.id.clone(), self.specs.len());
                self.specs.push(spec);
            }
        }
    }

    /// Adds or overrides rules from TOML text.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), RulesError> {
        let file: File =
            toml::from_str(text).map_err(|e| RulesError(format!("invalid policy TOML: {e}")))?;
        for r in file.rule {
            if r.id.trim().is_empty() {
                return Err(RulesError("a rule has an empty id".into()));
            }
            let base = self.get(&r.id).map(|(_, s)| s.clone());
            let environments = match &r.environments {
                Some(list) => {
                    let mut out = Vec::new();
                    for e in list {
                        out.push(Profile::parse(e).ok_or_else(|| {
                            RulesError(format!(
                                "rule {}: unknown environment {e:?} (sandbox or production)",
                                r.id
                            ))
                        })?);
                    }
                    out
                }
                None => base
                    .as_ref()
                    .map(|b| b.environments.clone())
                    .unwrap_or_else(|| vec![Profile::Sandbox, Profile::Production]),
            };
            let pattern = match &r.pattern {
                Some(p) => Some(
                    Regex::new(p)
                        .map_err(|e| RulesError(format!("rule {}: bad pattern: {e}", r.id)))?,
                ),
                None => base.as_ref().and_then(|b| b.pattern.clone()),
            };
            let action = match (r.action, &base) {
                (Some(a), _) => a,
                (None, Some(b)) => b.action,
                (None, None) => {
                    return Err(RulesError(format!("rule {}: action is required", r.id)));
                }
            };
            let description = match (r.description, &base) {
                (Some(d), _) => d,
                (None, Some(b)) => b.description.clone(),
                (None, None) => {
                    return Err(RulesError(format!(
                        "rule {}: description is required",
                        r.id
                    )));
                }
            };
            if base.is_none() && pattern.is_none() && !is_builtin_text(text) {
                return Err(RulesError(format!(
                    "rule {}: not a built-in id, so it needs a pattern",
                    r.id
                )));
            }
            self.upsert(RuleSpec {
                id: r.id,
                description,
                action,
                environments,
                enabled: r.enabled.unwrap_or(true),
                pattern,
            });
        }
        Ok(())
    }
}

fn is_builtin_text(text: &str) -> bool {
    std::ptr::eq(text, BUILTIN)
}
