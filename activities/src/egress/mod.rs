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
use network::{Net, bridge_gateway};
use proxy::{Grant, Proxy, serve};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Port the relay listens on inside each sandbox network.
pub const RELAY_PORT: u16 = 3128;
/// The relay's role label value.
pub const ROLE_RELAY: &str = "egress-relay";

/// Egress for one worker: the proxy, the relay, and a network per sandbox.
pub struct Egress {
    proxy: Arc<Proxy>,
    owner: String,
    /// The relay container's id, once started.
    relay: tokio::sync::Mutex<Option<String>>,
    bound: tokio::sync::OnceCell<SocketAddr>,
    registry: Registry,
    max_lifetime: Duration,
    /// Stops the proxy's accept loop (worker shutdown).
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
            relay: Default::default(),
            bound: Default::default(),
            registry,
            max_lifetime,
            stop,
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
                docker::remove_network(docker, &network.name, None).await;
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
            docker::remove_container(docker, id).await;
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
        let mut labels = docker::managed(&self.owner, None);
        labels.insert(label::ROLE.into(), ROLE_RELAY.into());
        let host_config = HostConfig {
            network_mode: Some("bridge".into()),
            // One `nc` per open connection, for every sandbox of this worker.
            memory: Some(256 * 1024 * 1024),
            memory_swap: Some(256 * 1024 * 1024),
            pids_limit: Some(2048),
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
        if let Err(e) = docker.start_container(&created.id, None).await {
            docker::remove_container(docker, &created.id).await;
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
                tokio::spawn(serve(listener, proxy, self.stop.clone()));
                Ok::<_, SandboxError>(addr)
            })
            .await?;
        Ok(self.proxy.cfg.upstream.unwrap_or(*bound))
    }
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
            handle.spawn(
                async move { docker::remove_network(&docker, &network, Some(&relay)).await },
            );
        }
    }
}
