//! The warm pool: sandboxes started ahead of time, each with a standby shell, handed out once.
//! Only requests for the default profile and image without network are served from it.

use super::{Progress, Sandbox, SandboxEngine, SandboxRequest};
use crate::config::Profile;
use crate::docker::SandboxError;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl SandboxEngine {
    /// A sandbox for one execution: a healthy pre-started one from the warm pool when the
    /// request allows and there is one, else a fresh one. Either way it is used once and then
    /// destroyed.
    pub async fn take(&self, request: &SandboxRequest) -> Result<Sandbox, SandboxError> {
        if !request.poolable(&self.cfg) {
            return self.start(request).await;
        }
        let runtime = self.cfg.limits(request.profile).runtime;
        while let Some(sandbox) = self.pop_pooled() {
            self.pool_wanted.notify_one();
            // Never hand out a sandbox of another isolation tier than the request's.
            if sandbox.runtime == runtime
                && sandbox.created.elapsed() < self.cfg.pool_max_age
                && sandbox.is_alive().await
            {
                self.registry.assign(&sandbox.id, request.run_id());
                let origin = request.origin.as_ref();
                tracing::info!(
                    sandbox = &sandbox.id[..12],
                    workflow_id = origin.map_or("-", |o| o.workflow_id.as_str()),
                    activity_id = origin.map_or("-", |o| o.activity_id.as_str()),
                    "sandbox taken from the warm pool"
                );
                return Ok(sandbox);
            }
            sandbox.release();
        }
        self.start(request).await
    }

    fn pop_pooled(&self) -> Option<Sandbox> {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Keeps `cfg.pool_size` healthy sandboxes ready, replacing aged ones, until `stop`; then
    /// empties the pool. Nothing is added once `stop` is cancelled.
    pub async fn run_pool(&self, stop: CancellationToken) {
        if self.cfg.pool_size > 0 {
            stop.run_until_cancelled(self.fill_pool()).await;
        }
        let drained: Vec<Sandbox> = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for s in drained {
            s.destroy().await;
        }
    }

    pub(super) async fn fill_pool(&self) {
        let request = SandboxRequest {
            origin: None,
            profile: Profile::Sandbox,
            image: self.cfg.image.clone(),
            domains: Vec::new(),
        };
        loop {
            // Replace aged sandboxes.
            let aged: Vec<Sandbox> = {
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                let (old, fresh): (Vec<_>, Vec<_>) = pool
                    .drain(..)
                    .partition(|s| s.created.elapsed() >= self.cfg.pool_max_age);
                pool.extend(fresh);
                old
            };
            for s in aged {
                s.release();
            }
            let have = self.pooled();
            if have < self.cfg.pool_size {
                match self.start(&request).await {
                    Ok(s) => match s.health_check().await.and(s.prepare_standby().await) {
                        Ok(()) => {
                            self.pool
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push_back(s);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "pooled sandbox failed its health check");
                            s.release();
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot fill the warm pool"),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), self.pool_wanted.notified()).await;
        }
    }

    /// How many sandboxes wait in the pool.
    pub fn pooled(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Sandbox {
    /// Runs `true` as the command user: the sandbox can exec and is ready.
    pub(super) async fn health_check(&self) -> Result<(), SandboxError> {
        let outcome = self
            .exec("true", &[], Duration::from_secs(10), &Progress::default())
            .await?;
        if outcome.exit_code == 0 {
            Ok(())
        } else {
            Err(SandboxError::Failed(format!(
                "health check exited {}",
                outcome.exit_code
            )))
        }
    }
}
