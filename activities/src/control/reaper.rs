//! The reaper: removes managed containers and networks that expired, whose owner's liveness
//! lapsed (a worker killed with SIGKILL), or that are this worker's own but hold nothing; only
//! ever its own fleet's (`docker::fleet`), whose liveness keys are in the same Redis.

use crate::docker::{self, Registry, label};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use redis::aio::ConnectionManager;
use std::collections::HashMap;

/// One reaper pass; returns how many sandboxes it removed.
pub async fn reap_once(
    conn: &ConnectionManager,
    docker: &bollard::Docker,
    registry: &Registry,
    identity: &str,
    starting_up: bool,
) -> Result<usize, bollard::errors::Error> {
    // Only this fleet's: another fleet's workers keep their liveness in another Redis.
    let filters = docker::fleet_filter();
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let now = docker::now_secs();
    let mut running = registry.ids();
    running.extend(registry.kept());
    let mut removed = 0;
    for c in list {
        let (Some(id), Some(labels)) = (c.id, c.labels) else {
            continue;
        };
        let owner = labels.get(label::OWNER).cloned().unwrap_or_default();
        let created_secs_ago = c.created.map(|t| now as i64 - t).unwrap_or(i64::MAX);
        let reason = match standing(conn, &labels, identity, now, created_secs_ago).await {
            Standing::Expired => Some("expired"),
            // Ours but not running anything: left from a previous life of this identity, or a
            // removal that failed. Young ones may be starting right now.
            Standing::Ours => (!running.contains(&id) && (starting_up || created_secs_ago > 60))
                .then_some("not in use"),
            Standing::OwnerGone => Some("owner is gone"),
            Standing::OwnerAlive => None,
        };
        if let Some(reason) = reason {
            tracing::info!(container = %id, owner = %owner, reason, "reaping sandbox");
            docker::remove_container(docker, &id).await;
            removed += 1;
        }
    }
    removed += reap_networks(conn, docker, registry, identity, now).await?;
    Ok(removed)
}

/// Removes sandbox networks (see `egress`) that expired, whose owner is gone, or that are this
/// worker's and hold no sandbox any more (a minute's grace for one being set up), with the
/// relay serving each.
async fn reap_networks(
    conn: &ConnectionManager,
    docker: &bollard::Docker,
    registry: &Registry,
    identity: &str,
    now: u64,
) -> Result<usize, bollard::errors::Error> {
    // Only this fleet's: another fleet's workers keep their liveness in another Redis.
    let filters = docker::fleet_filter();
    let nets = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let kept = registry.kept();
    let mut removed = 0;
    for net in nets {
        let (Some(name), Some(labels)) = (net.name, net.labels) else {
            continue;
        };
        let owner = labels.get(label::OWNER).cloned().unwrap_or_default();
        let created = labels
            .get(label::CREATED)
            .and_then(|v| v.parse::<i64>().ok());
        let age = now as i64 - created.unwrap_or(0);
        let reason = match standing(conn, &labels, identity, now, age).await {
            Standing::Expired => Some("expired"),
            Standing::Ours if age > 60 => {
                let inspected = docker.inspect_network(&name, None).await.ok();
                let in_use = inspected
                    .and_then(|n| n.containers)
                    .unwrap_or_default()
                    .keys()
                    .any(|c| !kept.contains(c));
                (!in_use).then_some("not in use")
            }
            Standing::Ours | Standing::OwnerAlive => None,
            Standing::OwnerGone => Some("owner is gone"),
        };
        if let Some(reason) = reason {
            tracing::info!(network = %name, owner = %owner, reason, "reaping sandbox network");
            // Its relay serves only it: remove it (ours or a dead worker's) first.
            let attached = docker
                .inspect_network(&name, None)
                .await
                .ok()
                .and_then(|n| n.containers)
                .unwrap_or_default();
            for (id, c) in attached {
                let relay = kept.contains(&id)
                    || c.name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("ae-relay-"));
                if relay {
                    docker::remove_container(docker, &id).await;
                    registry.unkeep(&id);
                }
            }
            if docker.remove_network(&name).await.is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Where a managed container or network stands, as the reaper sees it.
enum Standing {
    /// Past its expiry label.
    Expired,
    /// This worker's own.
    Ours,
    /// Another worker's whose liveness key lapsed (and older than a few seconds).
    OwnerGone,
    /// Another live worker's, or Redis could not tell: left alone.
    OwnerAlive,
}

async fn standing(
    conn: &ConnectionManager,
    labels: &HashMap<String, String>,
    identity: &str,
    now: u64,
    age_secs: i64,
) -> Standing {
    let owner = labels.get(label::OWNER).map(String::as_str).unwrap_or("");
    let expired = labels
        .get(label::EXPIRES)
        .and_then(|e| e.parse::<u64>().ok())
        .is_some_and(|e| e <= now);
    if expired {
        return Standing::Expired;
    }
    if owner == identity {
        return Standing::Ours;
    }
    match super::liveness::is_alive(conn, owner).await {
        Ok(false) if age_secs > 5 => Standing::OwnerGone,
        _ => Standing::OwnerAlive,
    }
}
