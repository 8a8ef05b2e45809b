//! The abuse suite: hostile commands against real Docker. Each must be contained, the worker
//! must stay healthy, and the next execution must succeed. Network abuse (a host not allowed,
//! by name and by raw IP, private addresses, bypassing the proxy, DNS) is in `egress.rs`, which
//! needs its own web server and worker configuration.
//!
//! Every scenario that reaches a sandbox runs under both isolation tiers (`NAME::runc`,
//! `NAME::gvisor`, see `ae_tests::tiers`); where gVisor contains an attack differently (a
//! memory or process flood ends the whole gVisor sandbox) the test asserts gVisor's outcome.

use ae_tests::for_each_tier;
use ae_tests::harness::{
    RunOpts, harness, run_activity, run_id, safe_execute, start_worker, worker_pid,
};
use ae_tests::tiers::Tier;
use ae_tests::workflows::Outcome;
use serde_json::{Value, json};
use std::time::Duration;

fn result(o: &Outcome) -> &Value {
    o.result
        .as_ref()
        .unwrap_or_else(|| panic!("expected a result, got {o:?}"))
}

/// `safeExecuteCode` on the tier's shared worker.
async fn execute_on(tier: Tier, input: Value) -> Outcome {
    run_activity("safeExecuteCode", input, tier.opts()).await.0
}

/// Runs `input` on the tier's shared worker, then proves the worker still serves a normal
/// command; both results name the tier.
async fn contained(tier: Tier, input: Value) -> Value {
    let o = execute_on(tier, input).await;
    let r = result(&o).clone();
    assert_eq!(r["runtime"], tier.name(), "{r}");
    let next = execute_on(
        tier,
        json!({"runId": run_id("next"), "command": "echo still fine"}),
    )
    .await;
    assert_eq!(
        result(&next)["stdout"],
        "still fine\n",
        "the next execution failed"
    );
    assert_eq!(result(&next)["runtime"], tier.name());
    r
}

/// Under gVisor a flood can end the whole sandbox: a typed result, killed, never a failure.
fn ended_by_gvisor(tier: Tier, r: &Value) -> bool {
    let ended = r["sandboxEnded"] == true;
    if ended {
        assert_eq!(tier, Tier::Gvisor, "a runc sandbox ended: {r}");
        assert_eq!(r["exitCode"], 137, "{r}");
        assert_eq!(r["signal"], "SIGKILL", "{r}");
    }
    ended
}

#[tokio::test]
async fn a_fork_bomb_in_a_workspace_script_is_refused_by_the_policy() {
    // The policy reads the scripts a command runs from the workspace.
    let o = safe_execute(json!({
        "runId": run_id("forkbomb-script"),
        "workspaceFiles": [{"path": "bomb.sh", "content": "sh $0 & sh $0 & wait\n"}],
        "command": "sh bomb.sh",
    }))
    .await;
    let e = o.error.expect("refused");
    assert_eq!(e.r#type, "PolicyViolation", "{}", e.message);
}

for_each_tier! {
async fn a_process_flood_hits_the_pids_limit(tier) {
    // An endless loop of background processes looks like ordinary work to the policy: the
    // sandbox must hold anyway.
    let r = contained(tier, json!({
        "runId": run_id("forkbomb"),
        "workspaceFiles": [{"path": "flood.sh", "content": "while true; do sleep 60 & done\n"}],
        "command": "sh flood.sh",
        "timeout": 3000
    }))
    .await;
    // It ran into the pids limit ("can't fork") or was killed at its timeout; either way the
    // next execution (checked by `contained`) ran normally. The exit code says nothing here:
    // the top-level script's `wait` may well return 0.
    // Under gVisor the flood may instead end the whole sandbox at its host pids limit.
    let stopped = r["timedOut"] == true
        || r["stderr"].as_str().unwrap().contains("can't fork")
        || ended_by_gvisor(tier, &r);
    assert!(stopped, "{r}");
}
}

for_each_tier! {
async fn a_fork_bomb_in_one_sandbox_does_not_stop_another_from_forking(tier) {
    // Processes of the same uid in other sandboxes must not count against this one. The holder
    // fills its own pids limit, then keeps those processes alive (`exec` needs no fork); under
    // gVisor it may end its own sandbox instead.
    let bomb = execute_on(tier, json!({
        "runId": run_id("neighbour-bomb"),
        "workspaceFiles": [{"path": "hold.sh", "content": "(n=0; while [ $n -lt 400 ]; do sleep 20 & n=$((n+1)); done) 2>/dev/null; exec sleep 8\n"}],
        "command": "sh hold.sh",
        "timeout": 15000
    }));
    let neighbour = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        execute_on(tier, json!({
            "runId": run_id("neighbour"),
            "command": "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 1 & done; wait; echo forked fine"
        }))
        .await
    };
    let (_, n) = tokio::join!(bomb, neighbour);
    assert_eq!(result(&n)["stdout"], "forked fine\n", "{n:?}");
    assert_eq!(result(&n)["runtime"], tier.name());
}
}

