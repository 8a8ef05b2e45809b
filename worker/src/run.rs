//! `ae-worker run`: connect to Temporal, register the activities, poll until told to stop.
//!
//! Owns the worker's identity (set explicitly: the SDK's default is empty, and operators need to
//! tell workers apart when several poll the same queue), the heartbeat throttle (cancellation
//! reaches an activity only through a heartbeat response, so the throttle bounds how fast a
//! cancelled sandbox dies) and graceful shutdown (every sandbox this worker created is removed).

use ae_activities::control::{self, ControlTimings};
use ae_activities::{Config, Engine, SafeActivities};
use ae_workflows_spec::workflow::BuildAndDeployWorkflow;
use anyhow::Context;
use std::{str::FromStr, sync::Arc, time::Duration};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Options of `ae-worker run`; each can also come from the environment.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Temporal frontend, host:port.
    #[arg(long, env = "TEMPORAL_ADDRESS", default_value = "127.0.0.1:7233")]
    pub temporal_address: String,
    /// Temporal namespace.
    #[arg(long, env = "TEMPORAL_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Task queue to poll.
    #[arg(long, env = "AE_TASK_QUEUE", default_value = ae_workflows_spec::TASK_QUEUE)]
    pub task_queue: String,
    /// Identity reported to Temporal and put on sandbox labels (default: ae-worker@host:pid).
    #[arg(long, env = "AE_WORKER_IDENTITY")]
    pub identity: Option<String>,
    /// Activities this worker runs at once.
    #[arg(long, env = "AE_MAX_CONCURRENT_ACTIVITIES", default_value_t = 16)]
    pub max_concurrent_activities: usize,
    /// Seconds to keep trying to reach Temporal at start-up.
    #[arg(long, env = "AE_CONNECT_TIMEOUT_SECS", default_value_t = 30)]
    pub connect_timeout_secs: u64,
    /// Seconds between reaper passes (orphaned and expired sandboxes).
    #[arg(long, env = "AE_REAPER_INTERVAL_SECS", default_value_t = 30)]
    pub reaper_interval_secs: u64,
    /// Seconds a worker counts as alive after its last liveness refresh.
    #[arg(long, env = "AE_WORKER_TTL_SECS", default_value_t = 20)]
    pub worker_ttl_secs: u64,
}

impl RunArgs {
    fn timings(&self) -> ControlTimings {
        let ttl = Duration::from_secs(self.worker_ttl_secs.max(2));
        ControlTimings {
            alive_every: ttl / 3,
            alive_ttl: ttl,
            reap_every: Duration::from_secs(self.reaper_interval_secs.max(1)),
            ..Default::default()
        }
    }
}

/// Runs the worker until SIGINT/SIGTERM, then removes this worker's sandboxes.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let mut config = Config::from_env()?;
    config.worker_id = identity.clone();
    let mut engine = Engine::new(config)?;
    // Custom redaction patterns (`AE_REDACT_PATTERNS_FILE`) apply to every output.
    engine.redactor = ae_activities::redact::Redactor::configured().map_err(anyhow::Error::msg)?;
    let engine = Arc::new(engine);

    let client = connect(&args, &identity).await?;
    let runtime = Runtime::from_current_tokio(Default::default())
        .context("cannot start the Temporal runtime")?;
    let options = WorkerOptions::new(&args.task_queue)
        // Hosts the reference workflow too, so the whole flow runs from `temporal workflow start`.
        .register_workflow::<BuildAndDeployWorkflow>()
        .context("cannot register buildAndDeployWorkflow")?
        .register_activities(SafeActivities::new(engine.clone()))
        .client_identity_override(identity.clone())
        .max_heartbeat_throttle_interval(Duration::from_secs(1))
        .default_heartbeat_throttle_interval(Duration::from_secs(1))
        .tuner(tuner(args.max_concurrent_activities))
        .graceful_shutdown_period(Duration::from_secs(10))
        .build();
    let mut worker = Worker::new(&runtime, client, options).context("cannot create the worker")?;
    tokio::spawn(control_loop(
        engine.clone(),
        identity.clone(),
        args.timings(),
    ));
    let pool_engine = engine.clone();
    tokio::spawn(async move { pool_engine.sandbox.run_pool().await });
    let shutdown = worker.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight activities");
        shutdown();
    });
    tracing::info!(
        identity = %identity,
        task_queue = %args.task_queue,
        temporal = %args.temporal_address,
        namespace = %args.namespace,
        "worker polling"
    );
    let result = worker.run().await;
    match engine.sandbox.remove_own().await {
        Ok(n) if n > 0 => tracing::info!(removed = n, "removed leftover sandboxes"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not check for leftover sandboxes"),
    }
    result.context("worker stopped with an error")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Kill-switch watcher, liveness and reaper; starts once Docker answers.
async fn control_loop(engine: Arc<Engine>, identity: String, timings: ControlTimings) {
    let docker = loop {
        match engine.sandbox.docker().await {
            Ok(d) => break d.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "control loop waiting for Docker");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    control::run_background(
        engine.budget.connection(),
        docker,
        engine.sandbox.registry().clone(),
        identity,
        timings,
    )
    .await;
}

/// Connects to Temporal, retrying for `args.connect_timeout_secs`.
pub async fn connect(args: &RunArgs, identity: &str) -> anyhow::Result<Client> {
    let url = Url::from_str(&format!("http://{}", args.temporal_address)).with_context(|| {
        format!(
            "TEMPORAL_ADDRESS {:?} is not host:port",
            args.temporal_address
        )
    })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.connect_timeout_secs);
    loop {
        let opts = ConnectionOptions::new(url.clone())
            .identity(identity.to_string())
            .build();
        match Connection::connect(opts).await {
            Ok(conn) => {
                let client = Client::new(conn, ClientOptions::new(args.namespace.clone()).build())?;
                return Ok(client);
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "Temporal not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(e)).with_context(|| {
                    format!("cannot connect to Temporal at {}", args.temporal_address)
                });
            }
        }
    }
}

/// Fixed slots: `activities` sandboxes at once; workflow tasks for the hosted workflows.
fn tuner(activities: usize) -> TunerHolder {
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(16))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities.max(1)))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(4))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build()
}

fn default_identity() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("ae-worker@{host}:{}", std::process::id())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
