//! The server's persistent Ed25519 host key, created on first start (OpenSSH format, mode 0600).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};

/// The key at `path`, created there first if missing.
pub fn load_or_create(path: &Path) -> std::io::Result<PrivateKey> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .map_err(|e| invalid(format!("SSH host key {}: {e}", path.display())));
    }
    let seed: [u8; 32] = rand::random();
    let pair = Ed25519Keypair::from_seed(&seed);
    let key = PrivateKey::new(KeypairData::Ed25519(pair), "podgate host key").map_err(|e| invalid(e.to_string()))?;
    let text = key.to_openssh(LineEnding::LF).map_err(|e| invalid(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #[test]
    fn creates_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let a = super::load_or_create(&p).unwrap();
        let b = super::load_or_create(&p).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
