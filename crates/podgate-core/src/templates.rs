//! Templates and warm pools: a template names a sandbox request (admins define them); creating
//! from one merges the caller's fields on top. A template with a pool keeps that many ready
//! sandboxes (created by the reconciler's leader, owned by the defining admin and counted
//! against their quota); a create that only adds a name, env, labels or a TTL claims one: it is
//! handed to the caller within the caller's quota, its TTL starts then, and its env applies to
//! every process started afterwards.

use podgate_types::state::SandboxState;

use std::collections::BTreeMap;
use std::sync::Arc;

use podgate_store::{SandboxRow, TemplateRow};
use podgate_types::api::{CreateSandboxRequest, Sandbox, Scheduling, Template, TemplateRequest};
use podgate_types::validate;

use crate::audit::Event;
use crate::clock::{from_ms, now_ms};
use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result, Role, ids};

/// Largest warm pool of one template.
const MAX_POOL: u32 = 100;
/// What non-admins see for a template's env values.
const HIDDEN: &str = "(hidden)";

/// The template service: templates and their warm pools.
#[derive(Clone)]
pub struct Templates {
    pub(crate) k: Arc<Kernel>,
}

impl Templates {
    /// Defines (or replaces) template `name` (admins).
    pub async fn put(&self, caller: &Caller, name: &str, t: TemplateRequest) -> Result<Template> {
        caller.require_admin()?;
        validate::sandbox_name(name).map_err(|e| Error::Invalid(e.replace("sandbox name", "template name")))?;
        let r = &t.request;
        if r.name.is_some() || r.template.is_some() || r.snapshot.is_some() || r.passphrase.is_some() {
            return Err(Error::Invalid(
                "a template's request has no `name`, `template`, `snapshot` or `passphrase`".into(),
            ));
        }
        if t.pool_size > MAX_POOL {
            return Err(Error::Invalid(format!("pool_size {} is over the maximum of {MAX_POOL}", t.pool_size)));
        }
        if let Some(s) = &t.scheduling {
            validate::scheduling(s).map_err(Error::Invalid)?;
        }
        self.check_template_request(&t.request)?;
        let row = TemplateRow {
            name: name.to_string(),
            request: serde_json::to_string(&t.request).map_err(|e| Error::Internal(e.to_string()))?,
            pool_size: i64::from(t.pool_size),
            owner_id: caller.user_id.clone(),
            created_at: now_ms(),
            scheduling: match &t.scheduling {
                Some(s) => Some(serde_json::to_string(s).map_err(|e| Error::Internal(e.to_string()))?),
                None => None,
            },
            pool_error: None,
            pool_error_at: None,
        };
        self.k.store.put_template(&row).await?;
        let detail = format!("{name} (pool {})", t.pool_size);
        self.k.audit.record(Event::by(caller, "template.put").detail(detail)).await;
        self.template_view(self.k.store.template(name).await?.unwrap_or(row)).await
    }

