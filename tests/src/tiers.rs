//! The isolation tiers a test runs under: the shared worker (runc) and one shared worker with
//! `AE_SANDBOX_RUNTIME=gvisor` on its own queue, started on first use. [`for_each_tier!`] turns
//! one scenario into a test per tier (`NAME::runc`, `NAME::gvisor`).

use crate::harness::{ExtraWorker, RunOpts, WORKER_QUEUE, start_worker};
use std::sync::OnceLock;

/// An isolation tier under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Docker's default runtime (the shared worker).
    Runc,
    /// gVisor's `runsc` (`scripts/install-deps.sh --gvisor` registers it).
    Gvisor,
}

/// The environment of a worker with the shared worker's wide-open guardrails.
pub const OPEN_GUARDRAILS: [(&str, &str); 3] = [
    ("AE_RATE_SANDBOX_PER_MIN", "0"),
    ("AE_MAX_CONCURRENT_PER_RUN", "0"),
    ("AE_CIRCUIT_FAILURES", "0"),
];

static GVISOR: OnceLock<ExtraWorker> = OnceLock::new();

/// The shared gVisor worker.
pub fn gvisor_worker() -> &'static ExtraWorker {
    GVISOR.get_or_init(|| {
        let mut env = OPEN_GUARDRAILS.to_vec();
        env.push(("AE_SANDBOX_RUNTIME", "gvisor"));
        start_worker(&env)
    })
}

impl Tier {
    /// The `runtime` results report.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Runc => "runc",
            Tier::Gvisor => "gvisor",
        }
    }

    /// `AE_SANDBOX_RUNTIME` for a worker of this tier.
    pub fn env(self) -> (&'static str, &'static str) {
        ("AE_SANDBOX_RUNTIME", self.name())
    }

    /// The queue of this tier's shared worker.
    pub fn queue(self) -> String {
        match self {
            Tier::Runc => WORKER_QUEUE.to_string(),
            Tier::Gvisor => gvisor_worker().task_queue.clone(),
        }
    }

    /// Default options on this tier's shared worker.
    pub fn opts(self) -> RunOpts {
        RunOpts {
            task_queue: self.queue(),
            ..Default::default()
        }
    }
}

/// `for_each_tier! { async fn name(tier) { ... } }`: a module `name` with one test per tier,
/// `name::runc` and `name::gvisor`, each running the body with `tier` bound to its [`Tier`].
#[macro_export]
macro_rules! for_each_tier {
    ($(#[$meta:meta])* async fn $name:ident($tier:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($tier: $crate::tiers::Tier) $body

            #[tokio::test]
            async fn runc() {
                scenario($crate::tiers::Tier::Runc).await
            }

            #[tokio::test]
            async fn gvisor() {
                scenario($crate::tiers::Tier::Gvisor).await
            }
        }
    };
}
