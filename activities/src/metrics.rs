//! The worker's own Prometheus metrics (seed 003's names), in one process-wide registry that
//! the binary's HTTP endpoint renders beside the Temporal SDK's `temporal_*` metrics.
//!
//! Labels are bounded: activity, profile, outcome, failure type, policy rule. Never a run id,
//! workflow id or command (unbounded cardinality, and a command may hold secrets).
//!
//! Call sites are few on purpose: [`observe`] once per activity (its result says everything
//! about the execution), [`policy_check`] once in `admit::check_policy`, and the gauges of
//! [`Metrics::set_sandboxes`] when the endpoint is scraped.

use crate::pipeline::Stop;
use crate::policy::PolicyDecision;
use ae_workflows_spec::{BatchResult, DeploymentResult, ExecutionResult, FailureType};
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Every metric of the worker.
pub struct Metrics {
    registry: Registry,
    /// `policy_checks_total{outcome,rule}`: allowed, refused, approval_required.
    pub policy_checks: IntCounterVec,
    /// `policy_violations_total{rule}`.
    pub policy_violations: IntCounterVec,
    /// `budget_exceeded_total{activity}`.
    pub budget_exceeded: IntCounterVec,
    /// `sandbox_executions_total{activity,profile,outcome}`.
    pub executions: IntCounterVec,
    /// `sandbox_execution_duration_seconds{activity,profile,outcome}`.
    pub duration: HistogramVec,
    /// `budget_spent_dollars{activity}`: dollars charged (a counter).
    pub spent: CounterVec,
    /// `budget_remaining_dollars{activity}`: the remaining budget of the run last charged.
    pub remaining: GaugeVec,
    /// `secrets_redacted_total{activity}`.
    pub redacted: IntCounterVec,
    /// `egress_denied_total{activity}`: requests the egress proxy refused.
    pub egress_denied: IntCounterVec,
    /// `activity_failures_total{activity,failure}`: typed failures (guardrails included).
    pub failures: IntCounterVec,
    /// `sandboxes_active`: sandboxes this worker runs now, pooled ones included.
    pub sandboxes_active: IntGauge,
    /// `sandbox_pool_ready`: started sandboxes waiting in the warm pool.
    pub pool_ready: IntGauge,
    /// `sandbox_pool_size`: the warm pool's configured size.
    pub pool_size: IntGauge,
    /// `sandbox_sessions_open`: sessions (`openSandbox`) open on this worker now.
    pub sessions_open: IntGauge,
    /// `live_output_dropped_bytes_total`: redacted live output not appended to `ae:output:*`
    /// (the writer's queue was full, or Redis failed).
    pub live_output_dropped: IntCounter,
}

/// Duration buckets in seconds: commands run from milliseconds to an hour.
const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            reg(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        const RUN: &[&str] = &["activity", "profile", "outcome"];
        Metrics {
            policy_checks: counter(
                "policy_checks_total",
                "Commands checked against the policy, by outcome.",
                &["outcome"],
            ),
            policy_violations: counter(
                "policy_violations_total",
                "Commands the policy refused, by rule.",
                &["rule"],
            ),
            budget_exceeded: counter(
                "budget_exceeded_total",
                "Executions refused because the run's budget would be exceeded.",
                &["activity"],
            ),
            executions: counter(
                "sandbox_executions_total",
                "Activity executions, by outcome (ok, nonzero_exit, timed_out, cancelled, or the failure type).",
                RUN,
            ),
            duration: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sandbox_execution_duration_seconds",
                        "Time the command(s) ran in the sandbox.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    RUN,
                )
                .expect("valid metric"),
            ),
            spent: reg(
                &registry,
                CounterVec::new(
                    Opts::new("budget_spent_dollars", "Dollars charged to run budgets."),
                    &["activity"],
                )
                .expect("valid metric"),
            ),
            remaining: reg(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "budget_remaining_dollars",
                        "Remaining budget of the run charged last.",
                    ),
                    &["activity"],
                )
                .expect("valid metric"),
            ),
            redacted: counter(
                "secrets_redacted_total",
                "Secrets replaced in outputs.",
                &["activity"],
            ),
            egress_denied: counter(
                "egress_denied_total",
                "Requests the egress proxy refused.",
                &["activity"],
            ),
            failures: counter(
                "activity_failures_total",
                "Typed activity failures (guardrails: PolicyViolation, KillSwitchEngaged, BudgetExceeded, ...).",
                &["activity", "failure"],
            ),
            sandboxes_active: gauge(
                "sandboxes_active",
                "Sandboxes this worker runs now, pooled ones included.",
            ),
            pool_ready: gauge(
                "sandbox_pool_ready",
                "Started sandboxes waiting in the warm pool.",
            ),
            pool_size: gauge("sandbox_pool_size", "The warm pool's configured size."),
            sessions_open: gauge(
                "sandbox_sessions_open",
                "Sessions (openSandbox) open on this worker now.",
            ),
            live_output_dropped: reg(
                &registry,
                IntCounter::new(
                    "live_output_dropped_bytes_total",
                    "Redacted live output dropped instead of appended to ae:output:<runId>.",
                )
                .expect("valid metric"),
            ),
            registry,
        }
    }

    /// Prometheus text format of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Sets the sandbox gauges (read when the endpoint is scraped).
    pub fn set_sandboxes(
        &self,
        active: usize,
        pool_ready: usize,
        pool_size: usize,
        sessions: usize,
    ) {
        self.sessions_open.set(sessions as i64);
        self.sandboxes_active.set(active as i64);
        self.pool_ready.set(pool_ready as i64);
        self.pool_size.set(pool_size as i64);
    }
}

