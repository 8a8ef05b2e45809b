//! Memory statistics of a sandbox (OOM kills, peak memory) from its cgroup.

use super::Sandbox;
use std::time::Duration;

impl Sandbox {
    /// OOM kills and peak memory of this sandbox's memory cgroup. Read from the host's cgroup
    /// filesystem when the worker runs beside the engine (microseconds), else from inside the
    /// sandbox with an exec.
    pub(super) async fn cgroup_stats(&self) -> CgroupStats {
        if let Some(stats) = host_cgroup_stats(&self.id) {
            return stats;
        }
        self.cgroup_stats_by_exec().await
    }

    /// Right after an OOM kill the cgroup may still be at its limit and an exec fail: retry
    /// briefly.
    pub(super) async fn cgroup_stats_by_exec(&self) -> CgroupStats {
        for attempt in 0..10 {
            let stats = self.read_cgroup_stats().await;
            if stats.peak_memory_bytes.is_some() {
                return stats;
            }
            tracing::debug!(attempt, "cgroup stats not readable yet");
            tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
        }
        CgroupStats::default()
    }

    pub(super) async fn read_cgroup_stats(&self) -> CgroupStats {
        let script = "cd /sys/fs/cgroup; for f in memory.events memory.peak memory/memory.oom_control memory/memory.max_usage_in_bytes; do [ -r $f ] && echo \"$f $(cat $f | tr '\\n' ' ')\"; done";
        match self.run_script(&[script], 64 * 1024).await {
            Ok((text, _)) => CgroupStats::parse(&String::from_utf8_lossy(&text)),
            Err(_) => CgroupStats::default(),
        }
    }
}

/// What the sandbox's memory cgroup says.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct CgroupStats {
    pub(super) oom_kills: u64,
    pub(super) peak_memory_bytes: Option<u64>,
}

impl CgroupStats {
    /// Parses `file value...` lines written by [`Sandbox::cgroup_stats`].
    fn parse(text: &str) -> Self {
        let mut stats = CgroupStats::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(file) = words.next() else { continue };
            let rest: Vec<&str> = words.collect();
            match file {
                "memory.events" | "memory/memory.oom_control" => {
                    for pair in rest.chunks(2) {
                        if let [k, v] = pair
                            && *k == "oom_kill"
                        {
                            stats.oom_kills += v.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
                "memory.peak" | "memory/memory.max_usage_in_bytes" => {
                    stats.peak_memory_bytes = rest.first().and_then(|v| v.parse().ok());
                }
                _ => {}
            }
        }
        stats
    }
}

/// Reads a container's memory cgroup from the host, for the cgroupfs and systemd drivers on
/// cgroup v1 and v2. None when none of the places exist (e.g. a remote engine).
pub(super) fn host_cgroup_stats(id: &str) -> Option<CgroupStats> {
    let v1 = [
        format!("/sys/fs/cgroup/memory/docker/{id}"),
        format!("/sys/fs/cgroup/memory/system.slice/docker-{id}.scope"),
    ];
    for dir in &v1 {
        let Ok(oom) = std::fs::read_to_string(format!("{dir}/memory.oom_control")) else {
            continue;
        };
        let peak = std::fs::read_to_string(format!("{dir}/memory.max_usage_in_bytes")).ok()?;
        let text = format!(
            "memory/memory.oom_control {}\nmemory/memory.max_usage_in_bytes {peak}",
            oom.replace('\n', " ")
        );
        return Some(CgroupStats::parse(&text));
    }
    let v2 = [
        format!("/sys/fs/cgroup/docker/{id}"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
    ];
    for dir in &v2 {
        let Ok(events) = std::fs::read_to_string(format!("{dir}/memory.events")) else {
            continue;
        };
        let peak = std::fs::read_to_string(format!("{dir}/memory.peak")).unwrap_or_default();
        let text = format!(
            "memory.events {}\nmemory.peak {peak}",
            events.replace('\n', " ")
        );
        return Some(CgroupStats::parse(&text));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cgroup_v1_and_v2_stats() {
        let v1 = "memory/memory.oom_control oom_kill_disable 0 under_oom 0 oom_kill 1 \nmemory/memory.max_usage_in_bytes 67108864 \n";
        assert_eq!(
            CgroupStats::parse(v1),
            CgroupStats {
                oom_kills: 1,
                peak_memory_bytes: Some(67108864)
            }
        );
        let v2 = "memory.events low 0 high 0 max 3 oom 1 oom_kill 2 \nmemory.peak 1234 \n";
        assert_eq!(
            CgroupStats::parse(v2),
            CgroupStats {
                oom_kills: 2,
                peak_memory_bytes: Some(1234)
            }
        );
        assert_eq!(CgroupStats::parse(""), CgroupStats::default());
    }
}
