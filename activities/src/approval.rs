//! Verifying a deployment approval against the calling workflow's history.
//!
//! The `approval` a workflow passes is only a claim. The worker accepts it only if the Temporal
//! server's history of that workflow holds an `approveDeployment` signal from that approver with
//! no `rejectDeployment` after it, and records the client identity the server stored with the
//! signal. That identity is whatever the sending client claims, so approvals can also be signed:
//! with approver keys configured, the signal must carry the plan's digest and an Ed25519
//! signature over (workflow id, digest, approver) that verifies with the approver's key. An
//! optional allowlist limits who may approve. This module owns those checks; it does not run
//! anything.

use crate::error::Failure;
use ae_workflows_spec::deploy::{APPROVE_SIGNAL, REJECT_SIGNAL, approval_message};
use ae_workflows_spec::{ApproveDeployment, FailureType, RejectDeployment};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::collections::HashMap;
use temporalio_common::protos::temporal::api::history::v1::{
    HistoryEvent, history_event::Attributes,
};

/// Who may approve and how.
#[derive(Debug, Clone, Default)]
pub struct ApprovalPolicy {
    /// When not empty, only these approvers are accepted.
    pub allowed: Vec<String>,
    /// When not empty, approvals must be signed with the approver's key.
    pub keys: HashMap<String, VerifyingKey>,
}

/// A verified approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The approver named in the signal.
    pub approver: String,
    /// The identity the server stored with the signal.
    pub identity: String,
    /// The signal's comment.
    pub comment: Option<String>,
    /// Whether a signature was verified.
    pub signed: bool,
}

