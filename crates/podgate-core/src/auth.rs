//! Authentication: API tokens (random, shown once, stored as SHA-256), callers and roles, and the
//! first-start admin bootstrap.

use podgate_store::{Store, TokenRow, UserRow};
use sha2::{Digest as _, Sha256};

use crate::clock::now_ms;
use crate::oidc::{Identity, Oidc};
use crate::{Error, Result, ids};

/// What a user may do beyond their own resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sees and manages everything.
    Admin,
    /// Sees only their own resources.
    User,
}

impl Role {
    pub(crate) fn parse(s: &str) -> Role {
        if s == "admin" { Role::Admin } else { Role::User }
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub user_name: String,
    pub role: Role,
    /// The client's address, for the audit trail.
    pub source: Option<String>,
    /// The id of the API token the caller presented (none for OIDC, SSH keys and the server's
    /// own actions): what it issues (share links) dies with it.
    pub credential: Option<String>,
}

impl Caller {
    /// Refuses callers without the admin role.
    pub fn require_admin(&self) -> Result<()> {
        if self.role == Role::Admin { Ok(()) } else { Err(Error::Forbidden("this needs the admin role".into())) }
    }

    /// Whether the caller may act on a resource owned by `owner_id`.
    pub fn may_access(&self, owner_id: &str) -> bool {
        self.role == Role::Admin || self.user_id == owner_id
    }
}

/// SHA-256 of a token, hex. Tokens carry 200 random bits, so a fast hash is the right tool.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Token authentication against the store.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    pub(crate) audit: crate::audit::Audit,
    oidc: Option<std::sync::Arc<Oidc>>,
    /// Which refusals are written to the audit trail (anyone can cause them).
    failures: FailureLog,
}

/// Unauthenticated callers can cause any number of refusals: the audit trail records the first
/// refusal of each reason from an address in each minute, and with the next one how many were
/// left out.
#[derive(Clone, Default)]
struct FailureLog(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (i64, u64)>>>);

impl FailureLog {
    /// Addresses tracked at most; beyond that the table starts over.
    const MAX_SOURCES: usize = 10_000;
    const WINDOW_MS: i64 = 60_000;

    /// `Some(n)` when this refusal from `source` is to be recorded (`n`: refusals left out before
    /// it), `None` when it is left out.
    fn admit(&self, source: &str, why: &str) -> Option<u64> {
        let now = crate::clock::now_ms();
        let key = format!("{source} {}", why.chars().take(200).collect::<String>());
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX_SOURCES && !map.contains_key(&key) {
            map.retain(|_, (since, _)| now - *since < Self::WINDOW_MS);
            if map.len() >= Self::MAX_SOURCES {
                map.clear();
            }
        }
        let entry = map.entry(key).or_insert((i64::MIN, 0));
        if now.saturating_sub(entry.0) >= Self::WINDOW_MS {
            let left_out = entry.1;
            *entry = (now, 0);
            Some(left_out)
        } else {
            entry.1 += 1;
            None
        }
    }
}

impl Auth {
    pub fn new(store: Store) -> Auth {
        Auth { audit: crate::audit::Audit::new(store.clone()), store, oidc: None, failures: Default::default() }
    }

    /// Also accepts OIDC tokens of these issuers.
    pub fn with_oidc(mut self, oidc: Oidc) -> Auth {
        self.oidc = (!oidc.is_empty()).then(|| std::sync::Arc::new(oidc));
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The caller a bearer token belongs to, seen from `source`; unknown, expired and revoked
    /// tokens are refused alike (and the refusal is audited).
    pub async fn authenticate(&self, token: &str, source: Option<&str>) -> Result<Caller> {
        let r = self.check_token(token, source).await;
        if let Err(Error::Unauthenticated(why)) = &r
            && let Some(suppressed) = self.failures.admit(source.unwrap_or(""), why)
        {
            let detail = match suppressed {
                0 => why.clone(),
                n => format!("{why} ({n} more refusals from this address not recorded)"),
            };
            self.audit
                .record(crate::audit::Event::anonymous(source, "auth.failed").result("unauthenticated").detail(detail))
                .await;
        }
        r
    }

    async fn check_token(&self, token: &str, source: Option<&str>) -> Result<Caller> {
        if let Some(oidc) = &self.oidc
            && Oidc::looks_like_jwt(token)
        {
            return self.oidc_caller(oidc, token, source).await;
        }
        let refused = || Error::Unauthenticated("invalid or expired token".into());
        if token.is_empty() || token.len() > 512 {
            return Err(refused());
        }
        let Some((t, u)) = self.store.token_by_hash(&hash_token(token)).await? else {
            return Err(refused());
        };
        let now = now_ms();
        if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
            return Err(refused());
        }
        // Recording use is a write; skip it while the stored time is recent (the store applies the
        // same minute, so concurrent requests still write at most once).
        let caller = Caller {
            user_id: u.id,
            user_name: u.name,
            role: Role::parse(&u.role),
            source: source.map(str::to_string),
            credential: Some(t.id.clone()),
        };
        if t.last_used_at.is_none_or(|at| at < now - 60_000) {
            match self.store.touch_token(&t.id, now).await {
                Ok(()) => {
                    let detail = format!("token {} ({})", t.id, t.name);
                    self.audit.record(crate::audit::Event::by(&caller, "token.use").detail(detail)).await;
                }
                Err(e) => tracing::warn!(error = %e, token_id = %t.id, "could not record token use"),
            }
        }
        Ok(caller)
    }

