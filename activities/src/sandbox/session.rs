//! The open sessions of this worker: sandboxes kept open between executions (see the
//! `openSandbox` activity).
//!
//! This module owns the registry of sessions (by `sandboxId`), their binding to the run and
//! workflow that opened them, one execution at a time per session (a [`SessionLease`]: later
//! executions wait their turn), the standby shell kept ready between executions (so a command
//! in a session costs no `docker exec` round trip, as in the warm pool), and their end: closed,
//! idle or past their lifetime, killed by the kill switch, broken, or at shutdown
//! ([`Sessions::run_reaper`]). A session's container carries the usual labels, so if this worker
//! dies the reaper of another worker of the fleet removes it. It does not own the checks every
//! execution passes (policy, guardrails, budget: the pipeline) nor the container itself
//! ([`Sandbox`]).

use super::Sandbox;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

/// How often expiry is checked.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Who may use a session, and for how long.
#[derive(Debug, Clone)]
pub struct SessionTerms {
    /// The run that opened it; only its executions may use it.
    pub run_id: String,
    /// The workflow that opened it ("" for a standalone activity); only it may use it.
    pub workflow_id: String,
    /// The environment every command gets (an execution's own env overrides a name).
    pub env: std::collections::BTreeMap<String, String>,
    /// Closed after this long without an execution.
    pub idle: Duration,
    /// Closed this long after opening, whatever it does.
    pub lifetime: Duration,
}

/// One open session.
pub struct Session {
    id: String,
    terms: SessionTerms,
    sandbox: Sandbox,
    opened: Instant,
    last_used: Mutex<Instant>,
    /// One execution at a time; held by a [`SessionLease`] (and by the standby preparation
    /// that follows it).
    turn: Arc<tokio::sync::Mutex<()>>,
    closed: AtomicBool,
}

impl Session {
    /// The `sandboxId`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its terms (run, workflow, env, timeouts).
    pub fn terms(&self) -> &SessionTerms {
        &self.terms
    }

    /// Why it can no longer be used, if it cannot.
    fn ended(&self, now: Instant) -> Option<&'static str> {
        if self.closed.load(Ordering::SeqCst) {
            Some("closed")
        } else if self.sandbox.removed.load(Ordering::SeqCst) {
            Some("sandbox gone")
        } else if self.sandbox.killed_by_switch() {
            Some("kill switch")
        } else if now.duration_since(self.opened) >= self.terms.lifetime {
            Some("lifetime over")
        } else {
            None
        }
    }

    /// Idle for longer than its idle timeout (and not running anything).
    fn idle_expired(&self, now: Instant) -> bool {
        let last = *self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        now.duration_since(last) >= self.terms.idle && self.turn.try_lock().is_ok()
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Waits for this session's turn (other executions in it run first, in order of arrival).
    /// None when it ended meanwhile.
    pub async fn lease(self: &Arc<Self>) -> Option<SessionLease> {
        let guard = self.turn.clone().lock_owned().await;
        if self.ended(Instant::now()).is_some() {
            return None;
        }
        self.touch();
        Some(SessionLease {
            session: self.clone(),
            guard: Some(guard),
            finished: false,
        })
    }
}

/// The right to run in a session now. Dropped, it readies the next standby shell (holding the
/// turn until that is done); dropped without [`SessionLease::finish`] (cancelled, failed), it
/// first kills what the interrupted command left running.
pub struct SessionLease {
    session: Arc<Session>,
    guard: Option<OwnedMutexGuard<()>>,
    finished: bool,
}

impl SessionLease {
    /// The command ran to its end (or its timeout, which already killed its processes).
    pub fn finish(mut self) {
        self.finished = true;
    }

    /// The session's sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.session.sandbox
    }
}

impl std::ops::Deref for SessionLease {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.session.sandbox
    }
}

impl Drop for SessionLease {
    fn drop(&mut self) {
        let session = self.session.clone();
        let guard = self.guard.take();
        let interrupted = !self.finished;
        session.touch();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let sandbox = &session.sandbox;
            if session.ended(Instant::now()).is_none() {
                if interrupted {
                    // A cancelled command keeps running unless killed; the next one must not
                    // share the sandbox with it.
                    if !sandbox.kill_user_processes().await {
                        sandbox.kill().await;
                    }
                }
                sandbox.drop_dead_standby();
                if !sandbox.has_standby()
                    && let Err(e) = sandbox.prepare_standby().await
                {
                    tracing::warn!(sandbox = session.id(), error = %e, "session standby shell failed; the next command uses docker exec");
                }
            }
            session.touch();
            drop(guard);
        });
    }
}