impl ApprovalPolicy {
    /// Parses `name base64-public-key` lines (blank lines and `#` comments allowed).
    pub fn parse_keys(text: &str) -> Result<HashMap<String, VerifyingKey>, String> {
        let mut keys = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(key)) = (parts.next(), parts.next()) else {
                return Err(format!("line {}: expected `name base64-public-key`", n + 1));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|e| format!("line {}: {e}", n + 1))?;
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| format!("line {}: an Ed25519 public key is 32 bytes", n + 1))?;
            let key = VerifyingKey::from_bytes(&arr).map_err(|e| format!("line {}: {e}", n + 1))?;
            keys.insert(name.to_string(), key);
        }
        Ok(keys)
    }

    /// Checks `approver`'s approval of `plan_digest` in `events` of workflow `workflow_id`.
    pub fn verify(
        &self,
        events: &[HistoryEvent],
        workflow_id: &str,
        approver: &str,
        plan_digest: &str,
    ) -> Result<Verified, Failure> {
        let invalid = |m: String| Failure::new(FailureType::ApprovalInvalid, m);
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == approver) {
            return Err(invalid(format!("{approver:?} is not an allowed approver")));
        }
        let mut found: Option<(ApproveDeployment, String)> = None;
        let mut rejected_by: Option<String> = None;
        for e in events {
            let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = &e.attributes
            else {
                continue;
            };
            let Some(payload) = a.input.as_ref().and_then(|p| p.payloads.first()) else {
                continue;
            };
            if a.signal_name == APPROVE_SIGNAL {
                if let Ok(s) = serde_json::from_slice::<ApproveDeployment>(&payload.data)
                    && s.approver == approver
                {
                    found = Some((s, a.identity.clone()));
                    rejected_by = None;
                }
            } else if a.signal_name == REJECT_SIGNAL && found.is_some() {
                let who = serde_json::from_slice::<RejectDeployment>(&payload.data)
                    .map(|r| r.approver)
                    .unwrap_or_else(|_| "someone".into());
                found = None;
                rejected_by = Some(who);
            }
        }
        let Some((signal, identity)) = found else {
            return Err(invalid(match rejected_by {
                Some(who) => {
                    format!("the approval by {approver} was followed by a rejection from {who}")
                }
                None => format!(
                    "no {APPROVE_SIGNAL} signal from {approver:?} was received by workflow {workflow_id}"
                ),
            }));
        };
        if let Some(d) = &signal.plan_digest
            && d != plan_digest
        {
            return Err(invalid(format!(
                "the approval is for plan {d}, not for the plan being deployed ({plan_digest})"
            )));
        }
        let mut signed = false;
        if !self.keys.is_empty() {
            let key = self
                .keys
                .get(approver)
                .ok_or_else(|| invalid(format!("no signing key is configured for {approver:?}")))?;
            if signal.plan_digest.is_none() {
                return Err(invalid(
                    "the approval names no planDigest; signed approvals must".into(),
                ));
            }
            let sig = signal.signature.as_deref().ok_or_else(|| {
                invalid("the approval is not signed; approver keys are configured".into())
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|_| invalid("the approval's signature is not base64".into()))?;
            let sig = Signature::from_slice(&bytes)
                .map_err(|_| invalid("the approval's signature is malformed".into()))?;
            key.verify(
                approval_message(workflow_id, plan_digest, approver).as_bytes(),
                &sig,
            )
            .map_err(|_| {
                invalid(format!(
                    "the signature does not verify with {approver}'s key"
                ))
            })?;
            signed = true;
        }
        Ok(Verified {
            approver: approver.into(),
            identity,
            comment: signal.comment,
            signed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use temporalio_common::protos::temporal::api::common::v1::{Payload, Payloads};
    use temporalio_common::protos::temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes;

    fn signal(name: &str, body: serde_json::Value, identity: &str) -> HistoryEvent {
        HistoryEvent {
            attributes: Some(Attributes::WorkflowExecutionSignaledEventAttributes(
                WorkflowExecutionSignaledEventAttributes {
                    signal_name: name.into(),
                    input: Some(Payloads {
                        payloads: vec![Payload {
                            data: body.to_string().into_bytes(),
                            ..Default::default()
                        }],
                    }),
                    identity: identity.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_an_approval_and_records_the_identity() {
        let events = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "ops-lead"}),
            "cli@host",
        )];
        let v = ApprovalPolicy::default()
            .verify(&events, "wf", "ops-lead", "d")
            .unwrap();
        assert_eq!(v.identity, "cli@host");
        assert!(!v.signed);
    }

    #[test]
    fn refuses_missing_other_approver_rejected_and_disallowed() {
        let p = ApprovalPolicy::default();
        assert!(p.verify(&[], "wf", "ops-lead", "d").is_err());
        let other = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "mallory"}),
            "x",
        )];
        assert!(p.verify(&other, "wf", "ops-lead", "d").is_err());
        let rejected = [
            signal(
                APPROVE_SIGNAL,
                serde_json::json!({"approver": "ops-lead"}),
                "x",
            ),
            signal(
                REJECT_SIGNAL,
                serde_json::json!({"approver": "sec", "reason": "no"}),
                "y",
            ),
        ];
        let e = p.verify(&rejected, "wf", "ops-lead", "d").unwrap_err();
        assert!(e.message.contains("rejection"), "{}", e.message);
        let re_approved = [
            signal(
                REJECT_SIGNAL,
                serde_json::json!({"approver": "sec", "reason": "no"}),
                "y",
            ),
            signal(
                APPROVE_SIGNAL,
                serde_json::json!({"approver": "ops-lead"}),
                "x",
            ),
        ];
        assert!(p.verify(&re_approved, "wf", "ops-lead", "d").is_ok());
        let allow = ApprovalPolicy {
            allowed: vec!["cto".into()],
            ..Default::default()
        };
        let ok = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "ops-lead"}),
            "x",
        )];
        assert!(allow.verify(&ok, "wf", "ops-lead", "d").is_err());
    }

    #[test]
    fn an_approval_for_another_plan_is_invalid() {
        let events = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "a", "planDigest": "other"}),
            "x",
        )];
        let e = ApprovalPolicy::default()
            .verify(&events, "wf", "a", "mine")
            .unwrap_err();
        assert_eq!(e.kind, FailureType::ApprovalInvalid);
    }

    #[test]
    fn signed_approvals_verify_only_with_the_right_key_workflow_and_plan() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let keys = HashMap::from([("a".to_string(), sk.verifying_key())]);
        let p = ApprovalPolicy {
            keys,
            ..Default::default()
        };
        let sign = |wf: &str, d: &str| {
            base64::engine::general_purpose::STANDARD
                .encode(sk.sign(approval_message(wf, d, "a").as_bytes()).to_bytes())
        };
        let ev = |sig: String| {
            [signal(
                APPROVE_SIGNAL,
                serde_json::json!({"approver": "a", "planDigest": "d", "signature": sig}),
                "x",
            )]
        };
        assert!(
            p.verify(&ev(sign("wf", "d")), "wf", "a", "d")
                .unwrap()
                .signed
        );
        assert!(
            p.verify(&ev(sign("other-wf", "d")), "wf", "a", "d")
                .is_err()
        );
        assert!(p.verify(&ev(sign("wf", "d2")), "wf", "a", "d").is_err());
        let unsigned = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "a", "planDigest": "d"}),
            "x",
        )];
        assert!(p.verify(&unsigned, "wf", "a", "d").is_err());
    }

    #[test]
    fn parses_key_files() {
        let sk = SigningKey::from_bytes(&[9u8; 32]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(sk.verifying_key().to_bytes());
        let keys = ApprovalPolicy::parse_keys(&format!("# approvers\nops-lead {b64}\n\n")).unwrap();
        assert_eq!(keys["ops-lead"], sk.verifying_key());
        assert!(ApprovalPolicy::parse_keys("ops-lead notbase64!").is_err());
    }
}
