//! What a real cluster did to the driver's pods before they ran (issue 18's evidence, from a
//! single-node v1.36 cluster), for the fake API server: Pod Security admission at `restricted`,
//! a ResourceQuota on pods, a scheduler that finds no room when CPU requests exceed what the
//! node has free, claims that a provisioner binds seconds later, and an autoscaler that gives
//! up. Each behaviour answers with the real cluster's words.

use std::time::Duration;

use serde_json::{Value, json};

/// How the fake cluster behaves; everything off by default (pods run at once).
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// The namespace enforces Pod Security `restricted`.
    pub restricted: bool,
    /// The namespace's ResourceQuota allows this many pods.
    pub max_pods: Option<usize>,
    /// Millicores of CPU the single node gives to requests.
    pub node_cpu_millis: Option<u64>,
    /// How long a new claim stays Pending before a provisioner binds it.
    pub claim_bind_delay: Option<Duration>,
    /// The cluster autoscaler reports it will not add a node for an unschedulable pod.
    pub autoscaler_gives_up: bool,
    /// Claims ignore the pod's `fsGroup` (hostPath, local, some NFS): with the Docker kubelet
    /// their folders stay root's, mode 0755.
    pub claims_ignore_fs_group: bool,
}

/// The scheduler's message for a pod whose claims are not bound yet.
pub const UNBOUND_CLAIMS: &str = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. \
     preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
/// The scheduler's message for a pod whose CPU request does not fit.
pub const INSUFFICIENT_CPU: &str = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are \
     available: 1 No preemption victims found for incoming pod.";

/// Millicores of a CPU quantity (`500m`, `2`, `0.5`).
pub fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => q.parse::<f64>().map_or(0, |c| (c * 1000.0).round() as u64),
    }
}

/// The CPU a pod requests, over its containers (init containers run before, one at a time).
pub fn cpu_request(pod: &Value) -> u64 {
    let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
    containers.iter().filter_map(|c| c["resources"]["requests"]["cpu"].as_str()).map(millicores).sum()
}

/// What Pod Security `restricted` finds wrong with `pod`, in the admission's words.
pub fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let pod_sc = &pod["spec"]["securityContext"];
    let all =
        ["initContainers", "containers"].iter().flat_map(|k| pod["spec"][k].as_array().cloned().unwrap_or_default());
    for c in all {
        let (name, sc) = (c["name"].as_str().unwrap_or(""), &c["securityContext"]);
        if sc["allowPrivilegeEscalation"] != json!(false) {
            found.push(format!(
                "allowPrivilegeEscalation != false (container \"{name}\" must set securityContext.allowPrivilegeEscalation=false)"
            ));
        }
        let drops_all = sc["capabilities"]["drop"].as_array().is_some_and(|d| d.contains(&json!("ALL")));
        let adds = sc["capabilities"]["add"].as_array().cloned().unwrap_or_default();
        let extra: Vec<String> = adds
            .iter()
            .filter_map(Value::as_str)
            .filter(|c| *c != "NET_BIND_SERVICE")
            .map(|c| format!("\"{c}\""))
            .collect();
        if !drops_all || !extra.is_empty() {
            found.push(format!(
                "unrestricted capabilities (container \"{name}\" must not include {} in securityContext.capabilities.add)",
                extra.join(", ")
            ));
        }
        let non_root = sc["runAsNonRoot"].as_bool().or(pod_sc["runAsNonRoot"].as_bool());
        if non_root != Some(true) {
            found.push(format!(
                "runAsNonRoot != true (pod or container \"{name}\" must set securityContext.runAsNonRoot=true)"
            ));
        }
        if sc["runAsUser"] == json!(0) || (sc["runAsUser"].is_null() && pod_sc["runAsUser"] == json!(0)) {
            found.push(format!("runAsUser=0 (container \"{name}\" must not set runAsUser=0)"));
        }
        let seccomp = sc["seccompProfile"]["type"].as_str().or(pod_sc["seccompProfile"]["type"].as_str());
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            found.push(format!(
                "seccompProfile (pod or container \"{name}\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            ));
        }
    }
    found
}

/// The admission's refusal of a new pod `name` (status code and message), if any.
pub fn admission(b: &Behaviour, pod: &Value, name: &str, pods_now: usize) -> Option<(u16, String)> {
    if b.restricted {
        let v = restricted_violations(pod);
        if !v.is_empty() {
            return Some((
                403,
                format!("pods \"{name}\" is forbidden: violates PodSecurity \"restricted:latest\": {}", v.join(", ")),
            ));
        }
    }
    match b.max_pods {
        Some(max) if pods_now >= max => Some((
            403,
            format!(
                "pods \"{name}\" is forbidden: exceeded quota: sandbox-quota, requested: pods=1, used: pods={pods_now}, limited: pods={max}"
            ),
        )),
        _ => None,
    }
}

/// A core/v1 Event about `name` (`kind`), the `n`th the fake made (its timestamp orders it).
pub fn event(kind: &str, name: &str, reason: &str, message: &str, n: u64) -> Value {
    let t = 1_800_000_000 + n;
    let stamp = format!("2027-01-15T{:02}:{:02}:{:02}Z", (t / 3600) % 24, (t / 60) % 60, t % 60);
    json!({
        "metadata": {"name": format!("{name}.{n:08}"), "creationTimestamp": stamp},
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason, "message": message,
        "type": if reason.starts_with("Failed") || reason == "ProvisioningFailed" { "Warning" } else { "Normal" },
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_quantities() {
        assert_eq!(millicores("500m"), 500);
        assert_eq!(millicores("2"), 2000);
        assert_eq!(millicores("0.25"), 250);
    }

    #[test]
    fn restricted_names_each_violation() {
        let root = json!({"spec": {"containers": [{"name": "sandbox", "securityContext": {
            "runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "SETUID"]},
            "seccompProfile": {"type": "RuntimeDefault"}}}]}});
        let v = restricted_violations(&root);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v[0].contains("\"CHOWN\", \"SETUID\"")
                && v[1].starts_with("runAsNonRoot")
                && v[2].starts_with("runAsUser=0")
        );
        let fine = json!({"spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "sandbox", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}}}]}});
        assert!(restricted_violations(&fine).is_empty());
    }
}
