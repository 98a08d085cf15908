//! podgate's Docker Engine driver: one container per sandbox, the static agent bind-mounted
//! read-only as its entrypoint, the agent's unix socket in a per-sandbox host directory.

mod disk;
mod errors;
pub mod firewall;
mod fscrypt;
mod images;
mod names;
mod network;

pub use names::container_name;

use std::collections::HashMap;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummaryStateEnum, HealthConfig, HostConfig,
    HostConfigLogConfig, ResourcesUlimits,
};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};
use futures_util::StreamExt as _;
use podgate_runtime::{
    AgentEndpoint, Driver, Error, Instance, InstanceStatus, PlacementSpec, Result, SidecarPlacement,
};

use errors::{already, engine_error, is_not_found};

/// Label on every container podgate creates, holding the sandbox id.
pub const LABEL_SANDBOX: &str = "io.podgate.sandbox";
/// Label holding the id of the server instance that owns the container.
pub const LABEL_INSTANCE: &str = "io.podgate.instance";
/// Label of a sidecar container, holding its name (its sandbox is in [`LABEL_SANDBOX`]).
pub const LABEL_SIDECAR: &str = "io.podgate.sidecar";
/// Label on podgate's persistent volumes (value: the volume's name).
pub const LABEL_VOLUME: &str = "io.podgate.volume";
/// Prefix of the user's labels on a sandbox's container (`io.podgate.label.KEY=VALUE`).
pub const LABEL_USER_PREFIX: &str = "io.podgate.label.";

/// Where the agent binary and its run directory appear inside the container.
const AGENT_PATH: &str = "/.podgate/bin/podgate-agent";
const RUN_PATH: &str = "/.podgate/run";
/// Longest unix socket path the kernel accepts, minus a margin.
const MAX_SOCKET_PATH: usize = 100;

/// How the driver places sandboxes.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The static agent binary on this host.
    pub agent_bin: PathBuf,
    /// Host directory holding one run directory (agent socket, secret) per sandbox.
    pub run_dir: PathBuf,
    /// Id of this server instance; only containers with this label are ever touched.
    pub instance: String,
    /// Extra `podgate-agent serve` flags (e.g. `--terminal-idle-seconds 3600`).
    pub agent_args: Vec<String>,
    /// The Docker network of sandboxes with egress; created (inter-container traffic off) when
    /// missing, and guarded by the egress firewall.
    pub network: String,
    /// Addresses (IPv4 CIDRs) sandboxes may reach although they are private.
    pub egress_allow: Vec<String>,
    /// Most processes (and threads) a sandbox may have.
    pub pids_limit: i64,
    /// Most open files of each process in a sandbox (soft and hard limit).
    pub nofile_limit: i64,
    /// Registries images may be pulled from (`*`: any). An image the engine has is used
    /// whatever its registry; no other registry is ever contacted.
    pub pull_registries: Vec<String>,
    /// Host directory of sized workspace volumes (ext4 images and their mount points); empty:
    /// volumes are the engine's own, unbounded.
    pub volume_dir: PathBuf,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            agent_bin: PathBuf::new(),
            run_dir: PathBuf::new(),
            instance: String::new(),
            agent_args: Vec::new(),
            network: "podgate".into(),
            egress_allow: Vec::new(),
            pids_limit: 512,
            nofile_limit: 4096,
            pull_registries: vec![podgate_types::image_ref::DEFAULT_REGISTRY.to_string()],
            volume_dir: PathBuf::new(),
        }
    }
}

/// Capabilities a root sandbox keeps (all others are dropped): enough to own files, switch
/// users and bind low ports; no raw sockets, mknod, chroot, audit or admin rights.
pub const ROOT_CAPABILITIES: &[&str] =
    &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETUID", "SETGID", "NET_BIND_SERVICE"];
