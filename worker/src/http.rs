//! The worker's one HTTP endpoint (`AE_HTTP_ADDR`, default `127.0.0.1:9464`; empty disables):
//!
//! - `GET /metrics`: the worker's metrics (`ae_activities::metrics`, seed 003's names) followed by
//!   the Temporal SDK's own `temporal_*` worker metrics. The SDK's exporter serves its private
//!   registry on its own listener, so it is started on a loopback port the OS picks and its text
//!   is fetched and appended here: operators scrape one endpoint.
//! - `GET /healthz`: the process is alive. `GET /readyz`: the worker is polling and Redis and
//!   Docker answer; 503 with the reasons otherwise.
//! - `POST /api/emergency/stop` (`{runId?, reason?}`), `POST /api/emergency/resume` (`{runId?}`),
//!   `GET /api/emergency/status`: the same Redis kill switch as `ae-worker kill-switch`, only
//!   with `Authorization: Bearer $AE_ADMIN_TOKEN` (401 otherwise); without a token configured
//!   these routes do not exist (404).

use ae_activities::Engine;
use ae_activities::control::KillSwitch;
use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use temporalio_common::telemetry::metrics::{
    CoreMeter, Counter, Gauge, GaugeF64, Histogram, HistogramDuration, HistogramF64,
    MetricAttributes, MetricKeyValue, MetricParameters, NewAttributes, TemporalMeter,
    UpDownCounter,
};
use temporalio_common::telemetry::{
    HistogramBucketOverrides, PrometheusExporterOptions, TaskQueueLabelStrategy,
    start_prometheus_metric_exporter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a readiness probe waits for Redis or Docker.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the Temporal SDK's Prometheus exporter on a loopback port chosen by the OS; returns
/// the meter for the runtime's telemetry and the address /metrics fetches its text from.
pub fn start_core_exporter() -> anyhow::Result<(Arc<dyn CoreMeter>, SocketAddr)> {
    // Durations in seconds like the worker's own histogram, with buckets that reach an hour
    // (the SDK's default stops at 60 s; commands may run up to AE_MAX_TIMEOUT_MS).
    let long = vec![
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    ];
    let overrides = HistogramBucketOverrides {
        overrides: HashMap::from([("activity_execution_latency".to_string(), long)]),
    };
    let opts = PrometheusExporterOptions::builder()
        .socket_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .use_seconds_for_durations(true)
        .histogram_bucket_overrides(overrides)
        .build();
    let started = start_prometheus_metric_exporter(opts)
        .context("cannot start the Temporal SDK's metrics exporter")?;
    Ok((started.meter, started.bound_addr))
}

/// The meter the Temporal client records its `temporal_request*` metrics with: the exporter's,
/// with the prefix and `service_name` label the SDK's runtime gives its own (the SDK builds that
/// meter only inside its runtime, which exists after the client connects).
pub fn client_meter(meter: Arc<dyn CoreMeter>) -> TemporalMeter {
    TemporalMeter::new(
        Arc::new(Prefixed(meter)),
        NewAttributes::new(vec![MetricKeyValue::new(
            "service_name",
            "temporal-core-sdk",
        )]),
        TaskQueueLabelStrategy::UseNormal,
    )
}

/// Prefixes metric names with `temporal_`, like the SDK's runtime does.
#[derive(Debug)]
struct Prefixed(Arc<dyn CoreMeter>);

impl Prefixed {
    fn named(p: MetricParameters) -> MetricParameters {
        MetricParameters {
            name: format!("temporal_{}", p.name).into(),
            ..p
        }
    }
}

impl CoreMeter for Prefixed {
    fn new_attributes(&self, attribs: NewAttributes) -> MetricAttributes {
        self.0.new_attributes(attribs)
    }
    fn extend_attributes(
        &self,
        existing: MetricAttributes,
        attribs: NewAttributes,
    ) -> MetricAttributes {
        self.0.extend_attributes(existing, attribs)
    }
    fn counter(&self, p: MetricParameters) -> Counter {
        self.0.counter(Self::named(p))
    }
    fn histogram(&self, p: MetricParameters) -> Histogram {
        self.0.histogram(Self::named(p))
    }
    fn histogram_f64(&self, p: MetricParameters) -> HistogramF64 {
        self.0.histogram_f64(Self::named(p))
    }
    fn histogram_duration(&self, p: MetricParameters) -> HistogramDuration {
        self.0.histogram_duration(Self::named(p))
    }
    fn gauge(&self, p: MetricParameters) -> Gauge {
        self.0.gauge(Self::named(p))
    }
    fn gauge_f64(&self, p: MetricParameters) -> GaugeF64 {
        self.0.gauge_f64(Self::named(p))
    }
    fn up_down_counter(&self, p: MetricParameters) -> UpDownCounter {
        self.0.up_down_counter(Self::named(p))
    }
}

/// What the endpoint reads.
#[derive(Clone)]
pub struct HttpState {
    pub engine: Arc<Engine>,
    /// Where the SDK's exporter listens (None: SDK metrics off).
    pub core_metrics: Option<SocketAddr>,
    /// True while the worker polls its task queue.
    pub polling: Arc<AtomicBool>,
    /// `AE_ADMIN_TOKEN`; None turns the admin routes off.
    pub admin_token: Option<String>,
}

/// Binds `addr` and serves until `stop` is cancelled.
pub async fn serve(
    addr: &str,
    state: HttpState,
    stop: ae_activities::shutdown::CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on AE_HTTP_ADDR={addr}"))?;
    let bound = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "HTTP endpoint stopped");
        }
    });
    Ok(bound)
}

