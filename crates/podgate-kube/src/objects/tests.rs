//! Unit tests of every object a sandbox gets: security fields, labels, volumes and policies.

use super::*;
use crate::config::{NfsMount, Toleration as TolerationCfg};

fn cfg() -> KubeConfig {
    KubeConfig { instance: "inst1".into(), agent_image: "registry.local/podgate/agent:1".into(), ..Default::default() }
}

fn spec() -> PlacementSpec {
    PlacementSpec {
        sandbox_id: "sb-abc234".into(),
        image: "podgate/base:latest".into(),
        env: BTreeMap::from([("A".into(), "1".into())]),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        cpu: Some(0.5),
        memory: Some(256 << 20),
        agent_secret: "s3cret".into(),
        user: (1000, 1000),
        egress: true,
        labels: BTreeMap::from([("team".into(), "a b/c".into())]),
        ..Default::default()
    }
}

fn main_container(p: &Pod) -> &Container {
    let c = &p.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.name, MAIN_CONTAINER);
    c
}

#[test]
fn pod_runs_the_agent_as_pid_1_with_the_secret_from_the_secret() {
    let p = pod(&cfg(), &spec()).unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some("podgate-sb-abc234"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("podgate-sandboxes"));
    let c = main_container(&p);
    let cmd = c.command.clone().unwrap();
    assert_eq!(
        cmd[..6],
        ["/.podgate/bin/podgate-agent", "serve", "--listen", "0.0.0.0:49983", "--secret-env", "PODGATE_AGENT_SECRET"]
    );
    let tail: Vec<&str> = cmd.iter().rev().take(5).rev().map(String::as_str).collect();
    assert_eq!(tail, ["--user", "1000:1000", "--", "sleep", "infinity"]);
    assert_eq!(c.image.as_deref(), Some("podgate/base:latest"));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let env = c.env.clone().unwrap();
    assert!(env.iter().any(|e| e.name == "A" && e.value.as_deref() == Some("1")));
    let secret_env = env.iter().find(|e| e.name == "PODGATE_AGENT_SECRET").unwrap();
    assert_eq!(secret_env.value, None, "the secret never appears in the pod spec");
    let r = secret_env.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((r.name.as_str(), r.key.as_str()), ("podgate-sb-abc234", KEY_AGENT_SECRET));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 49983);
    let init = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(init.image.as_deref(), Some("registry.local/podgate/agent:1"));
    assert_eq!(init.command.clone().unwrap(), ["/podgate-agent", "install", "/.podgate/bin/podgate-agent"]);
    assert!(!serde_json::to_string(&p).unwrap().contains("s3cret"));
}

#[test]
fn pod_is_restricted() {
    let p = pod(&cfg(), &spec()).unwrap();
    let ps = p.spec.as_ref().unwrap();
    assert_eq!(ps.automount_service_account_token, Some(false));
    assert_eq!(ps.enable_service_links, Some(false));
    assert_eq!(ps.restart_policy.as_deref(), Some("Never"));
    assert_eq!(ps.host_network, None);
    let psc = ps.security_context.as_ref().unwrap();
    assert_eq!(psc.fs_group, Some(1000));
    assert_eq!(psc.run_as_user, None, "set per container: sidecars keep their image's user");
    assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    for c in ps.containers.iter().chain(ps.init_containers.as_ref().unwrap()) {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(1000), Some(1000)), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_eq!(sc.privileged, Some(false), "{}", c.name);
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.clone().unwrap(), ["ALL"], "{}", c.name);
        assert_eq!(caps.add, None, "{}", c.name);
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    }
}

#[test]
fn pod_requests_are_fractions_of_its_limits() {
    let p = pod(&cfg(), &spec()).unwrap();
    let r = main_container(&p).resources.clone().unwrap();
    let limits = r.limits.unwrap();
    assert_eq!(limits["cpu"].0, "500m");
    assert_eq!(limits["memory"].0, (256u64 << 20).to_string());
    // By default a tenth of the CPU and a quarter of the memory are reserved.
    let requests = r.requests.unwrap();
    assert_eq!((requests["cpu"].0.as_str(), requests["memory"].0.clone()), ("50m", (64u64 << 20).to_string()));
    let whole = KubeConfig { requests: crate::Requests::LIMITS, ..cfg() };
    let r = main_container(&pod(&whole, &spec()).unwrap()).resources.clone().unwrap();
    assert_eq!(r.requests.unwrap(), r.limits.unwrap());
    let none = pod(&cfg(), &PlacementSpec { cpu: None, memory: None, ..spec() }).unwrap();
    assert_eq!(main_container(&none).resources.clone().unwrap().limits, None);
}

