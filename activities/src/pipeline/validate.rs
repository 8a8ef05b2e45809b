//! Step 1: decode the input and check what serde cannot. Pure: nothing is charged, started or
//! asked of Redis here, so an invalid request costs nothing and changes nothing.

use super::Engine;
use crate::config::Profile;
use crate::egress::DomainRule;
use crate::error::Failure;
use crate::redact::Redactor;
use crate::workspace::{self, CheckedFile};
use ae_workflows_spec::WorkspaceFile;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::ActivityError;

/// What every activity's input has in common, checked.
pub struct Checked {
    /// Workspace files, normalised and size-checked.
    pub files: Vec<CheckedFile>,
    /// Hosts the sandbox may reach; empty: no network.
    pub domains: Vec<DomainRule>,
    /// `NAME=value` strings for exec.
    pub env: Vec<String>,
}

impl Engine {
    /// Decodes the input (InvalidInput when malformed) and builds the redactor that also hides
    /// the values of the input's `env`.
    pub fn begin<I: DeserializeOwned>(
        &self,
        raw: &RawValue,
        env: impl Fn(&I) -> &BTreeMap<String, String>,
    ) -> Result<(I, Redactor), ActivityError> {
        let input: I = decode_input(raw).map_err(|f| f.into_activity_error(&self.redactor))?;
        let redactor = self.redactor.with_env(env(&input).iter());
        Ok((input, redactor))
    }

    /// Checks the run id, env, workspace files and domains every input carries.
    pub fn validate(
        &self,
        run_id: &str,
        env: &BTreeMap<String, String>,
        files: &[WorkspaceFile],
        domains: Option<&[String]>,
    ) -> Result<Checked, Failure> {
        check_run_id(run_id)?;
        check_env(env)?;
        let cfg = &self.config.sandbox;
        let files = workspace::check_files(files, cfg.max_file_bytes, cfg.max_total_file_bytes)?;
        let domains = check_domains(domains)?;
        Ok(Checked {
            files,
            domains,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        })
    }

    /// A timeout between 1 ms and the profile's maximum.
    pub fn check_timeout(
        &self,
        profile: Profile,
        field: &str,
        timeout: u64,
    ) -> Result<Duration, Failure> {
        let max = self.config.sandbox.limits(profile).max_timeout.as_millis() as u64;
        if timeout == 0 || timeout > max {
            return Err(Failure::invalid_input(format!(
                "{field} must be between 1 and {max} milliseconds, got {timeout}"
            )));
        }
        Ok(Duration::from_millis(timeout))
    }
}

/// Decodes a JSON payload into the input type; anything else is InvalidInput saying why.
pub fn decode_input<T: DeserializeOwned>(raw: &RawValue) -> Result<T, Failure> {
    let Some(payload) = raw.payloads.first() else {
        return Err(Failure::invalid_input(
            "the activity was called without an input",
        ));
    };
    let encoding = payload
        .metadata
        .get("encoding")
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .unwrap_or_default();
    if encoding == "binary/null" || payload.data.is_empty() {
        return Err(Failure::invalid_input("the activity input is null"));
    }
    if encoding != "json/plain" {
        return Err(Failure::invalid_input(format!(
            "the activity input must be a JSON object (payload encoding json/plain), got {encoding:?}"
        )));
    }
    serde_json::from_slice(&payload.data)
        .map_err(|e| Failure::invalid_input(format!("invalid input: {e}")))
}

/// Parses `allowedDomains`; a malformed entry is InvalidInput.
pub fn check_domains(list: Option<&[String]>) -> Result<Vec<DomainRule>, Failure> {
    crate::egress::parse_domains(list.unwrap_or_default())
        .map_err(|e| Failure::invalid_input(format!("allowedDomains: {e}")))
}

