//! The abuse suite: hostile commands against real Docker. Each must be contained, the worker
//! must stay healthy, and the next execution must succeed. Network abuse (a host not allowed,
//! by name and by raw IP, private addresses, bypassing the proxy, DNS) is in `egress.rs`, which
//! needs its own web server and worker configuration.

use ae_tests::harness::{
    RunOpts, harness, run_activity, run_id, safe_execute, start_worker, worker_pid,
};
use ae_tests::workflows::Outcome;
use serde_json::{Value, json};
use std::time::Duration;

fn result(o: &Outcome) -> &Value {
    o.result
        .as_ref()
        .unwrap_or_else(|| panic!("expected a result, got {o:?}"))
}

/// Runs `input` on the shared worker, then proves the worker still serves a normal command.
async fn contained(input: Value) -> Value {
    let o = safe_execute(input).await;
    let r = result(&o).clone();
    let next = safe_execute(json!({"runId": run_id("next"), "command": "echo still fine"})).await;
    assert_eq!(
        result(&next)["stdout"],
        "still fine\n",
        "the next execution failed"
    );
    r
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

#[tokio::test]
async fn a_process_flood_hits_the_pids_limit() {
    // An endless loop of background processes looks like ordinary work to the policy: the
    // sandbox must hold anyway.
    let r = contained(json!({
        "runId": run_id("forkbomb"),
        "workspaceFiles": [{"path": "flood.sh", "content": "while true; do sleep 60 & done\n"}],
        "command": "sh flood.sh",
        "timeout": 3000
    }))
    .await;
    // It ran into the pids limit ("can't fork") or was killed at its timeout; either way the
    // next execution (checked by `contained`) ran normally. The exit code says nothing here:
    // the top-level script's `wait` may well return 0.
    let stopped = r["timedOut"] == true || r["stderr"].as_str().unwrap().contains("can't fork");
    assert!(stopped, "{r}");
}

#[tokio::test]
async fn a_fork_bomb_in_one_sandbox_does_not_stop_another_from_forking() {
    // Processes of the same uid in other sandboxes must not count against this one. The holder
    // fills its own pids limit, then keeps those processes alive (`exec` needs no fork).
    let bomb = safe_execute(json!({
        "runId": run_id("neighbour-bomb"),
        "workspaceFiles": [{"path": "hold.sh", "content": "(n=0; while [ $n -lt 400 ]; do sleep 20 & n=$((n+1)); done) 2>/dev/null; exec sleep 8\n"}],
        "command": "sh hold.sh",
        "timeout": 15000
    }));
    let neighbour = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        safe_execute(json!({
            "runId": run_id("neighbour"),
            "command": "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 1 & done; wait; echo forked fine"
        }))
        .await
    };
    let (_, n) = tokio::join!(bomb, neighbour);
    assert_eq!(result(&n)["stdout"], "forked fine\n", "{n:?}");
}

