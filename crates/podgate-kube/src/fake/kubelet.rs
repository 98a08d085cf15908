//! A kubelet made of `docker` commands: runs a pod's init container and sandbox container on
//! the local Docker engine as the pod says (user, group, capabilities, no-new-privileges,
//! read-only root, emptyDirs, claims as host folders, `/tmp` in memory, env with secret
//! references resolved), never pulling. Sidecars and NFS volumes are left out.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::objects::LABEL_INSTANCE;

/// Why a container did not start, as a kubelet would put it.
#[derive(Debug)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// Runs pods on the Docker engine; their folders live under `root`.
pub struct DockerKubelet {
    root: PathBuf,
    /// Claims are folders owned by root, mode 0755, whatever the pod's `fsGroup` (as hostPath,
    /// local and some NFS volumes are); otherwise they are open to all (as `fsGroup` gives them).
    pub ignore_fs_group: std::sync::atomic::AtomicBool,
}

fn docker(args: &[String]) -> Result<String, String> {
    let out = Command::new("docker").args(args).output().map_err(|e| format!("running docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn failed(e: String) -> Waiting {
    if e.contains("No such image") || e.contains("pull access denied") || e.contains("not found") {
        Waiting { reason: "ErrImagePull".into(), message: e }
    } else if e.contains("invalid reference format") {
        Waiting { reason: "InvalidImageName".into(), message: e }
    } else {
        Waiting { reason: "RunContainerError".into(), message: e }
    }
}

fn folder(path: &std::path::Path) -> Result<(), Waiting> {
    std::fs::create_dir_all(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)))
        .map_err(|e| Waiting { reason: "CreateContainerConfigError".into(), message: e.to_string() })
}

impl DockerKubelet {
    pub fn new(root: PathBuf) -> DockerKubelet {
        DockerKubelet { root, ignore_fs_group: Default::default() }
    }

