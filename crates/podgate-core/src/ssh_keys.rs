//! Users' SSH public keys: added, listed and removed by their owner (or an admin), and found by
//! fingerprint when someone logs in over SSH.

use podgate_store::SshKeyRow;
use podgate_types::users::{AddSshKeyRequest, SshKeyInfo};

use crate::audit::Event;
use crate::clock::now_ms;
use crate::users::managed_user;
use crate::{Auth, Caller, Error, Result, Role, ids};

/// Most keys one user may register.
const MAX_KEYS: usize = 100;
/// Longest accepted public key line.
const MAX_KEY_LINE: usize = 16 * 1024;

/// The SHA256 fingerprint (`SHA256:…`) and normalized form of an OpenSSH public key line.
pub fn parse_public_key(line: &str) -> Result<(String, String, String)> {
    let line = line.trim();
    if line.is_empty() || line.len() > MAX_KEY_LINE || line.contains('\n') {
        return Err(Error::Invalid("give one public key line, e.g. the contents of ~/.ssh/id_ed25519.pub".into()));
    }
    let key = ssh_key::PublicKey::from_openssh(line)
        .map_err(|e| Error::Invalid(format!("not an OpenSSH public key: {e}")))?;
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let comment = key.comment().to_string();
    let mut plain = key.clone();
    plain.set_comment("");
    let normalized = plain.to_openssh().map_err(|e| Error::Invalid(format!("unusable public key: {e}")))?;
    Ok((fingerprint, normalized.trim().to_string(), comment))
}

fn info(k: &SshKeyRow) -> SshKeyInfo {
    SshKeyInfo {
        id: k.id.clone(),
        user_id: k.user_id.clone(),
        name: k.name.clone(),
        fingerprint: k.fingerprint.clone(),
        public_key: k.public_key.clone(),
        created_at: k.created_at,
        last_used_at: k.last_used_at,
    }
}

impl Auth {
    /// Registers a key for `id_or_me`.
    pub async fn add_ssh_key(&self, caller: &Caller, id_or_me: &str, req: &AddSshKeyRequest) -> Result<SshKeyInfo> {
        let user = managed_user(self.store(), caller, id_or_me).await?;
        let (fingerprint, public_key, comment) = parse_public_key(&req.public_key)?;
        let name = req.name.clone().unwrap_or(comment);
        let name = if name.is_empty() { fingerprint.clone() } else { name };
        if name.len() > 128 || name.chars().any(char::is_control) {
            return Err(Error::Invalid("a key name is at most 128 printable characters".into()));
        }
        if self.store().ssh_keys_of(&user.id).await?.len() >= MAX_KEYS {
            return Err(Error::QuotaExceeded(format!("at most {MAX_KEYS} SSH keys per user")));
        }
        let row = SshKeyRow {
            id: format!("sk-{}", ids::random_base32(16)),
            user_id: user.id.clone(),
            name,
            public_key,
            fingerprint,
            created_at: now_ms(),
            last_used_at: None,
        };
        self.store().insert_ssh_key(&row).await?;
        let event = Event::by(caller, "ssh_key.add").detail(format!("{} for {}", row.fingerprint, user.name));
        self.audit.record(event).await;
        Ok(info(&row))
    }

    /// The keys of `id_or_me`.
    pub async fn ssh_keys(&self, caller: &Caller, id_or_me: &str) -> Result<Vec<SshKeyInfo>> {
        let user = managed_user(self.store(), caller, id_or_me).await?;
        Ok(self.store().ssh_keys_of(&user.id).await?.iter().map(info).collect())
    }

    /// Removes one of the keys of `id_or_me`.
    pub async fn remove_ssh_key(&self, caller: &Caller, id_or_me: &str, key_id: &str) -> Result<()> {
        let user = managed_user(self.store(), caller, id_or_me).await?;
        if !self.store().delete_ssh_key(&user.id, key_id).await? {
            return Err(Error::NotFound(format!("SSH key {key_id:?} not found")));
        }
        self.audit.record(Event::by(caller, "ssh_key.remove").detail(key_id)).await;
        Ok(())
    }

    /// The user a verified SSH key (by fingerprint) belongs to.
    pub async fn ssh_login(&self, fingerprint: &str) -> Result<Option<Caller>> {
        let Some(key) = self.store().ssh_key_by_fingerprint(fingerprint).await? else { return Ok(None) };
        let Some(user) = self.store().user(&key.user_id).await? else { return Ok(None) };
        if let Err(e) = self.store().touch_ssh_key(&key.id, now_ms()).await {
            tracing::warn!(error = %e, "recording an SSH key's use failed");
        }
        let role = if user.role == "admin" { Role::Admin } else { Role::User };
        Ok(Some(Caller { user_id: user.id, user_name: user.name, role, source: None, credential: None }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_openssh_public_keys() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
        let (fp, normalized, comment) = super::parse_public_key(line).unwrap();
        assert!(fp.starts_with("SHA256:"), "{fp}");
        assert_eq!(comment, "alice@laptop");
        assert!(normalized.starts_with("ssh-ed25519 AAAA") && !normalized.contains("alice"));
        for bad in ["", "ssh-ed25519", "ssh-ed25519 !!!", "hello world", &format!("{line}\n{line}")] {
            assert!(super::parse_public_key(bad).is_err(), "{bad:?}");
        }
    }
}
