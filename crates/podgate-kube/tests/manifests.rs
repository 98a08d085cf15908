//! Checks of the deployment in `deploy/kubernetes`: every object kustomize would apply parses as
//! its Kubernetes type with no field lost (a misspelt field is a failure), and the security,
//! availability and network settings the runbook promises are there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every object of the base kustomization's resources, in order.
fn objects() -> Vec<Value> {
    kustomization(&deploy_dir())
}

/// Every object of the kustomization in `dir`, in order: files, and folders as kustomizations.
/// As kustomize's loader does, it refuses a file outside `dir` and a folder that contains `dir`
/// ("cycle detected: candidate root … contains visited root …").
fn kustomization(dir: &Path) -> Vec<Value> {
    let dir = dir.canonicalize().unwrap();
    let k = yaml_docs(&dir.join("kustomization.yaml")).remove(0);
    let resources = k["resources"].as_array().expect("resources").clone();
    assert!(!resources.is_empty());
    resources
        .iter()
        .flat_map(|r| {
            let path = dir.join(r.as_str().unwrap()).canonicalize().unwrap();
            if path.is_dir() {
                assert!(!dir.starts_with(&path), "{} is inside the base it uses, {}", dir.display(), path.display());
                kustomization(&path)
            } else {
                assert!(path.starts_with(&dir), "{} is not in or below {}", path.display(), dir.display());
                yaml_docs(&path)
            }
        })
        .collect()
}

fn of_kind(objs: &[Value], kind: &str) -> Vec<Value> {
    objs.iter().filter(|o| o["kind"] == kind).cloned().collect()
}

fn one<T: serde::de::DeserializeOwned>(objs: &[Value], kind: &str, name: &str) -> T {
    let o = objs
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    serde_json::from_value(o.clone()).unwrap()
}

/// Parses `v` as `T` and back: anything `T` does not know is lost, and reported.
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", v["kind"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, v, "{} {} has fields its type does not know", v["kind"], v["metadata"]["name"]);
}

#[test]
fn every_object_parses_as_its_type_with_nothing_lost() {
    let objs = objects();
    let mut kinds = BTreeMap::new();
    for o in &objs {
        let kind = o["kind"].as_str().expect("kind");
        *kinds.entry(kind.to_string()).or_insert(0) += 1;
        match kind {
            "Namespace" => round_trips::<Namespace>(o),
            "ServiceAccount" => round_trips::<ServiceAccount>(o),
            "Role" => round_trips::<Role>(o),
            "RoleBinding" => round_trips::<RoleBinding>(o),
            "Deployment" => round_trips::<Deployment>(o),
            "Service" => round_trips::<Service>(o),
            "Ingress" => round_trips::<Ingress>(o),
            "NetworkPolicy" => round_trips::<NetworkPolicy>(o),
            "ResourceQuota" => round_trips::<ResourceQuota>(o),
            "LimitRange" => round_trips::<LimitRange>(o),
            "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(o),
            // Only built-in kinds: the base applies on a cluster without any operator.
            other => panic!("unexpected kind {other} in the base (an operator's kind belongs in an overlay)"),
        }
        let ns = o["metadata"]["namespace"].as_str();
        if kind != "Namespace" {
            assert!(matches!(ns, Some("podgate") | Some("podgate-sandboxes")), "{kind} in {ns:?}");
        }
    }
    for k in ["Deployment", "Service", "Ingress", "NetworkPolicy", "ResourceQuota", "LimitRange"] {
        assert!(kinds.contains_key(k), "no {k}: {kinds:?}");
    }
}

#[test]
fn namespaces_enforce_the_restricted_pod_security_standard() {
    let objs = objects();
    let names: Vec<Namespace> =
        of_kind(&objs, "Namespace").into_iter().map(|v| serde_json::from_value(v).unwrap()).collect();
    assert_eq!(names.len(), 2);
    for ns in names {
        let l = ns.metadata.labels.unwrap();
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted", "{:?}", ns.metadata.name);
    }
}