    /// Every template (any user may list them, to create from one). Only admins see the values
    /// of their env (they may hold credentials); others see the names.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Template>> {
        let mut out = Vec::new();
        for t in self.k.store.templates().await? {
            let mut view = self.template_view(t).await?;
            if caller.role != crate::Role::Admin {
                view.request.env.values_mut().for_each(|v| *v = HIDDEN.to_string());
            }
            out.push(view);
        }
        Ok(out)
    }

    /// What a template's request may hold: the values a create would accept (TTL, idle
    /// timeout, resources, env, image), checked when the template is put rather than at its
    /// first use.
    fn check_template_request(&self, r: &CreateSandboxRequest) -> Result<()> {
        let max_ttl = self.k.cfg.max_ttl.as_secs();
        if let Some(ttl) = r.ttl_seconds
            && !(1..=max_ttl).contains(&ttl)
        {
            return Err(Error::Invalid(format!("ttl_seconds {ttl} is out of range: use 1 to {max_ttl}")));
        }
        if let Some(idle) = r.idle_timeout_seconds
            && idle > max_ttl
        {
            return Err(Error::Invalid(format!(
                "idle_timeout_seconds {idle} is out of range: use 0 (never) to {max_ttl}"
            )));
        }
        if let Some(cpu) = r.cpu
            && !(cpu.is_finite() && cpu > 0.0 && cpu <= 1024.0)
        {
            return Err(Error::Invalid(format!("invalid cpu {cpu}: give cores between 0 and 1024")));
        }
        if let Some(m) = r.memory
            && !((6 << 20)..=crate::spec::MAX_MEMORY).contains(&m.0)
        {
            return Err(Error::Invalid(format!("memory {} bytes is out of range: give 6Mi to 16Ti", m.0)));
        }
        validate::env(&r.env).map_err(Error::Invalid)?;
        validate::labels(&r.labels).map_err(Error::Invalid)?;
        if let Some(image) = &r.image {
            crate::spec::check_image(&self.k.cfg.sandbox, image)?;
        }
        Ok(())
    }

    /// Deletes template `name` and its pool's unclaimed sandboxes (admins).
    pub async fn delete(&self, caller: &Caller, name: &str) -> Result<()> {
        caller.require_admin()?;
        let t = self
            .k
            .store
            .template(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {name:?} not found")))?;
        self.k.store.delete_template(name).await?;
        for row in self.pool_rows(&t).await? {
            if let Err(e) = self.k.sandboxes().remove(&row.id, "its template was deleted").await {
                tracing::warn!(sandbox_id = %row.id, error = %e, "removing a pool sandbox failed");
            }
        }
        self.k.audit.record(Event::by(caller, "template.delete").detail(name)).await;
        Ok(())
    }

    /// Builds template `name`'s image from the build context `context` (a tar with a
    /// `Dockerfile`) and points the template at it; the pool's unclaimed sandboxes go, so it
    /// refills from the new image (admins).
    pub async fn build(&self, caller: &Caller, name: &str, context: &std::path::Path) -> Result<Template> {
        caller.require_admin()?;
        let t = self
            .k
            .store
            .template(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {name:?} not found")))?;
        let image = format!("podgate-template-{name}:{}", now_ms());
        let built: Result<String> = self.k.driver.build_image(context, &image).await.map_err(|e| match e {
            podgate_runtime::Error::InvalidSpec(m) => Error::Invalid(m),
            other => other.into(),
        });
        self.k
            .audit
            .record(Event::by(caller, "template.build").detail(format!("{name}: {image}")).outcome(&built))
            .await;
        let log = built?;
        tracing::info!(template = %name, %image, output = %log, "template image built");
        let mut req: CreateSandboxRequest =
            serde_json::from_str(&t.request).map_err(|e| Error::Internal(format!("template {name}: {e}")))?;
        req.image = Some(image);
        let request = serde_json::to_string(&req).map_err(|e| Error::Internal(e.to_string()))?;
        self.k.store.put_template(&TemplateRow { request, ..t.clone() }).await?;
        for row in self.pool_rows(&t).await? {
            if let Err(e) = self.k.sandboxes().remove(&row.id, "its template was rebuilt").await {
                tracing::warn!(sandbox_id = %row.id, error = %e, "removing a stale pool sandbox failed");
            }
        }
        self.template_view(self.k.store.template(name).await?.unwrap_or(t)).await
    }

    /// For a create with `template`: a claimed pool sandbox, or the merged request to create.
    pub(crate) async fn create_from_template(
        &self,
        caller: &Caller,
        req: CreateSandboxRequest,
    ) -> Result<std::result::Result<Sandbox, (CreateSandboxRequest, Option<Scheduling>)>> {
        let name = req.template.clone().unwrap_or_default();
        let t = self
            .k
            .store
            .template(&name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {name:?} not found")))?;
        let base: CreateSandboxRequest =
            serde_json::from_str(&t.request).map_err(|e| Error::Internal(format!("template {name}: {e}")))?;
        if t.pool_size > 0
            && claimable(&req)
            && let Some(sb) = self.claim(caller, &t, &base, &req).await?
        {
            return Ok(Ok(sb));
        }
        Ok(Err((merge(base, req), scheduling_of(&t)?)))
    }

    /// Hands a ready sandbox of `t`'s pool to `caller`, if one is there.
    async fn claim(
        &self,
        caller: &Caller,
        t: &TemplateRow,
        base: &CreateSandboxRequest,
        req: &CreateSandboxRequest,
    ) -> Result<Option<Sandbox>> {
        let name = match &req.name {
            Some(n) => {
                validate::sandbox_name(n).map_err(Error::Invalid)?;
                n.clone()
            }
            None => ids::sandbox_name(),
        };
        validate::env(&req.env).map_err(Error::Invalid)?;
        validate::labels(&req.labels).map_err(Error::Invalid)?;
        let quota = self.k.quotas().limits_of(&caller.user_id).await?;
        let ttl = self.k.quotas().ttl_within(req.ttl_seconds.or(base.ttl_seconds), &quota)?;
        for cand in self.pool_rows(t).await?.into_iter().filter(|r| r.state == SandboxState::Running) {
            let mut spec = cand.spec.clone();
            spec.env.extend(req.env.clone());
            spec.labels.extend(req.labels.clone());
            let now = now_ms();
            let expires = now.saturating_add((ttl as i64).saturating_mul(1000));
            spec.ttl_seconds = Some(crate::spec::ttl_from_creation(cand.created_at, expires).unwrap_or(ttl));
            let (cpu, memory, disk) = (cand.charged_cpu, cand.charged_memory, cand.charged_disk);
            let to = SandboxRow {
                owner_id: caller.user_id.clone(),
                name: name.clone(),
                spec,
                pool: None,
                expires_at: Some(expires),
                updated_at: now,
                ..cand.clone()
            };
            let ceiling = crate::limits::ceiling(&quota);
            if !self.k.store.transfer_sandbox_within(&to, &t.owner_id, ceiling).await? {
                match self.k.sandboxes().load(&cand.id).await? {
                    // Still in the pool: it does not fit the caller's quota.
                    r if r.owner_id == t.owner_id && r.state == SandboxState::Running => {
                        return Err(self.k.quotas().over_quota(&caller.user_id, &quota, cpu, memory, disk).await);
                    }
                    // Claimed by someone else a moment ago: try the next.
                    _ => continue,
                }
            }
            let row = self.k.sandboxes().load(&cand.id).await?;
            if !req.env.is_empty()
                && let Err(e) = self.k.sandboxes().agent(&row)?.set_env(&req.env).await
            {
                tracing::warn!(sandbox_id = %row.id, error = %e, "setting a claimed sandbox's env failed");
            }
            self.k.activity.touch(&row.id);
            let detail = format!("template {} (warm pool)", t.name);
            self.k.audit.record(Event::by(caller, "sandbox.create").sandbox(&row.id).detail(detail)).await;
            tracing::info!(sandbox_id = %row.id, template = %t.name, user_id = %caller.user_id, "claimed a warm sandbox");
            return Ok(Some(self.k.sandboxes().view(&row)?));
        }
        Ok(None)
    }

    /// The live sandboxes of `t`'s pool (not claimed yet).
    async fn pool_rows(&self, t: &TemplateRow) -> Result<Vec<SandboxRow>> {
        Ok(self.k.store.pool_sandboxes(&t.owner_id, &t.name).await?)
    }

    /// Starts the sandboxes templates' pools are missing (the reconciler's leader, each pass).
    /// Each template refills in its own task, one at a time.
    /// A failed refill is retried after a backoff ([`crate::pools`]) and its error kept on the
    /// template for `template ls` until one succeeds.
    pub(crate) async fn refill_pools(&self) -> Result<()> {
        for t in self.k.store.templates().await?.into_iter().filter(|t| t.pool_size > 0) {
            let filling = self.pool_rows(&t).await?.iter().filter(|r| HELD.contains(&r.state.as_str())).count();
            let missing = usize::try_from(t.pool_size).unwrap_or(0).saturating_sub(filling);
            if missing == 0 || !self.k.refilling.begin(&t.name, std::time::Instant::now()) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                let result = this.refill(&t, missing).await;
                let wait = this.k.refilling.end(&t.name, result.is_ok(), std::time::Instant::now());
                let recorded = match &result {
                    Err(e) => {
                        tracing::warn!(template = %t.name, error = %e, retry_in = ?wait, "refilling a warm pool failed");
                        this.k.store.set_pool_error(&t.name, Some(&e.to_string()), now_ms()).await
                    }
                    Ok(()) if t.pool_error.is_some() => this.k.store.set_pool_error(&t.name, None, now_ms()).await,
                    Ok(()) => Ok(()),
                };
                if let Err(e) = recorded {
                    tracing::warn!(template = %t.name, error = %e, "recording a pool refill's outcome failed");
                }
            });
        }
        Ok(())
    }

    async fn refill(&self, t: &TemplateRow, missing: usize) -> Result<()> {
        let owner = self.k.store.user(&t.owner_id).await?.ok_or_else(|| Error::NotFound("template owner".into()))?;
        let caller = Caller {
            user_id: owner.id,
            user_name: owner.name,
            role: Role::parse(&owner.role),
            source: None,
            credential: None,
        };
        let req: CreateSandboxRequest = serde_json::from_str(&t.request).map_err(|e| Error::Internal(e.to_string()))?;
        for _ in 0..missing {
            let name = format!("pool-{}-{}", t.name, ids::random_base32(6));
            let req = CreateSandboxRequest { name: Some(name), ..req.clone() };
            self.k.sandboxes().create_pooled(&caller, req, &t.name, scheduling_of(t)?).await?;
        }
        Ok(())
    }

    async fn template_view(&self, t: TemplateRow) -> Result<Template> {
        let ready = self.pool_rows(&t).await?.iter().filter(|r| r.state == SandboxState::Running).count();
        Ok(Template {
            request: serde_json::from_str(&t.request).map_err(|e| Error::Internal(e.to_string()))?,
            pool_size: u32::try_from(t.pool_size).unwrap_or(0),
            pool_ready: u32::try_from(ready).unwrap_or(u32::MAX),
            created_at: from_ms(t.created_at),
            scheduling: scheduling_of(&t)?,
            pool_error: t.pool_error.clone(),
            pool_error_at: t.pool_error_at.map(from_ms),
            name: t.name,
        })
    }
}

