//! Reading a pod's status: whether it has started, is still on its way, or has failed for a
//! reason the cluster gave (pull errors, bad configuration, no node, a crashing container).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use podgate_runtime::{Error, InstanceStatus};

use crate::objects::MAIN_CONTAINER;

/// Where a starting pod is.
#[derive(Debug)]
pub enum Progress {
    /// Not there yet (scheduling, pulling, initialising), with what it waits for when the
    /// pod says: no node fits yet is waited out (a node or a claim may come), not a failure.
    Waiting(Option<String>),
    /// The sandbox's container runs; its agent listens at this pod IP.
    Running { ip: String },
    /// It will never run; the error carries the cluster's reason.
    Failed(Error),
}

/// Waiting reasons that never resolve by themselves.
const IMAGE_REASONS: &[&str] = &["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"];
const FATAL_REASONS: &[&str] =
    &["CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff", "RunContainerError"];

fn container_failure(c: &ContainerStatus, image_hint: &str) -> Option<Error> {
    let state = c.state.as_ref()?;
    if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or_default();
        let message = w.message.clone().unwrap_or_default();
        if IMAGE_REASONS.contains(&reason) {
            let image = if c.image.is_empty() { image_hint.to_string() } else { c.image.clone() };
            return Some(Error::ImageUnavailable { image, reason: format!("{reason}: {message}") });
        }
        if reason == "InvalidImageName" {
            return Some(Error::InvalidSpec(format!("InvalidImageName: {message}")));
        }
        if FATAL_REASONS.contains(&reason) {
            return Some(Error::NotStarted(format!("container {}: {reason}: {message}", c.name)));
        }
    }
    if let Some(t) = &state.terminated {
        // With FallbackToLogsOnError, the message ends the container's output (the agent's error).
        return Some(Error::NotStarted(format!(
            "container {} exited with code {} ({}){}",
            c.name,
            t.exit_code,
            t.reason.as_deref().unwrap_or("no reason"),
            t.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        )));
    }
    None
}

/// The progress of a pod that should come to run.
pub fn progress(pod: &Pod) -> Progress {
    let Some(status) = &pod.status else { return Progress::Waiting(None) };
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == MAIN_CONTAINER))
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return Progress::Failed(Error::Unavailable("the pod is being deleted".into()));
    }
    for c in status.init_container_statuses.iter().flatten() {
        // A finished installer is fine; anything else terminated or stuck is not.
        let done = c.state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.exit_code == 0);
        if !done && let Some(e) = container_failure(c, &image) {
            return Progress::Failed(e);
        }
    }
    for c in status.container_statuses.iter().flatten() {
        if let Some(e) = container_failure(c, &image) {
            return Progress::Failed(e);
        }
    }
    if let Some(cond) = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled")
        && cond.status == "False"
        && cond.reason.as_deref() == Some("Unschedulable")
    {
        return Progress::Waiting(Some(format!(
            "no node fits yet: {}",
            cond.message.as_deref().unwrap_or("the scheduler gave no reason")
        )));
    }
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => Progress::Failed(Error::NotStarted(format!(
            "the pod ended: {}",
            status.message.as_deref().or(status.reason.as_deref()).unwrap_or("no reason given")
        ))),
        Some("Running") => {
            let main_running = status
                .container_statuses
                .iter()
                .flatten()
                .any(|c| c.name == MAIN_CONTAINER && c.state.as_ref().is_some_and(|s| s.running.is_some()));
            match status.pod_ip.as_deref() {
                Some(ip) if main_running && !ip.is_empty() => Progress::Running { ip: ip.to_string() },
                _ => Progress::Waiting(None),
            }
        }
        _ => Progress::Waiting(None),
    }
}

/// What the driver reports of a sandbox whose pod exists.
pub fn instance_status(pod: &Pod) -> InstanceStatus {
    if pod.metadata.deletion_timestamp.is_some() {
        return InstanceStatus::Other("terminating".into());
    }
    let main = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == MAIN_CONTAINER));
    if let Some(t) = main.and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.as_ref()) {
        return InstanceStatus::Exited {
            reason: format!("exit code {} ({})", t.exit_code, t.reason.as_deref().unwrap_or("no reason")),
        };
    }
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => InstanceStatus::Running,
        Some("Failed") | Some("Succeeded") => InstanceStatus::Exited {
            reason: pod.status.as_ref().and_then(|s| s.reason.clone()).unwrap_or_else(|| "the pod ended".into()),
        },
        // Pending: placed, not running yet.
        _ => InstanceStatus::Created,
    }
}

