//! Graceful shutdown: one token every background task (warm pool, control loop, egress proxy)
//! watches, and the set of those tasks so the worker can wait until they have stopped.
//!
//! The order, driven by the binary: on SIGTERM/SIGINT the Temporal worker stops polling and lets
//! in-flight activities finish within its grace period; then [`Shutdown::stop`] cancels the
//! token and waits for every task (the pool empties itself and refills nothing); only then does
//! the worker remove what it created, so nothing can appear after the cleanup. This module owns
//! that mechanism, not what the tasks do.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinSet;
pub use tokio_util::sync::CancellationToken;

/// The worker's background tasks and the token that stops them.
#[derive(Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
}

impl Shutdown {
    /// Nothing started, nothing stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token a task watches; cancelled by [`Shutdown::stop`].
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` in the background until it returns; it must return soon after the token is
    /// cancelled.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(async move {
                task.await;
                tracing::debug!(task = name, "background task stopped");
            });
    }

    /// Cancels the token and waits up to `within` for every task; aborts the stragglers.
    pub async fn stop(&self, within: Duration) {
        self.token.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let joined =
            tokio::time::timeout(within, async { while tasks.join_next().await.is_some() {} })
                .await;
        if joined.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "background tasks did not stop in time; aborting them"
            );
            tasks.shutdown().await;
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
