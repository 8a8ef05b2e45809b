//! Verifying a deployment approval against the calling workflow's history, and spending it.
//!
//! The `approval` a workflow passes is only a claim. The worker accepts it only if the Temporal
//! server's history of that workflow run holds an `approveDeployment` signal from that approver
//!
//! - sent by a client (the server leaves `externalWorkflowExecution` empty), not by a workflow:
//!   a workflow, the caller itself or a child of it, cannot approve its own deploy;
//! - naming the `planDigest` of exactly the plan being deployed;
//! - with no `rejectDeployment` after it;
//! - not yet used by another deployment: the first `deployWithApproval` activity that cites it
//!   records itself in Redis (`ae:approval:used:<workflowRunId>:<eventId>`, SET-if-absent), and
//!   any other activity citing it is refused; retries of the same activity pass. When Redis
//!   cannot answer the deploy fails closed and retryably (BudgetStoreUnavailable).
//!
//! A plan may carry a pre-approved `rollbackCommand` (progressive deployments). Its rollback
//! (`rollback: true`) is backed by the latest client approval from the approver naming the
//! plan's digest, once the plan's deploy used it, at most once
//! (`ae:approval:used:<workflowRunId>:<eventId>:rollback`); a later rejection or the approval's
//! expiry does not stop it, since undoing an approved deploy is the safe direction.
//!
//! It records the client identity the server stored with the signal. That identity, like the
//! approver name, is whatever the sending client claims, so approvals can also be signed: with
//! approver keys configured, the signal must carry an Ed25519 signature over
//! [`approval_message`] (namespace, workflow id, run id, plan digest, approver, expiry) that
//! verifies with the approver's key and has not expired. An optional allowlist limits who may
//! approve. A standalone activity (no workflow) has no history to hold a signal, so its
//! approval is always invalid. This module owns those checks; it does not run anything.

use crate::budget::BudgetStore;
use crate::error::Failure;
use ae_workflows_spec::deploy::{APPROVE_SIGNAL, ApprovalSubject, REJECT_SIGNAL, approval_message};
use ae_workflows_spec::{ApproveDeployment, FailureType, RejectDeployment};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use temporalio_client::WorkflowFetchHistoryOptions;
use temporalio_common::UntypedWorkflow;
use temporalio_common::protos::temporal::api::history::v1::{
    HistoryEvent, history_event::Attributes,
};
use temporalio_sdk::activities::ActivityContext;

/// How long the record of a used approval is kept: longer than any deploy workflow waits.
pub const USED_TTL: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// Who may approve and how.
#[derive(Debug, Clone, Default)]
pub struct ApprovalPolicy {
    /// When not empty, only these approvers are accepted.
    pub allowed: Vec<String>,
    /// When not empty, approvals must be signed with the approver's key.
    pub keys: HashMap<String, VerifyingKey>,
}

/// The deployment an approval must be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment<'a> {
    /// The Temporal namespace.
    pub namespace: &'a str,
    /// The workflow that runs the deploy (and must have received the signal).
    pub workflow_id: &'a str,
    /// Its run.
    pub run_id: &'a str,
    /// The approver the workflow names.
    pub approver: &'a str,
    /// The digest of the plan being deployed.
    pub plan_digest: &'a str,
    /// The plan's pre-approved rollback is run, not its deploy: the approval is the latest one
    /// from the approver naming this digest, and a later rejection (of a later stage) does not
    /// void it, since undoing a deploy is always allowed to the one who approved it.
    pub rollback: bool,
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
    /// The signal's event id in the workflow's history: what "this approval" means.
    pub event_id: i64,
}

fn invalid(message: String) -> Failure {
    Failure::new(FailureType::ApprovalInvalid, message)
}