for_each_tier! {
async fn a_process_flood_is_capped(tier) {
    let r = contained(tier, json!({
        "runId": run_id("flood"),
        // Once the limit is hit nothing can fork, so the count uses shell builtins only.
        "command": "(n=0; while [ $n -lt 1000 ]; do sleep 30 & n=$((n+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo started $#",
        "timeout": 10000
    }))
    .await;
    if ended_by_gvisor(tier, &r) {
        // gVisor does not enforce the limit inside; the host limit ended the sandbox.
        return;
    }
    let started: u64 = r["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .strip_prefix("started ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        started <= 256,
        "{started} processes in a sandbox limited to 256"
    );
}
}

for_each_tier! {
async fn a_memory_bomb_is_oom_killed_and_reported(tier) {
    let r = contained(tier, json!({
        "runId": run_id("membomb"),
        "command": "tail /dev/zero",
        "timeout": 30000
    }))
    .await;
    assert_eq!(r["oomKilled"], true, "{r}");
    assert_eq!(r["signal"], "SIGKILL");
    assert_eq!(r["exitCode"], 137, "{r}");
    match tier {
        Tier::Runc => {
            // Only the command's process died; the sandbox reported its peak.
            assert!(r.get("sandboxEnded").is_none(), "{r}");
            let peak = r["peakMemoryBytes"].as_u64().unwrap_or(0);
            assert!(peak >= 400 * 1024 * 1024, "peak {peak}");
        }
        // gVisor's OOM kills the whole sandbox (its cgroup goes with it).
        Tier::Gvisor => assert_eq!(r["sandboxEnded"], true, "{r}"),
    }
}
}

for_each_tier! {
async fn filling_workspace_and_tmp_stops_at_their_caps(tier) {
    let r = contained(tier, json!({
        "runId": run_id("diskfill"),
        "command": "head -c 400000000 /dev/zero > /workspace/big; echo ws=$?; head -c 100000000 /dev/zero > /tmp/big; echo tmp=$?; du -m /workspace/big /tmp/big",
        "timeout": 30000
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.contains("ws=1"), "{r}");
    assert!(out.contains("tmp=1"), "{r}");
    // Each file stopped at its tmpfs's size (256 MiB and 64 MiB).
    assert!(
        out.contains("256\t/workspace/big") && out.contains("64\t/tmp/big"),
        "{r}"
    );
}
}

for_each_tier! {
async fn gigabytes_of_output_leave_worker_memory_bounded(tier) {
    // gVisor's pipes are far slower (ptrace): a quarter gigabyte still dwarfs the bound.
    let bytes: u64 = match tier {
        Tier::Runc => 2_000_000_000,
        Tier::Gvisor => 256_000_000,
    };
    let w = start_worker(&[tier.env()]);
    let pid = worker_pid(&w.identity).expect("find the extra worker's pid");
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run_id("gigabytes"), "command": format!("head -c {bytes} /dev/zero | tr '\\0' x"), "timeout": 120000}),
        RunOpts { task_queue: w.task_queue.clone(), ..Default::default() },
    )
    .await;
    let r = result(&o);
    assert_eq!(r["runtime"], tier.name(), "{r}");
    assert_eq!(r["stdoutBytes"], bytes, "{}", r["stderr"]);
    assert_eq!(r["stdoutTruncated"], true);
    let peak_kib = peak_rss_kib(pid);
    assert!(
        peak_kib < 200 * 1024,
        "worker peak RSS {peak_kib} KiB after 2 GB of output"
    );
}
}

