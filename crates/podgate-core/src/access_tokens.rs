//! Sandbox access tokens: secrets that grant access to one sandbox only, as its owner with no
//! other rights, for clients that address a sandbox directly (the E2B SDKs' in-sandbox daemon
//! and port traffic). Each is an HMAC of the sandbox's agent secret, so every replica checks it
//! from the sandbox's row, it dies with the sandbox, and it reveals nothing of the secret.

use std::sync::Arc;

use base64::Engine as _;
use podgate_types::state::SandboxState;

use crate::kernel::{Kernel, Services as _};
use crate::{Caller, Error, Result, Role};

/// What an access token lets its holder reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The sandbox's daemon: processes and files.
    Daemon,
    /// The sandbox's own servers on its other ports.
    Traffic,
}

impl Scope {
    fn label(self) -> &'static [u8] {
        match self {
            Scope::Daemon => b"podgate access token v1: daemon",
            Scope::Traffic => b"podgate access token v1: traffic",
        }
    }
}

/// The access-token service.
#[derive(Clone)]
pub struct AccessTokens {
    pub(crate) k: Arc<Kernel>,
}

/// The token of `scope` for sandbox `id` whose agent secret is `secret`.
fn token_of(id: &str, secret: &str, scope: Scope) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, &[scope.label(), b":", id.as_bytes()].concat());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
}

impl AccessTokens {
    /// The access token of `scope` for the caller's sandbox.
    pub async fn issue(&self, caller: &Caller, id_or_name: &str, scope: Scope) -> Result<String> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        Ok(token_of(&row.id, &row.agent_secret, scope))
    }

    /// The daemon and traffic tokens of the caller's sandbox, from one read of it.
    pub async fn issue_both(&self, caller: &Caller, id_or_name: &str) -> Result<(String, String)> {
        let row = self.k.sandboxes().resolve(caller, id_or_name).await?;
        Ok((token_of(&row.id, &row.agent_secret, Scope::Daemon), token_of(&row.id, &row.agent_secret, Scope::Traffic)))
    }

    /// The caller that `token` makes of its holder for sandbox `sandbox_id`: the sandbox's owner,
    /// with a user's rights only. A wrong token and an unknown sandbox are refused alike; a right
    /// token of a sandbox that is gone is told so (`NotFound`).
    pub async fn authorize(&self, sandbox_id: &str, token: &str, scope: Scope, source: Option<&str>) -> Result<Caller> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::Unauthenticated(format!("invalid access token for sandbox {sandbox_id:?}")));
        }
        self.authorize_proof(sandbox_id, scope, source, |expected| {
            bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), token.as_bytes()))
        })
        .await
    }

    /// Like [`AccessTokens::authorize`] for a holder who proves it knows the token without
    /// sending it (a signed URL): `proves` is given the token and says whether the proof fits.
    pub async fn authorize_proof(
        &self,
        sandbox_id: &str,
        scope: Scope,
        source: Option<&str>,
        proves: impl FnOnce(&str) -> bool,
    ) -> Result<Caller> {
        let refused = || Error::Unauthenticated(format!("invalid access token for sandbox {sandbox_id:?}"));
        if sandbox_id.is_empty() || sandbox_id.len() > 128 {
            return Err(refused());
        }
        let row = self.k.store.sandbox(sandbox_id).await?.ok_or_else(refused)?;
        if !proves(&token_of(&row.id, &row.agent_secret, scope)) {
            return Err(refused());
        }
        if matches!(row.state, SandboxState::Deleted | SandboxState::Stopping | SandboxState::Failed) {
            return Err(Error::NotFound(format!("the sandbox {sandbox_id} was not found: it is {}", row.state)));
        }
        let user = self.k.store.user(&row.owner_id).await?.ok_or_else(refused)?;
        Ok(Caller {
            user_id: user.id,
            user_name: user.name,
            role: Role::User,
            source: source.map(str::to_string),
            credential: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Scope, token_of};

    #[test]
    fn tokens_differ_by_sandbox_scope_and_secret() {
        let a = token_of("sb-a", "s1", Scope::Daemon);
        assert_eq!(a, token_of("sb-a", "s1", Scope::Daemon));
        assert_ne!(a, token_of("sb-b", "s1", Scope::Daemon));
        assert_ne!(a, token_of("sb-a", "s2", Scope::Daemon));
        assert_ne!(a, token_of("sb-a", "s1", Scope::Traffic));
        let secret = "an-agent-secret-of-forty-characters-long";
        assert!(!token_of("sb-a", secret, Scope::Daemon).contains(secret));
    }
}