/// Verifies the approval a `deployWithApproval` activity cites and spends it on this activity.
/// The one entry point of the deploy path.
pub async fn check(
    policy: &ApprovalPolicy,
    store: &BudgetStore,
    ctx: &ActivityContext,
    approver: &str,
    plan_digest: &str,
    rollback: bool,
) -> Result<Verified, Failure> {
    let info = ctx.info();
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let (Some(workflow_id), Some(run_id)) = (
        non_empty(&info.workflow_id),
        non_empty(&info.workflow_run_id),
    ) else {
        return Err(invalid(
            "deployWithApproval ran without a workflow (a standalone activity): an approval is an \
             approveDeployment signal to the workflow that deploys, so there is none to verify"
                .into(),
        ));
    };
    let Some(handle) = ctx.workflow_handle::<UntypedWorkflow>() else {
        return Err(invalid(
            "deployWithApproval must be called from a workflow: approvals are signals to it".into(),
        ));
    };
    let events = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .map_err(|e| {
            // Cannot read the history: retryable, like any outage; nothing is deployed.
            Failure::new(
                FailureType::SandboxUnavailable,
                format!("cannot read the workflow's history to verify the approval: {e}"),
            )
        })?;
    let deployment = Deployment {
        namespace: &info.namespace,
        workflow_id: &workflow_id,
        run_id: &run_id,
        approver,
        plan_digest,
        rollback,
    };
    let verified = policy.verify(&events, &deployment, unix_now())?;
    if rollback {
        spend_rollback(store, &run_id, verified.event_id, &info.activity_id).await?;
    } else {
        spend(store, &run_id, verified.event_id, &info.activity_id).await?;
    }
    Ok(verified)
}

/// Like [`spend`], for the plan's rollback: only once the approval was used by the plan's
/// deploy (there is nothing to undo before), and once (a second rollback is refused).
pub async fn spend_rollback(
    store: &BudgetStore,
    workflow_run_id: &str,
    event_id: i64,
    activity_id: &str,
) -> Result<(), Failure> {
    let deployed: Option<String> = redis::cmd("GET")
        .arg(used_key(workflow_run_id, event_id))
        .query_async(&mut store.connection())
        .await
        .map_err(|e| {
            Failure::new(
                FailureType::BudgetStoreUnavailable,
                format!("cannot read the use of the approval from Redis: {e}"),
            )
        })?;
    if deployed.is_none() {
        return Err(invalid(format!(
            "the approval (signal event {event_id}) was not used by a deployment yet: a rollback \
             undoes the deploy its approval authorised, and there is none"
        )));
    }
    claim(
        store,
        &format!("{}:rollback", used_key(workflow_run_id, event_id)),
        event_id,
        activity_id,
    )
    .await
}

/// The Redis key recording which activity used the approval signalled as `event_id`.
pub fn used_key(workflow_run_id: &str, event_id: i64) -> String {
    format!("ae:approval:used:{workflow_run_id}:{event_id}")
}

/// Sets the key to `activity_id` unless it exists; returns the activity recorded.
const CLAIM_LUA: &str = r#"
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"#;

/// Records that `activity_id` uses the approval `event_id` of `workflow_run_id`. Another
/// activity that already used it makes this ApprovalInvalid; the same activity (a retry)
/// passes; Redis not answering is BudgetStoreUnavailable (retryable, nothing deployed).
pub async fn spend(
    store: &BudgetStore,
    workflow_run_id: &str,
    event_id: i64,
    activity_id: &str,
) -> Result<(), Failure> {
    claim(
        store,
        &used_key(workflow_run_id, event_id),
        event_id,
        activity_id,
    )
    .await
}