#[test]
fn pod_disk_is_an_ephemeral_storage_limit_that_reserves_nothing() {
    let p = pod(&cfg(), &PlacementSpec { disk: Some(2 << 30), ..spec() }).unwrap();
    let r = main_container(&p).resources.clone().unwrap();
    assert_eq!(r.limits.unwrap()["ephemeral-storage"].0, (2u64 << 30).to_string());
    assert_eq!(r.requests.unwrap()["ephemeral-storage"].0, "0");
}

#[test]
fn root_sandboxes_keep_the_docker_capabilities_and_nothing_more() {
    let p = pod(&cfg(), &PlacementSpec { user: (0, 0), ..spec() }).unwrap();
    let sc = main_container(&p).security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(false));
    let add = sc.capabilities.unwrap().add.unwrap();
    assert!(add.contains(&"CHOWN".to_string()) && !add.iter().any(|c| c == "SYS_ADMIN" || c == "NET_RAW"));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
}

#[test]
fn pod_volumes_agent_tmp_and_workspace() {
    let p = pod(&cfg(), &spec()).unwrap();
    let ps = p.spec.as_ref().unwrap();
    let vols = ps.volumes.clone().unwrap();
    let by = |n: &str| vols.iter().find(|v| v.name == n).unwrap().clone();
    assert!(by("podgate-agent").empty_dir.is_some());
    assert_eq!(by("tmp").empty_dir.unwrap().medium.as_deref(), Some("Memory"));
    assert!(by("workspace").empty_dir.is_some(), "an emptyDir without persist");
    let mounts = main_container(&p).volume_mounts.clone().unwrap();
    let m = |path: &str| mounts.iter().find(|m| m.mount_path == path).unwrap().clone();
    assert_eq!(m("/.podgate/bin").read_only, Some(true), "the sandbox cannot replace its agent");
    assert_eq!(m("/workspace").name, "workspace");
    assert_eq!(m("/tmp").read_only, Some(false));

    let persisted = pod(&cfg(), &PlacementSpec { workspace_volume: Some("podgate-vol-x".into()), ..spec() }).unwrap();
    let vols = persisted.spec.unwrap().volumes.unwrap();
    let ws = vols.iter().find(|v| v.name == "workspace").unwrap();
    assert_eq!(ws.persistent_volume_claim.as_ref().unwrap().claim_name, "podgate-vol-x");
    assert!(ws.empty_dir.is_none());
}

#[test]
fn read_only_root_is_the_containers_read_only_root() {
    let p = pod(&cfg(), &PlacementSpec { read_only_root: true, ..spec() }).unwrap();
    assert_eq!(main_container(&p).security_context.clone().unwrap().read_only_root_filesystem, Some(true));
    let p = pod(&cfg(), &spec()).unwrap();
    assert_eq!(main_container(&p).security_context.clone().unwrap().read_only_root_filesystem, Some(false));
}

#[test]
fn labels_and_user_labels_as_an_annotation() {
    let p = pod(&cfg(), &spec()).unwrap();
    let l = p.metadata.labels.clone().unwrap();
    assert_eq!(l[LABEL_SANDBOX], "sb-abc234");
    assert_eq!(l[LABEL_INSTANCE], "inst1");
    assert_eq!(l["app.kubernetes.io/managed-by"], "podgate");
    assert!(!l.contains_key("team"), "user labels need not be valid Kubernetes labels");
    let a = p.metadata.annotations.clone().unwrap();
    let user: BTreeMap<String, String> = serde_json::from_str(&a[ANNOTATION_LABELS]).unwrap();
    assert_eq!(user["team"], "a b/c");
}

#[test]
fn scheduling_and_nfs_from_the_config() {
    let c = KubeConfig {
        runtime_class: Some("gvisor".into()),
        node_selector: BTreeMap::from([("pool".into(), "sandboxes".into())]),
        tolerations: vec![
            TolerationCfg::parse("sandbox=true:NoSchedule").unwrap(),
            TolerationCfg::parse("spot:NoExecute").unwrap(),
        ],
        nfs: vec![NfsMount::parse("nfs.local:/export:/mnt/shared:ro").unwrap()],
        ..cfg()
    };
    let p = pod(&c, &spec()).unwrap();
    let ps = p.spec.as_ref().unwrap();
    assert_eq!(ps.runtime_class_name.as_deref(), Some("gvisor"));
    assert_eq!(ps.node_selector.clone().unwrap()["pool"], "sandboxes");
    let t = ps.tolerations.clone().unwrap();
    assert_eq!((t[0].operator.as_deref(), t[0].value.as_deref()), (Some("Equal"), Some("true")));
    assert_eq!((t[1].operator.as_deref(), t[1].effect.as_deref()), (Some("Exists"), Some("NoExecute")));
    let nfs = ps.volumes.clone().unwrap().into_iter().find_map(|v| v.nfs).unwrap();
    assert_eq!((nfs.server.as_str(), nfs.path.as_str(), nfs.read_only), ("nfs.local", "/export", Some(true)));
    let m = main_container(&p).volume_mounts.clone().unwrap();
    assert!(m.iter().any(|m| m.mount_path == "/mnt/shared" && m.read_only == Some(true)));
    let plain = pod(&cfg(), &spec()).unwrap().spec.unwrap();
    assert_eq!((plain.runtime_class_name, plain.node_selector, plain.tolerations), (None, None, None));
}