#[test]
fn the_server_may_do_only_what_the_driver_calls_in_the_sandbox_namespace() {
    let objs = objects();
    assert!(of_kind(&objs, "ClusterRole").is_empty() && of_kind(&objs, "ClusterRoleBinding").is_empty());
    let roles = of_kind(&objs, "Role");
    assert_eq!(roles.len(), 1);
    let role: Role = serde_json::from_value(roles[0].clone()).unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some("podgate-sandboxes"));
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("pods", &["get", "list", "watch", "create", "delete"][..]),
        ("pods/log", &["get"][..]),
        ("pods/portforward", &["get", "create"][..]),
        ("secrets", &["get", "list", "create", "patch", "delete"][..]),
        ("persistentvolumeclaims", &["get", "list", "create", "delete"][..]),
        ("events", &["list"][..]),
        ("networkpolicies", &["get", "list", "create", "delete"][..]),
    ]);
    for rule in role.rules.unwrap() {
        for r in rule.resources.unwrap() {
            let ok = allowed.get(r.as_str()).unwrap_or_else(|| panic!("the role grants {r}"));
            for verb in &rule.verbs {
                assert!(ok.contains(&verb.as_str()), "{r}: {verb}");
            }
        }
        assert!(!rule.api_groups.unwrap().iter().any(|g| g == "*"));
    }
    let binding: RoleBinding = one(&objs, "RoleBinding", "podgate-server");
    assert_eq!(binding.metadata.namespace.as_deref(), Some("podgate-sandboxes"));
    let s = &binding.subjects.unwrap()[0];
    assert_eq!(
        (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
        ("ServiceAccount", "podgate-server", Some("podgate"))
    );
    assert_eq!(binding.role_ref.kind, "Role");
}

#[test]
fn the_server_deployment_is_restricted_replicated_and_probed() {
    let objs = objects();
    let d: Deployment = one(&objs, "Deployment", "podgate-server");
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("podgate-server"));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.clone().unwrap().type_, "RuntimeDefault");
    // The data dir is an emptyDir (root's): the pod's fsGroup, the server's own group, gives it
    // to the server (tests/data_dir.rs in the podgate crate starts the server on such a folder).
    assert!(psc.fs_group.is_some() && psc.fs_group == psc.run_as_group, "{psc:?}");
    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    let probe_path = |p: Option<k8s_openapi::api::core::v1::Probe>| p.unwrap().http_get.unwrap().path.unwrap();
    assert_eq!(probe_path(c.readiness_probe.clone()), "/readyz");
    assert_eq!(probe_path(c.liveness_probe.clone()), "/healthz");
    let env = c.env.clone().unwrap();
    let db = env.iter().find(|e| e.name == "PODGATE_DATABASE_URL").expect("database url");
    assert_eq!(db.value, None, "the database URL comes from a Secret");
    assert_eq!(db.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, "podgate-database");
    assert!(c.resources.as_ref().unwrap().limits.is_some());
    // One SSH host key for every replica, from a Secret.
    let key = pod.volumes.unwrap().into_iter().find(|v| v.name == "ssh-host-key").unwrap();
    assert_eq!(key.secret.unwrap().secret_name.as_deref(), Some("podgate-ssh-host-key"));

    let pdb: PodDisruptionBudget = one(&objs, "PodDisruptionBudget", "podgate-server");
    let pdb = pdb.spec.unwrap();
    assert!(pdb.min_available.is_some());
    assert_eq!(pdb.selector.unwrap().match_labels, spec.selector.match_labels);
}

