//! Resource samples of the sandbox: CPU, memory and disk, read from the sandbox's cgroup (v2 or
//! v1) and its root filesystem every few seconds and kept for the last hour.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podgate_types::metrics::{MetricsQuery, MetricsSample};

/// How often a sample is taken (the first one a second after start).
pub const EVERY: Duration = Duration::from_secs(5);
/// Samples kept: an hour's worth.
const KEPT: usize = 720;
const CGROUP: &str = "/sys/fs/cgroup";

/// The samples taken so far, newest last.
#[derive(Clone, Default)]
pub struct Metrics {
    samples: Arc<Mutex<VecDeque<MetricsSample>>>,
}

impl Metrics {
    /// Takes a sample a second after start and then every [`EVERY`], forever.
    pub async fn run(self) {
        let mut cpu = CpuMeter::new();
        tokio::time::sleep(Duration::from_secs(1)).await;
        loop {
            self.push(take(&mut cpu));
            tokio::time::sleep(EVERY).await;
        }
    }

    fn push(&self, sample: MetricsSample) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples taken from `start` to `end`, oldest first.
    pub fn between(&self, q: &MetricsQuery) -> Vec<MetricsSample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples
            .iter()
            .filter(|s| q.start.is_none_or(|t| s.timestamp >= t) && q.end.is_none_or(|t| s.timestamp <= t))
            .cloned()
            .collect()
    }
}

fn take(cpu: &mut CpuMeter) -> MetricsSample {
    let cpu_count = cpu_count();
    let cpu_used_pct = cpu.percent(cpu_count);
    let (mem_used, mem_total, mem_cache) = memory();
    let (disk_used, disk_total) = disk();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    MetricsSample { timestamp, cpu_count, cpu_used_pct, mem_used, mem_total, mem_cache, disk_used, disk_total }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("{CGROUP}/{path}")).ok()
}

fn read_u64(path: &str) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// The value of `key` in a `key value` file (cpu.stat, memory.stat, /proc/meminfo).
pub fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next()?.trim_end_matches(':') == key).then(|| words.next()?.parse().ok())?
    })
}

/// CPU time the sandbox's cgroup used so far, in nanoseconds.
fn cpu_usage_ns() -> Option<u64> {
    read("cpu.stat")
        .and_then(|s| field(&s, "usage_usec"))
        .map(|us| us * 1000)
        .or_else(|| read_u64("cpuacct/cpuacct.usage"))
        .or_else(|| read_u64("cpu,cpuacct/cpuacct.usage"))
}

/// Turns CPU time used between two calls into a percentage of the sandbox's CPUs.
struct CpuMeter {
    last: Option<(Instant, u64)>,
}

impl CpuMeter {
    fn new() -> CpuMeter {
        CpuMeter { last: cpu_usage_ns().map(|u| (Instant::now(), u)) }
    }

    fn percent(&mut self, cpus: u32) -> f64 {
        let now = cpu_usage_ns().map(|u| (Instant::now(), u));
        let pct = match (self.last, now) {
            (Some((t0, u0)), Some((t1, u1))) => usage_percent(u1.saturating_sub(u0), t1 - t0, cpus),
            _ => 0.0,
        };
        self.last = now;
        pct
    }
}

/// `used` nanoseconds of CPU over `wall` on `cpus` CPUs, as a percentage from 0 to 100.
pub fn usage_percent(used: u64, wall: Duration, cpus: u32) -> f64 {
    let capacity = wall.as_nanos() as f64 * f64::from(cpus.max(1));
    if capacity <= 0.0 { 0.0 } else { (used as f64 / capacity * 100.0).clamp(0.0, 100.0) }
}

/// The CPU limit rounded up (cgroup v2 `cpu.max`, v1 CFS quota), or the machine's CPUs.
fn cpu_count() -> u32 {
    let machine = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let limit = read("cpu.max").and_then(|s| quota_cpus(&s)).or_else(|| {
        let quota: i64 = read("cpu/cpu.cfs_quota_us")?.trim().parse().ok()?;
        let period: u64 = read_u64("cpu/cpu.cfs_period_us")?;
        quota_cpus(&format!("{quota} {period}"))
    });
    limit.map_or(machine, |l| l.min(machine))
}

