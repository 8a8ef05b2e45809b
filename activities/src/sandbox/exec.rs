//! Running things in a sandbox: commands (bounded capture, hard timeout), uploads, reading
//! files back, and the short helper scripts the other parts use. It does not own the container's
//! creation (`sandbox`) nor what the bytes mean (the caller redacts and caps).

use super::cgroup::CgroupStats;
use super::{ExecOutcome, KILLED_EXIT_CODE, Progress, Sandbox};
use crate::config::SandboxRuntime;
use crate::docker::SandboxError;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

impl Sandbox {
    /// Unpacks an uncompressed tar (built by `workspace::pack`) into `/workspace`.
    pub async fn upload(&self, tar: Vec<u8>) -> Result<(), SandboxError> {
        let (exec_id, mut output, mut input) = self
            .open_exec(&["tar", "-x", "-f", "-", "-C", "/workspace"], &[], true)
            .await
            .map_err(|e| match e {
                SandboxError::Failed(m) => SandboxError::Unavailable(format!("upload: {m}")),
                other => other,
            })?;
        let transfer = async {
            input.write_all(&tar).await?;
            input.flush().await?;
            // tar stops at the archive's end marker; shutting down also closes its stdin.
            input.shutdown().await?;
            Ok::<_, std::io::Error>(())
        };
        let mut messages = Vec::new();
        let drain = async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(m) if messages.len() < 4096 => messages.extend_from_slice(m.as_ref()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        };
        let result = tokio::time::timeout(Duration::from_secs(120), async {
            let (t, d) = tokio::join!(transfer, drain);
            t.map_err(|e| e.to_string())?;
            d
        })
        .await;
        match result {
            Err(_) => return Err(SandboxError::Upload("timed out after 120 s".into())),
            Ok(Err(e)) => return Err(SandboxError::Upload(e)),
            Ok(Ok(())) => {}
        }
        let code = self.exit_code(&exec_id).await?;
        if code != 0 {
            return Err(SandboxError::Upload(format!(
                "tar exited with {code}: {}",
                String::from_utf8_lossy(&messages).trim()
            )));
        }
        Ok(())
    }

