//! The verdict on one health check, failing closed: only a check that exited 0 and whose last
//! JSON line holds a finite `errorRate` in 0..=1 and a finite, non-negative `p95LatencyMs`,
//! both within their limits, is healthy. Anything else (a failed or timed-out check, no JSON
//! line, missing or mistyped fields) is a breach. Pure, so the workflow stays deterministic.

use super::HealthMeasurement;
use crate::execute::ExecutionResult;
use std::fmt::Display;

/// The limits of a healthy canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Highest healthy error rate.
    pub max_error_rate: f64,
    /// Highest healthy p95 latency, ms.
    pub max_latency_ms: f64,
}

impl Limits {
    /// The limits, if both can be met: an error rate in 0..=1, a finite latency >= 0.
    pub fn new(max_error_rate: f64, max_latency_ms: f64) -> Result<Limits, String> {
        if !(0.0..=1.0).contains(&max_error_rate) {
            return Err(format!(
                "maxErrorRate must be in 0..1, got {max_error_rate}"
            ));
        }
        if !(max_latency_ms.is_finite() && max_latency_ms >= 0.0) {
            return Err(format!("maxLatencyMs must be >= 0, got {max_latency_ms}"));
        }
        Ok(Limits {
            max_error_rate,
            max_latency_ms,
        })
    }
}

/// What a check returned.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckRun {
    /// The command ran: its exit code, whether it timed out, its stdout.
    Ran {
        exit_code: i64,
        timed_out: bool,
        stdout: String,
    },
    /// The execution failed (policy, budget, sandbox): the failure's message.
    Failed(String),
}

impl CheckRun {
    /// What the health check's `safeExecuteCode` returned.
    pub fn of(checked: Result<ExecutionResult, impl Display>) -> CheckRun {
        match checked {
            Ok(r) => CheckRun::Ran {
                exit_code: r.exit_code,
                timed_out: r.timed_out,
                stdout: r.stdout,
            },
            Err(e) => CheckRun::Failed(format!("{e}")),
        }
    }
}

/// The measurement of one check at `at_ms`.
pub fn judge(run: &CheckRun, limits: Limits, at_ms: u64) -> HealthMeasurement {
    let breach = |note: String, rate: Option<f64>, p95: Option<f64>| HealthMeasurement {
        at_ms,
        error_rate: rate,
        p95_latency_ms: p95,
        healthy: false,
        note,
    };
    let stdout = match run {
        CheckRun::Failed(message) => {
            return breach(format!("health check failed: {}", cut(message)), None, None);
        }
        CheckRun::Ran {
            timed_out: true, ..
        } => return breach("health check timed out".into(), None, None),
        CheckRun::Ran {
            exit_code, stdout, ..
        } if *exit_code != 0 => {
            return breach(
                format!("health check exited {exit_code}: {}", cut(stdout)),
                None,
                None,
            );
        }
        CheckRun::Ran { stdout, .. } => stdout,
    };
    let Some(line) = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
    else {
        return breach(
            format!("no JSON line in the health check's output: {}", cut(stdout)),
            None,
            None,
        );
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return breach(format!("unreadable health line: {}", cut(line)), None, None);
    };
    let rate = v.get("errorRate").and_then(serde_json::Value::as_f64);
    let p95 = v.get("p95LatencyMs").and_then(serde_json::Value::as_f64);
    let (Some(r), Some(p)) = (rate, p95) else {
        return breach(
            format!(
                "the health line lacks a numeric errorRate or p95LatencyMs: {}",
                cut(line)
            ),
            rate,
            p95,
        );
    };
    if !r.is_finite() || !(0.0..=1.0).contains(&r) || !p.is_finite() || p < 0.0 {
        return breach(
            format!("implausible health values: {}", cut(line)),
            rate,
            p95,
        );
    }
    if r > limits.max_error_rate {
        return breach(
            format!("error rate {r} above {}", limits.max_error_rate),
            rate,
            p95,
        );
    }
    if p > limits.max_latency_ms {
        return breach(
            format!("p95 latency {p} ms above {} ms", limits.max_latency_ms),
            rate,
            p95,
        );
    }
    HealthMeasurement {
        at_ms,
        error_rate: rate,
        p95_latency_ms: p95,
        healthy: true,
        note: "ok".into(),
    }
}

/// At most 300 characters of `s`, for notes.
fn cut(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_error_rate: 0.05,
        max_latency_ms: 5000.0,
    };

    fn ran(exit_code: i64, stdout: &str) -> CheckRun {
        CheckRun::Ran {
            exit_code,
            timed_out: false,
            stdout: stdout.into(),
        }
    }

    #[test]
    fn within_limits_is_healthy() {
        let m = judge(
            &ran(0, "progress\n{\"errorRate\":0.01,\"p95LatencyMs\":120}\n"),
            L,
            7,
        );
        assert!(m.healthy, "{m:?}");
        assert_eq!(
            (m.error_rate, m.p95_latency_ms, m.at_ms),
            (Some(0.01), Some(120.0), 7)
        );
        // The limits themselves are healthy.
        assert!(judge(&ran(0, r#"{"errorRate":0.05,"p95LatencyMs":5000}"#), L, 0).healthy);
    }

    #[test]
    fn a_breach_of_either_limit_is_not() {
        let m = judge(&ran(0, r#"{"errorRate":0.2,"p95LatencyMs":10}"#), L, 0);
        assert!(!m.healthy && m.note.contains("error rate"), "{m:?}");
        assert_eq!(m.error_rate, Some(0.2));
        let m = judge(&ran(0, r#"{"errorRate":0,"p95LatencyMs":5001}"#), L, 0);
        assert!(!m.healthy && m.note.contains("latency"), "{m:?}");
    }

    #[test]
    fn anything_unreadable_or_failed_fails_closed() {
        for out in [
            "",
            "all good",
            "{not json",
            r#"{"errorRate":"0.01","p95LatencyMs":1}"#,
            r#"{"errorRate":0.01}"#,
            r#"{"p95LatencyMs":1}"#,
            r#"{"errorRate":-0.5,"p95LatencyMs":1}"#,
            r#"{"errorRate":2,"p95LatencyMs":1}"#,
            r#"{"errorRate":0.01,"p95LatencyMs":-1}"#,
            r#"{"errorRate":null,"p95LatencyMs":1}"#,
            // A healthy line followed by an unreadable one: the last line counts.
            "{\"errorRate\":0,\"p95LatencyMs\":1}\n{\"errorRate\":0}",
        ] {
            assert!(!judge(&ran(0, out), L, 0).healthy, "{out:?}");
        }
        let ok = r#"{"errorRate":0,"p95LatencyMs":1}"#;
        assert!(!judge(&ran(1, ok), L, 0).healthy);
        let timed_out = CheckRun::Ran {
            exit_code: 0,
            timed_out: true,
            stdout: ok.into(),
        };
        assert!(!judge(&timed_out, L, 0).healthy);
        assert!(!judge(&CheckRun::Failed("PolicyViolation".into()), L, 0).healthy);
    }
}
