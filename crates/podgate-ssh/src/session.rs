//! One SSH connection: public-key login to the sandbox named by the user name, then its
//! channels. A wrong key, an unknown sandbox and another user's sandbox are refused alike.

use std::net::SocketAddr;
use std::sync::Arc;

use podgate_core::Caller;
use podgate_core::agent_client::AgentClient;
use podgate_core::agent_requests::SshUse;
use podgate_types::api::CreateSandboxRequest;
use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};

use crate::Shared;
use crate::channel::{self, Login};
use crate::forward;

/// The handler of one connection.
pub struct Connection {
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    login: Option<Arc<Login>>,
    /// The `-R` listeners in the sandbox, by the address and port the client asked for.
    remote: std::collections::HashMap<(String, u32), tokio::task::AbortHandle>,
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>, peer: Option<SocketAddr>) -> Connection {
        Connection { shared, peer, login: None, remote: Default::default() }
    }

    fn source(&self) -> Option<String> {
        self.peer.map(|p| p.ip().to_string())
    }

    /// The caller owning the key and the agent of their sandbox `name` (a new one for
    /// [`crate::NEW_USER`] when a template is configured), or why not.
    async fn log_in(&self, name: &str, credential: Credential<'_>) -> Result<Login, String> {
        if let Some(ip) = self.peer.map(|p| p.ip().to_string())
            && let Err(e) = self.shared.sandboxes.limiter().address(&ip).await
        {
            return Err(format!("rate limited: {e}"));
        }
        let caller = match credential {
            Credential::Key(fingerprint) => match self.shared.auth.ssh_login(fingerprint).await {
                Ok(Some(c)) => Caller { source: self.source(), ..c },
                Ok(None) => return Err(format!("unknown key {fingerprint}")),
                Err(e) => return Err(format!("key lookup failed: {e}")),
            },
            Credential::Token(token) => match self.shared.auth.authenticate(token, self.source().as_deref()).await {
                Ok(c) => c,
                Err(e) => return Err(format!("API token as password: {e}")),
            },
        };
        if let (crate::NEW_USER, Some(template)) = (name, &self.shared.cfg.new_template) {
            return self.new_sandbox(caller, template.clone()).await;
        }
        let (row, agent): (_, AgentClient) =
            self.shared.sandboxes.running_agent(&caller, name).await.map_err(|e| format!("sandbox {name:?}: {e}"))?;
        if !self.shared.enter(&caller.user_id) {
            return Err(format!("{} SSH connections are open already", self.shared.cfg.max_sessions_per_user));
        }
        Ok(Login::new(caller, row.id, agent))
    }

    /// Creates the connection's own sandbox from the template, leased to this connection.
    async fn new_sandbox(&self, caller: Caller, template: CreateSandboxRequest) -> Result<Login, String> {
        if !self.shared.enter(&caller.user_id) {
            return Err(format!("{} SSH connections are open already", self.shared.cfg.max_sessions_per_user));
        }
        let (sandboxes, lease) = (&self.shared.sandboxes, self.shared.cfg.new_lease);
        let req = CreateSandboxRequest { name: None, ..template };
        let created = match sandboxes.create_leased(&caller, req, lease).await {
            Ok(sb) => sb,
            Err(e) => {
                self.shared.leave(&caller.user_id);
                return Err(format!("creating a sandbox for the connection: {e}"));
            }
        };
        let agent = match sandboxes.running_agent(&caller, &created.id).await {
            Ok((_, agent)) => agent,
            Err(e) => {
                self.shared.leave(&caller.user_id);
                delete_later(sandboxes.clone(), caller, created.id.clone());
                return Err(format!("the new sandbox {}: {e}", created.id));
            }
        };
        let login = Login::new(caller, created.id.clone(), agent).leased();
        let (sandboxes, id) = (sandboxes.clone(), created.id);
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(e) = sandboxes.renew_lease(&id, lease).await {
                    tracing::warn!(sandbox_id = %id, error = %e, "renewing an SSH connection's sandbox failed");
                }
            }
        });
        login.keep(renew.abort_handle());
        Ok(login)
    }
}

