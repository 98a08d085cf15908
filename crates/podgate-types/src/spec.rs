//! The one sandbox spec: a create request validated, with the server's policy and defaults
//! applied. It is built once (by the core), stored with the sandbox, and read by placement, the
//! API view, templates, fork and snapshots alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{NetworkMode, Scheduling, Sidecar};
use crate::bootstrap::BootstrapSpec;

/// A sandbox's validated spec. What the store queries (the quota charge, the warm pool) lives
/// in its own columns beside it, not in here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub env: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    pub cpu: Option<f64>,
    pub memory: Option<u64>,
    /// Cap of its own filesystem, in bytes (absent: made before disk limits, uncapped). Its
    /// sidecars get the same cap each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub ttl_seconds: Option<u64>,
    /// The validated code bootstrap, with the code host's checked addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,
    /// `uid:gid` everything runs as (sandboxes from before this field ran as root).
    #[serde(default)]
    pub user: (u32, u32),
    #[serde(default)]
    pub network: NetworkMode,
    #[serde(default)]
    pub read_only_root: bool,
    /// Terminals are recorded (the request asked and the policy allows, or the policy records all).
    #[serde(default)]
    pub record_terminals: bool,
    /// Sidecars, with their limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<Sidecar>,
    /// The persistent volume mounted at `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Seconds without user activity before an idle pause (0 or absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Kubernetes scheduling, from its template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
}

impl SandboxSpec {
    /// The idle timeout in seconds (0: never).
    pub fn idle_timeout(&self) -> u64 {
        self.idle_timeout_seconds.unwrap_or(0)
    }
}

impl TryFrom<String> for SandboxSpec {
    type Error = String;

    /// Reads a stored spec (JSON).
    fn try_from(json: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&json).map_err(|e| format!("corrupt sandbox spec: {e}"))
    }
}

impl std::fmt::Display for SandboxSpec {
    /// The stored form (JSON).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_of_an_older_version_still_reads_and_round_trips() {
        // Written before `user`, `network` and the quota columns: charges are ignored now.
        let old = r#"{"env":{"A":"1"},"cmd":null,"cpu":1.0,"memory":1048576,"labels":{},"ttl_seconds":60,
            "charged_cpu":2.0,"pool":"t"}"#;
        let spec = SandboxSpec::try_from(old.to_string()).unwrap();
        assert_eq!((spec.user, spec.cpu, spec.env["A"].as_str()), ((0, 0), Some(1.0), "1"));
        assert_eq!(SandboxSpec::try_from(spec.to_string()), Ok(spec));
        assert!(SandboxSpec::try_from("{".to_string()).unwrap_err().starts_with("corrupt sandbox spec"));
    }
}
