//! The Kubernetes objects of one sandbox, built from its placement without touching the
//! cluster: the pod, the secret that holds the agent's secret and the pod to (re)create, the
//! network policy, and the persistent `/workspace` claim.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, NFSVolumeSource,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext,
    PodSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Toleration, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podgate_runtime::{Error, PlacementSpec, Result, SidecarPlacement};

use crate::config::KubeConfig;

/// Label on every object podgate creates, holding the sandbox id.
pub const LABEL_SANDBOX: &str = "podgate.io/sandbox";
/// Label holding the id of the server instance that owns the object.
pub const LABEL_INSTANCE: &str = "podgate.io/instance";
/// Label on podgate's persistent volume claims.
pub const LABEL_VOLUME: &str = "podgate.io/volume";
/// Annotation holding the user's labels (JSON), which need not be valid Kubernetes labels.
pub const ANNOTATION_LABELS: &str = "podgate.io/labels";
/// Annotation on the sandbox secret: `created`, `started` or `hibernated`.
pub const ANNOTATION_STATE: &str = "podgate.io/state";
/// Keys of the sandbox secret.
pub const KEY_AGENT_SECRET: &str = "agent-secret";
pub const KEY_POD: &str = "pod.json";

/// The agent's port in every sandbox pod.
pub const AGENT_PORT: u16 = 49983;
/// Where the init container puts the agent (an emptyDir, read-only in the sandbox).
pub const AGENT_DIR: &str = "/.podgate/bin";
const AGENT_SECRET_ENV: &str = "PODGATE_AGENT_SECRET";
/// Name of the sandbox's own container in its pod.
pub const MAIN_CONTAINER: &str = "sandbox";

/// Capabilities a root sandbox keeps (all others are dropped), as on Docker.
const ROOT_CAPABILITIES: &[&str] =
    &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETUID", "SETGID", "NET_BIND_SERVICE"];
/// Ranges sandboxes never reach unless allowed: private, link-local (cloud metadata), loopback
/// and carrier-grade NAT.
pub const BLOCKED_V4: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8"];
pub const BLOCKED_V6: &[&str] = &["fc00::/7", "fe80::/10", "::1/128"];

/// Name of the pod, secret and network policy of a sandbox.
pub fn object_name(sandbox_id: &str) -> Result<String> {
    let ok = !sandbox_id.is_empty()
        && sandbox_id.len() <= 50
        && sandbox_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !sandbox_id.ends_with('-');
    if !ok {
        return Err(Error::InvalidSpec(format!("sandbox id {sandbox_id:?} cannot name a Kubernetes object")));
    }
    Ok(format!("podgate-{sandbox_id}"))
}

/// Labels every object of a sandbox carries.
pub fn labels(cfg: &KubeConfig, sandbox_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_string(), "podgate".to_string()),
        (LABEL_SANDBOX.to_string(), sandbox_id.to_string()),
        (LABEL_INSTANCE.to_string(), cfg.instance.clone()),
    ])
}

/// Checks an image reference the way the kubelet would before trying it, so that an invalid one
/// fails at once with the reason.
pub fn check_image(image: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidSpec(format!("invalid image reference {image:?}: {why}")));
    if image.is_empty() || image.len() > 4096 {
        return bad("empty or too long");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace");
    }
    let (name, _digest) = image.split_once('@').unwrap_or((image, ""));
    let path = match name.rsplit_once(':') {
        Some((p, tag)) if !tag.contains('/') => {
            if tag.is_empty() || tag.len() > 128 || !tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return bad("bad tag");
            }
            p
        }
        _ => name,
    };
    let mut parts = path.split('/').peekable();
    let mut first = true;
    while let Some(part) = parts.next() {
        // The first part may be a registry host (dots, a port, capitals are not allowed anyway).
        let host = first && parts.peek().is_some() && (part.contains('.') || part.contains(':') || part == "localhost");
        first = false;
        if host {
            continue;
        }
        let ok = !part.is_empty()
            && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return bad("repository names are lowercase letters, digits and separators");
        }
    }
    Ok(())
}

fn quantity_cpu(cores: f64) -> Quantity {
    Quantity(format!("{}m", (cores * 1000.0).round().max(1.0) as u64))
}

fn quantity_bytes(bytes: u64) -> Quantity {
    Quantity(bytes.to_string())
}

