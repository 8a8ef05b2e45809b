//! `ae-worker run`: connect to Temporal, register the activities and the reference workflows
//! (`buildAndDeployWorkflow`, `progressiveDeployWorkflow`, `productionMonitorWorkflow`), poll
//! until told to stop.
//!
//! Owns the worker's identity (set explicitly: the SDK's default is empty, and operators need to
//! tell workers apart when several poll the same queue), the heartbeat throttle (cancellation
//! reaches an activity only through a heartbeat response, so the throttle bounds how fast a
//! cancelled sandbox dies) and the shutdown order: on SIGTERM/SIGINT stop polling and let
//! in-flight activities finish (10 s grace), then stop every background task (warm pool, control
//! loop, egress proxy, sessions; see `ae_activities::shutdown`) and wait for them, then remove
//! every sandbox and network this worker created, so nothing is refilled after the cleanup.
//!
//! The process polls two queues: the shared task queue, and its own session queue (the
//! worker-specific task queue pattern), where workflows schedule the activities of the sessions
//! (`openSandbox`) this process holds.

use crate::http;
use ae_activities::config::Settings;
use ae_activities::control::{self, ControlTimings};
use ae_activities::shutdown::{self, Shutdown};
use ae_activities::{Engine, SafeActivities};
use ae_workflows_spec::progressive::production::ProductionMonitorWorkflow;
use ae_workflows_spec::progressive::workflow::ProgressiveDeployWorkflow;
use ae_workflows_spec::workflow::BuildAndDeployWorkflow;
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::{sync::Arc, time::Duration};
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};
use temporalio_common::envconfig::{LoadClientConfigProfileOptions, load_client_config_profile};
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Options of `ae-worker run`; each can also come from the environment.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Temporal frontend, host:port; overrides the connection configuration. The connection
    /// otherwise follows Temporal's conventions: TEMPORAL_ADDRESS (default 127.0.0.1:7233),
    /// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_GRPC_META_*, and the
    /// profile TEMPORAL_PROFILE of the TOML file TEMPORAL_CONFIG_FILE (default
    /// ~/.config/temporalio/temporal.toml); variables override the file.
    #[arg(long)]
    pub temporal_address: Option<String>,
    /// Temporal namespace; overrides TEMPORAL_NAMESPACE and the profile (default `default`).
    #[arg(long)]
    pub namespace: Option<String>,
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
    /// Fleet id put on every sandbox and network; the reaper only touches its own fleet's.
    /// Default: a digest of the Temporal namespace, the task queue and REDIS_URL.
    #[arg(long, env = "AE_FLEET")]
    pub fleet: Option<String>,
    /// The HTTP endpoint (/metrics, /healthz, /readyz, /api/emergency/*), host:port; empty
    /// disables it.
    #[arg(long, env = "AE_HTTP_ADDR", default_value = "127.0.0.1:9464")]
    pub http_addr: String,
    /// Bearer token of the /api/emergency/* routes; unset, those routes are off.
    #[arg(long, env = "AE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Everything the activities read: budgets, sandbox profiles, egress, approvals.
    #[command(flatten)]
    pub settings: Settings,
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
    let temporal = temporal_profile(&args)?;
    let mut config = args.settings.clone().resolve();
    config.worker_id = identity.clone();
    let session_queue = session_queue(&args.task_queue, &identity);
    config.session_queue = session_queue.clone();
    let fleet = match args.fleet.as_deref().map(str::trim) {
        Some(f) if !f.is_empty() => f.to_string(),
        _ => ae_activities::docker::fleet_id(
            &temporal.namespace,
            &args.task_queue,
            &args.settings.redis_url,
        ),
    };
    ae_activities::docker::set_fleet(&fleet);
    let background = Shutdown::new();
    let engine = Arc::new(Engine::new(config, background.token())?);
    check_runtimes(&engine).await?;

    // The SDK's `temporal_*` metrics, served through our /metrics (see `http`).
    let (meter, core_metrics) = http::start_core_exporter()?;
    let client = connect(&args, &identity, Some(http::client_meter(meter.clone()))).await?;
    let telemetry = TelemetryOptions::builder().metrics(meter).build();
    let runtime_options = RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(|e| anyhow::anyhow!(e))?;
    let runtime = Runtime::from_current_tokio(runtime_options)
        .context("cannot start the Temporal runtime")?;
    let options = WorkerOptions::new(&args.task_queue)
        // Hosts the reference workflow too, so the whole flow runs from `temporal workflow start`.
        .register_workflow::<BuildAndDeployWorkflow>()
        .context("cannot register buildAndDeployWorkflow")?
        .register_workflow::<ProgressiveDeployWorkflow>()
        .context("cannot register progressiveDeployWorkflow")?
        .register_workflow::<ProductionMonitorWorkflow>()
        .context("cannot register productionMonitorWorkflow")?
        .register_activities(SafeActivities::new(engine.clone()))
        .client_identity_override(identity.clone())
        .max_heartbeat_throttle_interval(Duration::from_secs(1))
        .default_heartbeat_throttle_interval(Duration::from_secs(1))
        .tuner(tuner(args.max_concurrent_activities))
        .graceful_shutdown_period(Duration::from_secs(10))
        .build();
    let mut worker =
        Worker::new(&runtime, client.clone(), options).context("cannot create the worker")?;
    // This process's own queue, where the activities of the sessions it opens are scheduled.
    let session_options = WorkerOptions::new(&session_queue)
        .register_activities(SafeActivities::new(engine.clone()))
        .client_identity_override(identity.clone())
        .max_heartbeat_throttle_interval(Duration::from_secs(1))
        .default_heartbeat_throttle_interval(Duration::from_secs(1))
        .tuner(tuner(args.max_concurrent_activities))
        .graceful_shutdown_period(Duration::from_secs(10))
        .build();
    let mut session_worker = Worker::new(&runtime, client, session_options)
        .context("cannot create the session queue's worker")?;
    let sessions_engine = engine.clone();
    let sessions_stop = background.token();
    background.spawn("sessions", async move {
        let sessions = sessions_engine.sandbox().sessions().clone();
        sessions.run_reaper(sessions_stop).await
    });
    background.spawn(
        "control loop",
        control_loop(
            engine.clone(),
            identity.clone(),
            args.timings(),
            background.token(),
        ),
    );
    let pool_engine = engine.clone();
    let pool_stop = background.token();
    background.spawn("warm pool", async move {
        pool_engine.sandbox().run_pool(pool_stop).await
    });
    let polling = Arc::new(AtomicBool::new(false));
    if !args.http_addr.trim().is_empty() {
        let state = http::HttpState {
            engine: engine.clone(),
            core_metrics: Some(core_metrics),
            polling: polling.clone(),
            admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
        };
        let bound = http::serve(args.http_addr.trim(), state, background.token()).await?;
        tracing::info!(addr = %bound, "HTTP endpoint listening");
    }
    let shutdown = worker.shutdown_handle();
    let shutdown_sessions = session_worker.shutdown_handle();
    let polling_flag = polling.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        polling_flag.store(false, Ordering::SeqCst);
        tracing::info!("shutting down: finishing in-flight activities");
        shutdown();
        shutdown_sessions();
    });
    tracing::info!(
        identity = %identity,
        task_queue = %args.task_queue,
        session_queue = %session_queue,
        fleet = %fleet,
        temporal = %temporal.connection.target,
        tls = temporal.connection.tls_options.is_some(),
        namespace = %temporal.namespace,
        "worker polling"
    );
    polling.store(true, Ordering::SeqCst);
    let (result, session_result) = tokio::join!(worker.run(), session_worker.run());
    let result = result.and(session_result);
    polling.store(false, Ordering::SeqCst);
    // In-flight activities are done: stop the pool, the control loop, the egress proxy and the
    // sessions (closing every one), and wait for them, so nothing is created after the cleanup
    // below.
    background.stop(Duration::from_secs(10)).await;
    match engine.sandbox().remove_own().await {
        Ok(n) if n > 0 => tracing::info!(removed = n, "removed leftover sandboxes"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not check for leftover sandboxes"),
    }
    result.context("worker stopped with an error")?;
    tracing::info!("worker stopped");
    Ok(())
}

