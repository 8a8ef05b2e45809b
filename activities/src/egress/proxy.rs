//! The forward proxy the worker serves: admits `CONNECT host:port` and plain-HTTP requests
//! only for hosts the execution's grant allows, on allowed ports, to public addresses (or the
//! configured private exceptions); resolves names itself and connects to the address it
//! checked. It does not own networks or the relay (see `egress`).

use super::allowlist::{DomainRule, is_hostname, is_public};
use crate::config::EgressConfig;
use base64::Engine as _;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 1024;
/// Open connections one sandbox may hold through the proxy, so one cannot starve the others.
const MAX_CONNECTIONS_PER_SANDBOX: usize = 64;

/// What one execution may reach, and what it was refused.
pub(super) struct Grant {
    run_id: String,
    rules: Vec<DomainRule>,
    pub(super) denied: AtomicU64,
    pub(super) closed: CancellationToken,
    slots: Arc<tokio::sync::Semaphore>,
}

/// The proxy's state, shared by its connection tasks.
pub(super) struct Proxy {
    pub(super) cfg: EgressConfig,
    pub(super) grants: Mutex<HashMap<String, Arc<Grant>>>,
    denied_total: AtomicU64,
    connections: Arc<tokio::sync::Semaphore>,
}

impl Proxy {
    pub(super) fn new(cfg: EgressConfig) -> Self {
        Self {
            cfg,
            grants: Default::default(),
            denied_total: AtomicU64::new(0),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Registers a grant under `token`.
    pub(super) fn grant(&self, token: &str, run_id: &str, rules: Vec<DomainRule>) -> Arc<Grant> {
        let grant = Arc::new(Grant {
            run_id: run_id.to_string(),
            rules,
            denied: AtomicU64::new(0),
            closed: CancellationToken::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS_PER_SANDBOX)),
        });
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), grant.clone());
        grant
    }
}

pub(super) async fn serve(listener: TcpListener, proxy: Arc<Proxy>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (conn, _) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "egress proxy accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = proxy.connections.clone().try_acquire_owned() else {
            continue; // over the limit: dropping the connection refuses it
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let _permit = permit;
            handle(conn, &proxy).await;
        });
    }
}

/// A request the proxy answers itself.
struct Refusal {
    status: u16,
    reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// A parsed request the proxy will forward.
struct Forward {
    host: String,
    port: u16,
    /// For plain HTTP: the request head to send upstream. None for CONNECT.
    head: Option<Vec<u8>>,
}

async fn handle(mut client: TcpStream, proxy: &Proxy) {
    let mut buf = Vec::with_capacity(1024);
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await
    {
        Ok(Some(n)) => n,
        _ => return,
    };
    let Admitted {
        grant,
        forward,
        mut upstream,
        slot: _slot,
    } = match admit(&buf[..head_len], proxy).await {
        Ok(a) => a,
        Err(Refused { grant, target, r }) => {
            if let Some(g) = &grant {
                deny(proxy, g, &target, &r);
            }
            let _ = respond(&mut client, &r).await;
            return;
        }
    };
    tracing::debug!(run_id = %grant.run_id, host = %forward.host, port = forward.port, "egress allowed");
    let rest = &buf[head_len..];
    let sent = async {
        match &forward.head {
            None => {
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await?
            }
            Some(head) => upstream.write_all(head).await?,
        }
        upstream.write_all(rest).await
    };
    if sent.await.is_err() {
        return;
    }
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        _ = grant.closed.cancelled() => {}
    }
}