async fn claim(
    store: &BudgetStore,
    key: &str,
    event_id: i64,
    activity_id: &str,
) -> Result<(), Failure> {
    let owner: String = redis::Script::new(CLAIM_LUA)
        .key(key)
        .arg(activity_id)
        .arg(USED_TTL.as_secs())
        .invoke_async(&mut store.connection())
        .await
        .map_err(|e| {
            Failure::new(
                FailureType::BudgetStoreUnavailable,
                format!("cannot record the use of the approval in Redis: {e}"),
            )
        })?;
    if owner != activity_id {
        return Err(invalid(format!(
            "the approval (signal event {event_id}) was already used by deployment activity \
             {owner:?} of this workflow run; one approval authorises one deployment"
        )));
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

    /// Checks the approval of `d` in `events` (the history of `d`'s workflow run) at Unix time
    /// `now`: the latest `approveDeployment` from the approver sent by a client, not followed by
    /// a rejection, naming `d.plan_digest`, signed and unexpired when keys are configured.
    pub fn verify(
        &self,
        events: &[HistoryEvent],
        d: &Deployment<'_>,
        now: u64,
    ) -> Result<Verified, Failure> {
        let approver = d.approver;
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == approver) {
            return Err(invalid(format!("{approver:?} is not an allowed approver")));
        }
        let mut found: Option<(ApproveDeployment, String, i64)> = None;
        let mut rejected_by: Option<String> = None;
        let mut from_workflow: Option<String> = None;
        for e in events {
            let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = &e.attributes
            else {
                continue;
            };
            let Some(payload) = a.input.as_ref().and_then(|p| p.payloads.first()) else {
                continue;
            };
            if a.signal_name == APPROVE_SIGNAL {
                let Ok(s) = serde_json::from_slice::<ApproveDeployment>(&payload.data) else {
                    continue;
                };
                if s.approver != approver {
                    continue;
                }
                if d.rollback && s.plan_digest.as_deref() != Some(d.plan_digest) {
                    // A rollback is backed by the approval of its own plan, not a later stage's.
                    continue;
                }
                if let Some(w) = &a.external_workflow_execution {
                    // A workflow sent it: not a person's approval, whatever it claims.
                    from_workflow = Some(w.workflow_id.clone());
                    continue;
                }
                found = Some((s, a.identity.clone(), e.event_id));
                rejected_by = None;
            } else if a.signal_name == REJECT_SIGNAL && found.is_some() && !d.rollback {
                // A rejection counts from anyone: refusing is always safe.
                let who = serde_json::from_slice::<RejectDeployment>(&payload.data)
                    .map(|r| r.approver)
                    .unwrap_or_else(|_| "someone".into());
                found = None;
                rejected_by = Some(who);
            }
        }
        let workflow_id = d.workflow_id;
        let Some((signal, identity, event_id)) = found else {
            return Err(invalid(match (rejected_by, from_workflow) {
                (Some(who), _) => {
                    format!("the approval by {approver} was followed by a rejection from {who}")
                }
                (None, Some(sender)) => format!(
                    "the {APPROVE_SIGNAL} signal from {approver:?} was sent by workflow \
                     {sender:?}, not by a client: only a person's client can approve a deployment"
                ),
                (None, None) => format!(
                    "no {APPROVE_SIGNAL} signal from {approver:?} was received by workflow {workflow_id}"
                ),
            }));
        };
        let plan_digest = d.plan_digest;
        let Some(digest) = signal.plan_digest.as_deref() else {
            return Err(invalid(format!(
                "the approval by {approver} names no planDigest: an approval must name the \
                 planDigest of the plan it approves (shown by the pendingApproval query), here \
                 {plan_digest}"
            )));
        };
        if digest != plan_digest {
            return Err(invalid(format!(
                "the approval is for plan {digest}, not for the plan being deployed ({plan_digest})"
            )));
        }
        if let Some(expires_at) = signal.expires_at
            && now > expires_at
            && !d.rollback
        {
            return Err(invalid(format!(
                "the approval by {approver} expired at {expires_at} (Unix time)"
            )));
        }
        let mut signed = false;
        if !self.keys.is_empty() {
            let key = self
                .keys
                .get(approver)
                .ok_or_else(|| invalid(format!("no signing key is configured for {approver:?}")))?;
            let sig = signal.signature.as_deref().ok_or_else(|| {
                invalid("the approval is not signed; approver keys are configured".into())
            })?;
            let expires_at = signal.expires_at.ok_or_else(|| {
                invalid("the signed approval has no expiresAt; signed approvals must".into())
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|_| invalid("the approval's signature is not base64".into()))?;
            let sig = Signature::from_slice(&bytes)
                .map_err(|_| invalid("the approval's signature is malformed".into()))?;
            let message = approval_message(&ApprovalSubject {
                namespace: d.namespace,
                workflow_id,
                run_id: d.run_id,
                plan_digest,
                approver,
                expires_at,
            });
            key.verify(message.as_bytes(), &sig).map_err(|_| {
                invalid(format!(
                    "the signature does not verify with {approver}'s key for this namespace, \
                     workflow run, plan and expiry"
                ))
            })?;
            signed = true;
        }
        Ok(Verified {
            approver: approver.into(),
            identity,
            comment: signal.comment,
            signed,
            event_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use temporalio_common::protos::temporal::api::common::v1::{
        Payload, Payloads, WorkflowExecution,
    };
    use temporalio_common::protos::temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes;

    const D: &str = "d";

    fn dep<'a>(approver: &'a str, digest: &'a str) -> Deployment<'a> {
        Deployment {
            namespace: "default",
            workflow_id: "wf",
            run_id: "run",
            approver,
            plan_digest: digest,
            rollback: false,
        }
    }

    fn signal(name: &str, body: serde_json::Value, identity: &str) -> HistoryEvent {
        HistoryEvent {
            event_id: 5,
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

    fn approve(approver: &str) -> HistoryEvent {
        signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": approver, "planDigest": D}),
            "cli@host",
        )
    }

    #[test]
    fn accepts_an_approval_and_records_the_identity_and_event() {
        let v = ApprovalPolicy::default()
            .verify(&[approve("ops-lead")], &dep("ops-lead", D), 0)
            .unwrap();
        assert_eq!(v.identity, "cli@host");
        assert_eq!(v.event_id, 5);
        assert!(!v.signed);
    }

    #[test]
    fn refuses_missing_other_approver_rejected_and_disallowed() {
        let p = ApprovalPolicy::default();
        assert!(p.verify(&[], &dep("ops-lead", D), 0).is_err());
        assert!(
            p.verify(&[approve("mallory")], &dep("ops-lead", D), 0)
                .is_err()
        );
        let rejected = [
            approve("ops-lead"),
            signal(
                REJECT_SIGNAL,
                serde_json::json!({"approver": "sec", "reason": "no"}),
                "y",
            ),
        ];
        let e = p.verify(&rejected, &dep("ops-lead", D), 0).unwrap_err();
        assert!(e.message.contains("rejection"), "{}", e.message);
        let re_approved = [
            signal(
                REJECT_SIGNAL,
                serde_json::json!({"approver": "sec", "reason": "no"}),
                "y",
            ),
            approve("ops-lead"),
        ];
        assert!(p.verify(&re_approved, &dep("ops-lead", D), 0).is_ok());
        let allow = ApprovalPolicy {
            allowed: vec!["cto".into()],
            ..Default::default()
        };
        assert!(
            allow
                .verify(&[approve("ops-lead")], &dep("ops-lead", D), 0)
                .is_err()
        );
    }

    #[test]
    fn a_signal_sent_by_a_workflow_does_not_count() {
        let mut e = approve("ops-lead");
        if let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = &mut e.attributes {
            a.identity = "history-service".into();
            a.external_workflow_execution = Some(WorkflowExecution {
                workflow_id: "child".into(),
                run_id: "r".into(),
            });
        }
        let f = ApprovalPolicy::default()
            .verify(&[e], &dep("ops-lead", D), 0)
            .unwrap_err();
        assert_eq!(f.kind, FailureType::ApprovalInvalid);
        assert!(f.message.contains("\"child\""), "{}", f.message);
    }

    #[test]
    fn an_approval_must_name_this_plan() {
        let p = ApprovalPolicy::default();
        let other = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "a", "planDigest": "other"}),
            "x",
        )];
        let e = p.verify(&other, &dep("a", "mine"), 0).unwrap_err();
        assert_eq!(e.kind, FailureType::ApprovalInvalid);
        let none = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "a"}),
            "x",
        )];
        let e = p.verify(&none, &dep("a", "mine"), 0).unwrap_err();
        assert_eq!(e.kind, FailureType::ApprovalInvalid);
        assert!(e.message.contains("names no planDigest"), "{}", e.message);
    }

    #[test]
    fn a_rollback_uses_the_approval_of_its_own_plan_despite_later_stages() {
        let promote = signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "a", "planDigest": "promote", "expiresAt": 50}),
            "cli@host",
        );
        let reject = signal(
            REJECT_SIGNAL,
            serde_json::json!({"approver": "b", "reason": "no"}),
            "cli@host",
        );
        let ev = [approve("a"), promote, reject];
        let p = ApprovalPolicy::default();
        let rollback = Deployment {
            rollback: true,
            ..dep("a", D)
        };
        let v = p.verify(&ev, &rollback, 100).unwrap();
        assert_eq!(v.approver, "a");
        // A deploy of the same plan is refused: the latest approval names another plan and a
        // rejection followed.
        assert!(p.verify(&ev, &dep("a", D), 0).is_err());
        // The promotion's approval never backs the canary's rollback, nor the other way round.
        let promote_rollback = Deployment {
            rollback: true,
            ..dep("a", "other")
        };
        assert!(p.verify(&ev, &promote_rollback, 0).is_err());
        // Someone else's approval backs nothing.
        assert!(
            p.verify(
                &ev,
                &Deployment {
                    rollback: true,
                    ..dep("b", D)
                },
                0
            )
            .is_err()
        );
    }

    #[test]
    fn an_expired_approval_is_invalid() {
        let ev = [signal(
            APPROVE_SIGNAL,
            serde_json::json!({"approver": "a", "planDigest": D, "expiresAt": 100}),
            "x",
        )];
        let p = ApprovalPolicy::default();
        assert!(p.verify(&ev, &dep("a", D), 100).is_ok());
        assert!(p.verify(&ev, &dep("a", D), 101).is_err());
    }

    #[test]
    fn signed_approvals_verify_only_for_the_signed_subject() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let keys = HashMap::from([("a".to_string(), sk.verifying_key())]);
        let p = ApprovalPolicy {
            keys,
            ..Default::default()
        };
        let subject = ApprovalSubject {
            namespace: "default",
            workflow_id: "wf",
            run_id: "run",
            plan_digest: D,
            approver: "a",
            expires_at: 1000,
        };
        let sign = |s: &ApprovalSubject<'_>| {
            base64::engine::general_purpose::STANDARD
                .encode(sk.sign(approval_message(s).as_bytes()).to_bytes())
        };
        let ev = |sig: String, expires: u64| {
            [signal(
                APPROVE_SIGNAL,
                serde_json::json!({"approver": "a", "planDigest": D, "signature": sig, "expiresAt": expires}),
                "x",
            )]
        };
        let good = ev(sign(&subject), 1000);
        assert!(p.verify(&good, &dep("a", D), 999).unwrap().signed);
        // Expired.
        assert!(p.verify(&good, &dep("a", D), 1001).is_err());
        // The expiry is signed: extending it breaks the signature.
        assert!(
            p.verify(&ev(sign(&subject), 2000), &dep("a", D), 999)
                .is_err()
        );
        // Each bound field matters.
        for other in [
            ApprovalSubject {
                namespace: "prod",
                ..subject.clone()
            },
            ApprovalSubject {
                workflow_id: "wf2",
                ..subject.clone()
            },
            ApprovalSubject {
                run_id: "run2",
                ..subject.clone()
            },
            ApprovalSubject {
                plan_digest: "d2",
                ..subject.clone()
            },
        ] {
            assert!(
                p.verify(&ev(sign(&other), 1000), &dep("a", D), 999)
                    .is_err()
            );
        }
        let unsigned = [approve("a")];
        assert!(p.verify(&unsigned, &dep("a", D), 0).is_err());
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
