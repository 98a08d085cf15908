//! The terminal service: terminals in a sandbox's agent, the session tokens that open them, and
//! read-only share tokens. The WebSocket gateway translates into [`Terminals::connect`].

use podgate_types::terminal::{TerminalInfo, TerminalSpec};

use crate::agent_client::agent_error;
use crate::agent_client::{AgentClient, path_segment};
use crate::audit::Event;
use crate::sessions::{AUD_SHARE, AUD_TERMINAL, Claims, Refusal, SESSION_TTL, SHARE_TTL, SessionTokens};
use crate::{Caller, Error, Result, Sandboxes};

/// A signed token and what it allows.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

/// Terminals of sandboxes, authorized per caller.
#[derive(Clone)]
pub struct Terminals {
    sandboxes: Sandboxes,
    tokens: SessionTokens,
}

impl Terminals {
    /// Makes a new session-token signing key current (admins); audited as `keys.rotate`.
    pub async fn rotate_keys(&self, caller: &crate::Caller) -> Result<String> {
        caller.require_admin()?;
        let kid = self.tokens.rotate().await?;
        let event = crate::audit::Event::by(caller, "keys.rotate").detail(format!("new key {kid}"));
        self.sandboxes.k.audit.record(event).await;
        Ok(kid)
    }

    pub fn new(sandboxes: Sandboxes, tokens: SessionTokens) -> Terminals {
        Terminals { sandboxes, tokens }
    }

    /// The token issuer (for the JWKS and key rotation).
    pub fn tokens(&self) -> &SessionTokens {
        &self.tokens
    }

    /// Starts a terminal in the caller's sandbox.
    pub async fn create(&self, caller: &Caller, sandbox: &str, spec: &TerminalSpec) -> Result<(String, TerminalInfo)> {
        let (row, agent) = self.sandboxes.running_agent(caller, sandbox).await?;
        let r = agent.create_terminal(spec).await.map_err(|e| agent_error(&row.id, e));
        let recorded = row.spec.record_terminals;
        let event = Event::by(caller, "terminal.open").sandbox(&row.id);
        let event = match &r {
            Ok(info) if recorded => event.detail(format!("terminal {} (recorded)", info.id)),
            Ok(info) => event.detail(format!("terminal {}", info.id)),
            Err(_) => event.outcome(&r),
        };
        self.sandboxes.k.audit.record(event).await;
        let info = r?;
        if recorded {
            self.sandboxes.k.recorder.start(agent, &row.id, &info);
        }
        tracing::info!(sandbox_id = %row.id, user_id = %caller.user_id, terminal_id = %info.id, "terminal created");
        Ok((row.id, info))
    }

    /// The terminals of the caller's sandbox.
    pub async fn list(&self, caller: &Caller, sandbox: &str) -> Result<Vec<TerminalInfo>> {
        let (row, agent) = self.sandboxes.running_agent(caller, sandbox).await?;
        agent.list_terminals().await.map_err(|e| agent_error(&row.id, e))
    }

    /// Ends a terminal.
    pub async fn delete(&self, caller: &Caller, sandbox: &str, terminal: &str) -> Result<()> {
        let (row, agent) = self.sandboxes.running_agent(caller, sandbox).await?;
        agent.delete_terminal(terminal).await.map_err(|e| agent_error(&row.id, e))
    }

    /// A single-use session token for one connection to an existing terminal.
    pub async fn session(
        &self,
        caller: &Caller,
        sandbox: &str,
        terminal: &str,
        read_only: bool,
    ) -> Result<(String, IssuedToken)> {
        let (row, agent) = self.sandboxes.running_agent(caller, sandbox).await?;
        self.ensure_exists(&row.id, &agent, terminal).await?;
        let (token, claims) =
            self.tokens.issue(&caller.user_id, &row.id, terminal, AUD_TERMINAL, SESSION_TTL, read_only).await?;
        let mode = if read_only { "read-only" } else { "read-write" };
        let event =
            Event::by(caller, "terminal.attach").sandbox(&row.id).detail(format!("terminal {terminal} ({mode})"));
        self.sandboxes.k.audit.record(event).await;
        Ok((row.id, IssuedToken { token, claims }))
    }