    /// The user behind a valid OIDC token: the linked one, else one to link (see [`Auth::link`]).
    async fn oidc_caller(&self, oidc: &Oidc, token: &str, source: Option<&str>) -> Result<Caller> {
        let id = oidc.verify(token).await?;
        let user = match self.store.identity_user(&id.issuer, &id.subject).await? {
            Some(u) => u,
            None => self.link(&id, source).await?,
        };
        let role = Role::parse(&user.role);
        let caller = Caller {
            user_id: user.id,
            user_name: user.name,
            role,
            source: source.map(str::to_string),
            credential: None,
        };
        if self.store.touch_identity(&id.issuer, &id.subject, now_ms()).await? {
            let detail = format!("OIDC {} at {}", id.subject, id.issuer);
            self.audit.record(crate::audit::Event::by(&caller, "auth.oidc").detail(detail)).await;
        }
        Ok(caller)
    }

    /// Links a new identity: to the existing non-admin user named exactly like the subject, or
    /// with auto-provisioning to a new user (role `user`) named after it. An identity never
    /// becomes an admin by its name.
    async fn link(&self, id: &Identity, source: Option<&str>) -> Result<UserRow> {
        let now = now_ms();
        let existing = self.store.user_by_name(&id.subject).await?.filter(|u| u.role != Role::Admin.as_str());
        let (user, action) = match existing {
            Some(u) => (u, "identity.link"),
            None if id.auto_provision => (self.provision(&id.subject, now).await?, "user.provision"),
            None => {
                return Err(Error::Unauthenticated(format!(
                    "no podgate user for {:?} at {}: an admin creates user {:?}, or the issuer provisions users",
                    id.subject, id.issuer, id.subject
                )));
            }
        };
        match self.store.link_identity(&id.issuer, &id.subject, &user.id, now).await {
            Ok(()) => {}
            // Linked by a concurrent request meanwhile.
            Err(podgate_store::Error::Conflict(_)) => {
                return self
                    .store
                    .identity_user(&id.issuer, &id.subject)
                    .await?
                    .ok_or_else(|| Error::Internal(format!("identity {} vanished", id.subject)));
            }
            Err(e) => return Err(e.into()),
        }
        let caller = Caller {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            role: Role::parse(&user.role),
            source: source.map(str::to_string),
            credential: None,
        };
        let detail = format!("OIDC {} at {} is user {} ({})", id.subject, id.issuer, user.name, user.id);
        self.audit.record(crate::audit::Event::by(&caller, action).detail(detail)).await;
        Ok(user)
    }

    /// A new user (no API token) named after an identity, with `-2`, `-3`… when taken.
    async fn provision(&self, subject: &str, now: i64) -> Result<UserRow> {
        let base = crate::oidc::user_name_for(subject);
        for n in 1..=50 {
            let name = if n == 1 { base.clone() } else { format!("{base}-{n}") };
            let user =
                UserRow { id: ids::user_id(), name, role: Role::User.as_str().into(), created_at: now, quota: None };
            match self.store.insert_user(&user).await {
                Ok(()) => return Ok(user),
                Err(podgate_store::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(format!("no free user name for {subject:?}")))
    }

    /// Creates a user with a first token; returns the user and the token (shown once).
    pub async fn create_user(&self, name: &str, role: Role, token_name: &str) -> Result<(UserRow, String)> {
        let now = now_ms();
        let user = UserRow {
            id: ids::user_id(),
            name: name.to_string(),
            role: role.as_str().into(),
            created_at: now,
            quota: None,
        };
        self.store.insert_user(&user).await?;
        let token = self.issue_token(&user.id, token_name, None).await?;
        Ok((user, token))
    }

    /// Issues a new token for a user; returns the secret (only its hash is stored).
    pub async fn issue_token(&self, user_id: &str, name: &str, expires_at: Option<i64>) -> Result<String> {
        let secret = ids::token_secret();
        self.store
            .insert_token(&TokenRow {
                id: ids::token_id(),
                user_id: user_id.to_string(),
                name: name.to_string(),
                token_hash: hash_token(&secret),
                created_at: now_ms(),
                expires_at,
                last_used_at: None,
                revoked_at: None,
            })
            .await?;
        Ok(secret)
    }

    /// On first start, creates the `admin` user and returns its token; afterwards returns `None`.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        if self.store.user_by_name("admin").await?.is_some() {
            return Ok(None);
        }
        match self.create_user("admin", Role::Admin, "bootstrap").await {
            Ok((_, token)) => Ok(Some(token)),
            // Another replica bootstrapped first.
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_authenticate_and_bootstrap_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
        let auth = Auth::new(store.clone());
        let token = auth.bootstrap_admin().await.unwrap().expect("first start makes a token");
        assert!(auth.bootstrap_admin().await.unwrap().is_none());
        let caller = auth.authenticate(&token, None).await.unwrap();
        assert_eq!((caller.user_name.as_str(), caller.role), ("admin", Role::Admin));
        let (row, _) = store.token_by_hash(&hash_token(&token)).await.unwrap().unwrap();
        assert!(row.last_used_at.is_some(), "use is recorded");
        assert!(matches!(auth.authenticate("pgt_wrong", None).await, Err(Error::Unauthenticated(_))));
        assert!(matches!(auth.authenticate("", None).await, Err(Error::Unauthenticated(_))));
        // Only the hash is stored.
        assert!(store.token_by_hash(&token).await.unwrap().is_none());
        let expired = auth.issue_token(&caller.user_id, "old", Some(1)).await.unwrap();
        assert!(matches!(auth.authenticate(&expired, None).await, Err(Error::Unauthenticated(_))));
    }

    #[test]
    fn access_rules() {
        let user =
            Caller { user_id: "u1".into(), user_name: "a".into(), role: Role::User, source: None, credential: None };
        assert!(user.may_access("u1"));
        assert!(!user.may_access("u2"));
        let admin = Caller { role: Role::Admin, ..user };
        assert!(admin.may_access("u2"));
    }
}
