//! The budget store against a real Redis: atomicity, idempotence per attempt, refunds, and the
//! disabled default budget.

use ae_activities::budget::{BudgetError, BudgetStore};
use ae_tests::harness::{harness, run_id};
use redis::AsyncCommands;
use std::time::Duration;

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

#[tokio::test]
async fn the_same_attempt_is_never_charged_twice() {
    let store = BudgetStore::new(&harness().redis_url, 1.0, WEEK).unwrap();
    let run = run_id("idem");
    let a = store.charge(&run, "wf:1:1", 0.01).await.unwrap();
    let b = store.charge(&run, "wf:1:1", 0.01).await.unwrap();
    assert_eq!(a.spent, 0.01);
    assert_eq!(b.spent, 0.01);
    let c = store.charge(&run, "wf:1:2", 0.01).await.unwrap();
    assert_eq!(c.spent, 0.02);
}

#[tokio::test]
async fn a_refund_gives_the_charge_back_once() {
    let store = BudgetStore::new(&harness().redis_url, 1.0, WEEK).unwrap();
    let run = run_id("refund");
    store.charge(&run, "a", 0.25).await.unwrap();
    store.charge(&run, "b", 0.25).await.unwrap();
    assert_eq!(store.refund(&run, "a").await.unwrap().spent, 0.25);
    assert_eq!(store.refund(&run, "a").await.unwrap().spent, 0.25);
    let mut r = harness().redis().await;
    let spent: String = r.get(format!("spent:{run}")).await.unwrap();
    assert_eq!(spent, "0.25");
}

#[tokio::test]
async fn a_disabled_default_budget_is_budget_not_found() {
    let store = BudgetStore::new(&harness().redis_url, 0.0, WEEK).unwrap();
    let run = run_id("nobudget");
    assert_eq!(
        store.charge(&run, "a", 0.01).await.unwrap_err(),
        BudgetError::NotFound
    );
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{run}"), "1.0").await.unwrap();
    assert_eq!(store.charge(&run, "a", 0.01).await.unwrap().remaining, 0.99);
}

#[tokio::test]
async fn racing_charges_stop_exactly_at_the_limit() {
    let store = BudgetStore::new(&harness().redis_url, 1.0, WEEK).unwrap();
    let run = run_id("race");
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{run}"), "0.37").await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            let run = run.clone();
            tokio::spawn(async move { store.charge(&run, &format!("c{i}"), 0.01).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(BudgetError::Exceeded { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 37);
    let spent: String = r.get(format!("spent:{run}")).await.unwrap();
    assert_eq!(spent, "0.37");
    let exceeded: String = r.get(format!("exceeded:{run}")).await.unwrap();
    assert_eq!(exceeded, "1");
}

#[tokio::test]
async fn an_unreachable_redis_fails_closed() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = BudgetStore::new(&format!("redis://127.0.0.1:{port}"), 1.0, WEEK).unwrap();
    let started = std::time::Instant::now();
    let err = store.charge("r", "a", 0.01).await.unwrap_err();
    assert!(matches!(err, BudgetError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_partial_refund_never_returns_more_than_was_charged() {
    let store = BudgetStore::new(&harness().redis_url, 1.0, WEEK).unwrap();
    let run = run_id("partial");
    store.charge(&run, "batch", 0.05).await.unwrap();
    assert_eq!(
        store
            .refund_part(&run, "batch", Some(0.02))
            .await
            .unwrap()
            .spent,
        0.03
    );
    assert_eq!(
        store
            .refund_part(&run, "batch", Some(0.02))
            .await
            .unwrap()
            .spent,
        0.01
    );
    // Only 0.01 of the charge is left to give back.
    assert_eq!(
        store
            .refund_part(&run, "batch", Some(0.02))
            .await
            .unwrap()
            .spent,
        0.0
    );
    assert_eq!(
        store.refund_part(&run, "batch", None).await.unwrap().spent,
        0.0
    );
}
