//! Rate limits (fixed one-minute windows counted in the database, so several servers on one
//! database enforce one limit) and per-user quotas (server defaults, overridden per user).

use podgate_store::{Ceiling, Store};
use podgate_types::MemorySize;
use podgate_types::api::SidecarPolicy;
use podgate_types::users::{Quota, QuotaLimits, QuotaOverrides, QuotaUsage};

use crate::audit::{Audit, Event};
use crate::clock::now_ms;
use crate::{Caller, Error, Result};

/// Length of a rate-limit window.
const WINDOW_MS: i64 = 60_000;

/// Requests allowed per minute; 0 turns a limit off.
#[derive(Clone, Copy, Debug)]
pub struct RateLimits {
    /// Every request from one source address, before authentication.
    pub per_address: u32,
    /// Every authenticated request of one user.
    pub per_user: u32,
    /// Sandbox creations of one user.
    pub creates_per_user: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { per_address: 6000, per_user: 6000, creates_per_user: 10 }
    }
}

/// Counts requests against [`RateLimits`].
#[derive(Clone)]
pub struct RateLimiter {
    store: Store,
    limits: RateLimits,
    audit: Audit,
}

impl RateLimiter {
    pub fn new(store: Store, limits: RateLimits) -> RateLimiter {
        RateLimiter { audit: Audit::new(store.clone()), store, limits }
    }

    /// Counts a request from `address` (before authentication).
    pub async fn address(&self, address: &str) -> Result<()> {
        let event = || Event::anonymous(Some(address), "rate_limit.address");
        self.hit(&format!("addr:{address}"), self.limits.per_address, "requests from this address", event).await
    }

    /// Counts a request of an authenticated caller.
    pub async fn user(&self, caller: &Caller) -> Result<()> {
        let event = || Event::by(caller, "rate_limit.user");
        self.hit(&format!("user:{}", caller.user_id), self.limits.per_user, "requests of this user", event).await
    }

    /// Counts a sandbox creation of `caller`.
    pub async fn create(&self, caller: &Caller) -> Result<()> {
        let event = || Event::by(caller, "rate_limit.create");
        let key = format!("create:{}", caller.user_id);
        self.hit(&key, self.limits.creates_per_user, "sandbox creations", event).await
    }

    /// One hit on `key`; the first refusal of a window is audited (not every one: a flood of
    /// refused requests must not become a flood of writes). A database failure lets the request
    /// through (it is logged): limits protect the service, and refusing everything while the
    /// database is away would not.
    async fn hit(&self, key: &str, limit: u32, what: &str, event: impl FnOnce() -> Event) -> Result<()> {
        if limit == 0 {
            return Ok(());
        }
        let now = now_ms();
        let window = now / WINDOW_MS;
        match self.store.rate_hit(key, window).await {
            Ok(n) if n > i64::from(limit) => {
                if n == i64::from(limit) + 1 {
                    self.audit.record(event().result("rate_limited").detail(format!("{limit} {what} a minute"))).await;
                }
                let retry_after = ((window + 1) * WINDOW_MS - now + 999) / 1000;
                Err(Error::RateLimited {
                    message: format!("too many {what}: the limit is {limit} a minute; retry in {retry_after} s"),
                    limit,
                    retry_after: retry_after.max(1) as u64,
                })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, key, "rate limit not counted: the database failed");
                Ok(())
            }
        }
    }

    /// Removes counters of past windows.
    pub async fn purge(&self) -> Result<()> {
        self.store.purge_rate_counters(now_ms() / WINDOW_MS - 1).await?;
        Ok(())
    }
}

/// The quota every user has unless an admin overrides it.
#[derive(Clone, Debug)]
pub struct QuotaDefaults {
    pub sandboxes: u32,
    pub cpu: f64,
    pub memory: u64,
    /// `None`: the server's maximum TTL.
    pub max_ttl_seconds: Option<u64>,
    /// Which sidecars users may start.
    pub sidecars: SidecarPolicy,
    /// Persistent volumes kept at once.
    pub volumes: u32,
    /// Bytes of disk held at once (sandboxes' own filesystems, volumes, snapshots).
    pub disk: u64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            sandboxes: 20,
            cpu: 16.0,
            memory: 32 << 30,
            max_ttl_seconds: None,
            sidecars: SidecarPolicy::None,
            volumes: 10,
            disk: 100 << 30,
        }
    }
}