    /// The `docker run` flags for one container of `pod`, up to the image.
    fn flags(
        &self,
        pod: &Pod,
        c: &Container,
        secret: &dyn Fn(&str, &str) -> Option<String>,
    ) -> Result<Vec<String>, Waiting> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let psc = spec.security_context.unwrap_or_default();
        let mut f = vec!["--pull".to_string(), "never".into()];
        let sc = c.security_context.clone().unwrap_or_default();
        // The container's user, else the pod's, else the image's.
        if let Some(uid) = sc.run_as_user.or(psc.run_as_user) {
            let gid = sc.run_as_group.or(psc.run_as_group).unwrap_or(uid);
            f.extend(["--user".into(), format!("{uid}:{gid}")]);
        }
        let caps = sc.capabilities.unwrap_or_default();
        for d in caps.drop.unwrap_or_default() {
            f.extend(["--cap-drop".into(), d]);
        }
        for a in caps.add.unwrap_or_default() {
            f.extend(["--cap-add".into(), a]);
        }
        if sc.allow_privilege_escalation == Some(false) {
            f.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        if sc.read_only_root_filesystem == Some(true) {
            f.push("--read-only".into());
        }
        for m in c.volume_mounts.clone().unwrap_or_default() {
            let Some(v) = spec.volumes.iter().flatten().find(|v| v.name == m.name) else { continue };
            let ro = if m.read_only == Some(true) { ":ro" } else { "" };
            if let Some(e) = &v.empty_dir {
                if e.medium.as_deref() == Some("Memory") {
                    f.extend(["--tmpfs".into(), format!("{}:rw,exec,nosuid,nodev,mode=1777", m.mount_path)]);
                    continue;
                }
                let dir = self.root.join("pods").join(&name).join(&v.name);
                folder(&dir)?;
                f.extend(["-v".into(), format!("{}:{}{ro}", dir.display(), m.mount_path)]);
            } else if let Some(claim) = &v.persistent_volume_claim {
                let dir = self.root.join("claims").join(&claim.claim_name);
                if self.ignore_fs_group.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Waiting { reason: "CreateContainerConfigError".into(), message: e.to_string() })?;
                } else {
                    folder(&dir)?;
                }
                f.extend(["-v".into(), format!("{}:{}{ro}", dir.display(), m.mount_path)]);
            }
        }
        for e in c.env.clone().unwrap_or_default() {
            let value = match (e.value, e.value_from.and_then(|v| v.secret_key_ref)) {
                (Some(v), _) => v,
                (None, Some(r)) => secret(&r.name, &r.key).ok_or_else(|| Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: format!("secret {:?} not found", r.name),
                })?,
                (None, None) => String::new(),
            };
            f.extend(["-e".into(), format!("{}={value}", e.name)]);
        }
        if let Some(w) = &c.working_dir {
            f.extend(["-w".into(), w.clone()]);
        }
        let cmd = c.command.clone().unwrap_or_default();
        if let Some(entry) = cmd.first() {
            f.extend(["--entrypoint".into(), entry.clone()]);
        }
        f.push(c.image.clone().unwrap_or_default());
        f.extend(cmd.iter().skip(1).cloned());
        f.extend(c.args.clone().unwrap_or_default());
        Ok(f)
    }

    /// Runs the pod (blocking): its init containers to completion, then its first container;
    /// returns that container's IP. `secret(name, key)` resolves secret references.
    pub fn run(&self, pod: &Pod, secret: &dyn Fn(&str, &str) -> Option<String>) -> Result<String, Waiting> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let instance = pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_INSTANCE)).cloned().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        for init in spec.init_containers.iter().flatten() {
            let mut args = vec!["run".to_string(), "--rm".into(), "--network".into(), "none".into()];
            args.extend(self.flags(pod, init, secret)?);
            docker(&args).map_err(failed)?;
        }
        let main = spec
            .containers
            .first()
            .ok_or_else(|| Waiting { reason: "Invalid".into(), message: "no container".into() })?;
        let mut args = vec!["run".to_string(), "-d".into(), "--name".into(), self.container(&name)];
        // The test harness removes containers labelled with its server's instance.
        args.extend(["--label".into(), format!("io.podgate.instance={instance}")]);
        args.extend(self.flags(pod, main, secret)?);
        docker(&args).map_err(failed)?;
        let ip = docker(&[
            "inspect".into(),
            "-f".into(),
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}".into(),
            self.container(&name),
        ])
        .map_err(failed)?;
        Ok(ip)
    }

    fn container(&self, pod: &str) -> String {
        let root = self.root.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        format!("{root}-{pod}")
    }

    /// Removes the pod's container and its emptyDirs (claims stay).
    pub fn remove(&self, pod: &str) {
        let _ = docker(&["rm".into(), "-f".into(), self.container(pod)]);
        let _ = std::fs::remove_dir_all(self.root.join("pods").join(pod));
    }

    /// The end of the sandbox container's output.
    pub fn logs(&self, pod: &str, tail: usize, timestamps: bool) -> String {
        let mut args = vec!["logs".to_string(), "--tail".into(), tail.to_string(), self.container(pod)];
        if timestamps {
            args.insert(1, "--timestamps".into());
        }
        let out = Command::new("docker").args(args).output();
        out.map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
            .unwrap_or_default()
    }

    /// Waits (blocking) until the pod's sandbox container ends; its exit code and the end of
    /// its output (what `FallbackToLogsOnError` puts in the termination message). `None` when
    /// the container was removed (the pod deleted).
    pub fn wait(&self, pod: &str) -> Option<(i32, String)> {
        let code = docker(&["wait".into(), self.container(pod)]).ok()?.parse().ok()?;
        docker(&["inspect".into(), self.container(pod)]).ok()?;
        Some((code, self.logs(pod, 20, false)))
    }

    /// Removes a claim's folder.
    pub fn remove_claim(&self, claim: &str) {
        let _ = std::fs::remove_dir_all(self.root.join("claims").join(claim));
    }
}