#[test]
fn services_ingress_and_monitoring_reach_the_server() {
    let objs = objects();
    let labels = one::<Deployment>(&objs, "Deployment", "podgate-server").spec.unwrap().selector.match_labels;
    let http: Service = one(&objs, "Service", "podgate-http");
    let hs = http.spec.unwrap();
    assert_eq!(hs.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(hs.selector, labels);
    let ssh: Service = one(&objs, "Service", "podgate-ssh");
    let ss = ssh.spec.unwrap();
    assert_eq!(ss.ports.unwrap()[0].port, 22);
    assert_eq!(ss.selector, labels);

    let ing: Ingress = one(&objs, "Ingress", "podgate");
    let a = ing.metadata.annotations.unwrap();
    assert!(a.contains_key("cert-manager.io/cluster-issuer"));
    for t in ["nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"] {
        assert!(a[t].parse::<u64>().unwrap() >= 3600, "{t}: WebSockets stay open");
    }
    let spec = ing.spec.unwrap();
    assert!(!spec.tls.unwrap().is_empty());
    let backend = spec.rules.unwrap()[0].http.clone().unwrap().paths[0].backend.service.clone().unwrap();
    assert_eq!(backend.name, "podgate-http");

    // Monitoring is its own overlay: the base plus the ServiceMonitor.
    let monitored = kustomization(&deploy_dir().join("../kubernetes-monitoring"));
    assert_eq!(monitored.len(), objs.len() + 1);
    let sm = of_kind(&monitored, "ServiceMonitor").remove(0);
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
    let sel: BTreeMap<String, String> = serde_json::from_value(sm["spec"]["selector"]["matchLabels"].clone()).unwrap();
    assert_eq!(
        Some(sel),
        http.metadata
            .labels
            .map(|l| { l.into_iter().filter(|(k, _)| k == "app.kubernetes.io/name").collect::<BTreeMap<_, _>>() })
    );
}

#[test]
fn sandboxes_are_denied_by_default_and_the_server_reaches_their_agents() {
    let objs = objects();
    let deny: NetworkPolicy = one(&objs, "NetworkPolicy", "default-deny");
    assert_eq!(deny.metadata.namespace.as_deref(), Some("podgate-sandboxes"));
    let s = deny.spec.unwrap();
    assert_eq!(s.pod_selector.unwrap_or_default(), Default::default(), "every pod");
    assert_eq!(s.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert!(s.ingress.is_none() && s.egress.is_none(), "no rule: nothing admitted");

    let server: NetworkPolicy = one(&objs, "NetworkPolicy", "podgate-server");
    let s = server.spec.unwrap();
    let from = s.ingress.unwrap()[0].from.clone().unwrap();
    assert!(
        from.iter().any(|p| p.namespace_selector.as_ref().and_then(|n| n.match_labels.as_ref())
            == Some(&BTreeMap::from([("kubernetes.io/metadata.name".to_string(), "ingress-nginx".to_string())]))),
        "the ingress controller reaches the server"
    );
    let to_agents = s.egress.unwrap().into_iter().any(|r| {
        r.ports.unwrap_or_default().iter().any(|p| {
            p.port
                == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                    podgate_kube::objects::AGENT_PORT.into(),
                ))
        })
    });
    assert!(to_agents, "the server reaches the agent port");
    // The driver's per-sandbox policy admits exactly these server pods.
    let d = podgate_kube::KubeConfig::default();
    let labels = one::<Deployment>(&objs, "Deployment", "podgate-server").spec.unwrap().template.metadata.unwrap();
    for (k, v) in &d.server_labels {
        assert_eq!(labels.labels.as_ref().unwrap().get(k), Some(v));
    }
    assert_eq!(labels.namespace, None);
    assert_eq!(
        one::<Deployment>(&objs, "Deployment", "podgate-server").metadata.namespace.unwrap(),
        d.server_namespace
    );
}

#[test]
fn the_sandbox_namespace_has_a_quota_and_limits() {
    let objs = objects();
    let q: ResourceQuota = one(&objs, "ResourceQuota", "podgate-sandboxes");
    assert_eq!(q.metadata.namespace.as_deref(), Some("podgate-sandboxes"));
    let hard = q.spec.unwrap().hard.unwrap();
    for k in ["pods", "limits.cpu", "limits.memory", "persistentvolumeclaims"] {
        assert!(hard.contains_key(k), "{k}");
    }
    let lr: LimitRange = one(&objs, "LimitRange", "podgate-sandboxes");
    let limits = lr.spec.unwrap().limits;
    let c = limits.iter().find(|l| l.type_ == "Container").unwrap();
    assert!(c.default.is_some() && c.max.is_some());
}

#[test]
fn images_are_built_non_root_in_stages_and_secrets_stay_out_of_git() {
    let root = deploy_dir().join("..");
    for file in ["server.Dockerfile", "agent.Dockerfile"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")) >= 2, "{file}: multi-stage");
        let user = text.lines().rfind(|l| l.starts_with("USER ")).expect("a USER line");
        assert!(!user.contains(" 0") && !user.contains("root"), "{file}: {user}");
    }
    let ignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    for pattern in ["*.key", "*.token", "kubeconfig*", "secrets/"] {
        assert!(ignore.lines().any(|l| l == pattern), "deploy/.gitignore lacks {pattern}");
    }
}
