//! Egress by domain allowlist: the only way out of a sandbox that asked for `allowedDomains`.
//!
//! This module owns three things:
//! - **the forward proxy**, served by the worker itself: it admits `CONNECT host:port` and
//!   plain-HTTP requests (`GET http://host/...`) only when the host matches the execution's
//!   allowlist and the port is an allowed one, resolves the name itself, and refuses private,
//!   loopback and link-local addresses even when an allowed name resolves to one. It connects to
//!   the address it checked (no second lookup, so no DNS rebinding). Each sandbox identifies
//!   itself with a per-execution token in `Proxy-Authorization`; denials are logged and counted
//!   per execution and in total.
//! - **the relay**: one small container per worker (the sandbox image's busybox `nc`), on
//!   Docker's default bridge, that copies bytes from sandboxes to the proxy. It is why the
//!   sandbox needs no route to the host.
//! - **a private network per sandbox** ([`Lease`]): an `--internal` bridge whose host side has
//!   no address (`inhibit_ipv4`), holding only the sandbox and the relay. There is no default
//!   route out, the host's services and other sandboxes are unreachable, and the embedded DNS
//!   forwards nowhere. Programs that ignore the proxy settings, raw IPs and other ports fail.
//!
//! It does not own which sandboxes get a network (the activities decide, from their input), nor
//! the sandbox container itself (see `sandbox`).

use crate::config::EgressConfig;
use crate::sandbox::{LABEL_CREATED, LABEL_EXPIRES, LABEL_MANAGED, LABEL_OWNER, SandboxError};
use base64::Engine as _;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Port the relay listens on inside each sandbox network.
pub const RELAY_PORT: u16 = 3128;
/// Label marking the relay container.
pub const LABEL_ROLE: &str = "ae.role";
/// The relay's role label value.
pub const ROLE_RELAY: &str = "egress-relay";
/// Most domains one execution may list.
pub const MAX_DOMAINS: usize = 64;

const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 1024;
/// Open connections one sandbox may hold through the proxy, so one cannot starve the others.
const MAX_CONNECTIONS_PER_SANDBOX: usize = 64;

/// One entry of `allowedDomains`: an exact host, or `*.suffix` for every name below `suffix`
/// (not `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRule {
    /// `example.com`
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Below(String),
}

impl DomainRule {
    /// Parses one allowlist entry; the error says why it is not a domain.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let e = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wild, name) = match e.strip_prefix("*.") {
            Some(rest) => (true, rest.to_string()),
            None => (false, e.clone()),
        };
        if !is_hostname(&name) || name.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "{entry:?} is not a domain name (exact, or *.example.com)"
            ));
        }
        if wild && !name.contains('.') {
            return Err(format!(
                "{entry:?} is too broad: wildcard over a top-level domain"
            ));
        }
        Ok(if wild {
            DomainRule::Below(format!(".{name}"))
        } else {
            DomainRule::Exact(name)
        })
    }

    /// Whether `host` (already lower-cased, no trailing dot) is allowed by this rule.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            DomainRule::Exact(n) => host == n,
            DomainRule::Below(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }
}