#[test]
fn a_templates_scheduling_goes_over_the_servers() {
    let c = KubeConfig {
        runtime_class: Some("runc-default".into()),
        node_selector: BTreeMap::from([("pool".into(), "general".into()), ("zone".into(), "a".into())]),
        tolerations: vec![TolerationCfg::parse("spot:NoExecute").unwrap()],
        ..cfg()
    };
    let s = PlacementSpec {
        scheduling: podgate_runtime::Scheduling {
            runtime_class: Some("kata".into()),
            node_selector: BTreeMap::from([("pool".into(), "isolated".into())]),
            tolerations: vec!["isolated=yes:NoSchedule".into()],
        },
        ..spec()
    };
    let ps = pod(&c, &s).unwrap().spec.unwrap();
    assert_eq!(ps.runtime_class_name.as_deref(), Some("kata"));
    let ns = ps.node_selector.unwrap();
    assert_eq!((ns["pool"].as_str(), ns["zone"].as_str()), ("isolated", "a"));
    let keys: Vec<_> = ps.tolerations.unwrap().into_iter().map(|t| t.key.unwrap()).collect();
    assert_eq!(keys, ["spot", "isolated"]);
    let bad = PlacementSpec {
        scheduling: podgate_runtime::Scheduling { tolerations: vec!["nope".into()], ..Default::default() },
        ..spec()
    };
    assert!(matches!(pod(&c, &bad), Err(Error::InvalidSpec(_))));
}

#[test]
fn sidecars_share_the_pod_and_only_privileged_ones_are_privileged() {
    let dind = SidecarPlacement {
        name: "docker".into(),
        image: "docker:dind".into(),
        env: BTreeMap::from([("DOCKER_TLS_CERTDIR".into(), String::new())]),
        cmd: None,
        cpu: 1.0,
        memory: 1 << 30,
        privileged: true,
    };
    let plain = SidecarPlacement { name: "db".into(), image: "postgres:16".into(), privileged: false, ..dind.clone() };
    let p = pod(&cfg(), &PlacementSpec { sidecars: vec![dind, plain], ..spec() }).unwrap();
    let cs = &p.spec.as_ref().unwrap().containers;
    assert_eq!(cs.len(), 3);
    assert_eq!(cs[1].name, "sidecar-docker");
    assert_eq!(cs[1].security_context.as_ref().unwrap().privileged, Some(true));
    assert_eq!(cs[1].security_context.as_ref().unwrap().run_as_user, None, "the image's user, as on Docker");
    assert_eq!(cs[1].resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0, (1u64 << 30).to_string());
    let sc = cs[2].security_context.as_ref().unwrap();
    assert_eq!(sc.privileged, None);
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.as_ref().unwrap().drop.clone().unwrap(), ["ALL"]);
}

#[test]
fn bad_ids_and_images_are_refused_before_the_cluster_sees_them() {
    for id in ["", "SB-UPPER", "sb_x", "sb-", &"a".repeat(51)] {
        assert!(matches!(object_name(id), Err(Error::InvalidSpec(_))), "{id:?}");
    }
    for image in [
        "podgate/base:latest",
        "busybox",
        "registry.local:5000/team/img:v1.2",
        "localhost/x",
        "ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        check_image(image).unwrap_or_else(|e| panic!("{image}: {e}"));
    }
    for image in ["", "Not A Valid//Reference", "UPPER/case", "a//b", "img:", "img:bad tag", "-x/y"] {
        assert!(matches!(check_image(image), Err(Error::InvalidSpec(_))), "{image:?}");
    }
    assert!(pod(&cfg(), &PlacementSpec { image: "Bad Image".into(), ..spec() }).is_err());
}

#[test]
fn secret_holds_the_agent_secret_and_the_pod() {
    let p = pod(&cfg(), &spec()).unwrap();
    let s = secret(&cfg(), &spec(), &p).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("podgate-sb-abc234"));
    assert_eq!(s.metadata.labels.clone().unwrap()[LABEL_INSTANCE], "inst1");
    assert_eq!(secret_state(&s), "created");
    assert_eq!(s.data.as_ref().unwrap()[KEY_AGENT_SECRET].0, b"s3cret");
    assert_eq!(stored_pod(&s).unwrap(), p);
    let empty = Secret::default();
    assert!(stored_pod(&empty).is_err());
}