/// A request the proxy let through, with its upstream connection and its connection slot.
struct Admitted {
    grant: Arc<Grant>,
    forward: Forward,
    upstream: TcpStream,
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// A request the proxy answers itself; `grant` is None when the sandbox is not known.
struct Refused {
    grant: Option<Arc<Grant>>,
    target: String,
    r: Refusal,
}

/// Everything between a request head and an open upstream connection: who asks, whether the
/// allowlist and ports admit it, a free connection slot, and a public (or exempt) address.
async fn admit(head: &[u8], proxy: &Proxy) -> Result<Admitted, Refused> {
    let (grant, forward) = parse(head, proxy).map_err(|(grant, r)| Refused {
        grant,
        target: "-".into(),
        r,
    })?;
    let target = format!("{}:{}", forward.host, forward.port);
    let Ok(slot) = grant.slots.clone().try_acquire_owned() else {
        let r = refuse(
            429,
            format!("more than {MAX_CONNECTIONS_PER_SANDBOX} open connections"),
        );
        return Err(Refused {
            grant: Some(grant),
            target,
            r,
        });
    };
    match connect(proxy, &forward).await {
        Ok(upstream) => Ok(Admitted {
            grant,
            forward,
            upstream,
            slot,
        }),
        Err(r) => Err(Refused {
            grant: Some(grant),
            target,
            r,
        }),
    }
}

/// Reads until the end of the request head; returns its length (buf may hold more).
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

type Parsed = Result<(Arc<Grant>, Forward), (Option<Arc<Grant>>, Refusal)>;

fn parse(head: &[u8], proxy: &Proxy) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err((None, refuse(400, "malformed request"))),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err((None, refuse(400, "malformed request")));
    };
    let token = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|h| basic_password(h.value));
    let grant = token.and_then(|t| {
        proxy
            .grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&t)
            .cloned()
    });
    let Some(grant) = grant else {
        return Err((None, refuse(407, "proxy authentication required")));
    };
    let fail = |r: Refusal| Err((Some(grant.clone()), r));
    let (authority, path) = if method.eq_ignore_ascii_case("CONNECT") {
        (target, None)
    } else if let Some(rest) = target.strip_prefix("http://") {
        match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, Some("/")),
        }
    } else {
        return fail(refuse(
            400,
            "only CONNECT and absolute http:// requests are proxied",
        ));
    };
    let Some((host, port)) = split_authority(authority, if path.is_some() { 80 } else { 443 })
    else {
        return fail(refuse(400, format!("bad target {authority:?}")));
    };
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return fail(refuse(403, "raw IP addresses are not allowed; use a name"));
    }
    if !is_hostname(&host) || !grant.rules.iter().any(|r| r.matches(&host)) {
        return fail(refuse(403, format!("{host} is not in allowedDomains")));
    }
    if !proxy.cfg.ports.contains(&port) {
        return fail(refuse(403, format!("port {port} is not allowed")));
    }
    let head = path.map(|path| {
        let mut out = format!("{method} {path} HTTP/1.{version}\r\n").into_bytes();
        for h in req.headers.iter() {
            let n = h.name.to_ascii_lowercase();
            if matches!(
                n.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
            ) {
                continue;
            }
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            out.extend_from_slice(b"\r\n");
        }
        // One request per connection: a second request on it cannot pick another host.
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out
    });
    Ok((grant, Forward { host, port, head }))
}

fn basic_password(value: &[u8]) -> Option<String> {
    let v = std::str::from_utf8(value).ok()?.trim();
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(text.split_once(':')?.1.to_string())
}

/// `host[:port]` → (lower-cased host without trailing dot, port).
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    if authority.starts_with('[') {
        return Some((authority.to_string(), default_port)); // IPv6 literal, refused by caller
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, default_port),
    };
    Some((host.trim_end_matches('.').to_ascii_lowercase(), port))
}

async fn connect(proxy: &Proxy, f: &Forward) -> Result<TcpStream, Refusal> {
    let addrs: Vec<SocketAddr> = match proxy.cfg.hosts.get(&f.host) {
        Some(ip) => vec![SocketAddr::new(*ip, f.port)],
        None => tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::lookup_host((f.host.as_str(), f.port)),
        )
        .await
        .map_err(|_| refuse(502, format!("resolving {} timed out", f.host)))?
        .map_err(|e| refuse(502, format!("cannot resolve {}: {e}", f.host)))?
        .collect(),
    };
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| is_public(a.ip()) || proxy.cfg.private_allow.contains(a))
        .collect();
    if allowed.is_empty() {
        return Err(refuse(
            403,
            format!(
                "{} resolves only to private, loopback or link-local addresses",
                f.host
            ),
        ));
    }
    let mut last = String::new();
    for addr in allowed {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    Err(refuse(502, format!("cannot connect to {}: {last}", f.host)))
}