fn router(state: HttpState) -> Router {
    let mut app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if state.admin_token.is_some() {
        let admin = Router::new()
            .route("/api/emergency/stop", post(emergency_stop))
            .route("/api/emergency/resume", post(emergency_resume))
            .route("/api/emergency/status", get(emergency_status))
            .route_layer(middleware::from_fn_with_state(state.clone(), bearer));
        app = app.merge(admin);
    }
    app.with_state(state)
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let sandbox = s.engine.sandbox();
    let m = ae_activities::metrics::get();
    m.set_sandboxes(
        sandbox.registry().ids().len(),
        sandbox.pooled(),
        sandbox.config().pool_size,
        sandbox.sessions().count(),
    );
    let mut text = m.render();
    if let Some(addr) = s.core_metrics {
        match fetch_core_metrics(addr).await {
            Ok(core) => text.push_str(&core),
            Err(e) => tracing::warn!(error = %e, "cannot read the Temporal SDK's metrics"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The SDK exporter's text: one HTTP/1.1 GET on loopback.
async fn fetch_core_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    let fetch = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(PROBE_TIMEOUT, fetch).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed exporter response")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "exporter answered {head}");
    anyhow::ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "exporter answered chunked"
    );
    Ok(body.to_string())
}

async fn readyz(State(s): State<HttpState>) -> Response {
    let mut problems = Vec::new();
    if !s.polling.load(Ordering::SeqCst) {
        problems.push("worker not polling".to_string());
    }
    let mut redis = s.engine.budget().connection();
    let ping = tokio::time::timeout(
        PROBE_TIMEOUT,
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await;
    match ping {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("redis unreachable: {e}")),
        Err(_) => problems.push("redis unreachable: timed out".into()),
    }
    let docker = tokio::time::timeout(PROBE_TIMEOUT, async {
        let d = s
            .engine
            .sandbox()
            .docker()
            .await
            .map_err(|e| e.to_string())?;
        d.ping().await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    match docker {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("docker unreachable: {e}")),
        Err(_) => problems.push("docker unreachable: timed out".into()),
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!("not ready: {}\n", problems.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// 401 unless `Authorization: Bearer <AE_ADMIN_TOKEN>`.
async fn bearer(State(s): State<HttpState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (given, s.admin_token.as_deref()) {
        (Some(g), Some(t)) if same(g.trim().as_bytes(), t.as_bytes()) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response(),
    }
}

/// Compares without stopping at the first difference (no timing hint about the token).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EmergencyBody {
    run_id: Option<String>,
    reason: Option<String>,
}

/// The optional JSON body: empty is `{}`.
fn parse_body(body: &Bytes) -> Result<EmergencyBody, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(EmergencyBody::default());
    }
    serde_json::from_slice(body).map_err(|e| format!("bad body: {e}"))
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

fn switch(s: &HttpState) -> KillSwitch {
    KillSwitch::new(s.engine.budget().connection())
}

fn redis_error(e: redis::RedisError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": format!("redis unreachable: {e}")})),
    )
        .into_response()
}

async fn emergency_stop(State(s): State<HttpState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad_request(m),
    };
    let reason = body
        .reason
        .unwrap_or_else(|| "emergency stop over HTTP".to_string());
    let run = body.run_id.as_deref().filter(|r| !r.is_empty());
    tracing::warn!(target: "ae_audit", action = "emergency-stop", run_id = run.unwrap_or("*"), reason = %reason, "kill switch engaged over HTTP");
    if let Err(e) = switch(&s).engage(run, &reason).await {
        return redis_error(e);
    }
    emergency_status(State(s)).await
}

async fn emergency_resume(State(s): State<HttpState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad_request(m),
    };
    let run = body.run_id.as_deref().filter(|r| !r.is_empty());
    tracing::warn!(target: "ae_audit", action = "emergency-resume", run_id = run.unwrap_or("*"), "kill switch released over HTTP");
    if let Err(e) = switch(&s).release(run).await {
        return redis_error(e);
    }
    emergency_status(State(s)).await
}

async fn emergency_status(State(s): State<HttpState>) -> Response {
    match switch(&s).status().await {
        Ok((global, runs)) => Json(json!({
            "engaged": global.is_some(),
            "reason": global,
            "runs": runs,
        }))
        .into_response(),
        Err(e) => redis_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }

    #[test]
    fn empty_body_is_everything() {
        let b = parse_body(&Bytes::from_static(b"")).ok().unwrap();
        assert!(b.run_id.is_none() && b.reason.is_none());
        let b = parse_body(&Bytes::from_static(br#"{"runId":"r1"}"#))
            .ok()
            .unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r1"));
        assert!(parse_body(&Bytes::from_static(b"{nope")).is_err());
    }
}
