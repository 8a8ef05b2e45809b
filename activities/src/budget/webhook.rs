//! Budget (and deployment) alerts to an operator's webhook (`AE_ALERT_WEBHOOK_URL`): a JSON POST per alert,
//! retried with backoff, in the background, so an execution never waits for it. The alert is
//! already in the `ae:alerts` stream and the log when this runs; the webhook is a courtesy.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Attempts per alert.
const ATTEMPTS: u32 = 4;
/// Time allowed for one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts `alert` (JSON) to `url` in the background, retrying a refused or failed delivery.
pub fn post(url: &str, alert: serde_json::Value) {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        tracing::error!("AE_ALERT_WEBHOOK_URL is not a URL; the alert stays in ae:alerts");
        return;
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let body = Bytes::from(alert.to_string());
        for attempt in 1..=ATTEMPTS {
            let request = hyper::Request::post(uri.clone())
                .header("content-type", "application/json")
                .body(Full::new(body.clone()));
            let Ok(request) = request else { return };
            match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
                Ok(Ok(r)) if r.status().is_success() => return,
                Ok(Ok(r)) => tracing::warn!(status = %r.status(), attempt, "alert webhook refused"),
                Ok(Err(e)) => tracing::warn!(error = %e, attempt, "alert webhook unreachable"),
                Err(_) => tracing::warn!(attempt, "alert webhook timed out"),
            }
            tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt - 1)).await;
        }
        tracing::error!("alert webhook failed {ATTEMPTS} times; the alert stays in ae:alerts");
    });
}