/// Limits as asked; requests (what the scheduler reserves) the configured fractions of them
/// ([`KubeConfig::requests`]), so that idle sandboxes do not hold whole CPUs.
fn resources(cpu: Option<f64>, memory: Option<u64>, requests: crate::config::Requests) -> ResourceRequirements {
    let (mut limits, mut reserved) = (BTreeMap::new(), BTreeMap::new());
    if let Some(c) = cpu {
        limits.insert("cpu".to_string(), quantity_cpu(c));
        reserved.insert("cpu".to_string(), quantity_cpu(c * requests.cpu));
    }
    if let Some(m) = memory {
        limits.insert("memory".to_string(), quantity_bytes(m));
        reserved.insert("memory".to_string(), quantity_bytes(((m as f64) * requests.memory).ceil() as u64));
    }
    ResourceRequirements {
        requests: (!reserved.is_empty()).then_some(reserved),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    }
}

fn runtime_default_seccomp() -> Option<SeccompProfile> {
    Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() })
}

/// The restricted security context of the sandbox's container (and the agent installer), as
/// the sandbox user. The user is set per container, not for the pod: sidecars run as their
/// image's user, as on Docker.
fn restricted((uid, gid): (u32, u32), read_only_root: bool) -> SecurityContext {
    let add = (uid == 0).then(|| ROOT_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add }),
        privileged: Some(false),
        read_only_root_filesystem: Some(read_only_root),
        run_as_user: Some(uid.into()),
        run_as_group: Some(gid.into()),
        run_as_non_root: Some(uid != 0),
        seccomp_profile: runtime_default_seccomp(),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(read_only), ..Default::default() }
}

fn empty_dir(name: &str, memory: bool) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource { medium: memory.then(|| "Memory".into()), ..Default::default() }),
        ..Default::default()
    }
}

fn env_vars(env: &BTreeMap<String, String>) -> Vec<EnvVar> {
    env.iter().map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() }).collect()
}

fn sidecar(s: &SidecarPlacement, pull: &str, requests: crate::config::Requests) -> Container {
    let security_context = if s.privileged {
        // Only where the admin's sidecar policy allows it (checked by the core).
        SecurityContext { privileged: Some(true), ..Default::default() }
    } else {
        SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: Some(ROOT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
            }),
            seccomp_profile: runtime_default_seccomp(),
            ..Default::default()
        }
    };
    Container {
        name: format!("sidecar-{}", s.name),
        image: Some(s.image.clone()),
        image_pull_policy: Some(pull.into()),
        args: s.cmd.clone(),
        env: Some(env_vars(&s.env)),
        resources: Some(resources(Some(s.cpu), Some(s.memory), requests)),
        security_context: Some(security_context),
        ..Default::default()
    }
}

