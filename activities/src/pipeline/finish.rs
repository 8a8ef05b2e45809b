//! Step 5: how the run ended, and the result: kill switch, sandbox failure or cancellation
//! become typed stops; output is redacted, then capped (so a secret straddling the cap is never
//! half-shown); output files are read back; the result is fitted under Temporal's payload limit
//! once, at the end.

use super::Engine;
use super::Stop;
use super::run::Watched;
use crate::budget::round_usd;
use crate::config::Profile;
use crate::error::Failure;
use crate::redact::Redactor;
use crate::sandbox::REDACTION_MARGIN;
use crate::sandbox::{ExecOutcome, Sandbox, SandboxError};
use ae_workflows_spec::{ExecutionResult, FailureType};

/// How a watched command ended: its outcome, or the stop to report. The kill switch wins over
/// everything (the sandbox was killed under the command).
pub fn conclude(
    sandbox: &Sandbox,
    watched: Watched<Result<ExecOutcome, SandboxError>>,
    run_id: &str,
) -> Result<ExecOutcome, Stop> {
    if sandbox.killed_by_switch() {
        return Err(kill_switch_failure(run_id));
    }
    match watched {
        Watched::Done(Ok(o)) => Ok(o),
        Watched::Done(Err(e)) => {
            Err(Failure::new(FailureType::SandboxUnavailable, e.to_string()).into())
        }
        Watched::Cancelled => {
            tracing::info!(run_id, "cancelled; sandbox removed");
            Err(Stop::Cancelled)
        }
    }
}

/// The failure of an execution the kill switch stopped.
pub fn kill_switch_failure(run_id: &str) -> Stop {
    tracing::warn!(run_id, "execution stopped by the kill switch");
    Stop::Fail(Failure::new(
        FailureType::KillSwitchEngaged,
        "the kill switch was engaged while the command ran; its sandbox was killed",
    ))
}

impl Engine {
    /// Reads the requested files back, redacted (see [`redact_file`]).
    pub async fn collect_output_files(
        &self,
        sandbox: &Sandbox,
        paths: &[(String, String)],
        redactor: &Redactor,
    ) -> Result<Vec<ae_workflows_spec::execute::OutputFile>, Stop> {
        let cap = self.config.sandbox.max_output_file_bytes;
        let mut out = Vec::new();
        for (asked, rel) in paths {
            // Read past the cap so a secret straddling it is redacted whole before the cut.
            let read = sandbox
                .read_file(rel, cap + REDACTION_MARGIN)
                .await
                .map_err(|e| match e {
                    SandboxError::Upload(m) => {
                        Stop::Fail(Failure::invalid_input(format!("outputFiles: {m}")))
                    }
                    other => Stop::Fail(Failure::new(
                        FailureType::SandboxUnavailable,
                        other.to_string(),
                    )),
                })?;
            let file = match read {
                None => ae_workflows_spec::execute::OutputFile {
                    path: asked.clone(),
                    content: String::new(),
                    encoding: "utf8".into(),
                    found: false,
                    truncated: false,
                },
                Some(bytes) => {
                    let (content, encoding, truncated) = redact_file(&bytes, cap, redactor);
                    ae_workflows_spec::execute::OutputFile {
                        path: asked.clone(),
                        content,
                        encoding: encoding.into(),
                        found: true,
                        truncated,
                    }
                }
            };
            out.push(file);
        }
        Ok(out)
    }

