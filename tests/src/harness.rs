//! The shared test environment: Redis, a Temporal dev server, the real `ae-worker` and the test
//! workflow host, each started once per test binary on free ports.
//!
//! Every child runs under a tiny `sh` watchdog that kills it when this test process's end of
//! a pipe closes, so nothing outlives the test binary even when it panics or is killed. Logs go
//! to `target/e2e-logs/<binary>-<pid>/`.

use crate::workflows::{Outcome, RunActivity, RunActivityWorkflow, TEST_WORKFLOW_QUEUE};
use serde_json::Value;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowGetResultOptions,
    WorkflowStartOptions,
};

/// The task queue the worker under test polls (the product default).
pub const WORKER_QUEUE: &str = ae_workflows_spec::TASK_QUEUE;

/// The running services.
pub struct Harness {
    /// host:port of the Temporal frontend.
    pub temporal_address: String,
    /// URL of the Redis server.
    pub redis_url: String,
    /// Identity of the worker under test; also its sandboxes' owner label.
    pub worker_identity: String,
    /// Where the children's logs are.
    pub log_dir: PathBuf,
    /// The worker's audit log (JSON lines).
    pub audit_file: PathBuf,
    /// The shared worker's HTTP endpoint, `http://127.0.0.1:<port>` (each worker its own port).
    pub http_url: String,
    /// Write ends of the watchdog pipes: closing them (at exit) kills the children.
    _lifelines: Mutex<Vec<(Child, ChildStdin)>>,
}

/// `AE_ADMIN_TOKEN` of the workers the harness starts (the emergency routes need one).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The fleet of every worker the harness starts (they share its Redis, whatever their task
/// queue), so their reapers clean up after each other and never after another fleet on this
/// Docker engine (a developer's worker, another test run).
pub fn fleet() -> String {
    format!("e2e-{}", std::process::id())
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// The environment, started on first use.
pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| Harness::start().unwrap_or_else(|e| panic!("test harness: {e:#}")))
}

impl Harness {
    fn start() -> anyhow::Result<Harness> {
        let bin_dir = bin_dir()?;
        let exe = std::env::current_exe()?;
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        let log_dir = bin_dir
            .join("e2e-logs")
            .join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&log_dir)?;
        let mut lifelines = Vec::new();

        let redis_port = free_port()?;
        lifelines.push(spawn(
            Command::new("redis-server").args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            &log_dir.join("redis.log"),
        )?);
        wait_for_port(redis_port, Duration::from_secs(20), "redis-server")?;

        let temporal_port = free_port()?;
        let ui_port = free_port()?;
        lifelines.push(spawn(
            Command::new("temporal").args([
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                &temporal_port.to_string(),
                "--ui-port",
                &ui_port.to_string(),
                "--log-level",
                "warn",
            ]),
            &log_dir.join("temporal.log"),
        )?);
        wait_for_port(temporal_port, Duration::from_secs(60), "temporal server")?;
        let temporal_address = format!("127.0.0.1:{temporal_port}");
        let redis_url = format!("redis://127.0.0.1:{redis_port}");