#[test]
fn network_policy_admits_only_the_server_to_the_agent_port() {
    let np = network_policy(&cfg(), &spec()).unwrap();
    let s = np.spec.unwrap();
    assert_eq!(s.pod_selector.unwrap().match_labels.unwrap()[LABEL_SANDBOX], "sb-abc234");
    assert_eq!(s.policy_types.unwrap(), ["Ingress", "Egress"]);
    let ingress = s.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0].from.clone().unwrap();
    assert_eq!(from.len(), 1);
    let ns = from[0].namespace_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(ns["kubernetes.io/metadata.name"], "podgate");
    assert_eq!(from[0].pod_selector.clone().unwrap().match_labels.unwrap()["app.kubernetes.io/name"], "podgate-server");
    assert_eq!(ingress[0].ports.clone().unwrap()[0].port, Some(IntOrString::Int(49983)));
}

#[test]
fn network_policy_egress_blocks_private_and_metadata_ranges() {
    let c = KubeConfig { egress_allow: vec!["10.1.2.0/24".into()], ..cfg() };
    let egress = network_policy(&c, &spec()).unwrap().spec.unwrap().egress.unwrap();
    let to = egress[0].to.clone().unwrap();
    let v4 = to[0].ip_block.clone().unwrap();
    assert_eq!(v4.cidr, "0.0.0.0/0");
    let except = v4.except.unwrap();
    for blocked in ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
        assert!(except.iter().any(|e| e == blocked), "{blocked}");
    }
    assert_eq!(to[1].ip_block.clone().unwrap().except.unwrap(), BLOCKED_V6);
    assert_eq!(to[2].ip_block.clone().unwrap().cidr, "10.1.2.0/24", "configured exceptions are allowed");
    let dns = &egress[1];
    assert_eq!(dns.ports.clone().unwrap().len(), 2);
    assert_eq!(dns.to.clone().unwrap()[0].pod_selector.clone().unwrap().match_labels.unwrap()["k8s-app"], "kube-dns");

    let none = network_policy(&cfg(), &PlacementSpec { egress: false, ..spec() }).unwrap();
    assert_eq!(none.spec.unwrap().egress.unwrap(), vec![], "no network: no egress at all");
}

#[test]
fn workspace_claims() {
    let c = KubeConfig { storage_class: Some("fast".into()), workspace_size: "5Gi".into(), ..cfg() };
    let sized = workspace_claim(&c, "podgate-vol-abc", Some(3 << 30)).unwrap();
    assert_eq!(sized.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0, (3u64 << 30).to_string());
    let pvc = workspace_claim(&c, "podgate-vol-abc", None).unwrap();
    assert_eq!(pvc.metadata.name.as_deref(), Some("podgate-vol-abc"));
    assert_eq!(pvc.metadata.labels.clone().unwrap()[LABEL_VOLUME], "podgate-vol-abc");
    let s = pvc.spec.unwrap();
    assert_eq!(s.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(s.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(s.resources.unwrap().requests.unwrap()["storage"].0, "5Gi");
    assert!(workspace_claim(&c, "podgate-Bad_Name", None).is_err());
}

#[test]
fn the_workspace_owner_step_is_an_admins_choice_with_chown_alone() {
    assert_eq!(pod(&cfg(), &spec()).unwrap().spec.unwrap().init_containers.unwrap().len(), 1, "off by default");
    let on = KubeConfig { workspace_owner_init: true, ..cfg() };
    let inits = pod(&on, &spec()).unwrap().spec.unwrap().init_containers.unwrap();
    assert_eq!(inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["podgate-workspace", "podgate-agent"]);
    let own = &inits[0];
    assert_eq!(own.command.clone().unwrap(), ["/podgate-agent", "own", "/workspace", "1000:1000"]);
    let sc = own.security_context.clone().unwrap();
    assert_eq!((sc.run_as_user, sc.allow_privilege_escalation), (Some(0), Some(false)));
    let caps = sc.capabilities.unwrap();
    assert_eq!((caps.drop.unwrap(), caps.add.unwrap()), (vec!["ALL".to_string()], vec!["CHOWN".to_string()]));
    assert_eq!(own.volume_mounts.clone().unwrap()[0].mount_path, "/workspace");
    let root = pod(&on, &PlacementSpec { user: (0, 0), ..spec() }).unwrap();
    assert_eq!(root.spec.unwrap().init_containers.unwrap().len(), 1, "root needs no ownership step");
}