#[tokio::test]
async fn a_process_flood_is_capped() {
    let r = contained(json!({
        "runId": run_id("flood"),
        // Once the limit is hit nothing can fork, so the count uses shell builtins only.
        "command": "(n=0; while [ $n -lt 1000 ]; do sleep 30 & n=$((n+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo started $#",
        "timeout": 10000
    }))
    .await;
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

#[tokio::test]
async fn a_memory_bomb_is_oom_killed_and_reported() {
    let r = contained(json!({
        "runId": run_id("membomb"),
        "command": "tail /dev/zero",
        "timeout": 30000
    }))
    .await;
    assert_eq!(r["oomKilled"], true, "{r}");
    assert_eq!(r["signal"], "SIGKILL");
    let peak = r["peakMemoryBytes"].as_u64().unwrap_or(0);
    assert!(peak >= 400 * 1024 * 1024, "peak {peak}");
}

#[tokio::test]
async fn filling_workspace_and_tmp_stops_at_their_caps() {
    let r = contained(json!({
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

#[tokio::test]
async fn gigabytes_of_output_leave_worker_memory_bounded() {
    let w = start_worker(&[]);
    let pid = worker_pid(&w.identity).expect("find the extra worker's pid");
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run_id("gigabytes"), "command": "head -c 2000000000 /dev/zero | tr '\\0' x", "timeout": 120000}),
        RunOpts { task_queue: w.task_queue.clone(), ..Default::default() },
    )
    .await;
    let r = result(&o);
    assert_eq!(r["stdoutBytes"], 2_000_000_000u64, "{}", r["stderr"]);
    assert_eq!(r["stdoutTruncated"], true);
    let peak_kib = peak_rss_kib(pid);
    assert!(
        peak_kib < 200 * 1024,
        "worker peak RSS {peak_kib} KiB after 2 GB of output"
    );
}

#[tokio::test]
async fn the_root_filesystem_is_read_only_and_mounts_are_nosuid() {
    let r = contained(json!({
        "runId": run_id("rootfs"),
        "command": "touch /bin/evil 2>/dev/null; echo bin=$?; touch /etc/evil 2>/dev/null; echo etc=$?; grep -E ' /(workspace|tmp) ' /proc/mounts"
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.contains("bin=1") && out.contains("etc=1"), "{out}");
    let mounts: Vec<_> = out.lines().filter(|l| l.contains("tmpfs")).collect();
    assert_eq!(mounts.len(), 2, "{out}");
    for line in mounts {
        assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
        // Programs in the workspace must run (npm's .bin, ./configure); setuid must not.
        assert!(!line.contains("noexec"), "{line}");
    }
}

#[tokio::test]
async fn privilege_escalation_attempts_fail() {
    let r = contained(json!({
        "runId": run_id("privesc"),
        "command": "cp /bin/busybox ./busybox && chmod u+s ./busybox && ./busybox id -u; su -c id root </dev/null 2>/dev/null; echo su=$?; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.starts_with("65534\n"), "{out}");
    assert!(!out.contains("su=0"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[tokio::test]
async fn host_files_and_the_docker_socket_are_out_of_reach() {
    let r = contained(json!({
        "runId": run_id("host"),
        "command": "ls /var/run/docker.sock /run/docker.sock 2>&1; cat /proc/1/environ >/dev/null 2>&1; echo environ=$?; ls /proc/1/root/ >/dev/null 2>&1; echo root=$?; ls /; cat /etc/hostname 2>&1 | head -1"
    }))
    .await;
    let out = r["stdout"].as_str().unwrap();
    assert!(
        out.matches("No such file or directory").count() >= 2,
        "{out}"
    );
    assert!(out.contains("environ=1"), "{out}");
    assert!(out.contains("root=1"), "{out}");
    assert!(
        !out.contains("home\n") && !out.contains("root\n") && !out.contains("var\n"),
        "{out}"
    );
}

#[tokio::test]
async fn a_command_ignoring_sigterm_and_a_double_fork_die_at_the_timeout() {
    let (o, workflow_id) = run_activity(
        "safeExecuteCode",
        json!({
            "runId": run_id("sigterm"),
            "command": "trap '' TERM INT HUP; (setsid sh -c 'trap \"\" TERM; sleep 300' &); sleep 300",
            "timeout": 1500
        }),
        RunOpts::default(),
    )
    .await;
    let r = result(&o);
    assert_eq!(r["timedOut"], true);
    assert_eq!(r["signal"], "SIGKILL");
    // run_activity asserted that the workflow's sandbox, with every process in it, is gone.
    assert!(workflow_id.starts_with("test-"));
}

#[tokio::test]
async fn uploads_cannot_traverse_or_link_out_of_the_workspace() {
    for path in [
        "../escape",
        "a/../../escape",
        "/etc/cron.d/x",
        "/workspace/../etc/x",
    ] {
        let o = safe_execute(json!({
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
    let r = contained(json!({
        "runId": run_id("symlink"),
        "command": "ln -s /etc link && echo x > link/evil; echo rc=$?"
    }))
    .await;
    assert!(r["stdout"].as_str().unwrap().contains("rc=1"), "{r}");
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

#[tokio::test]
async fn a_profile_can_replace_the_seccomp_profile_but_never_drop_it() {
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
    let w = start_worker(&[("AE_SANDBOX_SECCOMP_PROFILE", path.to_str().unwrap())]);
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
    let out = result(&o)["stdout"].as_str().unwrap().to_string();
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");

    // `unconfined` is refused: the worker does not start at all.
    let mut cmd = std::process::Command::new(ae_tests::harness::binary("ae-worker"));
    let status = cmd
        .arg("run")
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