/// CPUs a quota of `QUOTA PERIOD` (`max` or a negative quota for none) allows, rounded up.
pub fn quota_cpus(text: &str) -> Option<u32> {
    let mut words = text.split_whitespace();
    let quota: i64 = words.next()?.parse().ok()?;
    let period: u64 = words.next()?.parse().ok()?;
    let quota = u64::try_from(quota).ok()?;
    (quota > 0 && period > 0).then(|| quota.div_ceil(period) as u32)
}

/// (used without page cache, limit, page cache) in bytes.
fn memory() -> (u64, u64, u64) {
    let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| field(&m, "MemTotal")).map(|kb| kb * 1024);
    let (current, limit, cache) = match read_u64("memory.current") {
        Some(current) => (Some(current), read_u64("memory.max"), read("memory.stat").and_then(|s| field(&s, "file"))),
        None => (
            read_u64("memory/memory.usage_in_bytes"),
            read_u64("memory/memory.limit_in_bytes"),
            read("memory/memory.stat").and_then(|s| field(&s, "total_cache").or_else(|| field(&s, "cache"))),
        ),
    };
    let total = match (limit, machine) {
        (Some(l), Some(m)) => l.min(m),
        (l, m) => l.or(m).unwrap_or_default(),
    };
    let cache = cache.unwrap_or_default();
    (current.unwrap_or_default().saturating_sub(cache), total, cache)
}

/// (used, size) of the root filesystem in bytes.
fn disk() -> (u64, u64) {
    match nix::sys::statvfs::statvfs("/") {
        Ok(s) => {
            let block = s.fragment_size();
            (s.blocks().saturating_sub(s.blocks_free()) * block, s.blocks() * block)
        }
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keyed_files() {
        let stat = "usage_usec 1500\nuser_usec 1000\n";
        assert_eq!(field(stat, "usage_usec"), Some(1500));
        assert_eq!(field(stat, "usage"), None);
        assert_eq!(field("MemTotal:       16384 kB\n", "MemTotal"), Some(16384));
    }

    #[test]
    fn quotas_round_up_and_none_is_none() {
        assert_eq!(quota_cpus("max 100000"), None);
        assert_eq!(quota_cpus("-1 100000"), None);
        assert_eq!(quota_cpus("150000 100000"), Some(2));
        assert_eq!(quota_cpus("100000 100000\n"), Some(1));
    }

    #[test]
    fn usage_is_a_share_of_the_cpus() {
        let second = Duration::from_secs(1);
        assert_eq!(usage_percent(500_000_000, second, 1), 50.0);
        assert_eq!(usage_percent(500_000_000, second, 2), 25.0);
        assert_eq!(usage_percent(5_000_000_000, second, 2), 100.0);
        assert_eq!(usage_percent(1, Duration::ZERO, 2), 0.0);
    }

    #[test]
    fn samples_are_kept_for_an_hour_and_filtered_by_time() {
        let m = Metrics::default();
        let mut cpu = CpuMeter::new();
        for t in 0..KEPT as i64 + 10 {
            m.push(MetricsSample { timestamp: t, ..take(&mut cpu) });
        }
        let all = m.between(&MetricsQuery::default());
        assert_eq!(all.len(), KEPT);
        assert_eq!((all[0].timestamp, all[KEPT - 1].timestamp), (10, KEPT as i64 + 9));
        let some = m.between(&MetricsQuery { start: Some(100), end: Some(102) });
        assert_eq!(some.iter().map(|s| s.timestamp).collect::<Vec<_>>(), [100, 101, 102]);
        assert!(m.between(&MetricsQuery { start: Some(-10), end: Some(5) }).is_empty());
    }

    #[test]
    fn a_sample_of_this_machine_is_plausible() {
        let s = take(&mut CpuMeter::new());
        assert!(s.cpu_count >= 1 && (0.0..=100.0).contains(&s.cpu_used_pct));
        assert!(s.mem_total > 0 && s.mem_used <= s.mem_total + s.mem_cache);
        assert!(s.disk_total > 0 && s.disk_used <= s.disk_total);
    }
}