/// Kill-switch watcher, liveness and reaper; starts once Docker answers.
async fn control_loop(
    engine: Arc<Engine>,
    identity: String,
    timings: ControlTimings,
    stop: shutdown::CancellationToken,
) {
    let docker = loop {
        match engine.sandbox().docker().await {
            Ok(d) => break d.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "control loop waiting for Docker");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    control::run_background(
        engine.budget().connection(),
        docker,
        engine.sandbox().registry().clone(),
        identity,
        timings,
        stop,
    )
    .await;
}

/// Where and how to reach Temporal, by Temporal's environment configuration.
pub struct TemporalProfile {
    /// Address, TLS (mTLS certificates, server CA and name), API key, gRPC metadata.
    pub connection: ConnectionOptions,
    /// The namespace to poll.
    pub namespace: String,
}

/// Loads the profile the way every Temporal SDK and the `temporal` CLI do (file, then
/// `TEMPORAL_*` variables over it), then applies `--temporal-address`/`--namespace`.
pub fn temporal_profile(args: &RunArgs) -> anyhow::Result<TemporalProfile> {
    let mut profile = load_client_config_profile(LoadClientConfigProfileOptions::default(), None)
        .map_err(|e| anyhow::anyhow!("cannot load the Temporal connection configuration (TEMPORAL_* variables, TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE): {e:?}"))?;
    if let Some(a) = &args.temporal_address {
        profile.address = Some(a.clone());
    }
    // The dev server listens on 127.0.0.1; the SDK's default `localhost` may resolve to ::1.
    profile
        .address
        .get_or_insert_with(|| "127.0.0.1:7233".into());
    if let Some(ns) = &args.namespace {
        profile.namespace = Some(ns.clone());
    }
    let namespace = profile
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let connection = ConnectionOptions::try_from(profile)
        .map_err(|e| anyhow::anyhow!("invalid Temporal connection configuration: {e:?}"))?;
    Ok(TemporalProfile {
        connection,
        namespace,
    })
}

/// Connects to Temporal, retrying for `args.connect_timeout_secs`.
/// `meter` records the client's `temporal_request*` metrics.
pub async fn connect(
    args: &RunArgs,
    identity: &str,
    meter: Option<temporalio_common::telemetry::metrics::TemporalMeter>,
) -> anyhow::Result<Client> {
    let TemporalProfile {
        mut connection,
        namespace,
    } = temporal_profile(args)?;
    connection.identity = identity.to_string();
    connection.metrics_meter = meter;
    let target = connection.target.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.connect_timeout_secs);
    loop {
        match Connection::connect(connection.clone()).await {
            Ok(conn) => {
                let client = Client::new(conn, ClientOptions::new(namespace.clone()).build())?;
                return Ok(client);
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "Temporal not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(anyhow::anyhow!(e))
                    .with_context(|| format!("cannot connect to Temporal at {target}"));
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

/// This process's own task queue, `<task queue>/<identity>/<random>`: unique per process, so
/// a session's activities can only ever reach the worker holding its sandbox (a restarted
/// worker with the same identity polls another queue).
fn session_queue(task_queue: &str, identity: &str) -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{task_queue}/{identity}/{:x}",
        nonce ^ u128::from(std::process::id())
    )
}

fn default_identity() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("ae-worker@{host}:{}", std::process::id())
}

/// Fails closed when a profile's isolation tier (e.g. gVisor) is not registered with the Docker
/// engine: the worker refuses to start rather than run sandboxes under a weaker runtime. While
/// Docker is unreachable the worker starts as usual (every sandbox creation names its runtime,
/// so none can fall back to another one).
async fn check_runtimes(engine: &Engine) -> anyhow::Result<()> {
    // gVisor does not apply an OCI seccomp profile to the commands (they run through exec):
    // a stricter profile an operator asked for would silently not hold.
    let cfg = &engine.config().sandbox;
    for (var, limits) in [
        ("AE_SANDBOX_SECCOMP_PROFILE", &cfg.default_profile),
        ("AE_PRODUCTION_SECCOMP_PROFILE", &cfg.production),
    ] {
        if limits.runtime == ae_activities::config::SandboxRuntime::Gvisor
            && limits.seccomp_profile.is_some()
        {
            anyhow::bail!(
                "{var}: a seccomp profile is not applied to commands under gVisor (gVisor filters the host's system calls itself); drop it or use AE_*_RUNTIME=runc"
            );
        }
    }
    match engine.sandbox().missing_runtimes().await {
        Ok(missing) if missing.is_empty() => Ok(()),
        Ok(missing) => anyhow::bail!(
            "AE_SANDBOX_RUNTIME/AE_PRODUCTION_RUNTIME need OCI runtime(s) {} that the Docker engine has not registered; install them with `scripts/install-deps.sh --gvisor` (refusing to start rather than fall back to runc)",
            missing.join(", ")
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the sandbox runtimes now; every sandbox creation names its runtime");
            Ok(())
        }
    }
}