for_each_tier! {
async fn the_root_filesystem_is_read_only_and_mounts_are_nosuid(tier) {
    let r = contained(tier, json!({
        "runId": run_id("rootfs"),
        "command": "touch /bin/evil 2>/dev/null; echo bin=$?; touch /etc/evil 2>/dev/null; echo etc=$?; grep -E ' /(workspace|tmp) ' /proc/mounts"
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.contains("bin=1") && out.contains("etc=1"), "{out}");
    let mounts: Vec<_> = out.lines().filter(|l| l.contains("tmpfs")).collect();
    assert_eq!(mounts.len(), 2, "{out}");
    for line in mounts {
        // gVisor's /proc/mounts does not list nosuid/nodev (the setuid test below holds there).
        if tier == Tier::Runc {
            assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
        }
        // Programs in the workspace must run (npm's .bin, ./configure); setuid must not.
        assert!(!line.contains("noexec"), "{line}");
    }
}
}

for_each_tier! {
async fn privilege_escalation_attempts_fail(tier) {
    let r = contained(tier, json!({
        "runId": run_id("privesc"),
        "command": "cp /bin/busybox ./busybox && chmod u+s ./busybox && ./busybox id -u; su -c id root </dev/null 2>/dev/null; echo su=$?; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.starts_with("65534\n"), "{out}");
    assert!(!out.contains("su=0"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    match tier {
        Tier::Runc => {
            assert!(out.contains("NoNewPrivs:\t1"), "{out}");
            assert!(out.contains("Seccomp:\t2"), "{out}");
        }
        // gVisor's /proc shows no NoNewPrivs, and Docker's seccomp profile does not reach
        // commands started through exec: every system call goes to gVisor's own kernel, itself
        // seccomp-confined on the host.
        Tier::Gvisor => assert!(out.contains("Seccomp:\t0"), "{out}"),
    }
}
}

for_each_tier! {
async fn host_files_and_the_docker_socket_are_out_of_reach(tier) {
    let r = contained(tier, json!({
        "runId": run_id("host"),
        "command": "ls /var/run/docker.sock /run/docker.sock 2>&1; cat /proc/1/environ >/dev/null 2>&1; echo environ=$?; echo init-env: $(tr '\\0' '\\n' </proc/1/environ 2>/dev/null | cut -d= -f1 | sort); ls /proc/1/root/ >/dev/null 2>&1; echo root=$?; ls /; cat /etc/hostname 2>&1 | head -1"
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(
        out.matches("No such file or directory").count() >= 2,
        "{out}"
    );
    match tier {
        Tier::Runc => assert!(out.contains("environ=1") && out.contains("init-env:\n"), "{out}"),
        // gVisor lets the command read its init's environment: it holds nothing the command's
        // own environment does not.
        Tier::Gvisor => assert!(out.contains("init-env: HOME HOSTNAME PATH\n"), "{out}"),
    }
    assert!(out.contains("root=1"), "{out}");
    assert!(
        !out.contains("home\n") && !out.contains("root\n") && !out.contains("var\n"),
        "{out}"
    );
}
}

for_each_tier! {
async fn a_command_ignoring_sigterm_and_a_double_fork_die_at_the_timeout(tier) {
    let (o, workflow_id) = run_activity(
        "safeExecuteCode",
        json!({
            "runId": run_id("sigterm"),
            "command": "trap '' TERM INT HUP; (setsid sh -c 'trap \"\" TERM; sleep 300' &); sleep 300",
            "timeout": 1500
        }),
        tier.opts(),
    )
    .await;
    let r = result(&o);
    assert_eq!(r["runtime"], tier.name(), "{r}");
    assert_eq!(r["timedOut"], true);
    assert_eq!(r["signal"], "SIGKILL");
    // run_activity asserted that the workflow's sandbox, with every process in it, is gone.
    assert!(workflow_id.starts_with("test-"));
}
}

for_each_tier! {
async fn uploads_cannot_traverse_or_link_out_of_the_workspace(tier) {
    for path in [
        "../escape",
        "a/../../escape",
        "/etc/cron.d/x",
        "/workspace/../etc/x",
    ] {
        let o = execute_on(tier, json!({
            "runId": run_id("tar"),
            "command": "true",
            "workspaceFiles": [{"path": path, "content": "x"}]
        }))
        .await;
        assert_eq!(
            o.error.as_ref().map(|e| e.r#type.as_str()),
            Some("InvalidInput"),
            "{path}"
        );
    }
    // A symlink a command creates cannot redirect a later write outside /workspace either:
    // everything outside is read-only or another tmpfs.
    let r = contained(tier, json!({
        "runId": run_id("symlink"),
        "command": "ln -s /etc link && echo x > link/evil; echo rc=$?"
    }))
    .await;
    assert!(r["stdout"].as_str().unwrap().contains("rc=1"), "{r}");
}
}

/// Peak resident memory of a process, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

#[test]
fn harness_is_shared() {
    // Keeps the shared environment alive for the async tests above in the same binary.
    let _ = harness();
}

for_each_tier! {
async fn a_profile_can_replace_the_seccomp_profile_but_never_drop_it(tier) {
    // A stricter profile: the default's allowances minus directory creation.
    let dir = harness()
        .log_dir
        .join(format!("seccomp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("no-mkdir.json");
    std::fs::write(
        &path,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    if tier == Tier::Gvisor {
        // gVisor cannot apply it to commands: the worker refuses to start rather than pretend.
        let out = std::process::Command::new(ae_tests::harness::binary("ae-worker"))
            .arg("run")
            .env("AE_SANDBOX_RUNTIME", "gvisor")
            .env("AE_SANDBOX_SECCOMP_PROFILE", &path)
            .env("AE_HTTP_ADDR", "")
            .env("REDIS_URL", &harness().redis_url)
            .env("TEMPORAL_ADDRESS", &harness().temporal_address)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("AE_SANDBOX_SECCOMP_PROFILE") && stderr.contains("gVisor"), "{stderr}");
        return;
    }
    let w = start_worker(&[
        ("AE_SANDBOX_SECCOMP_PROFILE", path.to_str().unwrap()),
        tier.env(),
    ]);
    let opts = RunOpts {
        task_queue: w.task_queue.clone(),
        ..Default::default()
    };
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run_id("seccomp"), "command": "mkdir /workspace/d; echo mkdir=$?; grep Seccomp: /proc/self/status"}),
        opts,
    )
    .await;
    assert_eq!(result(&o)["runtime"], tier.name());
    let out = result(&o)["stdout"].as_str().unwrap().to_string();
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");

    // `unconfined` is refused: the worker does not start at all.
    let mut cmd = std::process::Command::new(ae_tests::harness::binary("ae-worker"));
    let status = cmd
        .arg("run")
        .env(tier.env().0, tier.env().1)
        .env("AE_SANDBOX_SECCOMP_PROFILE", "unconfined")
        .env("REDIS_URL", &harness().redis_url)
        .env("TEMPORAL_ADDRESS", &harness().temporal_address)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!status.status.success());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("AE_SANDBOX_SECCOMP_PROFILE"), "{stderr}");
}
}
