//! The private network per sandbox: an `--internal` /29 bridge with no host-side address,
//! holding only the sandbox and its relay, and how the relay joins it.

use super::Egress;
use crate::docker::{self, SandboxError, label};
use bollard::Docker;
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// A sandbox network and the relay's address on it.
pub(super) struct Net {
    pub(super) name: String,
    pub(super) relay_ip: Ipv4Addr,
}

impl Egress {
    pub(super) async fn create_network(
        &self,
        docker: &Docker,
        run_id: &str,
    ) -> Result<Net, SandboxError> {
        let now = docker::now_secs();
        let mut labels = docker::managed(&self.owner, Some(self.max_lifetime));
        labels.insert(label::CREATED.into(), now.to_string());
        labels.insert(label::RUN_ID.into(), run_id.to_string());
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
                labels: Some(labels.clone()),
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

    pub(super) async fn connect_relay(
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

pub(super) async fn bridge_gateway(docker: &Docker) -> Result<IpAddr, SandboxError> {
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

/// A container's address on Docker's default bridge (where the relay dials the proxy from).
pub(super) async fn bridge_address(
    docker: &Docker,
    container: &str,
) -> Result<IpAddr, SandboxError> {
    let inspected = docker
        .inspect_container(container, None)
        .await
        .map_err(|e| SandboxError::Unavailable(format!("cannot inspect the egress relay: {e}")))?;
    inspected
        .network_settings
        .and_then(|s| s.networks)
        .and_then(|n| n.get("bridge").cloned())
        .and_then(|e| e.ip_address)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| SandboxError::Unavailable("the egress relay has no bridge address".into()))
}
