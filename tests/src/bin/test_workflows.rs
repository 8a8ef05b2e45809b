//! Hosts the test workflows on `ae-tests`. Started by the harness; not part of the product.

use ae_tests::workflows::{
    DeployAfterApprovalWorkflow, RunActivityWorkflow, SessionScriptWorkflow, SignalWorkflow,
    TEST_WORKFLOW_QUEUE,
};
use std::str::FromStr;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let address = std::env::var("TEMPORAL_ADDRESS")?;
    let opts = ConnectionOptions::new(Url::from_str(&format!("http://{address}"))?)
        .identity("ae-test-workflows".to_string())
        .build();
    // The dev server listens before its frontend is healthy: retry for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let connection = loop {
        match Connection::connect(opts.clone()).await {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("temporal not ready yet: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let client = Client::new(connection, ClientOptions::new("default").build())?;
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let options = WorkerOptions::new(TEST_WORKFLOW_QUEUE)
        .register_workflow::<RunActivityWorkflow>()?
        .register_workflow::<DeployAfterApprovalWorkflow>()?
        .register_workflow::<SignalWorkflow>()?
        .register_workflow::<SessionScriptWorkflow>()?
        .build();
    let mut worker = Worker::new(&runtime, client, options)?;
    worker.run().await?;
    Ok(())
}
