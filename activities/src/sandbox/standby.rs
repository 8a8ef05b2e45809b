//! The standby shell of a pooled sandbox (see [`Standby`]).

use super::Sandbox;
use super::exec::{Input, Output};
use crate::docker::SandboxError;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

impl Sandbox {
    /// Starts the standby shell of a pooled sandbox (see [`Standby`]).
    pub(super) async fn prepare_standby(&self) -> Result<(), SandboxError> {
        let (exec_id, output, input) = self.open_exec(&["/bin/sh", "-s"], &[], true).await?;
        *self.standby.lock().unwrap_or_else(|e| e.into_inner()) = Some(Standby {
            exec_id,
            output,
            input,
        });
        Ok(())
    }

    /// Whether a pooled sandbox is still usable. With a standby shell this is a local check of
    /// its output stream, which the engine closes when the container dies: no API round trip on
    /// the hot path.
    pub(super) async fn is_alive(&self) -> bool {
        let standby = {
            let mut standby = self.standby.lock().unwrap_or_else(|e| e.into_inner());
            // Pending: the shell waits for its command, as it should. Anything else (the
            // stream ended, broke, or the shell printed something) means it is not usable.
            standby
                .as_mut()
                .map(|s| futures::FutureExt::now_or_never(s.output.next()).is_none())
        };
        match standby {
            Some(alive) => alive,
            None => self.is_running().await,
        }
    }
}

/// For sessions, whose sandbox gets a new standby shell after every command.
impl Sandbox {
    /// Drops the standby shell if it is no longer usable (its stream ended or printed).
    pub(super) fn drop_dead_standby(&self) {
        let mut standby = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        let dead = standby.as_mut().is_some_and(|s| {
            futures::FutureExt::now_or_never(futures::StreamExt::next(&mut s.output)).is_some()
        });
        if dead {
            *standby = None;
        }
    }

    /// Whether a standby shell waits.
    pub(super) fn has_standby(&self) -> bool {
        self.standby
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

/// A shell started ahead of time in a pooled sandbox, as the command user in `/workspace`,
/// waiting on stdin for the one command it will become. Handing out a pooled sandbox then
/// costs no `docker exec` round trips (create, start: most of a pooled execution's time);
/// the command still runs exactly as through `docker exec` (same user, directory, environment,
/// stdin from /dev/null), and the exit code still comes from the engine.
pub(super) struct Standby {
    exec_id: String,
    output: Output,
    input: Input,
}

impl Standby {
    /// Sends the command; returns the exec id and output like [`Sandbox::start_exec`].
    pub(super) async fn run(
        mut self,
        command: &str,
        env: &[String],
    ) -> Result<(String, Output), SandboxError> {
        let script = standby_script(command, env);
        let sent = async {
            self.input.write_all(script.as_bytes()).await?;
            self.input.flush().await?;
            self.input.shutdown().await
        };
        sent.await
            .map_err(|e| SandboxError::Failed(format!("standby shell is gone: {e}")))?;
        Ok((self.exec_id, self.output))
    }
}

/// The script the standby shell reads: export the environment, then become the command.
fn standby_script(command: &str, env: &[String]) -> String {
    let mut script = String::new();
    for pair in env {
        if let Some((name, value)) = pair.split_once('=') {
            script.push_str(&format!("export {name}={}\n", shell_quote(value)));
        }
    }
    script.push_str(&format!(
        "exec /bin/sh -c {} </dev/null\n",
        shell_quote(command)
    ));
    script
}

/// Single-quotes `s` for sh: every byte literal.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standby_script_runs_the_command_and_env_verbatim() {
        // Through a real sh, as in the sandbox: quoting must keep every byte literal.
        let tricky = "it's $HOME `id` \"q\" \\ \n$(echo no) ; exit 3 'x'";
        let env = vec![format!("ODD={tricky}"), "EMPTY=".to_string()];
        let script = standby_script("printf '%s|%s' \"$ODD\" \"$EMPTY\"; exit 7", &env);
        let out = std::process::Command::new("sh")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{tricky}|"));
        assert_eq!(out.status.code(), Some(7));
    }
}