/// Parses an `allowedDomains` list: at most [`MAX_DOMAINS`] valid entries.
pub fn parse_domains(list: &[String]) -> Result<Vec<DomainRule>, String> {
    if list.len() > MAX_DOMAINS {
        return Err(format!(
            "allowedDomains lists {} entries; at most {MAX_DOMAINS}",
            list.len()
        ));
    }
    list.iter().map(|d| DomainRule::parse(d)).collect()
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// True for addresses on the public internet; false for private, loopback, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, broadcast and reserved ranges.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: would reach any IPv4
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// What one execution may reach, and what it was refused.
struct Grant {
    run_id: String,
    rules: Vec<DomainRule>,
    denied: AtomicU64,
    closed: CancellationToken,
    slots: Arc<tokio::sync::Semaphore>,
}

/// The proxy's state, shared by its connection tasks.
struct Proxy {
    cfg: EgressConfig,
    grants: Mutex<HashMap<String, Arc<Grant>>>,
    denied_total: AtomicU64,
    connections: Arc<tokio::sync::Semaphore>,
}

impl Proxy {
    fn new(cfg: EgressConfig) -> Self {
        Self {
            cfg,
            grants: Default::default(),
            denied_total: AtomicU64::new(0),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Registers a grant under `token`.
    fn grant(&self, token: &str, run_id: &str, rules: Vec<DomainRule>) -> Arc<Grant> {
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

/// Egress for one worker: the proxy, the relay, and a network per sandbox.
pub struct Egress {
    proxy: Arc<Proxy>,
    owner: String,
    /// The relay container's id, once started.
    relay: tokio::sync::Mutex<Option<String>>,
    bound: tokio::sync::OnceCell<SocketAddr>,
    registry: crate::control::Registry,
    max_lifetime: Duration,
}

impl Egress {
    /// Egress for the worker `owner`. Nothing starts until the first [`Egress::lease`].
    pub fn new(
        cfg: EgressConfig,
        owner: impl Into<String>,
        registry: crate::control::Registry,
        max_lifetime: Duration,
    ) -> Self {
        Self {
            proxy: Arc::new(Proxy::new(cfg)),
            owner: owner.into(),
            relay: Default::default(),
            bound: Default::default(),
            registry,
            max_lifetime,
        }
    }

    /// A private network for one sandbox, with the relay on it and a grant for `rules`.
    pub async fn lease(
        &self,
        docker: &Docker,
        run_id: &str,
        rules: Vec<DomainRule>,
    ) -> Result<Lease, SandboxError> {
        let network = self.create_network(docker, run_id).await?;
        let relay = match self.attach_relay(docker, &network).await {
            Ok(relay) => relay,
            Err(e) => {
                remove_network(docker, &network.name, None).await;
                return Err(e);
            }
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let grant = self.proxy.grant(&token, run_id, rules);
        Ok(Lease {
            proxy_url: format!("http://ae:{token}@{}:{RELAY_PORT}", network.relay_ip),
            network: network.name,
            token,
            grant,
            proxy: self.proxy.clone(),
            docker: docker.clone(),
            relay,
        })
    }

    /// Connects the relay to `net`, starting it first if there is none, and starting a new one
    /// once more if connecting fails (it died or was removed). Returns the relay's id.
    async fn attach_relay(&self, docker: &Docker, net: &Net) -> Result<String, SandboxError> {
        let relay = self.relay(docker, None).await?;
        if self.connect_relay(docker, &relay, net).await.is_ok() {
            return Ok(relay);
        }
        let relay = self.relay(docker, Some(&relay)).await?;
        self.connect_relay(docker, &relay, net).await?;
        Ok(relay)
    }

    /// The relay's id; starts one when there is none, or when the current one is `broken`.
    async fn relay(&self, docker: &Docker, broken: Option<&str>) -> Result<String, SandboxError> {
        let mut relay = self.relay.lock().await;
        if let Some(id) = relay.as_deref()
            && broken == Some(id)
        {
            crate::sandbox::remove(docker, id).await;
            self.registry.unkeep(id);
            *relay = None;
        }
        match relay.as_ref() {
            Some(id) => Ok(id.clone()),
            None => {
                let id = self.start_relay(docker).await?;
                *relay = Some(id.clone());
                Ok(id)
            }
        }
    }

    /// Binds the proxy (if not yet) and starts the relay container pointing at it.
    async fn start_relay(&self, docker: &Docker) -> Result<String, SandboxError> {
        let upstream = self.ensure_proxy(docker).await?;
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_OWNER.to_string(), self.owner.clone()),
            (LABEL_ROLE.to_string(), ROLE_RELAY.to_string()),
        ]);
        let host_config = HostConfig {
            network_mode: Some("bridge".into()),
            // One `nc` per open connection, for every sandbox of this worker.
            memory: Some(256 * 1024 * 1024),
            memory_swap: Some(256 * 1024 * 1024),
            pids_limit: Some(2048),
            ..crate::sandbox::hardened()
        };
        // busybox nc: `-ll` keeps listening, `-e` runs a fresh `nc` to the proxy per connection.
        let cmd = [
            "nc".to_string(),
            "-ll".into(),
            "-p".into(),
            RELAY_PORT.to_string(),
            "-e".into(),
            "nc".into(),
            upstream.ip().to_string(),
            upstream.port().to_string(),
        ];
        let body = ContainerCreateBody {
            image: Some(self.proxy.cfg.relay_image.clone()),
            cmd: Some(cmd.to_vec()),
            user: Some("65534:65534".into()),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = format!("ae-relay-{}", uuid::Uuid::new_v4().simple());
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| {
                SandboxError::Unavailable(format!(
                    "cannot create the egress relay from {}: {e}",
                    self.proxy.cfg.relay_image
                ))
            })?;
        self.registry.keep(&created.id);
        if let Err(e) = docker.start_container(&created.id, None).await {
            crate::sandbox::remove(docker, &created.id).await;
            self.registry.unkeep(&created.id);
            return Err(SandboxError::Unavailable(format!(
                "cannot start the egress relay: {e}"
            )));
        }
        tracing::info!(relay = &created.id[..12], %upstream, "egress relay started");
        Ok(created.id)
    }

    /// The address the relay dials: the proxy's, bound once per worker.
    async fn ensure_proxy(&self, docker: &Docker) -> Result<SocketAddr, SandboxError> {
        let proxy = self.proxy.clone();
        let listen = match self.proxy.cfg.listen {
            Some(a) => a,
            None => SocketAddr::new(bridge_gateway(docker).await?, self.proxy.cfg.listen_port),
        };
        let bound = self
            .bound
            .get_or_try_init(|| async move {
                let listener = TcpListener::bind(listen).await.map_err(|e| {
                    SandboxError::Unavailable(format!(
                        "cannot bind the egress proxy on {listen}: {e}"
                    ))
                })?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| SandboxError::Unavailable(format!("egress proxy address: {e}")))?;
                tracing::info!(%addr, "egress proxy listening");
                tokio::spawn(serve(listener, proxy));
                Ok::<_, SandboxError>(addr)
            })
            .await?;
        Ok(self.proxy.cfg.upstream.unwrap_or(*bound))
    }

    async fn create_network(&self, docker: &Docker, run_id: &str) -> Result<Net, SandboxError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let (base, prefix) = self.proxy.cfg.subnets;
        let blocks = 1u32 << (29 - prefix.min(29));
        let mut last = String::new();
        for _ in 0..16 {
            let index = (uuid::Uuid::new_v4().as_u128() as u32) % blocks;
            let net = u32::from(base) + index * 8;
            let name = format!("ae-net-{}", uuid::Uuid::new_v4().simple());
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                internal: Some(true),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("{}/29", Ipv4Addr::from(net))),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                options: Some(HashMap::from([
                    // No address on the host side: the sandbox cannot reach the host at all.
                    (
                        "com.docker.network.bridge.inhibit_ipv4".to_string(),
                        "true".to_string(),
                    ),
                    (
                        "com.docker.network.bridge.enable_icc".to_string(),
                        "true".to_string(),
                    ),
                ])),
                labels: Some(HashMap::from([
                    (LABEL_MANAGED.to_string(), "true".to_string()),
                    (LABEL_OWNER.to_string(), self.owner.clone()),
                    (
                        LABEL_EXPIRES.to_string(),
                        (now + self.max_lifetime.as_secs().max(1)).to_string(),
                    ),
                    (LABEL_CREATED.to_string(), now.to_string()),
                    ("ae.run-id".to_string(), run_id.to_string()),
                ])),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => {
                    return Ok(Net {
                        name,
                        relay_ip: Ipv4Addr::from(net + 2),
                    });
                }
                // Another network (maybe another worker's) holds that block: try another.
                Err(e) => last = e.to_string(),
            }
        }
        Err(SandboxError::Unavailable(format!(
            "cannot create a sandbox network: {last}"
        )))
    }

    async fn connect_relay(
        &self,
        docker: &Docker,
        relay: &str,
        net: &Net,
    ) -> Result<(), SandboxError> {
        let request = NetworkConnectRequest {
            container: relay.to_string(),
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(net.relay_ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        docker
            .connect_network(&net.name, request)
            .await
            .map_err(|e| SandboxError::Unavailable(format!("cannot attach the egress relay: {e}")))
    }
}

struct Net {
    name: String,
    relay_ip: Ipv4Addr,
}

/// One sandbox's network and proxy grant. Dropping it revokes the grant at once (open tunnels
/// close) and removes the network in the background once the sandbox has left it.
pub struct Lease {
    proxy_url: String,
    network: String,
    token: String,
    grant: Arc<Grant>,
    proxy: Arc<Proxy>,
    docker: Docker,
    relay: String,
}

impl Lease {
    /// The network the sandbox joins.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Environment for the sandbox: the proxy, under every name common tools read.
    pub fn env(&self) -> Vec<String> {
        ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
            .iter()
            .map(|k| format!("{k}={}", self.proxy_url))
            .chain(["NO_PROXY=".to_string(), "no_proxy=".to_string()])
            .collect()
    }

    /// Requests the proxy refused for this sandbox so far.
    pub fn denied(&self) -> u64 {
        self.grant.denied.load(Ordering::Relaxed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.proxy
            .grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.token);
        self.grant.closed.cancel();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let network = self.network.clone();
            let relay = self.relay.clone();
            handle.spawn(async move { remove_network(&docker, &network, Some(&relay)).await });
        }
    }
}

