//! The forward proxy the worker serves: admits `CONNECT host:port` and plain-HTTP requests
//! only for hosts the execution's grant allows, on allowed ports, to public addresses (or the
//! configured private exceptions); resolves names itself and connects to the address it
//! checked. It does not own networks or the relay (see `egress`).
//!
//! Every grant (one sandbox) has its own listener, which only that sandbox's relay dials: the
//! proxy knows whose connection it is when it accepts it, so the sandbox's own connection cap
//! applies before a byte is read, and a connection that never authenticates still counts
//! against its own sandbox only. The shared (worker-wide) slot is taken only after the token
//! matched the grant.

use super::allowlist::{DomainRule, is_hostname, is_public};
use crate::config::EgressConfig;
use base64::Engine as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Authenticated connections the whole proxy holds; taken only after the token matched.
const MAX_CONNECTIONS: usize = 1024;
/// Open connections one sandbox may hold through the proxy, authenticated or not, so one
/// cannot starve the others.
pub(super) const MAX_CONNECTIONS_PER_SANDBOX: usize = 64;
/// Refusals past the cap answered politely at once; beyond that they are just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 8;

/// What one execution may reach, and what it was refused.
pub(super) struct Grant {
    pub(super) run_id: String,
    token: String,
    rules: Vec<DomainRule>,
    pub(super) denied: AtomicU64,
    /// Connections refused because the sandbox held its cap (logged sparingly).
    over_cap: AtomicU64,
    pub(super) closed: CancellationToken,
    /// Who may connect to the grant's listener: unset until its relay runs (nobody), then the
    /// relay's address, or anyone when the relay's address cannot be known (NAT).
    pub(super) relay: std::sync::OnceLock<Option<IpAddr>>,
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
}

/// The proxy's state, shared by its listeners and connection tasks.
pub(super) struct Proxy {
    pub(super) cfg: EgressConfig,
    denied_total: AtomicU64,
    connections: Arc<Semaphore>,
}

impl Proxy {
    pub(super) fn new(cfg: EgressConfig) -> Self {
        Self {
            cfg,
            denied_total: AtomicU64::new(0),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// A grant for one sandbox: requests must carry `token`; serve it with [`serve`].
    pub(super) fn grant(&self, token: &str, run_id: &str, rules: Vec<DomainRule>) -> Arc<Grant> {
        Arc::new(Grant {
            run_id: run_id.to_string(),
            token: token.to_string(),
            rules,
            denied: AtomicU64::new(0),
            over_cap: AtomicU64::new(0),
            closed: CancellationToken::new(),
            relay: Default::default(),
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_SANDBOX)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        })
    }
}

/// Serves one grant's listener until the grant is revoked or the worker stops. Connections
/// from anything but the grant's relay are closed; each of the relay's takes one of the
/// grant's slots before anything is read; past the cap it is refused with 429 (and counted)
/// without being read.
pub(super) async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    grant: Arc<Grant>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = grant.closed.cancelled() => return,
            _ = stop.cancelled() => return,
        };
        let conn = match accepted {
            Ok((c, peer)) => {
                let from_relay = match grant.relay.get() {
                    Some(Some(ip)) => *ip == peer.ip(),
                    Some(None) => true,
                    None => false,
                };
                if !from_relay {
                    // Not the sandbox's relay: it gets nothing, not even one of its slots.
                    tracing::debug!(run_id = %grant.run_id, %peer, "egress connection not from the relay");
                    continue;
                }
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "egress proxy accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = grant.slots.clone().try_acquire_owned() else {
            over_cap(&proxy, &grant, conn);
            continue;
        };
        let proxy = proxy.clone();
        let grant = grant.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = handle(conn, &proxy, &grant) => {}
                _ = grant.closed.cancelled() => {}
            }
        });
    }
}