/// The agent's address at a pod IP (bracketed for IPv6).
pub fn agent_address(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{}", crate::objects::AGENT_PORT)
    } else {
        format!("{ip}:{}", crate::objects::AGENT_PORT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, PodCondition, PodStatus,
    };

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: "img:1".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message: Some("why".into()) }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState { running: Some(ContainerStateRunning::default()), ..Default::default() }),
            ..Default::default()
        }
    }

    fn terminated(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(phase: &str, init: Vec<ContainerStatus>, main: Vec<ContainerStatus>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: Some("10.1.2.3".into()),
                init_container_statuses: Some(init),
                container_statuses: Some(main),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn image_pull_errors_are_image_unavailable_with_the_reason() {
        for reason in ["ErrImagePull", "ImagePullBackOff"] {
            match progress(&pod("Pending", vec![], vec![waiting("sandbox", reason)])) {
                Progress::Failed(Error::ImageUnavailable { image, reason: r }) => {
                    assert_eq!(image, "img:1");
                    assert_eq!(r, format!("{reason}: why"));
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        // The agent image failing in the init container counts too.
        assert!(matches!(
            progress(&pod("Pending", vec![waiting("podgate-agent", "ErrImagePull")], vec![])),
            Progress::Failed(Error::ImageUnavailable { .. })
        ));
    }

    #[test]
    fn configuration_errors_fail_fast() {
        assert!(matches!(
            progress(&pod("Pending", vec![], vec![waiting("sandbox", "InvalidImageName")])),
            Progress::Failed(Error::InvalidSpec(_))
        ));
        for reason in ["CreateContainerConfigError", "CrashLoopBackOff", "RunContainerError"] {
            match progress(&pod("Pending", vec![], vec![waiting("sandbox", reason)])) {
                Progress::Failed(Error::NotStarted(m)) => assert!(m.contains(reason), "{m}"),
                other => panic!("{reason}: {other:?}"),
            }
        }
        assert!(matches!(
            progress(&pod("Pending", vec![], vec![waiting("sandbox", "ContainerCreating")])),
            Progress::Waiting(None)
        ));
    }

    #[test]
    fn unschedulable_pods_wait_with_the_schedulers_message() {
        let mut p = pod("Pending", vec![], vec![]);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some("0/1 nodes are available: 1 Insufficient memory.".into()),
            ..Default::default()
        }]);
        match progress(&p) {
            Progress::Waiting(Some(m)) => {
                assert_eq!(m, "no node fits yet: 0/1 nodes are available: 1 Insufficient memory.")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn crashed_containers_fail_and_a_finished_installer_does_not() {
        match progress(&pod("Running", vec![terminated("podgate-agent", 0)], vec![terminated("sandbox", 2)])) {
            Progress::Failed(Error::NotStarted(m)) => assert!(m.contains("exited with code 2"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(progress(&pod("Pending", vec![terminated("podgate-agent", 1)], vec![])), Progress::Failed(_)));
        match progress(&pod("Running", vec![terminated("podgate-agent", 0)], vec![running("sandbox")])) {
            Progress::Running { ip } => assert_eq!(ip, "10.1.2.3"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn running_needs_the_main_container_and_an_ip() {
        assert!(matches!(progress(&pod("Running", vec![], vec![running("sidecar-db")])), Progress::Waiting(None)));
        let mut p = pod("Running", vec![], vec![running("sandbox")]);
        p.status.as_mut().unwrap().pod_ip = None;
        assert!(matches!(progress(&p), Progress::Waiting(None)));
        assert!(matches!(progress(&Pod::default()), Progress::Waiting(None)));
        assert!(matches!(progress(&pod("Failed", vec![], vec![])), Progress::Failed(_)));
    }

    #[test]
    fn instance_statuses() {
        assert_eq!(instance_status(&pod("Running", vec![], vec![running("sandbox")])), InstanceStatus::Running);
        assert_eq!(instance_status(&pod("Pending", vec![], vec![])), InstanceStatus::Created);
        // A main container that ended is an exit even while a sidecar keeps the pod running.
        let ended = pod("Running", vec![], vec![terminated("sandbox", 137), running("sidecar-x")]);
        assert!(matches!(instance_status(&ended), InstanceStatus::Exited { reason } if reason.contains("137")));
        assert!(matches!(instance_status(&pod("Failed", vec![], vec![])), InstanceStatus::Exited { .. }));
        let mut gone = pod("Running", vec![], vec![running("sandbox")]);
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
        assert_eq!(instance_status(&gone), InstanceStatus::Other("terminating".into()));
    }

    #[test]
    fn agent_addresses() {
        assert_eq!(agent_address("10.0.0.7"), "10.0.0.7:49983");
        assert_eq!(agent_address("fd00::7"), "[fd00::7]:49983");
    }
}