    /// Runs `/bin/sh -c command` in `/workspace` with `env` (`NAME=value` strings). At `timeout`
    /// the whole sandbox is killed and the outcome says `timed_out`.
    pub async fn exec(
        &self,
        command: &str,
        env: &[String],
        timeout: Duration,
        progress: &Progress,
    ) -> Result<ExecOutcome, SandboxError> {
        let started = Instant::now();
        let denied_before = self.egress_denied();
        let standby = self
            .standby
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let (exec_id, mut output) = match standby {
            Some(standby) => standby.run(command, env).await?,
            None => self.start_exec(command, env).await?,
        };
        let mut stdout = Capture::new(self.keep_bytes);
        let mut stderr = Capture::new(self.keep_bytes);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut timed_out = false;
        // Under gVisor a memory or process limit ends the whole sandbox, and the engine then
        // leaves the exec's stream open: watch the container itself.
        let mut watch_death = self.runtime == SandboxRuntime::Gvisor;
        let died = self.ended();
        tokio::pin!(died);
        loop {
            tokio::select! {
                _ = &mut died, if watch_death => {
                    if self.is_running().await {
                        // The wait request failed rather than the sandbox: stop watching.
                        watch_death = false;
                        continue;
                    }
                    return Ok(self.ended_outcome(stdout, stderr, started, denied_before).await);
                }
                item = output.next() => match item {
                    None => break,
                    Some(Ok(item)) => {
                        live_output(progress, &item);
                        route(item, &mut stdout, &mut stderr);
                        progress.stdout_bytes.store(stdout.total, Ordering::Relaxed);
                        progress.stderr_bytes.store(stderr.total, Ordering::Relaxed);
                    }
                    Some(Err(e)) => {
                        return Err(SandboxError::Failed(format!("output stream broke: {e}")));
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    timed_out = true;
                    break;
                }
            }
        }
        if timed_out {
            // SIGKILL every process of the command's user (ignoring SIGTERM does not help,
            // nor does double-forking), then collect what they printed until the stream
            // closes. If it does not close, the whole sandbox goes.
            let killed = self.kill_user_processes().await;
            let drained = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(item)) = output.next().await {
                    live_output(progress, &item);
                    route(item, &mut stdout, &mut stderr);
                }
            })
            .await;
            if !killed || drained.is_err() {
                self.kill().await;
            }
        }
        let duration = started.elapsed();
        let exit_code = if timed_out {
            KILLED_EXIT_CODE
        } else {
            let code = self.exit_code(&exec_id).await;
            // gVisor reports a command whose sandbox died under it as exit 128 (or not at all).
            // The engine may still list the container as running for a moment after gVisor
            // reported the command lost (128 or nothing): give it a few seconds to stop.
            let lost = code.as_ref().map_or(true, |c| *c == 128);
            let died = watch_death
                && code.as_ref().map_or(true, |c| *c >= 128)
                && (!self.is_running().await
                    || (lost
                        && tokio::time::timeout(Duration::from_secs(5), self.ended())
                            .await
                            .is_ok()));
            if died {
                return Ok(self
                    .ended_outcome(stdout, stderr, started, denied_before)
                    .await);
            }
            code?
        };
        let stats = if timed_out && self.removed.load(Ordering::SeqCst) {
            CgroupStats::default()
        } else {
            self.cgroup_stats().await
        };
        let oom_killed = !timed_out && exit_code == KILLED_EXIT_CODE && stats.oom_kills > 0;
        Ok(ExecOutcome {
            signal: signal_name(exit_code),
            peak_memory_bytes: stats.peak_memory_bytes,
            stdout: stdout.buf,
            stderr: stderr.buf,
            stdout_bytes: stdout.total,
            stderr_bytes: stderr.total,
            exit_code,
            timed_out,
            oom_killed,
            duration,
            egress_denied: self.egress_denied().saturating_sub(denied_before),
            runtime: self.runtime,
            sandbox_ended: false,
        })
    }

    /// Resolves when the container stops (or the engine's wait request fails).
    async fn ended(&self) {
        let mut wait = self.docker.wait_container(&self.id, None);
        let _ = wait.next().await;
    }

    /// The outcome of a command whose whole sandbox died under it: killed (137), with the
    /// engine's OOM verdict; the sandbox is removed.
    async fn ended_outcome(
        &self,
        stdout: Capture,
        stderr: Capture,
        started: Instant,
        denied_before: u64,
    ) -> ExecOutcome {
        let state = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .ok()
            .and_then(|c| c.state);
        let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        // The cgroup may outlive the sandbox's processes for a moment.
        let peak_memory_bytes =
            super::cgroup::host_cgroup_stats(&self.id).and_then(|s| s.peak_memory_bytes);
        tracing::warn!(
            sandbox = self.short_id(),
            oom_killed,
            exit_code = state.as_ref().and_then(|s| s.exit_code),
            "the whole sandbox ended during the command"
        );
        let egress_denied = self.egress_denied().saturating_sub(denied_before);
        self.kill().await;
        ExecOutcome {
            signal: signal_name(KILLED_EXIT_CODE),
            peak_memory_bytes,
            stdout: stdout.buf,
            stderr: stderr.buf,
            stdout_bytes: stdout.total,
            stderr_bytes: stderr.total,
            exit_code: KILLED_EXIT_CODE,
            timed_out: false,
            oom_killed,
            duration: started.elapsed(),
            egress_denied,
            runtime: self.runtime,
            sandbox_ended: true,
        }
    }

    /// Creates and starts `sh -c command` as the command user; returns its id and output.
    pub(super) async fn start_exec(
        &self,
        command: &str,
        env: &[String],
    ) -> Result<(String, Output), SandboxError> {
        let (id, output, _) = self
            .open_exec(&["/bin/sh", "-c", command], env, false)
            .await?;
        Ok((id, output))
    }

    /// (and stdin when asked; otherwise stdin is /dev/null).
    pub(super) async fn open_exec(
        &self,
        cmd: &[&str],
        env: &[String],
        stdin: bool,
    ) -> Result<(String, Output, Input), SandboxError> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
                    env: Some(env.to_vec()),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    user: Some(self.user.clone()),
                    working_dir: Some("/workspace".to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| SandboxError::Failed(format!("cannot create exec: {e}")))?;
        match self.docker.start_exec(&exec.id, None).await {
            Ok(StartExecResults::Attached { output, input }) => Ok((exec.id, output, input)),
            Ok(_) => Err(SandboxError::Failed("exec did not attach".into())),
            Err(e) => Err(SandboxError::Failed(format!("cannot start exec: {e}"))),
        }
    }

    pub(super) async fn exit_code(&self, exec_id: &str) -> Result<i64, SandboxError> {
        // The stream ends when the process closes its output; the exit code follows shortly
        // (usually at once): retries after 1, 2, 4, 8 ms, then every 20 ms.
        for attempt in 0..60 {
            let info = self
                .docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| SandboxError::Failed(format!("cannot inspect exec: {e}")))?;
            if info.running != Some(true)
                && let Some(code) = info.exit_code
            {
                return Ok(code);
            }
            let wait_ms = if attempt < 4 { 1 << attempt } else { 20 };
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
        Err(SandboxError::Failed(
            "exit code never became available".into(),
        ))
    }

    /// Sends SIGKILL to every process of the command user (not to init, which is uid 0).
    /// Bounded: an exec into a wedged sandbox (e.g. gVisor under a process flood) can hang, and
    /// then the caller removes the whole sandbox instead.
    pub(super) async fn kill_user_processes(&self) -> bool {
        let kill = self.run_script(&["kill -9 -1"], 0);
        matches!(
            tokio::time::timeout(Duration::from_secs(5), kill).await,
            Ok(Ok(_))
        )
    }

    /// Runs a short helper `sh -c script [args...]` as the command user until it exits, and
    /// returns the first `keep` bytes of its stdout and the exec id (for its exit code).
    pub(super) async fn run_script(
        &self,
        script: &[&str],
        keep: usize,
    ) -> Result<(Vec<u8>, String), SandboxError> {
        let mut cmd = vec!["/bin/sh", "-c"];
        cmd.extend_from_slice(script);
        let (exec_id, mut output, _) = self.open_exec(&cmd, &[], false).await?;
        let mut out = Capture::new(keep);
        let mut ignored = Capture::new(0);
        while let Some(Ok(item)) = output.next().await {
            route(item, &mut out, &mut ignored);
        }
        Ok((out.buf, exec_id))
    }

    /// Reads files the command left under `/workspace`, at most `cap` bytes each. A path that
    /// resolves (through symlinks) outside `/workspace` is refused inside the sandbox.
    pub async fn read_file(&self, rel: &str, cap: usize) -> Result<Option<Vec<u8>>, SandboxError> {
        let script = format!(
            "p=$(realpath \"/workspace/$1\" 2>/dev/null) || exit 44; case \"$p\" in /workspace/*) [ -f \"$p\" ] || exit 44; head -c {} \"$p\";; *) exit 45;; esac",
            cap + 1
        );
        let (data, exec_id) = self
            .run_script(&[&script, "sh", rel], cap + 1)
            .await
            .map_err(|e| SandboxError::Failed(format!("cannot read {rel}: {e}")))?;
        match self.exit_code(&exec_id).await? {
            0 => Ok(Some(data)),
            44 => Ok(None),
            45 => Err(SandboxError::Upload(format!(
                "{rel} resolves outside /workspace"
            ))),
            code => Err(SandboxError::Failed(format!("reading {rel} exited {code}"))),
        }
    }
}

