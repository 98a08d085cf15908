//! Keys of encrypted workspaces. A volume's key is derived from its owner's passphrase with
//! Argon2id and a random salt of the volume's. The server keeps the salt, the cost and a
//! verifier (further bytes of the same derivation, which say nothing of the key), never the
//! key or the passphrase: a wrong passphrase is told apart before the kernel is asked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use podgate_runtime::VolumeKey;
use podgate_types::passphrase::Passphrase;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

const KEY: usize = 64;
const VERIFIER: usize = 32;
/// Argon2id cost: 19 MiB and two passes (OWASP's recommended minimum), about 50 ms here.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;

/// What a volume row keeps of its encryption.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Encryption {
    salt: String,
    verifier: String,
    memory_kib: u32,
    passes: u32,
}

impl Encryption {
    /// A new volume's encryption for `passphrase`, and its key.
    pub(crate) async fn new(passphrase: &Passphrase) -> Result<(Encryption, VolumeKey)> {
        passphrase.validate().map_err(Error::Invalid)?;
        let salt: [u8; 16] = rand::random();
        let (key, verifier) = derive(passphrase, salt.to_vec(), MEMORY_KIB, PASSES).await?;
        let e = Encryption {
            salt: B64.encode(salt),
            verifier: B64.encode(verifier),
            memory_kib: MEMORY_KIB,
            passes: PASSES,
        };
        Ok((e, key))
    }

    /// The key `passphrase` gives, if it is this volume's passphrase.
    pub(crate) async fn open(&self, passphrase: &Passphrase) -> Result<VolumeKey> {
        let corrupt = |_| Error::Internal("a volume's encryption record is corrupt".into());
        let salt = B64.decode(&self.salt).map_err(corrupt)?;
        let want = B64.decode(&self.verifier).map_err(corrupt)?;
        let (key, got) = derive(passphrase, salt, self.memory_kib, self.passes).await?;
        use subtle::ConstantTimeEq as _;
        match bool::from(got[..].ct_eq(&want[..])) {
            true => Ok(key),
            false => Err(Error::Forbidden("wrong passphrase".into())),
        }
    }

    pub(crate) fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(e.to_string()))
    }

    pub(crate) fn from_json(json: &str) -> Result<Encryption> {
        serde_json::from_str(json).map_err(|e| Error::Internal(format!("a volume's encryption record: {e}")))
    }
}

/// Argon2id of `passphrase` and `salt`: the key, then the verifier.
async fn derive(
    passphrase: &Passphrase,
    salt: Vec<u8>,
    memory_kib: u32,
    passes: u32,
) -> Result<(VolumeKey, Zeroizing<[u8; VERIFIER]>)> {
    let text = Zeroizing::new(passphrase.expose().as_bytes().to_vec());
    tokio::task::spawn_blocking(move || {
        let params = argon2::Params::new(memory_kib, passes, 1, Some(KEY + VERIFIER))
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEY + VERIFIER]);
        argon
            .hash_password_into(&text, &salt, &mut out[..])
            .map_err(|e| Error::Internal(format!("deriving a volume key: {e}")))?;
        let mut key = Zeroizing::new([0u8; KEY]);
        key.copy_from_slice(&out[..KEY]);
        let mut verifier = Zeroizing::new([0u8; VERIFIER]);
        verifier.copy_from_slice(&out[KEY..]);
        Ok((VolumeKey(key), verifier))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_passphrase_opens_its_key_and_nothing_is_kept_of_it() {
        let pass = Passphrase::new("correct horse battery");
        let (enc, key) = Encryption::new(&pass).await.unwrap();
        let json = enc.to_json().unwrap();
        assert!(!json.contains("horse"));
        let again = Encryption::from_json(&json).unwrap().open(&pass).await.unwrap();
        assert_eq!(&key.0[..], &again.0[..]);
        let wrong = enc.open(&Passphrase::new("correct horse battery!")).await.unwrap_err();
        assert!(matches!(wrong, Error::Forbidden(_)), "{wrong:?}");
        // Another volume with the same passphrase gets another key (its own salt).
        let (_, other) = Encryption::new(&pass).await.unwrap();
        assert_ne!(&key.0[..], &other.0[..]);
        assert!(Encryption::new(&Passphrase::new("short")).await.is_err());
    }
}
