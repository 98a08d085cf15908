//! Who signs session tokens: the [`TokenSigner`] seam, which an external KMS can implement, and
//! [`StoreSigner`], Ed25519 keys kept in the database and rotated there.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use podgate_store::{SigningKeyRow, Store};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::clock::now_ms;
use crate::{Error, Result, ids};

/// A public key as published at `/.well-known/jwks.json` (Ed25519, `alg` EdDSA).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    /// The raw public key, base64url.
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    /// The JWK of an Ed25519 public key given as base64url.
    pub fn ed25519(kid: &str, x: &str) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: x.into(),
            kid: kid.into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }
}

/// `{"keys": [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Signs session tokens with EdDSA (Ed25519) keys that it holds and never hands out. The server
/// builds each JWS and asks only for the signature, so the private keys may live elsewhere (a
/// KMS or an HSM); [`StoreSigner`] is the built-in one.
#[async_trait::async_trait]
pub trait TokenSigner: Send + Sync + 'static {
    /// The id (JWS `kid`) of the key that signs now.
    async fn current_kid(&self) -> Result<String>;
    /// Signs `input` (the JWS signing input, `header.payload`) with key `kid`; the raw signature.
    async fn sign(&self, kid: &str, input: &[u8]) -> Result<Vec<u8>>;
    /// Every key that verifies tokens now: the current one and those still in their overlap.
    /// `fresh` re-reads them (another replica may have rotated).
    async fn public_keys(&self, fresh: bool) -> Result<Vec<Jwk>>;
    /// Makes a new key current; the others stop signing now and verify for `overlap` more.
    /// Returns the new key's id.
    async fn rotate(&self, overlap: Duration) -> Result<String>;
}

struct HeldKey {
    row: SigningKeyRow,
    pair: Ed25519KeyPair,
}

/// Ed25519 keys in the store (PKCS#8), shared by every server on the database.
pub struct StoreSigner {
    store: Store,
    keys: RwLock<Vec<HeldKey>>,
}

fn generate_key() -> Result<SigningKeyRow> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| Error::Internal(format!("key generation: {e}")))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| Error::Internal(format!("key parsing: {e}")))?;
    Ok(SigningKeyRow {
        kid: format!("k-{}", ids::random_base32(12)),
        alg: "EdDSA".into(),
        private_key: STANDARD.encode(pkcs8.as_ref()),
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        created_at: now_ms(),
        retired_at: None,
        expires_at: None,
    })
}

impl StoreSigner {
    /// Loads the keys, creating the first one if none signs.
    pub async fn load(store: Store) -> Result<StoreSigner> {
        let s = StoreSigner { store, keys: RwLock::default() };
        s.refresh().await?;
        if s.keys.read().await.iter().all(|k| k.row.retired_at.is_some()) {
            s.store.insert_signing_key(&generate_key()?).await?;
            s.refresh().await?;
        }
        Ok(s)
    }

    async fn refresh(&self) -> Result<()> {
        let rows = self.store.signing_keys(now_ms()).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let pair = STANDARD
                .decode(&row.private_key)
                .ok()
                .and_then(|der| Ed25519KeyPair::from_pkcs8(&der).ok())
                .ok_or_else(|| Error::Internal(format!("signing key {} is not an Ed25519 PKCS#8 key", row.kid)))?;
            keys.push(HeldKey { row, pair });
        }
        *self.keys.write().await = keys;
        Ok(())
    }
}

#[async_trait::async_trait]
impl TokenSigner for StoreSigner {
    async fn current_kid(&self) -> Result<String> {
        let keys = self.keys.read().await;
        let key = keys.iter().find(|k| k.row.retired_at.is_none());
        key.map(|k| k.row.kid.clone()).ok_or_else(|| Error::Internal("no current signing key".into()))
    }

    async fn sign(&self, kid: &str, input: &[u8]) -> Result<Vec<u8>> {
        let keys = self.keys.read().await;
        let key = keys.iter().find(|k| k.row.kid == kid).ok_or_else(|| Error::Internal(format!("no key {kid}")))?;
        Ok(key.pair.sign(input).as_ref().to_vec())
    }

    async fn public_keys(&self, fresh: bool) -> Result<Vec<Jwk>> {
        if fresh {
            self.refresh().await?;
        }
        Ok(self.keys.read().await.iter().map(|k| Jwk::ed25519(&k.row.kid, &k.row.public_key)).collect())
    }

    async fn rotate(&self, overlap: Duration) -> Result<String> {
        let key = generate_key()?;
        self.store.insert_signing_key(&key).await?;
        let now = now_ms();
        self.store.retire_signing_keys(&key.kid, now, now + overlap.as_millis() as i64).await?;
        self.refresh().await?;
        Ok(key.kid)
    }
}