    /// Redacts and caps the outputs into the contract's result.
    pub fn result(
        &self,
        profile: Profile,
        o: ExecOutcome,
        cost: f64,
        remaining: f64,
        redactor: &Redactor,
    ) -> ExecutionResult {
        let cap = self.config.sandbox.limits(profile).output_cap_bytes;
        let (stdout, out_cut, n_out) = finish_stream(&o.stdout, o.stdout_bytes, cap, redactor);
        let (stderr, err_cut, n_err) = finish_stream(&o.stderr, o.stderr_bytes, cap, redactor);
        ExecutionResult {
            stdout,
            stderr,
            exit_code: o.exit_code,
            timed_out: o.timed_out,
            cost,
            budget_remaining: round_usd(remaining),
            duration_ms: o.duration.as_millis() as u64,
            stdout_truncated: out_cut,
            stderr_truncated: err_cut,
            stdout_bytes: o.stdout_bytes,
            stderr_bytes: o.stderr_bytes,
            redactions: (n_out + n_err) as u64,
            oom_killed: o.oom_killed,
            signal: o.signal.map(str::to_string),
            peak_memory_bytes: o.peak_memory_bytes,
            sandbox_id: None,
            output_files: Vec::new(),
            egress_denied: o.egress_denied,
            runtime: Some(o.runtime),
            sandbox_ended: o.sandbox_ended,
        }
    }
}

/// Shrinks the longest text (a stream or an output file) until the serialised result fits `max`
/// bytes, flagging what was cut. Temporal refuses payloads over its blob limit (2 MB by
/// default), and JSON escaping can make binary output several times longer than its bytes, so
/// per-stream and per-file caps alone are not enough: a result always fits, so a completion is
/// never refused (which would make Temporal run, and charge, the execution again).
pub fn fit_payload(result: &mut ExecutionResult, max: usize) {
    loop {
        let size = serde_json::to_vec(&*result).map(|v| v.len()).unwrap_or(0);
        if size <= max {
            return;
        }
        let excess = size - max;
        let ExecutionResult {
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
            output_files,
            ..
        } = result;
        let mut texts: Vec<(&mut String, &mut bool, bool)> = vec![
            (stdout, stdout_truncated, false),
            (stderr, stderr_truncated, false),
        ];
        for f in output_files.iter_mut() {
            let base64 = f.encoding == "base64";
            texts.push((&mut f.content, &mut f.truncated, base64));
        }
        let Some((text, cut, base64)) = texts.into_iter().max_by_key(|(t, _, _)| t.len()) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        // Escaped characters take up to 6 bytes each: cut at least a sixth of the excess.
        let mut end = text
            .len()
            .saturating_sub((excess / 6).max(1).max(excess.min(text.len()) / 2));
        if base64 {
            end -= end % 4; // whole base64 quanta only, so the content still decodes
        }
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        *cut = true;
    }
}

/// An output file's content for the result: text redacted as text, anything else redacted as
/// bytes (env values and secret patterns inside binary data too) and sent as base64; the cut
/// to `cap` bytes comes after redaction. Returns (content, encoding, truncated).
pub fn redact_file(bytes: &[u8], cap: usize, redactor: &Redactor) -> (String, &'static str, bool) {
    use base64::Engine as _;
    let over = bytes.len() > cap;
    // Text, possibly cut mid-character by the read limit.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => Some(t),
        Err(e) if over && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) => {
            let mut redacted = redactor.redact_str(text);
            let cut = over || redacted.len() > cap;
            if redacted.len() > cap {
                let mut end = cap;
                while !redacted.is_char_boundary(end) {
                    end -= 1;
                }
                redacted.truncate(end);
            }
            (redacted, "utf8", cut)
        }
        None => {
            let (mut redacted, _) = redactor.redact_bytes(bytes);
            let cut = over || redacted.len() > cap;
            redacted.truncate(cap);
            (
                base64::engine::general_purpose::STANDARD.encode(redacted),
                "base64",
                cut,
            )
        }
    }
}