/// Validates `outputFiles`: at most 32, each under `/workspace`. Returns (as asked, relative).
pub fn check_output_files(paths: &[String]) -> Result<Vec<(String, String)>, Failure> {
    if paths.len() > 32 {
        return Err(Failure::invalid_input(
            "outputFiles has more than 32 entries",
        ));
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            workspace::normalise(p)
                .map(|rel| (p.clone(), rel))
                .map_err(|why| Failure::invalid_input(format!("outputFiles[{i}] {p:?}: {why}")))
        })
        .collect()
}

/// A command must have text and no NUL byte.
pub fn check_command(field: &str, command: &str) -> Result<(), Failure> {
    if command.trim().is_empty() {
        return Err(Failure::invalid_input(format!("{field} is empty")));
    }
    if command.contains('\0') {
        return Err(Failure::invalid_input(format!(
            "{field} contains a NUL byte"
        )));
    }
    Ok(())
}

/// A run id names Redis keys and labels: printable, no whitespace, at most 256 bytes.
pub fn check_run_id(run_id: &str) -> Result<(), Failure> {
    if run_id.is_empty() {
        return Err(Failure::invalid_input("runId is empty"));
    }
    if run_id.len() > 256 {
        return Err(Failure::invalid_input("runId is longer than 256 bytes"));
    }
    if run_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::invalid_input(
            "runId must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// Environment names must be shell identifiers; values must not contain NUL.
pub fn check_env(env: &BTreeMap<String, String>) -> Result<(), Failure> {
    if env.len() > 256 {
        return Err(Failure::invalid_input("env has more than 256 variables"));
    }
    for (k, v) in env {
        let valid = !k.is_empty()
            && k.len() <= 256
            && k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Failure::invalid_input(format!(
                "env name {k:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        if v.contains('\0') {
            return Err(Failure::invalid_input(format!(
                "env value of {k} contains a NUL byte"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ae_workflows_spec::{FailureType, SafeExecuteCodeInput};
    use std::collections::HashMap;
    use temporalio_common::protos::temporal::api::common::v1::Payload;

    fn json_payload(v: &str) -> RawValue {
        RawValue::new(vec![Payload {
            metadata: HashMap::from([("encoding".to_string(), b"json/plain".to_vec())]),
            data: v.as_bytes().to_vec(),
            ..Default::default()
        }])
    }

    #[test]
    fn decode_reports_missing_and_unknown_fields() {
        let e =
            decode_input::<SafeExecuteCodeInput>(&json_payload(r#"{"command":"ls"}"#)).unwrap_err();
        assert_eq!(e.kind, FailureType::InvalidInput);
        assert!(e.message.contains("runId"), "{}", e.message);
        let e = decode_input::<SafeExecuteCodeInput>(&json_payload(
            r#"{"runId":"r","command":"ls","timout":5}"#,
        ))
        .unwrap_err();
        assert!(e.message.contains("timout"), "{}", e.message);
        let ok = decode_input::<SafeExecuteCodeInput>(&json_payload(
            r#"{"runId":"r","command":"ls","timeout":5}"#,
        ))
        .unwrap();
        assert_eq!(ok.timeout, Some(5));
    }

    #[test]
    fn decode_refuses_null_and_non_json() {
        assert!(decode_input::<SafeExecuteCodeInput>(&RawValue::new(vec![])).is_err());
        let mut p = json_payload("{}");
        p.payloads[0]
            .metadata
            .insert("encoding".into(), b"binary/plain".to_vec());
        assert!(decode_input::<SafeExecuteCodeInput>(&p).is_err());
    }

    #[test]
    fn run_ids_and_env_names_are_checked() {
        assert!(check_run_id("build-deploy-app-1").is_ok());
        assert!(check_run_id("").is_err());
        assert!(check_run_id("a b").is_err());
        let ok = BTreeMap::from([("API_TOKEN".to_string(), "x".to_string())]);
        assert!(check_env(&ok).is_ok());
        let bad = BTreeMap::from([("1X".to_string(), "x".to_string())]);
        assert!(check_env(&bad).is_err());
    }
}