/// A connection past the sandbox's cap: counted, answered 429 when few such answers are in
/// flight (else just closed), never read.
fn over_cap(proxy: &Proxy, grant: &Arc<Grant>, mut conn: TcpStream) {
    let r = refuse(
        429,
        format!("more than {MAX_CONNECTIONS_PER_SANDBOX} open connections"),
    );
    grant.denied.fetch_add(1, Ordering::Relaxed);
    let total = proxy.denied_total.fetch_add(1, Ordering::Relaxed) + 1;
    let n = grant.over_cap.fetch_add(1, Ordering::Relaxed) + 1;
    // A flood would otherwise write a line per connection.
    if n == 1 || n.is_multiple_of(100) {
        tracing::warn!(run_id = %grant.run_id, status = 429, refused = n, denied_total = total, reason = %r.reason, "egress denied");
    }
    let Ok(permit) = grant.refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = respond(&mut conn, &r).await;
            // Drain what the client sent, so closing does not reset the answer away.
            let mut sink = [0u8; 1024];
            while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}

/// A request the proxy answers itself.
struct Refusal {
    status: u16,
    reason: String,
    /// Whether it counts as the sandbox's denial (not before its token matched).
    counts: bool,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
        counts: true,
    }
}

/// A parsed request the proxy will forward.
struct Forward {
    host: String,
    port: u16,
    /// For plain HTTP: the request head to send upstream. None for CONNECT.
    head: Option<Vec<u8>>,
}