/// The overrides stored for a user.
pub(crate) fn overrides_of(json: Option<&str>) -> Result<QuotaOverrides> {
    match json {
        None => Ok(QuotaOverrides::default()),
        Some(j) => serde_json::from_str(j).map_err(|e| Error::Internal(format!("corrupt quota overrides: {e}"))),
    }
}

impl QuotaDefaults {
    /// What applies: `o` over these defaults, TTL capped by the server's maximum.
    pub fn apply(&self, o: &QuotaOverrides, server_max_ttl: u64) -> QuotaLimits {
        QuotaLimits {
            sandboxes: o.sandboxes.unwrap_or(self.sandboxes),
            cpu: o.cpu.unwrap_or(self.cpu),
            memory: o.memory.unwrap_or(MemorySize(self.memory)),
            max_ttl_seconds: o.max_ttl_seconds.or(self.max_ttl_seconds).unwrap_or(server_max_ttl).min(server_max_ttl),
            sidecars: o.sidecars.unwrap_or(self.sidecars),
            volumes: o.volumes.unwrap_or(self.volumes),
            disk: o.disk.unwrap_or(MemorySize(self.disk)),
        }
    }
}

/// The store's ceiling for `limits`.
pub(crate) fn ceiling(limits: &QuotaLimits) -> Ceiling {
    Ceiling {
        sandboxes: i64::from(limits.sandboxes),
        cpu: limits.cpu,
        memory: i64::try_from(limits.memory.0).unwrap_or(i64::MAX),
        disk: i64::try_from(limits.disk.0).unwrap_or(i64::MAX),
    }
}

/// Checks overrides an admin sets.
pub(crate) fn validate_overrides(o: &QuotaOverrides) -> Result<()> {
    if let Some(cpu) = o.cpu
        && !(cpu.is_finite() && (0.0..=1_000_000.0).contains(&cpu))
    {
        return Err(Error::Invalid(format!("quota cpu {cpu} must be a number of cores from 0")));
    }
    if let Some(m) = o.memory
        && m.0 > (1 << 60)
    {
        return Err(Error::Invalid(format!("quota memory {} bytes is over the maximum of 1Ei", m.0)));
    }
    if let Some(d) = o.disk
        && d.0 > (1 << 60)
    {
        return Err(Error::Invalid(format!("quota disk {} bytes is over the maximum of 1Ei", d.0)));
    }
    if o.max_ttl_seconds == Some(0) {
        return Err(Error::Invalid("quota max_ttl_seconds must be at least 1".into()));
    }
    Ok(())
}

/// A user's quota, overrides and usage as the API shows them.
pub(crate) fn view(user_id: &str, limits: QuotaLimits, overrides: QuotaOverrides, u: podgate_store::Usage) -> Quota {
    Quota {
        user_id: user_id.to_string(),
        limits,
        overrides,
        usage: QuotaUsage {
            sandboxes: u32::try_from(u.sandboxes).unwrap_or(u32::MAX),
            cpu: u.cpu,
            memory: MemorySize(u64::try_from(u.memory).unwrap_or(0)),
            volumes: u32::try_from(u.volumes).unwrap_or(u32::MAX),
            disk: MemorySize(u64::try_from(u.disk).unwrap_or(0)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_ttl_stays_under_the_server_maximum() {
        let d = QuotaDefaults::default();
        let o = QuotaOverrides { sandboxes: Some(2), max_ttl_seconds: Some(10_000), ..Default::default() };
        let l = d.apply(&o, 3600);
        assert_eq!((l.sandboxes, l.cpu, l.memory.0, l.max_ttl_seconds), (2, 16.0, 32 << 30, 3600));
        assert_eq!(d.apply(&QuotaOverrides::default(), 7200).max_ttl_seconds, 7200);
        assert!(validate_overrides(&QuotaOverrides { cpu: Some(f64::NAN), ..Default::default() }).is_err());
        assert!(validate_overrides(&QuotaOverrides { max_ttl_seconds: Some(0), ..Default::default() }).is_err());
    }
}