/// Why a session cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The worker holds as many sessions as it may.
    #[error("this worker already holds {0} open sessions, its limit (AE_MAX_SESSIONS)")]
    Full(usize),
}

/// The sessions of this worker.
#[derive(Clone)]
pub struct Sessions {
    open: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    max: usize,
}

impl Sessions {
    /// At most `max` sessions at once.
    pub fn new(max: usize) -> Self {
        Self {
            open: Default::default(),
            max,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `sandbox` (already started, files uploaded) as a session; returns its
    /// `sandboxId`, an unguessable name that is never the container id. A standby shell is
    /// readied before it is returned.
    pub async fn open(&self, sandbox: Sandbox, terms: SessionTerms) -> Result<String, OpenError> {
        let id = format!("sbx-{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = sandbox.prepare_standby().await {
            tracing::warn!(error = %e, "session standby shell failed; commands use docker exec");
        }
        let now = Instant::now();
        let session = Arc::new(Session {
            id: id.clone(),
            terms,
            sandbox,
            opened: now,
            last_used: Mutex::new(now),
            turn: Default::default(),
            closed: AtomicBool::new(false),
        });
        let mut map = self.map();
        if map.len() >= self.max {
            drop(map);
            session.closed.store(true, Ordering::SeqCst);
            return Err(OpenError::Full(self.max));
        }
        map.insert(id.clone(), session);
        Ok(id)
    }

    /// How many sessions are open.
    pub fn count(&self) -> usize {
        self.map().len()
    }

    /// Whether another session may open now.
    pub fn has_room(&self) -> bool {
        self.count() < self.max
    }

    /// The session `id` if it is open and was opened by `run_id` in `workflow_id`. Any other
    /// case (unknown, closed, expired, another run's or workflow's) is None, alike: a caller
    /// learns nothing about sessions not its own.
    pub fn get(&self, id: &str, run_id: &str, workflow_id: &str) -> Option<Arc<Session>> {
        let session = self.map().get(id).cloned()?;
        let ours = session.terms.run_id == run_id && session.terms.workflow_id == workflow_id;
        (ours && session.ended(Instant::now()).is_none()).then_some(session)
    }

    /// The session `id`, whoever opened it, if it is open (the redactor of an execution needs
    /// its env before the execution is checked).
    pub fn peek(&self, id: &str) -> Option<Arc<Session>> {
        self.map().get(id).cloned()
    }

    /// Closes `id` if `workflow_id` opened it: the session's run, and whether it was still
    /// open (false when it had already ended); `None` when `workflow_id` has no such session.
    pub async fn close(&self, id: &str, workflow_id: &str) -> Option<(String, bool)> {
        let session = {
            let mut map = self.map();
            match map.get(id) {
                Some(s) if s.terms.workflow_id == workflow_id => map.remove(id),
                _ => None,
            }
        };
        let s = session?;
        let open = s.ended(Instant::now()).is_none();
        end(&s, "closed").await;
        Some((s.terms.run_id.clone(), open))
    }

    /// Closes every session that ended (idle, lifetime, kill switch, broken) until `stop`;
    /// then closes them all (graceful shutdown).
    pub async fn run_reaper(&self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(REAP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.reap_once().await,
            }
        }
        let all: Vec<Arc<Session>> = self.map().drain().map(|(_, s)| s).collect();
        for s in all {
            end(&s, "worker shutting down").await;
        }
    }

    /// One pass: closes the sessions that ended or idled out.
    pub async fn reap_once(&self) {
        let now = Instant::now();
        let ended: Vec<(Arc<Session>, &'static str)> = {
            let mut map = self.map();
            let gone: Vec<(String, &'static str)> = map
                .iter()
                .filter_map(|(id, s)| {
                    s.ended(now)
                        .or_else(|| s.idle_expired(now).then_some("idle"))
                        .map(|why| (id.clone(), why))
                })
                .collect();
            gone.into_iter()
                .filter_map(|(id, why)| map.remove(&id).map(|s| (s, why)))
                .collect()
        };
        for (s, why) in ended {
            end(&s, why).await;
        }
    }
}

/// Ends a session removed from the registry: marks it closed and removes its container.
async fn end(session: &Session, why: &str) {
    session.closed.store(true, Ordering::SeqCst);
    tracing::info!(
        sandbox_id = session.id(),
        run_id = %session.terms.run_id,
        container = session.sandbox.short_id(),
        reason = why,
        "session closed"
    );
    session.sandbox.destroy().await;
}
