//! Resource samples of a sandbox: what its agent measures every few seconds (CPU, memory, disk).

use serde::{Deserialize, Serialize};

/// One sample of a sandbox's resource use, as its agent measured it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsSample {
    /// When it was taken, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// CPUs the sandbox may use (its CPU limit rounded up, or the machine's CPUs without one).
    pub cpu_count: u32,
    /// CPU used since the previous sample, as a percentage of `cpu_count` CPUs (0 to 100).
    pub cpu_used_pct: f64,
    /// Memory in use without the page cache, in bytes.
    pub mem_used: u64,
    /// The memory limit, or the machine's memory without one, in bytes.
    pub mem_total: u64,
    /// Page cache, in bytes.
    pub mem_cache: u64,
    /// Bytes used on the sandbox's root filesystem.
    pub disk_used: u64,
    /// Size of the sandbox's root filesystem in bytes.
    pub disk_total: u64,
}

/// Query of the agent's `GET /v1/metrics`: samples taken from `start` to `end` (Unix seconds, both
/// included; either may be left out).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetricsQuery {
    pub start: Option<i64>,
    pub end: Option<i64>,
}