/// Disconnects the relay and removes the network, retrying while the sandbox is still leaving.
pub async fn remove_network(docker: &Docker, network: &str, relay: Option<&str>) {
    if let Some(relay) = relay {
        let _ = docker
            .disconnect_network(
                network,
                NetworkDisconnectRequest {
                    container: relay.to_string(),
                    force: Some(true),
                },
            )
            .await;
    }
    for attempt in 0..20 {
        match docker.remove_network(network).await {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            Err(e) => {
                if attempt == 19 {
                    tracing::warn!(network, error = %e, "cannot remove sandbox network; the reaper will");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

async fn bridge_gateway(docker: &Docker) -> Result<IpAddr, SandboxError> {
    let net = docker
        .inspect_network("bridge", None)
        .await
        .map_err(|e| SandboxError::Unavailable(format!("cannot inspect Docker's bridge: {e}")))?;
    // Older engines leave the default bridge's gateway out; it is then the subnet's first
    // address (docker0's own).
    net.ipam
        .and_then(|i| i.config)
        .into_iter()
        .flatten()
        .find_map(|c| {
            c.gateway.and_then(|g| g.parse().ok()).or_else(|| {
                let (ip, _) = c
                    .subnet?
                    .split_once('/')
                    .map(|(a, p)| (a.to_string(), p.to_string()))?;
                let ip: Ipv4Addr = ip.parse().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(u32::from(ip).checked_add(1)?)))
            })
        })
        .ok_or_else(|| SandboxError::Unavailable("Docker's bridge network has no gateway".into()))
}

async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let (conn, _) = match listener.accept().await {
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

    #[test]
    fn domain_rules_match_exact_names_and_subdomains_only() {
        let exact = DomainRule::parse("Registry.npmjs.org.").unwrap();
        assert!(exact.matches("registry.npmjs.org"));
        assert!(!exact.matches("evil-registry.npmjs.org"));
        assert!(!exact.matches("registry.npmjs.org.evil.com"));
        let wild = DomainRule::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
        for bad in [
            "",
            "*",
            "*.com",
            "1.2.3.4",
            "a b.com",
            "exa$mple.com",
            "-a.com",
            "a..com",
        ] {
            assert!(DomainRule::parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse_domains(&vec!["a.com".to_string(); MAX_DOMAINS + 1]).is_err());
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.2",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "151.101.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

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
        tokio::spawn(serve(listener, proxy.clone()));
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
