//! `ae-worker approve` and `ae-worker keygen`: signed deployment approvals.
//!
//! `keygen` makes an Ed25519 key pair for an approver: the private key stays with them, the
//! public line goes into the worker's `AE_APPROVER_KEYS_FILE`. `approve` reads the plan awaiting
//! approval from the workflow's current run (`pendingApproval` query), recomputes the plan's
//! digest from the fields it shows and refuses a plan whose digest does not match (a workflow
//! cannot show one plan and get a signature for another), shows the plan, asks for
//! confirmation (`--yes` for scripts), then signs (namespace, workflow id, run id, plan digest,
//! approver, expiry) and sends the `approveDeployment` signal to that run carrying the digest,
//! expiry and signature, so the worker can verify that this approver approved exactly this plan.

use crate::run::{RunArgs, connect};
use ae_workflows_spec::deploy::{
    ApprovalSubject, DEFAULT_APPROVAL_VALIDITY_SECS, approval_message,
};
use ae_workflows_spec::workflow::BuildAndDeployWorkflow;
use ae_workflows_spec::{ApproveDeployment, DeploymentPlan};
use anyhow::{Context, bail};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowExecutionInfo, WorkflowHandle, WorkflowQueryOptions,
    WorkflowSignalOptions,
};

/// Options of `ae-worker approve`.
#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The workflow awaiting approval.
    #[arg(long)]
    pub workflow_id: String,
    /// Your approver name (must match your key in the worker's keys file).
    #[arg(long)]
    pub approver: String,
    /// Your private key file (from `ae-worker keygen`).
    #[arg(long, env = "AE_APPROVER_KEY")]
    pub key: PathBuf,
    /// Optional note.
    #[arg(long)]
    pub comment: Option<String>,
    /// How long the approval stays valid, seconds (default 24 h).
    #[arg(long, default_value_t = DEFAULT_APPROVAL_VALIDITY_SECS)]
    pub valid_for_secs: u64,
    /// Approve only if the pending plan has this digest (e.g. the one a reviewer read).
    #[arg(long)]
    pub plan_digest: Option<String>,
    /// Do not ask for confirmation (for scripts).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub connection: RunArgs,
}

/// Options of `ae-worker keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// The approver the key is for.
    #[arg(long)]
    pub approver: String,
    /// Where to write the private key (base64).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes a new private key and prints the public line for the keys file.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    getrandom(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    let b64 = base64::engine::general_purpose::STANDARD;
    write_private(&args.out, &b64.encode(key.to_bytes()))?;
    println!(
        "{} {}",
        args.approver,
        b64.encode(key.verifying_key().to_bytes())
    );
    eprintln!(
        "private key written to {}; add the line above to the worker's AE_APPROVER_KEYS_FILE",
        args.out.display()
    );
    Ok(())
}

/// Shows the pending plan, checks its digest, asks, signs it and sends the approval.
pub async fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read {}", args.key.display()))?;
    let bytes: [u8; 32] = b64
        .decode(text.trim())
        .context("the key file is not base64")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key file does not hold a 32-byte Ed25519 key"))?;
    let key = SigningKey::from_bytes(&bytes);

    let identity = format!("ae-worker-approve:{}", args.approver);
    let client = connect(&args.connection, &identity, None).await?;
    let namespace = crate::run::temporal_profile(&args.connection)?.namespace;
    // Pin the current run: the signature names it, and the signal goes to exactly it.
    let run_id = client
        .get_workflow_handle::<BuildAndDeployWorkflow>(&args.workflow_id)
        .describe(WorkflowDescribeOptions::default())
        .await
        .with_context(|| format!("cannot describe workflow {}", args.workflow_id))?
        .run_id()
        .to_string();
    // The typed markers send the wire names (`pendingApproval`, `approveDeployment`), so this
    // works for the same workflow written in any SDK.
    let handle: WorkflowHandle<Client, BuildAndDeployWorkflow> = WorkflowHandle::new(
        client.clone(),
        WorkflowExecutionInfo::builder()
            .namespace(namespace.clone())
            .workflow_id(args.workflow_id.clone())
            .run_id(run_id.clone())
            .build(),
    );
    let plan = handle
        .query(
            BuildAndDeployWorkflow::pending_approval,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .context("cannot query pendingApproval")?;
    let Some(plan) = plan else {
        bail!(
            "workflow {} has no deployment awaiting approval",
            args.workflow_id
        );
    };
    check_plan(&plan, args.plan_digest.as_deref())?;
    let expires_at = unix_now() + args.valid_for_secs;
    println!(
        "{}",
        describe_plan(&plan, &namespace, &args.workflow_id, &run_id)
    );
    println!(
        "approval by {} valid until Unix time {expires_at}",
        args.approver
    );
    if !args.yes && !confirm()? {
        bail!("not approved: nothing was sent");
    }
    let subject = ApprovalSubject {
        namespace: &namespace,
        workflow_id: &args.workflow_id,
        run_id: &run_id,
        plan_digest: &plan.plan_digest,
        approver: &args.approver,
        expires_at,
    };
    let signature = key.sign(approval_message(&subject).as_bytes());
    let signal = ApproveDeployment {
        approver: args.approver.clone(),
        comment: args.comment.clone(),
        plan_digest: Some(plan.plan_digest.clone()),
        signature: Some(b64.encode(signature.to_bytes())),
        expires_at: Some(expires_at),
    };
    handle
        .signal(
            BuildAndDeployWorkflow::approve_deployment,
            signal,
            WorkflowSignalOptions::default(),
        )
        .await
        .context("cannot send approveDeployment")?;
    println!(
        "approved plan {} of workflow {} (run {run_id}) as {}",
        plan.plan_digest, args.workflow_id, args.approver
    );
    Ok(())
}