/// Capabilities the agent of a non-root sandbox needs: for its start (create `/workspace`, empty
/// the bounding set, switch to its own uid) and, kept under that uid, to start the user's
/// processes as the user and to signal them (SETUID, SETGID, KILL). The sandbox user's processes
/// hold none: the bounding set is empty and no-new-privileges is set.
pub const DROP_CAPABILITIES: &[&str] = &["CHOWN", "SETUID", "SETGID", "SETPCAP", "KILL"];

/// The Docker driver.
pub struct DockerDriver {
    docker: Docker,
    cfg: DockerConfig,
    /// Id of the sandbox network.
    network_id: String,
    /// How the storage driver caps writable layers.
    layer_cap: disk::LayerCap,
    /// Sized workspace volumes.
    volumes: disk::Volumes,
}

impl DockerDriver {
    /// Connects to the engine named by `DOCKER_HOST` (or the default socket) and negotiates the API version.
    pub async fn connect(cfg: DockerConfig) -> Result<DockerDriver> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| Error::Unavailable(format!("cannot connect to the docker engine: {e}")))?
            .negotiate_version()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot reach the docker engine: {e}")))?;
        let probe = cfg.run_dir.join("sb-00000000000000000000").join("agent.sock");
        if probe.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::InvalidSpec(format!(
                "run directory {} is too long for unix socket paths; use a shorter --data-dir",
                cfg.run_dir.display()
            )));
        }
        std::fs::create_dir_all(&cfg.run_dir)
            .map_err(|e| Error::Unavailable(format!("cannot create {}: {e}", cfg.run_dir.display())))?;
        let layer_cap = disk::LayerCap::of(&docker).await;
        if layer_cap == disk::LayerCap::None {
            tracing::warn!(
                "sandboxes' writable layers are not size-capped: the engine's storage driver has no quotas \
                 (use btrfs, zfs, or overlay2 on XFS with pquota; see docs/SECURITY.md)"
            );
        }
        let volumes = disk::Volumes::new(cfg.volume_dir.clone());
        let mut driver = DockerDriver { docker, cfg, network_id: String::new(), layer_cap, volumes };
        driver.rename_legacy_containers().await?;
        let (network_id, bridge) = driver.ensure_network().await?;
        driver.network_id = network_id;
        firewall::apply(&bridge, &driver.cfg.egress_allow).await.map_err(|e| {
            Error::Unavailable(format!("cannot install the egress firewall of network {}: {e}", driver.cfg.network))
        })?;
        Ok(driver)
    }

    /// A sidecar: in the sandbox's network namespace, with its own limits; unprivileged ones get
    /// the capabilities of a root sandbox and no-new-privileges, privileged ones everything.
    fn sidecar_body(&self, spec: &PlacementSpec, s: &SidecarPlacement) -> ContainerCreateBody {
        let labels = HashMap::from([
            (LABEL_SANDBOX.to_string(), spec.sandbox_id.clone()),
            (LABEL_INSTANCE.to_string(), self.cfg.instance.clone()),
            (LABEL_SIDECAR.to_string(), s.name.clone()),
        ]);
        let (cap_drop, cap_add, security_opt) = if s.privileged {
            (None, None, None)
        } else {
            (
                Some(vec!["ALL".to_string()]),
                Some(ROOT_CAPABILITIES.iter().map(|c| c.to_string()).collect()),
                Some(vec!["no-new-privileges".to_string()]),
            )
        };
        ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: s.cmd.clone(),
            env: Some(s.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            stop_timeout: Some(10),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", self.container_name(&spec.sandbox_id))),
                nano_cpus: Some((s.cpu * 1e9) as i64),
                memory: Some(s.memory as i64),
                memory_swap: Some(s.memory as i64),
                pids_limit: Some(self.cfg.pids_limit),
                privileged: Some(s.privileged),
                cap_drop,
                cap_add,
                security_opt,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Names of this sandbox's sidecar containers.
    async fn sidecar_containers(&self, sandbox_id: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_INSTANCE}={}", self.cfg.instance),
                format!("{LABEL_SANDBOX}={sandbox_id}"),
                LABEL_SIDECAR.to_string(),
            ],
        )]);
        let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| Error::Unavailable(engine_error(&e)))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Ids of this sandbox's containers (its own and its sidecars').
    async fn containers_of(&self, sandbox_id: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([(
            "label",
            vec![format!("{LABEL_INSTANCE}={}", self.cfg.instance), format!("{LABEL_SANDBOX}={sandbox_id}")],
        )]);
        let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| Error::Unavailable(engine_error(&e)))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Force-removes a container; one already gone (or going) is fine.
    async fn remove(&self, name: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 409: another call is removing it; it is gone when that ends.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                self.wait_gone(name).await
            }
            Err(e) => Err(Error::Unavailable(engine_error(&e))),
        }
    }

    /// Waits (at most 30 s) until the container `name` no longer exists.
    async fn wait_gone(&self, name: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.docker.inspect_container(name, None::<InspectContainerOptions>).await {
                Err(e) if is_not_found(&e) => return Ok(()),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(Error::Unavailable(format!("container {name} is still being removed")));
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    fn sandbox_dir(&self, sandbox_id: &str) -> PathBuf {
        self.cfg.run_dir.join(sandbox_id)
    }

    /// Writes the agent's secret into a fresh run directory only root on the host can read.
    fn prepare_run_dir(&self, spec: &PlacementSpec) -> Result<PathBuf> {
        let dir = self.sandbox_dir(&spec.sandbox_id);
        let io = |e: std::io::Error| Error::Unavailable(format!("preparing {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let secret = dir.join("secret");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&secret)
            .map_err(io)?;
        std::io::Write::write_all(&mut f, spec.agent_secret.as_bytes()).map_err(io)?;
        Ok(dir)
    }

    fn body(&self, spec: &PlacementSpec, dir: &Path) -> ContainerCreateBody {
        let mut entrypoint = vec![
            AGENT_PATH.to_string(),
            "serve".into(),
            "--socket".into(),
            format!("{RUN_PATH}/agent.sock"),
            "--secret-file".into(),
            format!("{RUN_PATH}/secret"),
        ];
        entrypoint.extend(self.cfg.agent_args.iter().cloned());
        let (uid, gid) = spec.user;
        entrypoint.extend(["--user".to_string(), format!("{uid}:{gid}")]);
        entrypoint.push("--".into());
        entrypoint.extend(spec.cmd.clone().unwrap_or_default());
        let caps = if spec.user.0 == 0 { ROOT_CAPABILITIES } else { DROP_CAPABILITIES };
        // `/tmp` in memory (charged to the sandbox's memory limit); with a read-only root,
        // `/workspace` too, owned by the sandbox user.
        // Each is at most half the memory limit, so filling it gives ENOSPC, not an OOM kill.
        let size = spec.memory.map_or(String::new(), |m| format!(",size={}", (m / 2).max(1 << 20)));
        let mut tmpfs = HashMap::from([("/tmp".to_string(), format!("rw,exec,nosuid,nodev,mode=1777{size}"))]);
        if spec.read_only_root && spec.workspace_volume.is_none() {
            tmpfs.insert("/workspace".into(), format!("rw,exec,nosuid,nodev,mode=0755,uid={uid},gid={gid}{size}"));
        }
        let mut binds = vec![
            format!("{}:{AGENT_PATH}:ro", self.cfg.agent_bin.display()),
            format!("{}:{RUN_PATH}:rw", dir.display()),
        ];
        if let Some(volume) = &spec.workspace_volume {
            // A new volume starts as a copy of the image's /workspace (owner included).
            binds.push(format!("{volume}:/workspace:rw"));
        }
        let mut labels = HashMap::from([
            (LABEL_SANDBOX.to_string(), spec.sandbox_id.clone()),
            (LABEL_INSTANCE.to_string(), self.cfg.instance.clone()),
        ]);
        labels.extend(spec.labels.iter().map(|(k, v)| (format!("{LABEL_USER_PREFIX}{k}"), v.clone())));
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(entrypoint),
            // An empty Cmd replaces the image's CMD: the main command comes from the spec only.
            cmd: Some(Vec::new()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            hostname: Some(spec.sandbox_id.clone()),
            stop_timeout: Some(10),
            // The image's USER and HEALTHCHECK never apply: the agent starts as root and drops
            // to its own uid itself, and nothing else runs in the sandbox with privileges.
            user: Some("0:0".into()),
            healthcheck: Some(HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() }),
            host_config: Some(HostConfig {
                binds: Some(binds),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(self.cfg.nofile_limit),
                    hard: Some(self.cfg.nofile_limit),
                }]),
                nano_cpus: spec.cpu.map(|c| (c * 1e9) as i64),
                memory: spec.memory.map(|m| m as i64),
                // Without swap accounting the memory limit would leak into swap.
                memory_swap: spec.memory.map(|m| m as i64),
                pids_limit: Some(self.cfg.pids_limit),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: Some(caps.iter().map(|c| c.to_string()).collect()),
                // The engine's default seccomp profile applies as long as none is named here.
                security_opt: Some(vec!["no-new-privileges".into()]),
                readonly_rootfs: Some(spec.read_only_root),
                tmpfs: Some(tmpfs),
                // The main command's output is kept, but not without end on the host's disk.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), "10m".to_string()),
                        ("max-file".to_string(), "2".to_string()),
                    ])),
                }),
                network_mode: Some(if spec.egress { self.network_id.clone() } else { "none".into() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The sandbox of one of this server's sandbox containers (not sidecars).
    fn instance_of(&self, labels: Option<&HashMap<String, String>>) -> Option<String> {
        let labels = labels.filter(|l| !l.contains_key(LABEL_SIDECAR))?;
        (labels.get(LABEL_INSTANCE) == Some(&self.cfg.instance)).then(|| labels.get(LABEL_SANDBOX).cloned()).flatten()
    }
}

#[async_trait::async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn ping(&self) -> Result<()> {
        self.docker.ping().await.map(|_| ()).map_err(|e| Error::Unavailable(engine_error(&e)))
    }

    #[tracing::instrument(name = "docker.create", skip_all, fields(sandbox_id = %spec.sandbox_id, image = %spec.image))]
    async fn create(&self, spec: &PlacementSpec) -> Result<()> {
        let dir = self.prepare_run_dir(spec)?;
        let main = self.container_name(&spec.sandbox_id);
        let mut result = match &spec.workspace_volume {
            Some(volume) => {
                self.ensure_volume(volume, spec.workspace_size, spec.user, spec.workspace_key.as_ref()).await
            }
            None => Ok(()),
        };
        if result.is_ok() {
            result = self.create_pulling(&main, &spec.image, spec.disk, self.body(spec, &dir)).await;
        }
        for s in &spec.sidecars {
            if result.is_err() {
                break;
            }
            let name = self.sidecar_container_name(&spec.sandbox_id, &s.name);
            result = self.create_pulling(&name, &s.image, spec.disk, self.sidecar_body(spec, s)).await;
        }
        if result.is_err() {
            // Nothing half-made stays: the containers made so far, then the run directory.
            let _ = self.delete(&spec.sandbox_id).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    #[tracing::instrument(name = "docker.start", skip(self))]
    async fn start(&self, sandbox_id: &str) -> Result<AgentEndpoint> {
        match self.docker.start_container(&self.container_name(sandbox_id), None::<StartContainerOptions>).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Err(Error::NotFound(sandbox_id.to_string())),
            Err(e) => return Err(Error::Unavailable(engine_error(&e))),
        }
        // Sidecars join the sandbox's network namespace, which exists once it runs.
        for id in self.sidecar_containers(sandbox_id).await? {
            self.docker
                .start_container(&id, None::<StartContainerOptions>)
                .await
                .map_err(|e| Error::InvalidSpec(format!("a sidecar did not start: {}", engine_error(&e))))?;
        }
        // The agent is the container's PID 1: only that process may serve its socket.
        let main = self.container_name(sandbox_id);
        let state = match self.docker.inspect_container(&main, None::<InspectContainerOptions>).await {
            Ok(c) => c.state,
            Err(e) if is_not_found(&e) => return Err(Error::NotFound(sandbox_id.to_string())),
            Err(e) => return Err(Error::Unavailable(engine_error(&e))),
        };
        let pid = state.and_then(|s| s.pid).and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0);
        let pid = pid.ok_or_else(|| Error::Unavailable(format!("sandbox {sandbox_id} has no running agent")))?;
        Ok(AgentEndpoint::UnixAgent { path: self.sandbox_dir(sandbox_id).join("agent.sock"), pid })
    }

    async fn inspect(&self, sandbox_id: &str) -> Result<Option<Instance>> {
        let c = match self
            .docker
            .inspect_container(&self.container_name(sandbox_id), None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::Unavailable(engine_error(&e))),
        };
        let container_labels = c.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        if self.instance_of(Some(&container_labels)).as_deref() != Some(sandbox_id) {
            return Ok(None);
        }
        let labels = container_labels
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_USER_PREFIX)?.to_string(), v)))
            .collect();
        let st = c.state.unwrap_or_default();
        let status = match st.status {
            Some(ContainerStateStatusEnum::CREATED) => InstanceStatus::Created,
            Some(ContainerStateStatusEnum::RUNNING) => InstanceStatus::Running,
            Some(ContainerStateStatusEnum::PAUSED) => InstanceStatus::Paused,
            Some(ContainerStateStatusEnum::EXITED) | Some(ContainerStateStatusEnum::DEAD) => {
                let mut reason = format!("container exited with code {}", st.exit_code.unwrap_or(-1));
                if st.oom_killed == Some(true) {
                    reason.push_str(" (killed: out of memory)");
                }
                if let Some(err) = st.error.filter(|e| !e.is_empty()) {
                    reason.push_str(&format!(": {err}"));
                }
                InstanceStatus::Exited { reason }
            }
            other => InstanceStatus::Other(format!("{other:?}").to_lowercase()),
        };
        Ok(Some(Instance { sandbox_id: sandbox_id.to_string(), status, labels }))
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_INSTANCE}={}", self.cfg.instance)])]);
        let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(|e| Error::Unavailable(engine_error(&e)))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let id = self.instance_of(c.labels.as_ref())?;
                let status = match c.state {
                    Some(ContainerSummaryStateEnum::CREATED) => InstanceStatus::Created,
                    Some(ContainerSummaryStateEnum::RUNNING) => InstanceStatus::Running,
                    Some(ContainerSummaryStateEnum::PAUSED) => InstanceStatus::Paused,
                    Some(ContainerSummaryStateEnum::EXITED) | Some(ContainerSummaryStateEnum::DEAD) => {
                        InstanceStatus::Exited { reason: c.status.unwrap_or_default() }
                    }
                    other => InstanceStatus::Other(format!("{other:?}").to_lowercase()),
                };
                Some(Instance::new(id, status))
            })
            .collect())
    }

    #[tracing::instrument(name = "docker.delete", skip(self))]
    async fn delete(&self, sandbox_id: &str) -> Result<()> {
        // Only remove containers that are ours (labelled with this instance and sandbox),
        // found by their labels whatever their names: sidecars first.
        for id in self.sidecar_containers(sandbox_id).await? {
            self.remove(&id).await?;
        }
        for id in self.containers_of(sandbox_id).await? {
            self.remove(&id).await?;
        }
        let dir = self.sandbox_dir(sandbox_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Unavailable(format!("removing {}: {e}", dir.display()))),
        }
    }

    async fn snapshot(&self, sandbox_id: &str, image: &str) -> Result<u64> {
        let base = match self
            .docker
            .inspect_container(&self.container_name(sandbox_id), None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c.image,
            Err(e) if is_not_found(&e) => return Err(Error::NotFound(sandbox_id.to_string())),
            Err(e) => return Err(Error::Unavailable(engine_error(&e))),
        };
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let opts = bollard::query_parameters::CommitContainerOptionsBuilder::new()
            .container(&self.container_name(sandbox_id))
            .repo(repo)
            .tag(tag)
            .comment("podgate snapshot")
            .pause(true)
            .build();
        match self.docker.commit_container(opts, bollard::models::ContainerConfig::default()).await {
            Ok(_) => Ok(self.added_bytes(image, base.as_deref()).await),
            Err(e) if is_not_found(&e) => Err(Error::NotFound(sandbox_id.to_string())),
            Err(e) => Err(Error::Unavailable(engine_error(&e))),
        }
    }

    async fn delete_image(&self, image: &str) -> Result<()> {
        match self.docker.remove_image(image, None::<bollard::query_parameters::RemoveImageOptions>, None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, message }) => {
                Err(Error::InvalidSpec(format!("the image is in use: {message}")))
            }
            Err(e) => Err(Error::Unavailable(engine_error(&e))),
        }
    }

    async fn save_image(&self, image: &str, dest: &Path) -> Result<()> {
        self.save_archive(image, dest).await
    }

    async fn load_image(&self, src: &Path, image: &str) -> Result<u64> {
        self.load_archive(src, image).await
    }

    async fn build_image(&self, context: &Path, image: &str) -> Result<String> {
        self.build_from(context, image).await
    }

    async fn delete_volume(&self, name: &str) -> Result<()> {
        self.remove_volume(name).await
    }

    fn disk_caps(&self) -> podgate_runtime::DiskCaps {
        self.caps()
    }

    async fn unlock_volume(&self, name: &str, key: &podgate_runtime::VolumeKey) -> Result<()> {
        self.volumes.unlock(name, key).await
    }

    async fn lock_volume(&self, name: &str) -> Result<()> {
        self.volumes.lock(name).await
    }

    async fn pause(&self, sandbox_id: &str) -> Result<()> {
        let main = self.container_name(sandbox_id);
        self.docker.pause_container(&main).await.or_else(|e| already(e, sandbox_id))?;
        for id in self.sidecar_containers(sandbox_id).await? {
            self.docker.pause_container(&id).await.or_else(|e| already(e, sandbox_id))?;
        }
        Ok(())
    }

    async fn resume(&self, sandbox_id: &str) -> Result<Option<AgentEndpoint>> {
        for id in self.sidecar_containers(sandbox_id).await? {
            self.docker.unpause_container(&id).await.or_else(|e| already(e, sandbox_id))?;
        }
        let main = self.container_name(sandbox_id);
        self.docker.unpause_container(&main).await.or_else(|e| already(e, sandbox_id))?;
        // The same container, so the same socket.
        Ok(None)
    }

    async fn logs(&self, sandbox_id: &str, lines: usize) -> Result<String> {
        let opts =
            LogsOptionsBuilder::new().stdout(true).stderr(true).timestamps(true).tail(&lines.to_string()).build();
        let mut stream = self.docker.logs(&self.container_name(sandbox_id), Some(opts));
        let mut out = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => out.push_str(&chunk.to_string()),
                Err(e) if is_not_found(&e) => return Err(Error::NotFound(sandbox_id.to_string())),
                Err(e) => return Err(Error::Unavailable(engine_error(&e))),
            }
        }
        Ok(out)
    }
}
