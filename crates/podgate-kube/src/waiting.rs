//! Reading the cluster's answers while a sandbox starts: API refusals sorted into what the
//! request must change (Pod Security, admission webhooks, LimitRanges), the namespace's quota,
//! and the cluster failing; and the events of a pending pod and its claim sorted into progress
//! to show (a scheduler still looking, a volume being provisioned, an image pulling) and the
//! few answers that will not change by waiting (the autoscaler will not add a node, the claim's
//! storage class does not exist).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Event;
use podgate_runtime::Error;

/// The cluster's answer to a call as a driver error. 422 is a bad specification. A 403 that is
/// not about the server's own rights (RBAC names a `User`) is the cluster's policy: an exceeded
/// ResourceQuota, or an admission refusal the request has to change.
pub fn cluster_error(what: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 422 => Error::InvalidSpec(format!("{what}: {}", s.message)),
        kube::Error::Api(s) if s.code == 403 && s.message.contains("exceeded quota") => {
            Error::QuotaExhausted(format!("{what}: {}", s.message))
        }
        kube::Error::Api(s) if s.code == 403 && !s.message.contains("User \"") => {
            Error::Refused(format!("{what}: {}", s.message))
        }
        kube::Error::Api(s) if s.code == 400 && s.message.contains("admission webhook") => {
            Error::Refused(format!("{what}: {}", s.message))
        }
        kube::Error::Api(s) => Error::Unavailable(format!("{what}: {} ({})", s.message, s.code)),
        other => Error::Unavailable(format!("{what}: {other}")),
    }
}

/// What the events of a pending pod (and its workspace claim) say.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Waiting will not help; the error says why.
    Permanent(String),
    /// The latest word, to show as progress.
    Progress(String),
    /// Nothing yet.
    Silent,
}

fn when(e: &Event) -> i64 {
    let t = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
    t.map_or(0, |t| t.as_millisecond())
}

/// Judges the events of the pod `pod` and of the claim `claim`.
pub fn judge(events: &[Event], pod: &str, claim: Option<&str>) -> Verdict {
    let of = |e: &Event, name: &str| e.involved_object.name.as_deref() == Some(name);
    for e in events {
        let (reason, message) = (e.reason.as_deref().unwrap_or(""), e.message.as_deref().unwrap_or(""));
        if of(e, pod) && reason == "NotTriggerScaleUp" {
            return Verdict::Permanent(format!("no node fits and the cluster autoscaler will not add one: {message}"));
        }
        if claim.is_some_and(|c| of(e, c)) && reason == "ProvisioningFailed" && message.contains("not found") {
            return Verdict::Permanent(format!("the workspace claim cannot be provisioned: {message}"));
        }
    }
    events.iter().filter(|e| of(e, pod) || claim.is_some_and(|c| of(e, c))).max_by_key(|e| when(e)).map_or(
        Verdict::Silent,
        |e| {
            let what = if of(e, pod) { "pod" } else { "workspace claim" };
            Verdict::Progress(format!(
                "{what}: {}: {}",
                e.reason.as_deref().unwrap_or("event"),
                e.message.as_deref().unwrap_or("")
            ))
        },
    )
}

/// What each starting sandbox waits for, for [`podgate_runtime::Driver::progress`].
#[derive(Default)]
pub struct Waits(Mutex<HashMap<String, String>>);

impl Waits {
    /// Records `what`; logs it when it is news.
    pub fn note(&self, sandbox_id: &str, what: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(sandbox_id).map(String::as_str) != Some(what) {
            tracing::info!(sandbox_id, waiting = what, "the sandbox's pod is not running yet");
            m.insert(sandbox_id.to_string(), what.to_string());
        }
    }

    pub fn get(&self, sandbox_id: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(sandbox_id).cloned()
    }

    pub fn clear(&self, sandbox_id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(sandbox_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn api(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "message": message, "reason": "Forbidden"
        }))
        .unwrap();
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn refusals_are_sorted_by_who_must_change() {
        let psa = "pods \"podgate-x\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true";
        assert!(
            matches!(cluster_error("creating the pod", api(403, psa)), Error::Refused(m) if m.contains("PodSecurity"))
        );
        let quota = "pods \"podgate-x\" is forbidden: exceeded quota: sandboxes, requested: pods=1, used: pods=2, limited: pods=2";
        assert!(
            matches!(cluster_error("creating the pod", api(403, quota)), Error::QuotaExhausted(m) if m.contains("limited: pods=2"))
        );
        let rbac =
            "pods is forbidden: User \"system:serviceaccount:podgate:podgate-server\" cannot create resource \"pods\"";
        assert!(matches!(cluster_error("creating the pod", api(403, rbac)), Error::Unavailable(_)));
        let hook = "admission webhook \"policy.example\" denied the request: no root";
        assert!(matches!(cluster_error("creating the pod", api(400, hook)), Error::Refused(_)));
        assert!(matches!(cluster_error("creating the pod", api(422, "bad")), Error::InvalidSpec(_)));
        assert!(matches!(cluster_error("creating the pod", api(500, "etcd")), Error::Unavailable(_)));
    }

    fn event(name: &str, reason: &str, message: &str, second: i64) -> Event {
        Event {
            involved_object: ObjectReference { name: Some(name.into()), ..Default::default() },
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + second).unwrap(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn events_give_progress_or_a_reason_to_stop() {
        assert_eq!(judge(&[], "p", None), Verdict::Silent);
        let scheduling = event("p", "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.", 1);
        let claim = event("c", "ExternalProvisioning", "waiting for a volume to be created", 2);
        let other = event("q", "NotTriggerScaleUp", "someone else's", 3);
        assert_eq!(
            judge(&[scheduling.clone(), claim.clone(), other.clone()], "p", Some("c")),
            Verdict::Progress("workspace claim: ExternalProvisioning: waiting for a volume to be created".into())
        );
        assert_eq!(
            judge(&[scheduling.clone(), other], "p", None),
            Verdict::Progress("pod: FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu.".into())
        );
        let gave_up = event("p", "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 Insufficient cpu", 0);
        assert!(matches!(judge(&[scheduling, gave_up], "p", None), Verdict::Permanent(m) if m.contains("autoscaler")));
        let no_class = event("c", "ProvisioningFailed", "storageclass.storage.k8s.io \"fast\" not found", 0);
        assert!(
            matches!(judge(&[claim, no_class], "p", Some("c")), Verdict::Permanent(m) if m.contains("\"fast\" not found"))
        );
    }
}