/// Redacts a captured stream, then cuts it to `cap` bytes on a character boundary. Redacting
/// before cutting means a secret straddling the cap is replaced whole, never half-shown.
pub fn finish_stream(
    kept: &[u8],
    total: u64,
    cap: usize,
    redactor: &Redactor,
) -> (String, bool, usize) {
    let text = String::from_utf8_lossy(kept);
    let (redacted, count) = redactor.redact(&text);
    let mut redacted = redacted.into_owned();
    let truncated = total > cap as u64;
    if truncated && redacted.len() > cap {
        let mut end = cap;
        while !redacted.is_char_boundary(end) {
            end -= 1;
        }
        redacted.truncate(end);
    }
    (redacted, truncated, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_files_are_cut_to_fit_and_still_decode() {
        use base64::Engine as _;
        let mut r: ExecutionResult = serde_json::from_value(serde_json::json!({
            "stdout": "out", "stderr": "", "exitCode": 0, "timedOut": false, "cost": 0.01,
            "budgetRemaining": 1.0, "durationMs": 1, "stdoutTruncated": false,
            "stderrTruncated": false, "stdoutBytes": 3, "stderrBytes": 0, "redactions": 0,
            "oomKilled": false, "outputFiles": [], "egressDenied": 0
        }))
        .unwrap();
        r.output_files = (0..24)
            .map(|i| ae_workflows_spec::execute::OutputFile {
                path: format!("f{i}.bin"),
                content: base64::engine::general_purpose::STANDARD.encode(vec![0xffu8; 256 * 1024]),
                encoding: "base64".into(),
                found: true,
                truncated: false,
            })
            .collect();
        fit_payload(&mut r, 1_572_864);
        assert!(serde_json::to_vec(&r).unwrap().len() <= 1_572_864);
        assert!(r.output_files.iter().any(|f| f.truncated));
        for f in &r.output_files {
            base64::engine::general_purpose::STANDARD
                .decode(&f.content)
                .expect("still valid base64");
        }
    }

    #[test]
    fn binary_output_files_are_redacted_as_bytes_and_text_before_the_cut() {
        use base64::Engine as _;
        let r = Redactor::standard().with_literals(["s3cr3t-value-4242"]);
        let mut bin = vec![0u8, 0xff, 0xfe];
        bin.extend_from_slice(b"s3cr3t-value-4242");
        bin.extend_from_slice(&[0xff, 0]);
        let (content, encoding, cut) = redact_file(&bin, 1024, &r);
        assert_eq!((encoding, cut), ("base64", false));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .unwrap();
        assert!(!bytes.windows(17).any(|w| w == b"s3cr3t-value-4242"));
        // A secret straddling the cap of a text file is replaced whole, never cut in half.
        let text = format!("{}s3cr3t-value-4242 tail", "x".repeat(90));
        let (content, encoding, cut) = redact_file(text.as_bytes(), 100, &r);
        assert_eq!((encoding, cut), ("utf8", true));
        assert!(!content.contains("s3cr3t"), "{content}");
    }

    #[test]
    fn secret_straddling_the_cap_is_never_half_shown() {
        let r = Redactor::standard();
        let secret = "sk-abcdefghijklmnopqrstuvwxyz0123456789";
        let text = format!("{} {}", "x".repeat(94), secret);
        let (out, cut, n) = finish_stream(text.as_bytes(), text.len() as u64 + 1000, 100, &r);
        assert!(cut);
        assert_eq!(n, 1);
        assert!(out.len() <= 100);
        assert!(!out.contains("sk-abc"), "{out}");
    }

    #[test]
    fn results_are_shrunk_to_fit_the_payload_limit() {
        let mut r = ExecutionResult {
            stdout: "a".repeat(1_000_000),
            stderr: "\u{1}".repeat(500_000),
            exit_code: 0,
            timed_out: false,
            cost: 0.01,
            budget_remaining: 1.0,
            duration_ms: 1,
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 1_000_000,
            stderr_bytes: 500_000,
            redactions: 0,
            oom_killed: false,
            signal: None,
            peak_memory_bytes: None,
            sandbox_id: None,
            output_files: Vec::new(),
            egress_denied: 0,
            runtime: None,
            sandbox_ended: false,
        };
        fit_payload(&mut r, 1_500_000);
        assert!(serde_json::to_vec(&r).unwrap().len() <= 1_500_000);
        assert!(r.stderr_truncated || r.stdout_truncated);
        assert!(
            r.stdout.len() > 100_000,
            "stdout kept what fits: {}",
            r.stdout.len()
        );
    }
}