/// An exec's output stream.
pub(super) type Output = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
>;

/// An exec's stdin.
pub(super) type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// The signal behind an exit code of 128 + n.
pub fn signal_name(exit_code: i64) -> Option<&'static str> {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let n = exit_code.checked_sub(128)?;
    (1..32).contains(&n).then(|| NAMES[n as usize])
}

/// Hands one chunk of exec output to the live output, when there is one.
fn live_output(progress: &Progress, item: &LogOutput) {
    use crate::live::Stream;
    let Some(live) = &progress.live else { return };
    match item {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            live.push(Stream::Stdout, message)
        }
        LogOutput::StdErr { message } => live.push(Stream::Stderr, message),
        LogOutput::StdIn { .. } => {}
    }
}

/// Sends one chunk of exec output to the capture of its stream.
pub(super) fn route(item: LogOutput, stdout: &mut Capture, stderr: &mut Capture) {
    match item {
        LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.push(&message),
        LogOutput::StdErr { message } => stderr.push(&message),
        LogOutput::StdIn { .. } => {}
    }
}

/// Keeps the first `keep` bytes of a stream and counts all of them.
pub(super) struct Capture {
    pub(super) buf: Vec<u8>,
    pub(super) total: u64,
    keep: usize,
}

impl Capture {
    pub(super) fn new(keep: usize) -> Self {
        Self {
            buf: Vec::new(),
            total: 0,
            keep,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.keep.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_a_bounded_prefix_and_counts_everything() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        c.push(b"defgh");
        c.push(b"ij");
        assert_eq!(c.buf, b"abcde");
        assert_eq!(c.total, 10);
    }

    #[test]
    fn names_signals_from_exit_codes() {
        assert_eq!(signal_name(137), Some("SIGKILL"));
        assert_eq!(signal_name(143), Some("SIGTERM"));
        assert_eq!(signal_name(139), Some("SIGSEGV"));
        assert_eq!(signal_name(1), None);
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(255), None);
    }
}
