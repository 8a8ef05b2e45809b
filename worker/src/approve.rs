//! `ae-worker approve` and `ae-worker keygen`: signed deployment approvals.
//!
//! `keygen` makes an Ed25519 key pair for an approver: the private key stays with them, the
//! public line goes into the worker's `AE_APPROVER_KEYS_FILE`. `approve` reads the plan awaiting
//! approval from the workflow (`pendingApproval` query), signs (workflow id, plan digest,
//! approver) and sends the `approveDeployment` signal carrying the digest and signature, so the
//! worker can verify that this approver approved exactly this plan.

use crate::run::{RunArgs, connect};
use ae_workflows_spec::ApproveDeployment;
use ae_workflows_spec::deploy::approval_message;
use ae_workflows_spec::workflow::BuildAndDeployWorkflow;
use anyhow::{Context, bail};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use std::path::PathBuf;
use temporalio_client::{WorkflowQueryOptions, WorkflowSignalOptions};

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

/// Signs the pending plan and sends the approval.
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
    // The typed markers send the wire names (`pendingApproval`, `approveDeployment`), so this
    // works for the same workflow written in any SDK.
    let handle = client.get_workflow_handle::<BuildAndDeployWorkflow>(&args.workflow_id);
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
    println!("{}", serde_json::to_string_pretty(&plan)?);
    let signature =
        key.sign(approval_message(&args.workflow_id, &plan.plan_digest, &args.approver).as_bytes());
    let signal = ApproveDeployment {
        approver: args.approver.clone(),
        comment: args.comment.clone(),
        plan_digest: Some(plan.plan_digest.clone()),
        signature: Some(b64.encode(signature.to_bytes())),
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
        "approved plan {} of workflow {} as {}",
        plan.plan_digest, args.workflow_id, args.approver
    );
    Ok(())
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