impl Connection {
    /// Logs in to sandbox `user` with `credential` (described in the audit by `what`), or says
    /// no the same way whatever the reason.
    async fn authenticate(&mut self, user: &str, credential: Credential<'_>, what: &str) -> Auth {
        match self.log_in(user, credential).await {
            Ok(login) => {
                let how = SshUse::Login { how: what };
                self.shared.sandboxes.agent_requests().record_ssh(&login.caller, &login.sandbox_id, how).await;
                tracing::info!(user_id = %login.caller.user_id, sandbox_id = %login.sandbox_id, "SSH login");
                if let Some(previous) = self.login.replace(Arc::new(login)) {
                    // A second login on one connection: it was counted twice.
                    self.shared.leave(&previous.caller.user_id);
                    end(&self.shared, &previous);
                }
                Auth::Accept
            }
            Err(why) => {
                self.shared
                    .sandboxes
                    .agent_requests()
                    .record_ssh_refusal(self.source().as_deref(), user, &why.to_string())
                    .await;
                tracing::info!(user, reason = %why, "SSH login refused");
                Auth::reject()
            }
        }
    }
}

/// Deletes the sandbox `id` of a connection that ended, in the background.
fn delete_later(sandboxes: podgate_core::Sandboxes, caller: Caller, id: String) {
    tokio::spawn(async move {
        match sandboxes.delete(&caller, &id).await {
            Ok(()) => tracing::info!(sandbox_id = %id, "deleted the sandbox of an SSH connection that ended"),
            // Its lease runs out and the reconciler deletes it.
            Err(e) => tracing::warn!(sandbox_id = %id, error = %e, "deleting an SSH connection's sandbox failed"),
        }
    });
}

/// Ends what a login holds: its tasks, and its sandbox if it was made for the connection.
fn end(shared: &Shared, login: &Login) {
    login.end();
    if login.is_leased() {
        delete_later(shared.sandboxes.clone(), login.caller.clone(), login.sandbox_id.clone());
    }
}

/// What a client logs in with.
enum Credential<'a> {
    /// A verified public key's SHA256 fingerprint.
    Key(&'a str),
    /// An API token given as the password.
    Token(&'a str),
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, task) in self.remote.drain() {
            task.abort();
        }
        if let Some(login) = &self.login {
            self.shared.leave(&login.caller.user_id);
            end(&self.shared, login);
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        Ok(self.authenticate(user, Credential::Key(&fingerprint), &fingerprint).await)
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if !self.shared.cfg.allow_password {
            return Ok(Auth::reject());
        }
        Ok(self.authenticate(user, Credential::Token(password), "API token").await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(login) = self.login.clone() else {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        reply.accept().await;
        let (shared, handle) = (self.shared.clone(), session.handle());
        tokio::spawn(channel::session(channel, login, shared, handle));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(login), true) = (self.login.clone(), self.shared.cfg.allow_local_forwarding) else {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        match forward::open_tunnel(&login, host, port).await {
            Ok(ws) => {
                reply.accept().await;
                let what = SshUse::Forward { host, port };
                self.shared.sandboxes.agent_requests().record_ssh(&login.caller, &login.sandbox_id, what).await;
                tokio::spawn(forward::forward(channel, ws));
            }
            Err(e) => {
                tracing::info!(host, port, error = %e, "SSH forward refused");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let (Some(login), true) = (self.login.clone(), self.shared.cfg.allow_remote_forwarding) else {
            return Ok(false);
        };
        let Ok(asked) = u16::try_from(*port) else {
            return Ok(false);
        };
        let listener = match forward::listen_tcp(&login.agent, address, asked).await {
            Ok(l) => l,
            Err(e) => {
                tracing::info!(address, port = asked, error = %e, "SSH remote forward refused");
                return Ok(false);
            }
        };
        *port = u32::from(listener.port);
        let asked_at = format!("{address}:{asked}");
        let what = SshUse::RemoteForward { asked: &asked_at, listening: &listener.address };
        self.shared.sandboxes.agent_requests().record_ssh(&login.caller, &login.sandbox_id, what).await;
        let to = forward::Destination::Tcp { address: address.to_string(), port: *port };
        let task = tokio::spawn(forward::serve(listener, login.agent.clone(), session.handle(), to));
        if let Some(old) = self.remote.insert((address.to_string(), *port), task.abort_handle()) {
            old.abort();
        }
        Ok(true)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        match self.remote.remove(&(address.to_string(), port)) {
            Some(task) => {
                task.abort();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn agent_request(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        // The session channel opens the socket when it starts its program.
        Ok(self.login.is_some() && self.shared.cfg.allow_agent_forwarding)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            tracing::info!(subsystem = name, "SSH subsystem refused: not served");
            session.channel_failure(channel)
        }
    }
}
