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
//! - **a relay per sandbox**: a small container (the sandbox image's busybox `nc`) on the
//!   sandbox's network and on Docker's default bridge, that copies bytes from the sandbox to
//!   that sandbox's own listener on the proxy. It is why the sandbox needs no route to the
//!   host, and why the proxy knows which sandbox a connection is from before reading it: the
//!   sandbox's connection cap applies at accept time, and its relay's process limit is its own.
//! - **a private network per sandbox** ([`Lease`]): an `--internal` bridge whose host side has
//!   no address (`inhibit_ipv4`), holding only the sandbox and its relay. There is no default
//!   route out, the host's services and other sandboxes are unreachable, and the embedded DNS
//!   forwards nowhere. Programs that ignore the proxy settings, raw IPs and other ports fail.
//!
//! The parts: [`allowlist`] (rules, public addresses), [`proxy`], [`network`]; this file holds
//! the relay and the [`Lease`] tying them together. It does not own which sandboxes get a
//! network (the activities decide, from their input), nor the sandbox container itself (see
//! `sandbox`); it uses `docker` for labels, hardening and removal.

mod allowlist;
mod network;
mod proxy;

pub use allowlist::{DomainRule, MAX_DOMAINS, is_public, parse_domains};

use crate::config::EgressConfig;
use crate::docker::{self, Registry, SandboxError, label};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use network::{Net, bridge_address, bridge_gateway};
use proxy::{Grant, MAX_CONNECTIONS_PER_SANDBOX, Proxy, serve};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Port the relay listens on inside each sandbox network.
pub const RELAY_PORT: u16 = 3128;
/// The relay's role label value.
pub const ROLE_RELAY: &str = "egress-relay";
/// Processes one relay may run: one `nc` per open connection, the proxy holds at most
/// [`MAX_CONNECTIONS_PER_SANDBOX`] and closes the others at once; the rest is headroom.
const RELAY_PIDS: i64 = 4 * MAX_CONNECTIONS_PER_SANDBOX as i64;

/// Egress for one worker: the proxy, and a network, relay and listener per sandbox.
pub struct Egress {
    proxy: Arc<Proxy>,
    owner: String,
    /// Where the per-sandbox listeners bind, resolved once.
    listen_ip: tokio::sync::OnceCell<IpAddr>,
    registry: Registry,
    max_lifetime: Duration,
    /// Stops the proxy's accept loops (worker shutdown).
    stop: CancellationToken,
}

impl Egress {
    /// Egress for the worker `owner`. Nothing starts until the first [`Egress::lease`].
    pub fn new(
        cfg: EgressConfig,
        owner: impl Into<String>,
        registry: Registry,
        max_lifetime: Duration,
        stop: CancellationToken,
    ) -> Self {
        Self {
            proxy: Arc::new(Proxy::new(cfg)),
            owner: owner.into(),
            listen_ip: Default::default(),
            registry,
            max_lifetime,
            stop,
        }
    }

    /// A private network for one sandbox, with its own relay dialing its own proxy listener,
    /// and a grant for `rules`.
    pub async fn lease(
        &self,
        docker: &Docker,
        run_id: &str,
        rules: Vec<DomainRule>,
    ) -> Result<Lease, SandboxError> {
        let network = self.create_network(docker, run_id).await?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut lease = Lease {
            proxy_url: format!("http://ae:{token}@{}:{RELAY_PORT}", network.relay_ip),
            network: network.name.clone(),
            grant: self.proxy.grant(&token, run_id, rules),
            docker: docker.clone(),
            registry: self.registry.clone(),
            relay: None,
        };
        // From here on, dropping `lease` undoes what was done.
        let upstream = self.listen(docker, &lease.grant).await?;
        let relay = self.start_relay(docker, run_id, &network, upstream).await?;
        lease.relay = Some(relay.clone());
        // Only the relay may use the sandbox's listener (unless a NAT hides its address).
        let peer = match self.proxy.cfg.upstream {
            Some(_) => None,
            None => Some(bridge_address(docker, &relay).await?),
        };
        let _ = lease.grant.relay.set(peer);
        Ok(lease)
    }

    /// Opens the grant's own listener on the proxy; returns the address its relay dials.
    async fn listen(
        &self,
        docker: &Docker,
        grant: &Arc<Grant>,
    ) -> Result<SocketAddr, SandboxError> {
        let ip = *self
            .listen_ip
            .get_or_try_init(|| async {
                match self.proxy.cfg.listen {
                    Some(ip) => Ok(ip),
                    None => bridge_gateway(docker).await,
                }
            })
            .await?;
        let listener = TcpListener::bind((ip, 0)).await.map_err(|e| {
            SandboxError::Unavailable(format!("cannot bind the egress proxy on {ip}: {e}"))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| SandboxError::Unavailable(format!("egress proxy address: {e}")))?
            .port();
        tracing::debug!(run_id = %grant.run_id, %ip, port, "egress proxy listening");
        tokio::spawn(serve(
            listener,
            self.proxy.clone(),
            grant.clone(),
            self.stop.clone(),
        ));
        Ok(SocketAddr::new(self.proxy.cfg.upstream.unwrap_or(ip), port))
    }

    /// Creates the sandbox's relay on Docker's default bridge and on `net`, dialing
    /// `upstream`, and starts it. Returns its id; on failure nothing is left.
    async fn start_relay(
        &self,
        docker: &Docker,
        run_id: &str,
        net: &Net,
        upstream: SocketAddr,
    ) -> Result<String, SandboxError> {
        let mut labels = docker::managed(&self.owner, Some(self.max_lifetime));
        labels.insert(label::ROLE.into(), ROLE_RELAY.into());
        labels.insert(label::NETWORK.into(), net.name.clone());
        labels.insert(label::RELAY_RUN_ID.into(), run_id.to_string());
        let host_config = HostConfig {
            network_mode: Some("bridge".into()),
            memory: Some(64 * 1024 * 1024),
            memory_swap: Some(64 * 1024 * 1024),
            nano_cpus: Some(1_000_000_000),
            pids_limit: Some(RELAY_PIDS),
            ..docker::hardened()
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
        let started = async {
            self.connect_relay(docker, &created.id, net).await?;
            docker
                .start_container(&created.id, None)
                .await
                .map_err(|e| {
                    SandboxError::Unavailable(format!("cannot start the egress relay: {e}"))
                })
        };
        if let Err(e) = started.await {
            docker::remove_container(docker, &created.id).await;
            self.registry.unkeep(&created.id);
            return Err(e);
        }
        tracing::debug!(relay = &created.id[..12], %upstream, network = %net.name, "egress relay started");
        Ok(created.id)
    }
}

/// One sandbox's network, relay and proxy grant. Dropping it revokes the grant at once (its
/// listener and open tunnels close) and removes the relay, then the network, in the
/// background.
pub struct Lease {
    proxy_url: String,
    network: String,
    grant: Arc<Grant>,
    docker: Docker,
    registry: Registry,
    /// The sandbox's relay, once started.
    relay: Option<String>,
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
        // Closes the sandbox's listener and its open tunnels at once.
        self.grant.closed.cancel();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let network = self.network.clone();
            let relay = self.relay.take();
            let registry = self.registry.clone();
            handle.spawn(async move {
                if let Some(relay) = relay {
                    docker::remove_container(&docker, &relay).await;
                    registry.unkeep(&relay);
                }
                docker::remove_network(&docker, &network).await
            });
        }
    }
}