async fn handle(mut client: TcpStream, proxy: &Proxy, grant: &Arc<Grant>) {
    let mut buf = Vec::with_capacity(1024);
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await
    {
        Ok(Some(n)) => n,
        _ => return,
    };
    let (forward, mut upstream, _shared) = match admit(&buf[..head_len], proxy, grant).await {
        Ok(a) => a,
        Err((target, r)) => {
            deny(proxy, grant, &target, &r);
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
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Everything between a request head and an open upstream connection: the token, whether the
/// allowlist and ports admit it, a shared slot (only now, after the token), and a public (or
/// exempt) address. On refusal: the target (for the log) and the answer.
async fn admit(
    head: &[u8],
    proxy: &Proxy,
    grant: &Grant,
) -> Result<(Forward, TcpStream, tokio::sync::OwnedSemaphorePermit), (String, Refusal)> {
    let forward = parse(head, proxy, grant).map_err(|r| ("-".to_string(), r))?;
    let target = format!("{}:{}", forward.host, forward.port);
    let Ok(shared) = proxy.connections.clone().try_acquire_owned() else {
        return Err((target, refuse(503, "the egress proxy is at capacity")));
    };
    match connect(proxy, &forward).await {
        Ok(upstream) => Ok((forward, upstream, shared)),
        Err(r) => Err((target, r)),
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

/// Parses a request head and checks it against `grant`: the token first (refusals before it
/// matched are not the sandbox's and are not counted), then target, allowlist, port and, for
/// plain HTTP, the `Host` header.
fn parse(head: &[u8], proxy: &Proxy, grant: &Grant) -> Result<Forward, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let anonymous = |status, reason: &str| Refusal {
        counts: false,
        ..refuse(status, reason)
    };
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(anonymous(400, "malformed request")),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(anonymous(400, "malformed request"));
    };
    let token = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|h| basic_password(h.value));
    if !token.is_some_and(|t| same(t.as_bytes(), grant.token.as_bytes())) {
        return Err(anonymous(407, "proxy authentication required"));
    }
    let (authority, path) = if method.eq_ignore_ascii_case("CONNECT") {
        (target, None)
    } else if let Some(rest) = target.strip_prefix("http://") {
        match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, Some("/")),
        }
    } else {
        return Err(refuse(
            400,
            "only CONNECT and absolute http:// requests are proxied",
        ));
    };
    let Some((host, port)) = split_authority(authority, if path.is_some() { 80 } else { 443 })
    else {
        return Err(refuse(400, format!("bad target {authority:?}")));
    };
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err(refuse(403, "raw IP addresses are not allowed; use a name"));
    }
    if !is_hostname(&host) || !grant.rules.iter().any(|r| r.matches(&host)) {
        return Err(refuse(403, format!("{host} is not in allowedDomains")));
    }
    if !proxy.cfg.ports.contains(&port) {
        return Err(refuse(403, format!("port {port} is not allowed")));
    }
    let Some(path) = path else {
        return Ok(Forward {
            host,
            port,
            head: None,
        });
    };
    // Plain HTTP: the server routes by `Host`, so it must name the target the allowlist
    // admitted (a name-based virtual host behind an allowed address is another destination).
    let hosts: Vec<&[u8]> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value)
        .collect();
    if hosts.len() > 1 {
        return Err(refuse(400, "more than one Host header"));
    }
    if let Some(value) = hosts.first() {
        let value = String::from_utf8_lossy(value);
        if split_authority(value.trim(), 80) != Some((host.clone(), port)) {
            return Err(refuse(
                403,
                format!(
                    "Host header {:?} is not the target {host}:{port}",
                    value.trim()
                ),
            ));
        }
    }
    let mut out = format!("{method} {path} HTTP/1.{version}\r\n").into_bytes();
    if hosts.is_empty() {
        let authority = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
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
    Ok(Forward {
        host,
        port,
        head: Some(out),
    })
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    if !r.counts || r.status >= 500 {
        // Not yet the sandbox's (no valid token), or the upstream or the proxy failed:
        // nothing was refused by policy.
        tracing::debug!(run_id = %grant.run_id, target, status = r.status, reason = %r.reason, "egress request not served");
        return;
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
        503 => "Service Unavailable",
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
    use std::collections::HashMap;

    /// A proxy admitting `allowed.test` and `other.test` → an upstream on loopback that holds
    /// connections open until the client closes, except that a plain-HTTP request is answered
    /// with its own head; returns the proxy and the upstream's port.
    async fn proxy_with_upstream() -> (Arc<Proxy>, u16) {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 256];
                    while let Ok(n) = c.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.starts_with(b"GET ") && buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
                            let _ = c.write_all(&buf).await;
                            return;
                        }
                    }
                });
            }
        });
        let cfg = EgressConfig {
            ports: vec![up.port()],
            hosts: HashMap::from([
                ("allowed.test".to_string(), up.ip()),
                ("other.test".to_string(), up.ip()),
            ]),
            private_allow: vec![up],
            ..Default::default()
        };
        (Arc::new(Proxy::new(cfg)), up.port())
    }

    /// A grant for `allowed.test` under `token`, served on its own loopback listener.
    async fn listen(proxy: &Arc<Proxy>, token: &str) -> (Arc<Grant>, SocketAddr) {
        let rules = vec![DomainRule::parse("allowed.test").unwrap()];
        let grant = proxy.grant(token, &format!("run-{token}"), rules);
        grant.relay.set(Some(IpAddr::from([127, 0, 0, 1]))).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            proxy.clone(),
            grant.clone(),
            CancellationToken::new(),
        ));
        (grant, addr)
    }

    fn auth(token: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("ae:{token}"))
    }

    /// Sends `head` and returns the connection and the whole first read.
    async fn send(proxy: SocketAddr, head: &str) -> (TcpStream, String) {
        let mut c = TcpStream::connect(proxy).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("the proxy answered")
            .unwrap_or(0);
        (c, String::from_utf8_lossy(&buf[..n]).to_string())
    }

    fn status(answer: &str) -> String {
        answer.split(' ').nth(1).unwrap_or("").to_string()
    }

    async fn connect_through(proxy: SocketAddr, port: u16, token: &str) -> (TcpStream, String) {
        let (c, answer) = send(
            proxy,
            &format!(
                "CONNECT allowed.test:{port} HTTP/1.1\r\nProxy-Authorization: Basic {}\r\n\r\n",
                auth(token)
            ),
        )
        .await;
        (c, status(&answer))
    }

    #[tokio::test]
    async fn one_sandbox_holds_at_most_64_connections_and_closing_one_frees_it() {
        let (proxy, port) = proxy_with_upstream().await;
        let (grant, addr) = listen(&proxy, "tok").await;
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
        let (_, other) = listen(&proxy, "other").await;
        assert_eq!(connect_through(other, port, "other").await.1, "200");

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
    async fn idle_unauthenticated_connections_starve_only_their_own_sandbox() {
        let (mut proxy, port) = proxy_with_upstream().await;
        // A worker-wide limit far below one sandbox's flood: idle connections must not take it.
        Arc::get_mut(&mut proxy).unwrap().connections = Arc::new(Semaphore::new(2));
        let (flooder, flood_addr) = listen(&proxy, "flood").await;
        let (_, addr) = listen(&proxy, "good").await;
        let mut idle = Vec::new();
        for _ in 0..200 {
            idle.push(TcpStream::connect(flood_addr).await.unwrap());
        }
        // Past its cap the flooder is refused at once, without a request (politely once the
        // answers to the flood itself are done).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut c = TcpStream::connect(flood_addr).await.unwrap();
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("refused at once")
            .unwrap_or(0);
        assert_eq!(status(&String::from_utf8_lossy(&buf[..n])), "429");
        assert!(flooder.denied.load(Ordering::Relaxed) >= 136);

        let started = std::time::Instant::now();
        let (_t1, s1) = connect_through(addr, port, "good").await;
        let (_t2, s2) = connect_through(addr, port, "good").await;
        assert_eq!((s1.as_str(), s2.as_str()), ("200", "200"));
        assert!(started.elapsed() < Duration::from_secs(1));
        // The two shared slots are taken now: a third authenticated tunnel waits its turn (503).
        assert_eq!(connect_through(addr, port, "good").await.1, "503");
        drop(idle);
    }

    #[tokio::test]
    async fn only_the_relay_may_use_a_grants_listener() {
        let (proxy, port) = proxy_with_upstream().await;
        let (grant, addr) = listen(&proxy, "tok").await;
        // Another address (a container that is not the relay) holding idle connections takes
        // none of the sandbox's slots, and even its valid token gets it nowhere.
        let mut strangers = Vec::new();
        for _ in 0..100 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            strangers.push(s.connect(addr).await.unwrap());
        }
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), strangers[0].read(&mut buf))
            .await
            .expect("closed at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
        for _ in 0..64 {
            let (c, status) = connect_through(addr, port, "tok").await;
            assert_eq!(status, "200");
            strangers.push(c);
        }
        assert_eq!(grant.denied.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_token_counts_only_on_its_own_grants_listener() {
        let (proxy, port) = proxy_with_upstream().await;
        let (a, addr_a) = listen(&proxy, "tok-a").await;
        let (_, addr_b) = listen(&proxy, "tok-b").await;
        assert_eq!(connect_through(addr_a, port, "tok-b").await.1, "407");
        assert_eq!(connect_through(addr_b, port, "tok-a").await.1, "407");
        assert_eq!(connect_through(addr_a, port, "tok-a").await.1, "200");
        // Unauthenticated requests are not the sandbox's denials.
        assert_eq!(a.denied.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_plain_http_host_header_must_name_the_target() {
        let (proxy, port) = proxy_with_upstream().await;
        let (grant, addr) = listen(&proxy, "tok").await;
        let get = |target: &str, host: Option<&str>| {
            let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
            format!(
                "GET http://{target}/x HTTP/1.1\r\n{host}Proxy-Authorization: Basic {}\r\n\r\n",
                auth("tok")
            )
        };
        let t = format!("allowed.test:{port}");
        // Another name (even one the upstream serves), another port, or two Host headers.
        for (host, want) in [
            (format!("other.test:{port}"), "403"),
            ("allowed.test".to_string(), "403"),
            (format!("allowed.test:{}", port.wrapping_add(1)), "403"),
            (format!("allowed.test:{port}\r\nHost: other.test"), "400"),
        ] {
            let (_, answer) = send(addr, &get(&t, Some(&host))).await;
            assert_eq!(status(&answer), want, "{host}: {answer}");
            assert!(!answer.contains("GET /x"), "{answer}");
        }
        assert_eq!(grant.denied.load(Ordering::Relaxed), 4);
        // Case and a trailing dot do not matter.
        let (_, answer) = send(addr, &get(&t, Some(&format!("ALLOWED.test.:{port}")))).await;
        assert_eq!(status(&answer), "200", "{answer}");
        assert!(answer.contains("GET /x HTTP/1.1\r\n"), "{answer}");
        assert!(!answer.contains("Proxy-Authorization"), "{answer}");
        // Without a Host header the proxy adds the target's.
        let (_, answer) = send(addr, &get(&t, None)).await;
        assert!(answer.contains(&format!("Host: {t}\r\n")), "{answer}");
    }

    #[tokio::test]
    async fn revoking_a_grant_closes_its_tunnels_and_its_listener() {
        let (proxy, port) = proxy_with_upstream().await;
        let (grant, addr) = listen(&proxy, "tok").await;
        let (mut tunnel, status) = connect_through(addr, port, "tok").await;
        assert_eq!(status, "200");
        grant.closed.cancel();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf))
            .await
            .expect("the tunnel was not closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
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
