//! `ae-worker`: the Temporal worker that runs untrusted commands safely.
//!
//! `ae-worker run` polls the task queue; `ae-worker image build` makes the sandbox image on the
//! local engine (nothing can be pulled here); `ae-worker approve` and `keygen` sign approvals. Configuration comes from the environment; see the
//! README for every variable.

mod approve;
mod http;
mod image;
mod killswitch;
mod logging;
mod logs_cmd;
mod ops;
mod policy_cmd;
mod redact_cmd;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ae-worker",
    version,
    about = "Temporal worker for safe execution of untrusted commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the task queue and run activities until SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// Sign the pending deployment plan of a workflow and send the approval.
    Approve(approve::ApproveArgs),
    /// Make an Ed25519 key pair for an approver.
    Keygen(approve::KeygenArgs),
    /// Stop executions: new ones fail with KillSwitchEngaged, running sandboxes are killed.
    KillSwitch(killswitch::KillSwitchArgs),
    /// Read and change per-run budgets (the keys the seed's control plane used).
    Budget(ops::BudgetArgs),
    /// Show or reset a run's circuit breaker.
    Circuit(ops::CircuitArgs),
    /// Print the audit stream (every execution and approval decision), optionally following it.
    Audit(ops::AuditArgs),
    /// Print a run's live output stream (redacted), optionally following it.
    Logs(logs_cmd::LogsArgs),
    /// Check commands against the command policy (`check`, `test`, `rules`).
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// Redact stdin to stdout with the worker's rules (and the values of `--env-file`).
    Redact(redact_cmd::RedactArgs),
    /// Print secrets found in files as `file:line:type` (never the secret); exit 1 if any.
    Scan(redact_cmd::ScanArgs),
    /// Manage the sandbox image.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the default sandbox image locally (FROM scratch with Debian's busybox-static).
    Build(image::BuildArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Approve(args) => approve::approve(args).await,
        Command::Keygen(args) => approve::keygen(args),
        Command::KillSwitch(args) => killswitch::run(args).await,
        Command::Budget(args) => ops::budget(args).await,
        Command::Circuit(args) => ops::circuit(args).await,
        Command::Audit(args) => ops::audit(args).await,
        Command::Logs(args) => logs_cmd::logs(args).await,
        Command::Policy { command } => policy_cmd::run(command),
        Command::Redact(args) => redact_cmd::redact(args),
        Command::Scan(args) => match redact_cmd::scan(args) {
            Ok(true) => return std::process::ExitCode::from(1),
            other => other.map(|_| ()),
        },
        Command::Image {
            command: ImageCommand::Build(args),
        } => image::build(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ae-worker failed");
            eprintln!("ae-worker: {}", logging::redact(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}