/// One policy decision (called once per checked command).
pub fn policy_check(decision: &PolicyDecision) {
    let m = get();
    let outcome = if !decision.allowed {
        let rule = decision.rule.as_deref().unwrap_or("unknown");
        m.policy_violations.with_label_values(&[rule]).inc();
        "refused"
    } else if decision.requires_approval {
        "approval_required"
    } else {
        "allowed"
    };
    m.policy_checks.with_label_values(&[outcome]).inc();
}

/// What a finished activity's result says about its execution.
pub struct Observation {
    pub outcome: &'static str,
    pub cost: f64,
    pub remaining: f64,
    pub redactions: u64,
    pub egress_denied: u64,
    pub duration: Duration,
}

/// A result the metrics understand.
pub trait Observe {
    fn observation(&self) -> Observation;
}

impl Observe for ExecutionResult {
    fn observation(&self) -> Observation {
        Observation {
            outcome: if self.timed_out {
                "timed_out"
            } else if self.exit_code != 0 {
                "nonzero_exit"
            } else {
                "ok"
            },
            cost: self.cost,
            remaining: self.budget_remaining,
            redactions: self.redactions,
            egress_denied: self.egress_denied,
            duration: Duration::from_millis(self.duration_ms),
        }
    }
}

impl Observe for BatchResult {
    fn observation(&self) -> Observation {
        let failed = self.failed_index.and_then(|i| self.results.get(i));
        Observation {
            outcome: match failed {
                None if self.succeeded => "ok",
                Some(r) if r.timed_out => "timed_out",
                _ => "nonzero_exit",
            },
            cost: self.total_cost,
            remaining: self.budget_remaining,
            redactions: self.results.iter().map(|r| r.redactions).sum(),
            egress_denied: self.results.iter().map(|r| r.egress_denied).sum(),
            duration: Duration::from_millis(self.duration_ms),
        }
    }
}

impl Observe for DeploymentResult {
    fn observation(&self) -> Observation {
        Observation {
            outcome: if self.success { "ok" } else { "nonzero_exit" },
            cost: self.cost,
            remaining: self.budget_remaining,
            redactions: 0,
            egress_denied: 0,
            duration: Duration::from_millis(self.duration_ms),
        }
    }
}

/// Records one finished activity: called once, at each activity's entry point.
pub fn observe<T: Observe>(activity: &str, profile: &str, result: &Result<T, Stop>) {
    let m = get();
    match result {
        Ok(r) => {
            let o = r.observation();
            m.executions
                .with_label_values(&[activity, profile, o.outcome])
                .inc();
            m.duration
                .with_label_values(&[activity, profile, o.outcome])
                .observe(o.duration.as_secs_f64());
            m.spent
                .with_label_values(&[activity])
                .inc_by(o.cost.max(0.0));
            m.remaining.with_label_values(&[activity]).set(o.remaining);
            m.redacted
                .with_label_values(&[activity])
                .inc_by(o.redactions);
            m.egress_denied
                .with_label_values(&[activity])
                .inc_by(o.egress_denied);
        }
        Err(stop) => {
            let outcome = match stop {
                Stop::Cancelled => "cancelled",
                Stop::Fail(f) => {
                    if f.kind == FailureType::BudgetExceeded {
                        m.budget_exceeded.with_label_values(&[activity]).inc();
                    }
                    m.failures
                        .with_label_values(&[activity, f.kind.as_str()])
                        .inc();
                    f.kind.as_str()
                }
            };
            m.executions
                .with_label_values(&[activity, profile, outcome])
                .inc();
        }
    }
}
