//! `safeExecuteBatch` end to end: one sandbox for all commands, policy for all before any runs,
//! the budget reserved up front and what was not used given back.

use ae_tests::harness::{harness, run_id, safe_execute_batch};
use redis::AsyncCommands;
use serde_json::json;

async fn get(key: &str) -> Option<String> {
    harness().redis().await.get(key).await.unwrap()
}

#[tokio::test]
async fn commands_share_files_and_the_batch_stops_at_the_first_failure() {
    let run = run_id("share");
    let o = safe_execute_batch(json!({
        "runId": run,
        "workspaceFiles": [{"path": "seed.txt", "content": "seed\n"}],
        "commands": [
            "cat seed.txt > a.txt && echo one >> a.txt",
            {"command": "cat a.txt", "timeout": 5000},
            "echo failing >&2; exit 4",
            "echo never"
        ]
    }))
    .await;
    let r = o.result.clone().unwrap_or_else(|| panic!("{o:?}"));
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{r}");
    assert_eq!(results[1]["stdout"], "seed\none\n");
    assert_eq!(results[2]["exitCode"], 4);
    assert_eq!(results[2]["stderr"], "failing\n");
    assert_eq!(r["succeeded"], false);
    assert_eq!(r["failedIndex"], 2);
    // Four reserved, three ran: one given back.
    assert_eq!(r["totalCost"], 0.03);
    assert_eq!(r["budgetRemaining"], 9.97);
    assert_eq!(get(&format!("spent:{run}")).await.as_deref(), Some("0.03"));
}

#[tokio::test]
async fn without_stop_on_error_every_command_runs_even_after_a_timeout() {
    let o = safe_execute_batch(json!({
        "runId": run_id("continue"),
        "stopOnError": false,
        "commands": [
            {"command": "echo x > kept.txt; (sleep 100 &); trap '' TERM; sleep 100", "timeout": 1000},
            "cat kept.txt; ps -o pid,user,comm | grep -c sleep || true"
        ]
    }))
    .await;
    let r = o.result.clone().unwrap_or_else(|| panic!("{o:?}"));
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["timedOut"], true);
    // The sandbox survived the timeout with its files, and the timed-out command's processes,
    // including the one that forked away, are gone (only init's own sleep is left).
    assert_eq!(results[1]["stdout"], "x\n1\n", "{r}");
    assert_eq!(r["failedIndex"], 0);
    assert_eq!(r["succeeded"], false);
}

#[tokio::test]
async fn one_refused_command_refuses_the_whole_batch_and_charges_nothing() {
    let run = run_id("refuse");
    let o = safe_execute_batch(json!({
        "runId": run,
        "commands": ["echo fine > out.txt", "git push --force origin main", "echo also fine"]
    }))
    .await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "PolicyViolation");
    assert!(e.non_retryable);
    assert!(e.message.contains("commands[1]"), "{}", e.message);
    assert_eq!(e.details.as_ref().unwrap()["index"], 1);
    assert_eq!(get(&format!("spent:{run}")).await, None);
}

#[tokio::test]
async fn a_batch_that_cannot_be_paid_for_in_full_is_refused_up_front() {
    let run = run_id("prepay");
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{run}"), "0.02").await.unwrap();
    let o = safe_execute_batch(json!({"runId": run, "commands": ["true", "true", "true"]})).await;
    assert_eq!(o.error.expect("a failure").r#type, "BudgetExceeded");
    assert_eq!(get(&format!("spent:{run}")).await, None);
    let o = safe_execute_batch(json!({"runId": run, "commands": ["true", "true"]})).await;
    assert_eq!(o.result.expect("a result")["budgetRemaining"], 0.0);
}

#[tokio::test]
async fn bad_batches_are_invalid_input() {
    for input in [
        json!({"runId": run_id("bad"), "commands": []}),
        json!({"runId": run_id("bad"), "commands": [""]}),
        json!({"runId": run_id("bad"), "commands": [{"command": "true", "timeout": 0}]}),
        json!({"runId": run_id("bad"), "commands": [42]}),
        json!({"runId": run_id("bad")}),
    ] {
        let o = safe_execute_batch(input.clone()).await;
        assert_eq!(
            o.error.expect("a failure").r#type,
            "InvalidInput",
            "{input}"
        );
    }
}