        let worker = bin_dir.join("ae-worker");
        ensure_image(&worker)?;
        let audit_file = log_dir.join("audit.jsonl");
        let worker_identity = format!(
            "ae-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let http_port = free_port()?;
        lifelines.push(spawn(
            Command::new(&worker)
                .arg("run")
                .env("AE_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
                .env("AE_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("AE_FLEET", fleet())
                .env("TEMPORAL_ADDRESS", &temporal_address)
                .env("REDIS_URL", &redis_url)
                .env("AE_WORKER_IDENTITY", &worker_identity)
                .env("AE_AUDIT_FILE", &audit_file)
                // Tests reuse runs far more than an agent would: the shared worker's guardrails
                // are wide open; the guardrail tests run their own workers with the defaults.
                .env("AE_RATE_SANDBOX_PER_MIN", "0")
                .env("AE_MAX_CONCURRENT_PER_RUN", "0")
                .env("AE_CIRCUIT_FAILURES", "0")
                .env("RUST_LOG", "info"),
            &log_dir.join("worker.log"),
        )?);
        lifelines.push(spawn(
            Command::new(bin_dir.join("ae-test-workflows"))
                .env("TEMPORAL_ADDRESS", &temporal_address),
            &log_dir.join("test-workflows.log"),
        )?);
        Ok(Harness {
            temporal_address,
            redis_url,
            worker_identity,
            log_dir,
            audit_file,
            http_url: format!("http://127.0.0.1:{http_port}"),
            _lifelines: Mutex::new(lifelines),
        })
    }

    /// A fresh client (one per test: each test has its own tokio runtime).
    pub async fn client(&self) -> Client {
        let url = Url::from_str(&format!("http://{}", self.temporal_address)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let opts = ConnectionOptions::new(url.clone())
                .identity("ae-tests".to_string())
                .build();
            match Connection::connect(opts).await {
                Ok(conn) => {
                    return Client::new(conn, ClientOptions::new("default").build()).unwrap();
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("cannot connect to the test Temporal server: {e}"),
            }
        }
    }

    /// A Redis connection to the test server.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }
}

/// Runs the `temporal` CLI against the test server; returns its stdout, panics on failure.
pub fn temporal_cli(args: &[&str]) -> String {
    let h = harness();
    let out = Command::new("temporal")
        .args(args)
        .args(["--address", &h.temporal_address, "--namespace", "default"])
        .output()
        .expect("run the temporal CLI");
    assert!(
        out.status.success(),
        "temporal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The audit records the worker wrote about `workflow_id`.
pub fn audit_records(workflow_id: &str) -> Vec<Value> {
    std::fs::read_to_string(&harness().audit_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["workflowId"] == workflow_id)
        .collect()
}

/// The path of a binary built with the workspace (e.g. `ae-worker`).
pub fn binary(name: &str) -> PathBuf {
    bin_dir().unwrap().join(name)
}

/// An approver's key pair, made by `ae-worker keygen` in a directory of its own.
pub struct ApproverKey {
    /// The private key file (`ae-worker approve --key`).
    pub key: PathBuf,
    /// A keys file naming the approver, for a worker's `AE_APPROVER_KEYS_FILE`.
    pub keys_file: PathBuf,
}

/// Makes a key pair for `approver` with `ae-worker keygen`.
pub fn approver_key(approver: &str) -> ApproverKey {
    let dir = harness()
        .log_dir
        .join(format!("keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join(format!("{approver}.key"));
    let out = Command::new(binary("ae-worker"))
        .args(["keygen", "--approver", approver, "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys_file = dir.join("approvers.keys");
    std::fs::write(&keys_file, &out.stdout).unwrap();
    ApproverKey { key, keys_file }
}

/// An extra `ae-worker` on its own task queue, stopped when dropped.
pub struct ExtraWorker {
    /// The queue it polls.
    pub task_queue: String,
    /// Its identity (sandbox owner label).
    pub identity: String,
    /// Its HTTP endpoint, `http://127.0.0.1:<port>`.
    pub http_url: String,
    lifeline: Option<(Child, ChildStdin)>,
}

impl Drop for ExtraWorker {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.lifeline.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Starts another real worker with `env` overrides (e.g. an unreachable Docker or Redis) on a
/// fresh task queue, so a test can see how the product behaves when its dependencies fail.
pub fn start_worker(env: &[(&str, &str)]) -> ExtraWorker {
    start_worker_with(None, env, &[])
}

/// Like [`start_worker`], on `task_queue` when given (several workers of one fleet), else on
/// a fresh queue.
pub fn start_worker_on(task_queue: Option<&str>, env: &[(&str, &str)]) -> ExtraWorker {
    start_worker_with(task_queue, env, &[])
}

/// [`start_worker`], with the variables in `unset` removed from its environment (e.g.
/// `TEMPORAL_ADDRESS`, for a worker configured by a Temporal TOML profile only).
pub fn start_worker_without(env: &[(&str, &str)], unset: &[&str]) -> ExtraWorker {
    start_worker_with(None, env, unset)
}

/// The extra worker: on `task_queue` (else a fresh one), with `env` set and `unset` removed.
fn start_worker_with(
    task_queue: Option<&str>,
    env: &[(&str, &str)],
    unset: &[&str],
) -> ExtraWorker {
    let h = harness();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let task_queue = task_queue.map_or_else(|| format!("extra-{suffix}"), str::to_string);
    let identity = format!("ae-test-extra-{suffix}");
    let http_port = free_port().expect("free port");
    let mut cmd = Command::new(bin_dir().unwrap().join("ae-worker"));
    cmd.arg("run")
        .env("AE_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("AE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AE_FLEET", fleet())
        .env("TEMPORAL_ADDRESS", &h.temporal_address)
        .env("REDIS_URL", &h.redis_url)
        .env("AE_TASK_QUEUE", &task_queue)
        .env("AE_WORKER_IDENTITY", &identity)
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let lifeline = spawn(&mut cmd, &h.log_dir.join(format!("worker-{identity}.log")))
        .expect("start extra worker");
    ExtraWorker {
        task_queue,
        identity,
        http_url: format!("http://127.0.0.1:{http_port}"),
        lifeline: Some(lifeline),
    }
}

/// Options for [`run_activity`].
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Queue the activity is scheduled on (default: the worker's).
    pub task_queue: String,
    pub start_to_close: Duration,
    pub heartbeat: Duration,
    pub max_attempts: u32,
    pub cancel_after: Option<Duration>,
    /// Assert afterwards that the workflow left no sandbox (off in benchmarks: it is a Docker
    /// call that would sit inside the timed region).
    pub check_cleanup: bool,
}

impl Default for RunOpts {
    fn default() -> Self {
        Self {
            task_queue: WORKER_QUEUE.into(),
            start_to_close: Duration::from_secs(120),
            heartbeat: Duration::from_secs(10),
            max_attempts: 1,
            cancel_after: None,
            check_cleanup: true,
        }
    }
}

/// Runs the test workflow, which schedules `activity` by name on the worker's task queue, and
/// returns what the workflow saw plus the workflow id. Also asserts that no sandbox of that
/// workflow is left once it is done.
pub async fn run_activity(activity: &str, input: Value, opts: RunOpts) -> (Outcome, String) {
    let workflow_id = start_activity(activity, input, &opts).await;
    let outcome = outcome_of(&workflow_id).await;
    if !opts.check_cleanup {
        return (outcome, workflow_id);
    }
    // Removal is awaited before the activity returns, but a Drop-path removal is asynchronous.
    let left = wait_for_no_sandboxes("ae.workflow-id", &workflow_id, Duration::from_secs(5)).await;
    assert!(
        left.is_empty(),
        "sandboxes left behind by {workflow_id}: {left:?}"
    );
    (outcome, workflow_id)
}

/// Starts the test workflow without waiting for it; returns its id.
pub async fn start_activity(activity: &str, input: Value, opts: &RunOpts) -> String {
    let client = harness().client().await;
    let workflow_id = format!("test-{}", uuid::Uuid::new_v4());
    let req = RunActivity {
        activity: activity.into(),
        input,
        task_queue: opts.task_queue.clone(),
        start_to_close_ms: opts.start_to_close.as_millis() as u64,
        heartbeat_ms: opts.heartbeat.as_millis() as u64,
        max_attempts: opts.max_attempts,
        cancel_after_ms: opts.cancel_after.map(|d| d.as_millis() as u64),
    };
    client
        .start_workflow(
            RunActivityWorkflow::run,
            req,
            WorkflowStartOptions::new(TEST_WORKFLOW_QUEUE, &workflow_id)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start test workflow");
    workflow_id
}

/// Waits for a test workflow started by [`start_activity`].
pub async fn outcome_of(workflow_id: &str) -> Outcome {
    let client = harness().client().await;
    client
        .get_workflow_handle::<RunActivityWorkflow>(workflow_id)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "test workflow {workflow_id} failed: {e:?}; logs in {:?}",
                harness().log_dir
            )
        })
}

/// The pid of the `ae-worker` whose environment names `identity`.
pub fn worker_pid(identity: &str) -> Option<u32> {
    let needle = format!("AE_WORKER_IDENTITY={identity}");
    for _ in 0..50 {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                continue;
            };
            if comm.trim() == "ae-worker"
                && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
            {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Polls until some container carries `label=value`; returns its id.
pub async fn wait_for_sandbox(label: &str, value: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(id) = sandboxes_with_label(label, value).await.into_iter().next() {
            return Some(id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A fresh run id, `tag-<uuid>`: tests never share a run's budget or guardrails by accident.
pub fn run_id(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// `safeExecuteCode` with default options.
pub async fn safe_execute(input: Value) -> Outcome {
    run_activity("safeExecuteCode", input, RunOpts::default())
        .await
        .0
}

/// `safeExecuteBatch` with default options.
pub async fn safe_execute_batch(input: Value) -> Outcome {
    run_activity("safeExecuteBatch", input, RunOpts::default())
        .await
        .0
}

/// Container ids (including stopped ones) carrying `label=value`.
pub async fn sandboxes_with_label(label: &str, value: &str) -> Vec<String> {
    let docker = bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let filters =
        std::collections::HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Polls until no container carries `label=value`, or the time is up; returns what is left.
pub async fn wait_for_no_sandboxes(label: &str, value: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = sandboxes_with_label(label, value).await;
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no sandbox network carries `label=value`; returns those left at the deadline.
pub async fn wait_for_no_networks(label: &str, value: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let out = Command::new("docker")
            .args(["network", "ls", "-q", "--filter"])
            .arg(format!("label={label}={value}"))
            .output()
            .expect("docker network ls");
        let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The directory holding the workspace's binaries (`target/debug`).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    for bin in ["ae-worker", "ae-test-workflows"] {
        anyhow::ensure!(
            dir.join(bin).exists(),
            "{} is missing: build the binaries first (`cargo build --workspace --bins`, or use scripts/test.sh)",
            dir.join(bin).display()
        );
    }
    Ok(dir)
}

/// Builds the default sandbox image when the engine lacks it.
fn ensure_image(worker: &Path) -> anyhow::Result<()> {
    let image = std::env::var("AE_SANDBOX_IMAGE").unwrap_or_else(|_| "ae-sandbox:latest".into());
    let present = Command::new("docker")
        .args(["image", "inspect", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    if !present {
        let status = Command::new(worker)
            .args(["image", "build", "--tag", &image])
            .status()?;
        anyhow::ensure!(status.success(), "ae-worker image build failed");
    }
    Ok(())
}

/// Starts `cmd` under a watchdog: `sh` runs it in the background and kills it (TERM, then KILL)
/// as soon as its stdin, a pipe held by this process, reaches end of file.
fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<(Child, ChildStdin)> {
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let removed: Vec<_> = cmd
        .get_envs()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.to_owned())
        .collect();
    let out = std::fs::File::create(log)?;
    let script = r#""$@" <&- & child=$!
read _ignored
kill -TERM "$child" 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  kill -0 "$child" 2>/dev/null || exit 0
  sleep 0.5
done
kill -KILL "$child" 2>/dev/null"#;
    let mut sh = Command::new("sh");
    for k in &removed {
        sh.env_remove(k);
    }
    let mut child = sh
        .arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(&program)
        .args(&args)
        .envs(envs)
        .stdin(Stdio::piped())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {program:?}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.flush()?;
    Ok((child, stdin))
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, within: Duration, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{what} did not listen on port {port} within {within:?}")
}

/// One HTTP/1.1 request (`Connection: close`) to a worker's endpoint, e.g.
/// `http(&h.http_url, "POST", "/api/emergency/stop", Some("Bearer x"), "{}")`; returns the
/// status code and the body. Enough for the endpoint's fixed-length answers.
pub async fn http(
    base: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP answer: {head}"));
    (status, body.to_string())
}

/// Waits until `GET <base><path>` answers `status` (a worker's endpoint starting up).
pub async fn wait_for_http(base: &str, path: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        let host = base.trim_start_matches("http://");
        if tokio::net::TcpStream::connect(host).await.is_ok() {
            let (s, body) = http(base, "GET", path, None, "").await;
            if s == status {
                return body;
            }
            last = format!("{s} {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{base}{path} did not answer {status} within {within:?}; last: {last}");
}

/// Every entry of the Redis stream `key`, each as a JSON object of its fields.
pub async fn stream_entries(key: &str) -> Vec<serde_json::Value> {
    let mut conn = harness().redis().await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|id| {
            let map: serde_json::Map<String, serde_json::Value> = id
                .map
                .iter()
                .map(|(k, v)| {
                    let v: String = redis::from_redis_value(v.clone()).unwrap_or_default();
                    (k.clone(), v.into())
                })
                .collect();
            serde_json::Value::Object(map)
        })
        .collect()
}

/// The entries of the audit stream `ae:audit` written for one workflow.
pub async fn audit_stream(workflow_id: &str) -> Vec<serde_json::Value> {
    stream_entries("ae:audit")
        .await
        .into_iter()
        .filter(|e| e["workflowId"] == workflow_id)
        .collect()
}

/// A test HTTP service's side of one connection: reads the request head (up to the blank
/// line); `None` when the peer closed or stalled for 5 s first.
pub fn read_request_head(conn: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Answers with an HTTP/1.0 plain-text response (`status` like `200 OK`).
pub fn respond(conn: &mut std::net::TcpStream, status: &str, body: &str) {
    use std::io::Write;
    let _ = write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}