/// The sandbox's pod: the agent copied by an init container into an emptyDir and run as PID 1
/// of the sandbox's container, listening on [`AGENT_PORT`] with the secret from the sandbox's
/// [`secret`]; `/tmp` in memory, `/workspace` an emptyDir or the sandbox's claim.
pub fn pod(cfg: &KubeConfig, spec: &PlacementSpec) -> Result<Pod> {
    let name = object_name(&spec.sandbox_id)?;
    check_image(&spec.image)?;
    for s in &spec.sidecars {
        check_image(&s.image)?;
    }
    let (uid, gid) = spec.user;
    let mut command = vec![
        format!("{AGENT_DIR}/podgate-agent"),
        "serve".into(),
        "--listen".into(),
        format!("0.0.0.0:{AGENT_PORT}"),
        "--secret-env".into(),
        AGENT_SECRET_ENV.into(),
    ];
    command.extend(cfg.agent_args.iter().cloned());
    command.extend(["--user".to_string(), format!("{uid}:{gid}"), "--".to_string()]);
    command.extend(spec.cmd.clone().unwrap_or_default());
    let mut env = env_vars(&spec.env);
    env.push(EnvVar {
        name: AGENT_SECRET_ENV.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.clone(),
                key: KEY_AGENT_SECRET.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut volumes = vec![empty_dir("podgate-agent", false), empty_dir("tmp", true)];
    let mut mounts = vec![mount("podgate-agent", AGENT_DIR, true), mount("tmp", "/tmp", false)];
    volumes.push(match &spec.workspace_volume {
        Some(claim) => Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        },
        None => empty_dir("workspace", false),
    });
    mounts.push(mount("workspace", "/workspace", false));
    for (i, n) in cfg.nfs.iter().enumerate() {
        let vname = format!("nfs-{i}");
        volumes.push(Volume {
            name: vname.clone(),
            nfs: Some(NFSVolumeSource { server: n.server.clone(), path: n.path.clone(), read_only: Some(n.read_only) }),
            ..Default::default()
        });
        mounts.push(mount(&vname, &n.mount_path, n.read_only));
    }
    let main = Container {
        name: MAIN_CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        command: Some(command),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("agent".into()),
            container_port: AGENT_PORT.into(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: Some(with_disk(resources(spec.cpu, spec.memory, cfg.requests), spec.disk)),
        security_context: Some(restricted(spec.user, spec.read_only_root)),
        // A sandbox that stops at once says why (the agent's error) in its status.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        working_dir: Some("/workspace".into()),
        ..Default::default()
    };
    let install = Container {
        name: "podgate-agent".into(),
        image: Some(cfg.agent_image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        command: Some(vec!["/podgate-agent".into(), "install".into(), format!("{AGENT_DIR}/podgate-agent")]),
        resources: Some(resources(Some(0.1), Some(64 << 20), crate::config::Requests::LIMITS)),
        security_context: Some(restricted(spec.user, true)),
        volume_mounts: Some(vec![mount("podgate-agent", AGENT_DIR, false)]),
        ..Default::default()
    };
    // The sandbox's own scheduling (from its template) on top of the server's.
    let runtime_class = spec.scheduling.runtime_class.clone().or_else(|| cfg.runtime_class.clone());
    let mut node_selector = cfg.node_selector.clone();
    node_selector.extend(spec.scheduling.node_selector.clone());
    let mut tolerations = cfg.tolerations.clone();
    for t in &spec.scheduling.tolerations {
        tolerations.push(crate::config::Toleration::parse(t).map_err(Error::InvalidSpec)?);
    }
    let mut containers = vec![main];
    containers.extend(spec.sidecars.iter().map(|s| sidecar(s, &cfg.image_pull_policy, cfg.requests)));
    let user_labels = serde_json::to_string(&spec.labels).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels(cfg, &spec.sandbox_id)),
            annotations: Some(BTreeMap::from([(ANNOTATION_LABELS.to_string(), user_labels)])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(10),
            runtime_class_name: runtime_class,
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            tolerations: (!tolerations.is_empty()).then(|| {
                tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: Some(t.key.clone()),
                        operator: Some(if t.value.is_some() { "Equal" } else { "Exists" }.into()),
                        value: t.value.clone(),
                        effect: Some(t.effect.clone()),
                        ..Default::default()
                    })
                    .collect()
            }),
            security_context: Some(PodSecurityContext {
                // Volumes (a claim above all) are the sandbox group's.
                fs_group: Some(gid.into()),
                seccomp_profile: runtime_default_seccomp(),
                ..Default::default()
            }),
            init_containers: Some(workspace_owner(cfg, spec).into_iter().chain([install]).collect()),
            containers,
            volumes: Some(volumes),
            ..Default::default()
        }),
        status: None,
    })
}

/// The sandbox's secret: the agent's secret (read by the pod) and the pod to create, so that
/// `start` and `resume` (from any replica) recreate exactly what `create` decided.
pub fn secret(cfg: &KubeConfig, spec: &PlacementSpec, pod: &Pod) -> Result<Secret> {
    let pod_json = serde_json::to_vec(pod).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(object_name(&spec.sandbox_id)?),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels(cfg, &spec.sandbox_id)),
            annotations: Some(BTreeMap::from([(ANNOTATION_STATE.to_string(), "created".to_string())])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        immutable: Some(false),
        data: Some(BTreeMap::from([
            (KEY_AGENT_SECRET.to_string(), ByteString(spec.agent_secret.clone().into_bytes())),
            (KEY_POD.to_string(), ByteString(pod_json)),
        ])),
        ..Default::default()
    })
}

/// The pod a sandbox secret holds.
pub fn stored_pod(secret: &Secret) -> Result<Pod> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_POD))
        .ok_or_else(|| Error::Unavailable(format!("secret {:?} holds no pod", secret.metadata.name)))?;
    serde_json::from_slice(&bytes.0).map_err(|e| Error::Unavailable(format!("the stored pod is unreadable: {e}")))
}

/// What the sandbox secret says of the sandbox's state.
pub fn secret_state(secret: &Secret) -> &str {
    secret.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_STATE)).map_or("created", String::as_str)
}