    /// A read-only share token (valid for [`SHARE_TTL`], exchangeable for session tokens).
    pub async fn share(&self, caller: &Caller, sandbox: &str, terminal: &str) -> Result<IssuedToken> {
        let (row, agent) = self.sandboxes.running_agent(caller, sandbox).await?;
        self.ensure_exists(&row.id, &agent, terminal).await?;
        let (token, claims) = self
            .tokens
            .issue_share(&caller.user_id, &row.id, terminal, SHARE_TTL, caller.credential.as_deref())
            .await?;
        tracing::info!(sandbox_id = %row.id, user_id = %caller.user_id, terminal_id = terminal, "read-only share link issued");
        let event = Event::by(caller, "terminal.share").sandbox(&row.id).detail(format!("terminal {terminal}"));
        self.sandboxes.k.audit.record(event).await;
        Ok(IssuedToken { token, claims })
    }

    /// Revokes every read-only share link of a terminal issued so far (its owner).
    pub async fn revoke_shares(&self, caller: &Caller, sandbox: &str, terminal: &str) -> Result<()> {
        path_segment(terminal).map_err(|e| Error::Invalid(e.to_string()))?;
        let row = self.sandboxes.resolve(caller, sandbox).await?;
        let r =
            self.sandboxes.k.store.revoke_shares(&row.id, terminal, crate::clock::now_ms()).await.map_err(Error::from);
        let event = Event::by(caller, "terminal.share_revoke").sandbox(&row.id).detail(format!("terminal {terminal}"));
        self.sandboxes.k.audit.record(event.outcome(&r)).await;
        r
    }

    /// Exchanges a share token for a read-only session token, unless its owner revoked the
    /// terminal's links since, or the API token that issued it is no longer valid.
    pub async fn exchange_share(&self, share_token: &str) -> Result<IssuedToken, Refusal> {
        let share = self.tokens.verify(share_token, AUD_SHARE).await?;
        let store = &self.sandboxes.k.store;
        let revoked = store.shares_revoked_at(&share.sid, &share.tid).await.map_err(|_| Refusal::Revoked)?;
        if revoked.is_some_and(|at| at >= share.issued_ms.unwrap_or(share.iat * 1000)) {
            return Err(Refusal::Revoked);
        }
        if let Some(cred) = &share.cred {
            let now = crate::clock::now_ms();
            let live = store.token(cred).await.map_err(|_| Refusal::Revoked)?.is_some_and(|t| {
                t.user_id == share.sub && t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)
            });
            if !live {
                return Err(Refusal::Revoked);
            }
        }
        let (token, claims) = self
            .tokens
            .issue(&share.sub, &share.sid, &share.tid, AUD_TERMINAL, SESSION_TTL, true)
            .await
            .map_err(|_| Refusal::Malformed)?;
        Ok(IssuedToken { token, claims })
    }

    /// Checks a session token for this sandbox and terminal and spends it; returns the claims and
    /// the agent to splice the connection to.
    pub async fn connect(
        &self,
        token: &str,
        sandbox: &str,
        terminal: &str,
    ) -> Result<(Claims, AgentClient), ConnectError> {
        let claims = self.tokens.verify(token, AUD_TERMINAL).await.map_err(ConnectError::Refused)?;
        if claims.sid != sandbox || claims.tid != terminal {
            return Err(ConnectError::Refused(Refusal::WrongTarget));
        }
        self.tokens.consume(&claims).await.map_err(ConnectError::Refused)?;
        let agent = self.sandboxes.agent_by_id(sandbox).await.map_err(ConnectError::Unavailable)?;
        Ok((claims, agent))
    }

    async fn ensure_exists(&self, sandbox_id: &str, agent: &AgentClient, terminal: &str) -> Result<()> {
        path_segment(terminal).map_err(|e| agent_error(sandbox_id, e))?;
        let list = agent.list_terminals().await.map_err(|e| agent_error(sandbox_id, e))?;
        if list.iter().any(|t| t.id == terminal) {
            Ok(())
        } else {
            Err(Error::NotFound(format!("terminal {terminal:?} not found")))
        }
    }
}

/// Why a gateway connection was refused.
#[derive(Debug)]
pub enum ConnectError {
    /// The token is not valid for this connection (401/403).
    Refused(Refusal),
    /// The sandbox is gone or not running.
    Unavailable(Error),
}