/// A template's Kubernetes scheduling, as stored.
fn scheduling_of(t: &TemplateRow) -> Result<Option<Scheduling>> {
    t.scheduling
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| Error::Internal(format!("template {}: {e}", t.name)))
}

/// States of a pool sandbox that count towards its pool.
const HELD: [&str; 3] = ["pending", "starting", "running"];

/// Whether a create from a template may take a ready sandbox: it sets nothing the sandbox was
/// made with, only what applies at claim time.
fn claimable(r: &CreateSandboxRequest) -> bool {
    let rest = CreateSandboxRequest {
        name: None,
        env: BTreeMap::new(),
        labels: BTreeMap::new(),
        ttl_seconds: None,
        template: None,
        ..r.clone()
    };
    serde_json::to_value(&rest).ok() == serde_json::to_value(CreateSandboxRequest::default()).ok()
}

/// `over` on top of the template's `base`: fields `over` sets win, `env` and `labels` merge.
fn merge(base: CreateSandboxRequest, over: CreateSandboxRequest) -> CreateSandboxRequest {
    let mut env = base.env;
    env.extend(over.env);
    let mut labels = base.labels;
    labels.extend(over.labels);
    CreateSandboxRequest {
        name: over.name,
        image: over.image.or(base.image),
        env,
        labels,
        cmd: over.cmd.or(base.cmd),
        cpu: over.cpu.or(base.cpu),
        memory: over.memory.or(base.memory),
        disk: over.disk.or(base.disk),
        volume_size: over.volume_size.or(base.volume_size),
        ttl_seconds: over.ttl_seconds.or(base.ttl_seconds),
        user: over.user.or(base.user),
        network: over.network.or(base.network),
        read_only_root: over.read_only_root || base.read_only_root,
        record_terminals: over.record_terminals || base.record_terminals,
        sidecars: if over.sidecars.is_empty() { base.sidecars } else { over.sidecars },
        persist: over.persist || base.persist,
        encrypt: over.encrypt || base.encrypt,
        // A template never holds one (refused when it is saved).
        passphrase: over.passphrase,
        idle_timeout_seconds: over.idle_timeout_seconds.or(base.idle_timeout_seconds),
        code: over.code.or(base.code),
        install: over.install.or(base.install),
        command: over.command.or(base.command),
        shell: over.shell || base.shell,
        snapshot: None,
        template: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_and_what_a_claim_may_set() {
        let base = CreateSandboxRequest {
            image: Some("img".into()),
            env: [("A".to_string(), "1".to_string()), ("B".to_string(), "1".to_string())].into(),
            cpu: Some(1.0),
            ..Default::default()
        };
        let over = CreateSandboxRequest {
            name: Some("n".into()),
            env: [("B".to_string(), "2".to_string())].into(),
            template: Some("t".into()),
            ..Default::default()
        };
        assert!(claimable(&over));
        let m = merge(base.clone(), over);
        assert_eq!(
            (m.image.as_deref(), m.cpu, m.name.as_deref(), m.template),
            (Some("img"), Some(1.0), Some("n"), None)
        );
        assert_eq!(m.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(m.env.get("B").map(String::as_str), Some("2"));
        assert!(!claimable(&CreateSandboxRequest { cpu: Some(2.0), ..Default::default() }));
        assert!(!claimable(&CreateSandboxRequest { persist: true, ..Default::default() }));
        assert_eq!(merge(base, CreateSandboxRequest { cpu: Some(2.0), ..Default::default() }).cpu, Some(2.0));
    }
}