/// Refuses a plan whose shown fields do not hash to the digest it claims, or whose digest is not
/// the one the approver expects.
pub fn check_plan(plan: &DeploymentPlan, expected: Option<&str>) -> anyhow::Result<()> {
    let recomputed = plan.recompute_digest();
    if recomputed != plan.plan_digest {
        bail!(
            "refusing to approve: the plan shown does not match its planDigest (it claims {}, \
             its fields hash to {recomputed}); the workflow would get a signature for a plan \
             you have not seen",
            plan.plan_digest
        );
    }
    if let Some(expected) = expected
        && expected != plan.plan_digest
    {
        bail!(
            "refusing to approve: the pending plan is {}, not {expected}",
            plan.plan_digest
        );
    }
    Ok(())
}

/// The plan as a person reads it.
pub fn describe_plan(
    plan: &DeploymentPlan,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
) -> String {
    let mut out = format!(
        "{}\n\nDeployment awaiting approval\n  namespace:  {namespace}\n  workflow:   {workflow_id}\n  run:        {run_id}\n  runId:      {}\n  platform:   {}\n  command:    {}\n  domains:    {}\n  image:      {}\n  timeout:    {} ms\n  profile:    {}\n",
        plan.warning,
        plan.run_id,
        plan.platform,
        plan.command.escape_debug(),
        plan.allowed_domains.join(", "),
        plan.image
            .as_deref()
            .unwrap_or("(the worker's default image)"),
        plan.timeout,
        plan.profile,
    );
    out.push_str(&format!("  files ({}):\n", plan.files.len()));
    for f in &plan.files {
        out.push_str(&format!("    {}  {}\n", f.sha256, f.path.escape_debug()));
    }
    out.push_str(&format!("  env ({}, values not shown):\n", plan.env.len()));
    for e in &plan.env {
        out.push_str(&format!("    {}  {}\n", e.sha256, e.name.escape_debug()));
    }
    out.push_str(&format!(
        "  planDigest: {} (recomputed and matching)",
        plan.plan_digest
    ));
    out
}

fn confirm() -> anyhow::Result<bool> {
    print!("Approve this deployment? Type yes to approve: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn write_private(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

fn getrandom(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ae_workflows_spec::DeployWithApprovalInput;

    fn plan() -> DeploymentPlan {
        let input: DeployWithApprovalInput = serde_json::from_value(serde_json::json!({
            "runId": "r", "platform": "vercel", "command": "vercel deploy --prod",
            "env": {"VERCEL_TOKEN": "secret-value"}
        }))
        .unwrap();
        DeploymentPlan::of(&input)
    }

    #[test]
    fn a_plan_that_does_not_hash_to_its_digest_is_refused() {
        let p = plan();
        assert!(check_plan(&p, None).is_ok());
        assert!(check_plan(&p, Some(&p.plan_digest)).is_ok());
        assert!(check_plan(&p, Some("other")).is_err());
        let mut forged = p.clone();
        forged.command = "echo harmless".into();
        assert!(check_plan(&forged, None).is_err());
        let mut forged = p;
        forged.env.clear();
        assert!(check_plan(&forged, None).is_err());
    }

    #[test]
    fn the_shown_plan_has_no_env_values() {
        let text = describe_plan(&plan(), "default", "wf", "run");
        assert!(
            text.contains("VERCEL_TOKEN") && !text.contains("secret-value"),
            "{text}"
        );
    }
}