fn deny(proxy: &Proxy, grant: &Grant, target: &str, r: &Refusal) {
    if r.status == 502 {
        return; // the upstream failed; nothing was refused
    }
    grant.denied.fetch_add(1, Ordering::Relaxed);
    let total = proxy.denied_total.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::warn!(run_id = %grant.run_id, target, status = r.status, reason = %r.reason, denied_total = total, "egress denied");
}

async fn respond(client: &mut TcpStream, r: &Refusal) -> std::io::Result<()> {
    let text = match r.status {
        400 => "Bad Request",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        429 => "Too Many Requests",
        _ => "Bad Gateway",
    };
    let body = format!("ae-egress: {}\n", r.reason);
    let auth = if r.status == 407 {
        "Proxy-Authenticate: Basic realm=\"ae-egress\"\r\n"
    } else {
        ""
    };
    let msg = format!(
        "HTTP/1.1 {} {text}\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        r.status,
        body.len()
    );
    client.write_all(msg.as_bytes()).await?;
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy on loopback admitting `allowed.test` → an upstream that holds connections open
    /// until the client closes; returns the proxy's address and the upstream's port.
    async fn proxy_with_upstream() -> (Arc<Proxy>, SocketAddr, u16) {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while matches!(c.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        let cfg = EgressConfig {
            ports: vec![up.port()],
            hosts: HashMap::from([("allowed.test".to_string(), up.ip())]),
            private_allow: vec![up],
            ..Default::default()
        };
        let proxy = Arc::new(Proxy::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, proxy.clone(), CancellationToken::new()));
        (proxy, addr, up.port())
    }

    async fn connect_through(proxy: SocketAddr, port: u16, token: &str) -> (TcpStream, String) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("ae:{token}"));
        let mut c = TcpStream::connect(proxy).await.unwrap();
        c.write_all(
            format!(
                "CONNECT allowed.test:{port} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).await.unwrap();
        let status = String::from_utf8_lossy(&buf[..n])
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        (c, status)
    }

    #[tokio::test]
    async fn one_sandbox_holds_at_most_64_connections_and_closing_one_frees_it() {
        let (proxy, addr, port) = proxy_with_upstream().await;
        let rules = vec![DomainRule::parse("allowed.test").unwrap()];
        let grant = proxy.grant("tok", "run-a", rules.clone());
        let mut open = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..70 {
            let (c, status) = connect_through(addr, port, "tok").await;
            statuses.push(status);
            open.push(c);
        }
        assert_eq!(statuses.iter().filter(|s| *s == "200").count(), 64);
        assert_eq!(statuses.iter().filter(|s| *s == "429").count(), 6);
        assert_eq!(grant.denied.load(Ordering::Relaxed), 6);

        // Another sandbox is not affected.
        proxy.grant("other", "run-b", rules);
        assert_eq!(connect_through(addr, port, "other").await.1, "200");

        // Closing a tunnel gives its slot back.
        drop(open.remove(0));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (c, status) = connect_through(addr, port, "tok").await;
            if status == "200" {
                open.push(c);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the slot was not freed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn revoking_a_grant_closes_its_tunnels_and_refuses_new_ones() {
        let (proxy, addr, port) = proxy_with_upstream().await;
        let grant = proxy.grant(
            "tok",
            "run-a",
            vec![DomainRule::parse("allowed.test").unwrap()],
        );
        let (mut tunnel, status) = connect_through(addr, port, "tok").await;
        assert_eq!(status, "200");
        proxy.grants.lock().unwrap().remove("tok");
        grant.closed.cancel();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf))
            .await
            .expect("the tunnel was not closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert_eq!(connect_through(addr, port, "tok").await.1, "407");
    }

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(
            split_authority("Example.COM.:8443", 443),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(split_authority("a.com", 80), Some(("a.com".into(), 80)));
        assert_eq!(split_authority("user@a.com", 80), None);
        assert_eq!(split_authority("a.com:x", 80), None);
    }

    #[test]
    fn basic_credentials_yield_the_token() {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ae:tok123")
        );
        assert_eq!(basic_password(v.as_bytes()), Some("tok123".into()));
        assert_eq!(basic_password(b"Bearer x"), None);
        assert_eq!(basic_password(b"Basic !!!"), None);
    }
}
