//! Guardrails shared by every worker of a fleet (seeds 000, 002, 004): a rate limit per run,
//! a limit on a run's concurrent executions and a circuit breaker per run.
//!
//! All state lives in Redis and every check-and-update is one Lua script (in the `.lua` files
//! beside this one), so any number of workers enforce one limit between them, and a worker that
//! dies holds nothing for long: concurrency slots are leases that lapse. When Redis cannot
//! answer, every guard says so ([`GuardError::Unavailable`]) and nothing runs.
//!
//! This module decides and records; it does not wait, heartbeat or fail activities (the
//! pipeline does), and it does not know about budgets (`budget` does).

mod circuit;
mod rate;
mod slots;

pub use circuit::{CircuitAdmission, CircuitStatus};
pub use slots::SlotLease;

use redis::aio::ConnectionManager;
use std::time::Duration;

/// The guardrails' settings; a zero disables the guard it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardSettings {
    /// Requests per minute per run in the `sandbox` profile (`AE_RATE_SANDBOX_PER_MIN`).
    pub rate_sandbox_per_min: u32,
    /// Requests per minute per run in the `production` profile (`AE_RATE_PRODUCTION_PER_MIN`).
    pub rate_production_per_min: u32,
    /// Executions of one run at once, across the fleet (`AE_MAX_CONCURRENT_PER_RUN`).
    pub max_concurrent_per_run: u32,
    /// Consecutive failures that open a run's circuit (`AE_CIRCUIT_FAILURES`).
    pub circuit_failures: u32,
    /// How long an open circuit stays open (`AE_CIRCUIT_COOLDOWN_SECS`).
    pub circuit_cooldown: Duration,
}

impl Default for GuardSettings {
    /// The seeds' numbers: 10 and 100 requests a minute, 3 at once, open after 3 failures for
    /// 5 minutes.
    fn default() -> Self {
        Self {
            rate_sandbox_per_min: 10,
            rate_production_per_min: 100,
            max_concurrent_per_run: 3,
            circuit_failures: 3,
            circuit_cooldown: Duration::from_secs(300),
        }
    }
}

/// Why a guard could not decide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// Redis could not answer; nothing may run unchecked.
    #[error("guardrail store unavailable: {0}")]
    Unavailable(String),
}

impl From<redis::RedisError> for GuardError {
    fn from(e: redis::RedisError) -> Self {
        GuardError::Unavailable(e.to_string())
    }
}

/// The guardrails of one worker, over the fleet's Redis.
#[derive(Clone)]
pub struct Guards {
    conn: ConnectionManager,
    settings: GuardSettings,
    rate: redis::Script,
    slot_acquire: redis::Script,
    circuit_admit: redis::Script,
    circuit_record: redis::Script,
}

/// How long the guards' per-run keys outlive their last use.
const KEY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl Guards {
    /// Guards over `conn` (the budget store's reconnecting connection).
    pub fn new(conn: ConnectionManager, settings: GuardSettings) -> Self {
        Self {
            conn,
            settings,
            rate: redis::Script::new(include_str!("rate.lua")),
            slot_acquire: redis::Script::new(include_str!("slot_acquire.lua")),
            circuit_admit: redis::Script::new(include_str!("circuit_admit.lua")),
            circuit_record: redis::Script::new(include_str!("circuit_record.lua")),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Redis keys of the guards, one place.
pub mod keys {
    /// The run's rate-limit cell in `profile` (`sandbox` or `production`).
    pub fn rate(profile: &str, run_id: &str) -> String {
        format!("ae:rate:{profile}:{run_id}")
    }

    /// The run's concurrency leases.
    pub fn slots(run_id: &str) -> String {
        format!("ae:slots:{run_id}")
    }

    /// The run's circuit breaker.
    pub fn circuit(run_id: &str) -> String {
        format!("ae:circuit:{run_id}")
    }
}