fn peer_cidr(cidr: &str, except: &[&str]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.into(),
            except: (!except.is_empty()).then(|| except.iter().map(|e| e.to_string()).collect()),
        }),
        ..Default::default()
    }
}

fn tcp_udp(port: i32) -> Vec<NetworkPolicyPort> {
    ["UDP", "TCP"]
        .iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some(p.to_string()),
            ..Default::default()
        })
        .collect()
}

/// The sandbox's network policy: only the podgate server may open the agent port; egress is
/// the public internet and cluster DNS (private, link-local and metadata ranges blocked, save
/// the configured exceptions), or nothing for a sandbox without network.
pub fn network_policy(cfg: &KubeConfig, spec: &PlacementSpec) -> Result<NetworkPolicy> {
    let server = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                cfg.server_namespace.clone(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector { match_labels: Some(cfg.server_labels.clone()), ..Default::default() }),
        ..Default::default()
    };
    let ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![server]),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(AGENT_PORT.into())),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }];
    let egress = if spec.egress {
        let mut to = vec![peer_cidr("0.0.0.0/0", BLOCKED_V4), peer_cidr("::/0", BLOCKED_V6)];
        to.extend(cfg.egress_allow.iter().map(|c| peer_cidr(c, &[])));
        let dns = NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_string(),
                        "kube-system".to_string(),
                    )])),
                    ..Default::default()
                }),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())])),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ports: Some(tcp_udp(53)),
        };
        vec![NetworkPolicyEgressRule { to: Some(to), ports: None }, dns]
    } else {
        Vec::new()
    };
    Ok(NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(object_name(&spec.sandbox_id)?),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels(cfg, &spec.sandbox_id)),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(LABEL_SANDBOX.to_string(), spec.sandbox_id.clone())])),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    })
}

/// The sandbox's disk cap as an `ephemeral-storage` limit (its writable layer, logs and
/// emptyDirs), enforced by the kubelet, which evicts a pod past it. Nothing is reserved: a
/// request as large as the cap would leave small nodes unschedulable for mostly idle sandboxes.
fn with_disk(mut r: ResourceRequirements, disk: Option<u64>) -> ResourceRequirements {
    if let Some(d) = disk {
        r.limits.get_or_insert_default().insert("ephemeral-storage".into(), quantity_bytes(d));
        r.requests.get_or_insert_default().insert("ephemeral-storage".into(), Quantity("0".into()));
    }
    r
}

/// The claim behind a persistent `/workspace`, of `size` bytes (else the configured size); it
/// outlives its sandboxes.
pub fn workspace_claim(cfg: &KubeConfig, name: &str, size: Option<u64>) -> Result<PersistentVolumeClaim> {
    let size = size.filter(|s| *s > 0).map_or_else(|| Quantity(cfg.workspace_size.clone()), quantity_bytes);
    object_name(name.strip_prefix("podgate-").unwrap_or(name))?;
    Ok(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".to_string(), "podgate".to_string()),
                (LABEL_VOLUME.to_string(), name.to_string()),
                (LABEL_INSTANCE.to_string(), cfg.instance.clone()),
            ])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: cfg.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size)])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests;

/// With [`KubeConfig::workspace_owner_init`], an init container giving `/workspace` to the
/// sandbox user, for volumes that ignore `fsGroup` (hostPath, local, some NFS): the agent's
/// `own` as root with CHOWN alone. Pod Security `restricted` refuses it (baseline admits it),
/// so an admin enables it for a namespace whose policy allows it.
fn workspace_owner(cfg: &KubeConfig, spec: &PlacementSpec) -> Option<Container> {
    if !cfg.workspace_owner_init || spec.user.0 == 0 {
        return None;
    }
    let (uid, gid) = spec.user;
    Some(Container {
        name: "podgate-workspace".into(),
        image: Some(cfg.agent_image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        command: Some(vec!["/podgate-agent".into(), "own".into(), "/workspace".into(), format!("{uid}:{gid}")]),
        resources: Some(resources(Some(0.1), Some(64 << 20), crate::config::Requests::LIMITS)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: Some(vec!["CHOWN".into()]) }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            seccomp_profile: runtime_default_seccomp(),
            ..Default::default()
        }),
        volume_mounts: Some(vec![mount("workspace", "/workspace", false)]),
        ..Default::default()
    })
}
