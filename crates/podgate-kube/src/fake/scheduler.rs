//! The fake cluster's admission and scheduler ([`super::Behaviour`]): refuses pods as Pod
//! Security and a ResourceQuota do, keeps pods Pending with the scheduler's condition and a
//! FailedScheduling event while no node fits (claims unbound, CPU used up), binds claims after
//! their delay, and schedules the waiting pods again when room appears.

use serde_json::{Value, json};

use super::Fake;
use super::cluster::{self, Behaviour};

impl Fake {
    /// A fake that behaves as `b` says.
    pub fn behaving(self, b: Behaviour) -> Fake {
        if let Some(k) = &self.kubelet {
            k.ignore_fs_group.store(b.claims_ignore_fs_group, std::sync::atomic::Ordering::Relaxed);
        }
        *self.behaviour.lock().unwrap() = b;
        self
    }

    /// Gives the node `millis` of CPU for requests; pods that now fit are scheduled.
    pub fn set_node_cpu(&self, millis: u64) {
        self.behaviour.lock().unwrap().node_cpu_millis = Some(millis);
        self.reschedule();
    }

    /// The admission's refusal of a new pod, as (status code, message).
    pub(super) fn admit(&self, pod: &Value, name: &str) -> Option<(u16, String)> {
        let b = self.behaviour.lock().unwrap().clone();
        let pods_now = self.pods().iter().filter(|p| !p["metadata"]["deletionTimestamp"].is_string()).count();
        cluster::admission(&b, pod, name, pods_now)
    }

    /// Whether the new claim `name` waits for a provisioner; if so it is bound after the delay.
    pub(super) fn bind_later(&self, name: &str) -> bool {
        let Some(delay) = self.behaviour.lock().unwrap().claim_bind_delay else { return false };
        let (fake, name) = (self.clone(), name.to_string());
        tokio::spawn(async move {
            fake.event("PersistentVolumeClaim", &name, "ExternalProvisioning", "Waiting for a volume to be created");
            tokio::time::sleep(delay).await;
            let Some(mut claim) = fake.get("persistentvolumeclaims", &name) else { return };
            claim["status"] = json!({"phase": "Bound"});
            fake.put("persistentvolumeclaims", &name, Some(claim), "MODIFIED");
            fake.event("PersistentVolumeClaim", &name, "ProvisioningSucceeded", "Successfully provisioned volume");
            fake.reschedule();
        });
        true
    }

    fn pods(&self) -> Vec<Value> {
        let s = self.store.lock().unwrap();
        s.objects.iter().filter(|((r, _), _)| r == "pods").map(|(_, o)| o.clone()).collect()
    }

    pub(super) fn event(&self, kind: &str, name: &str, reason: &str, message: &str) {
        let n = {
            let mut s = self.store.lock().unwrap();
            s.events += 1;
            s.events
        };
        let e = cluster::event(kind, name, reason, message, n);
        let id = e["metadata"]["name"].as_str().unwrap_or_default().to_string();
        self.put("events", &id, Some(e), "ADDED");
    }

    /// Why no node takes the pod now, in the scheduler's words.
    fn unschedulable(&self, b: &Behaviour, pod: &Value) -> Option<&'static str> {
        let volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
        let unbound = volumes.iter().filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str()).any(|c| {
            self.get("persistentvolumeclaims", c).is_some_and(|claim| claim["status"]["phase"] != json!("Bound"))
        });
        if unbound {
            return Some(cluster::UNBOUND_CLAIMS);
        }
        let capacity = b.node_cpu_millis?;
        let name = &pod["metadata"]["name"];
        let used: u64 = self
            .pods()
            .iter()
            .filter(|p| p["spec"]["nodeName"].is_string() && &p["metadata"]["name"] != name)
            .map(cluster::cpu_request)
            .sum();
        (used + cluster::cpu_request(pod) > capacity).then_some(cluster::INSUFFICIENT_CPU)
    }

    /// Places the pod `name` on the node and starts it, or leaves it Pending as the scheduler does.
    pub(super) fn schedule(&self, name: String) {
        let b = self.behaviour.lock().unwrap().clone();
        let Some(mut pod) = self.get("pods", &name) else { return };
        if pod["metadata"]["deletionTimestamp"].is_string() || pod["spec"]["nodeName"].is_string() {
            return;
        }
        match self.unschedulable(&b, &pod) {
            Some(why) => {
                if pod["status"]["conditions"][0]["message"] == json!(why) {
                    return;
                }
                pod["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "Unschedulable", "message": why}]});
                self.put("pods", &name, Some(pod), "MODIFIED");
                self.event("Pod", &name, "FailedScheduling", why);
                if b.autoscaler_gives_up && why == cluster::INSUFFICIENT_CPU {
                    self.event("Pod", &name, "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 Insufficient cpu");
                }
            }
            None => {
                pod["spec"]["nodeName"] = json!("node-1");
                pod["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]});
                self.put("pods", &name, Some(pod), "MODIFIED");
                self.event("Pod", &name, "Scheduled", &format!("Successfully assigned sandboxes/{name} to node-1"));
                self.kubelet_start(name);
            }
        }
    }

    /// Tries the pods that are waiting for a node again.
    pub(super) fn reschedule(&self) {
        let waiting: Vec<String> = self
            .pods()
            .iter()
            .filter(|p| !p["spec"]["nodeName"].is_string())
            .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
            .collect();
        for name in waiting {
            self.schedule(name);
        }
    }
}
