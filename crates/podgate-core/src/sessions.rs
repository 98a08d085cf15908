//! Session tokens for terminal WebSockets: short-lived, single-use EdDSA JWTs signed by keys kept
//! in the store (rotatable with an overlap, published as a JWKS), and longer-lived read-only share
//! tokens that can be exchanged for session tokens.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use podgate_store::{SigningKeyRow, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::clock::now_ms;
use crate::{Error, Result, ids};

/// Audience of a session token (one terminal connection).
pub const AUD_TERMINAL: &str = "terminal";
/// Audience of a share token (exchanged for read-only session tokens).
pub const AUD_SHARE: &str = "terminal-share";
/// Lifetime of a session token.
pub const SESSION_TTL: Duration = Duration::from_secs(60);
/// Lifetime of a share token.
pub const SHARE_TTL: Duration = Duration::from_secs(3600);
/// How long a rotated-out key still verifies tokens (longer than any token lives).
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(2 * 3600);

/// The claims of session and share tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Sandbox id.
    pub sid: String,
    /// Terminal id.
    pub tid: String,
    pub aud: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub read_only: bool,
}

/// Why a token was refused; each is counted separately in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    BadSignature,
    UnknownKey,
    Expired,
    WrongAudience,
    WrongTarget,
    Replayed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Expired => "expired",
            Refusal::WrongAudience => "wrong_audience",
            Refusal::WrongTarget => "wrong_target",
            Refusal::Replayed => "replayed",
        }
    }
}

/// A public key as published at `/.well-known/jwks.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// `{"keys": [...]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

struct Key {
    row: SigningKeyRow,
    decoding: DecodingKey,
}

/// Issues and verifies session tokens.
#[derive(Clone)]
pub struct SessionTokens {
    store: Store,
    keys: Arc<RwLock<Vec<Key>>>,
}

fn generate_key() -> Result<SigningKeyRow> {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    let rng = aws_lc_rs::rand::SystemRandom::new();
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

impl SessionTokens {
    /// Loads the keys, creating the first one if there is none.
    pub async fn load(store: Store) -> Result<SessionTokens> {
        let t = SessionTokens { store, keys: Arc::default() };
        t.refresh().await?;
        if t.keys.read().await.iter().all(|k| k.row.retired_at.is_some()) {
            t.store.insert_signing_key(&generate_key()?).await?;
            t.refresh().await?;
        }
        Ok(t)
    }

    async fn refresh(&self) -> Result<()> {
        let rows = self.store.signing_keys(now_ms()).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let raw = URL_SAFE_NO_PAD
                .decode(&row.public_key)
                .map_err(|e| Error::Internal(format!("key {}: {e}", row.kid)))?;
            keys.push(Key { decoding: DecodingKey::from_ed_der(&raw), row });
        }
        *self.keys.write().await = keys;
        Ok(())
    }

    /// Makes a new signing key current; older keys stop signing now and stop verifying after
    /// [`ROTATION_OVERLAP`]. Returns the new key id.
    pub async fn rotate(&self) -> Result<String> {
        let key = generate_key()?;
        self.store.insert_signing_key(&key).await?;
        let now = now_ms();
        self.store.retire_signing_keys(&key.kid, now, now + ROTATION_OVERLAP.as_millis() as i64).await?;
        self.refresh().await?;
        Ok(key.kid)
    }

    /// The published public keys.
    pub async fn jwks(&self) -> Result<Jwks> {
        // Another replica may have rotated: read the store.
        self.refresh().await?;
        Ok(Jwks {
            keys: self
                .keys
                .read()
                .await
                .iter()
                .map(|k| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: k.row.public_key.clone(),
                    kid: k.row.kid.clone(),
                    alg: "EdDSA".into(),
                    use_: "sig".into(),
                })
                .collect(),
        })
    }

    /// Signs a token for `aud` that lives `ttl`.
    pub async fn issue(
        &self,
        user: &str,
        sandbox: &str,
        terminal: &str,
        aud: &str,
        ttl: Duration,
        read_only: bool,
    ) -> Result<(String, Claims)> {
        let iat = now_ms() / 1000;
        let claims = Claims {
            sub: user.into(),
            sid: sandbox.into(),
            tid: terminal.into(),
            aud: aud.into(),
            jti: ids::random_base32(26),
            iat,
            exp: iat + ttl.as_secs() as i64,
            read_only,
        };
        let token = self.sign(&claims).await?;
        Ok((token, claims))
    }

    async fn sign(&self, claims: &Claims) -> Result<String> {
        let keys = self.keys.read().await;
        let key = keys
            .iter()
            .find(|k| k.row.retired_at.is_none())
            .ok_or_else(|| Error::Internal("no current signing key".into()))?;
        let der =
            STANDARD.decode(&key.row.private_key).map_err(|e| Error::Internal(format!("key {}: {e}", key.row.kid)))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.row.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der))
            .map_err(|e| Error::Internal(format!("signing: {e}")))
    }

    /// Checks signature, expiry and audience; the caller checks the target.
    pub async fn verify(&self, token: &str, aud: &str) -> Result<Claims, Refusal> {
        if token.is_empty() {
            return Err(Refusal::Missing);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refusal::Malformed);
        }
        let kid = header.kid.ok_or(Refusal::Malformed)?;
        if !self.keys.read().await.iter().any(|k| k.row.kid == kid) {
            // Maybe rotated by another replica.
            let _ = self.refresh().await;
        }
        let keys = self.keys.read().await;
        let key = keys.iter().find(|k| k.row.kid == kid).ok_or(Refusal::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[aud]);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map(|d| d.claims).map_err(|e| match e.kind() {
            K::ExpiredSignature => Refusal::Expired,
            K::InvalidAudience => Refusal::WrongAudience,
            K::InvalidSignature => Refusal::BadSignature,
            _ => Refusal::Malformed,
        })
    }

    /// Marks a verified token as used; a second use is refused.
    pub async fn consume(&self, claims: &Claims) -> Result<(), Refusal> {
        match self.store.use_token_once(&claims.jti, claims.exp * 1000).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Replayed),
            Err(e) => {
                tracing::error!(error = %e, "recording a token use failed");
                Err(Refusal::Replayed)
            }
        }
    }

    /// Forgets used token ids that can no longer be replayed.
    pub async fn purge(&self) -> Result<()> {
        self.store.purge_used_tokens(now_ms()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tokens() -> (SessionTokens, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
        (SessionTokens::load(store).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn issue_verify_consume_rotate() {
        let (t, _d) = tokens().await;
        let (tok, claims) = t.issue("u", "sb", "t1", AUD_TERMINAL, SESSION_TTL, true).await.unwrap();
        let got = t.verify(&tok, AUD_TERMINAL).await.unwrap();
        assert_eq!(got, claims);
        assert!(got.read_only);
        assert_eq!(t.verify(&tok, AUD_SHARE).await, Err(Refusal::WrongAudience));
        t.consume(&got).await.unwrap();
        assert_eq!(t.consume(&got).await, Err(Refusal::Replayed));

        // A flipped signature byte, garbage, and an empty token.
        let mut bad = tok.clone().into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(t.verify(std::str::from_utf8(&bad).unwrap(), AUD_TERMINAL).await, Err(Refusal::BadSignature));
        assert_eq!(t.verify("a.b.c", AUD_TERMINAL).await, Err(Refusal::Malformed));
        assert_eq!(t.verify("", AUD_TERMINAL).await, Err(Refusal::Missing));

        // Expired (beyond the 5 s leeway), and claims changed after signing.
        let past = Claims { exp: got.iat - 60, jti: "old".into(), ..got.clone() };
        let expired = t.sign(&past).await.unwrap();
        assert_eq!(t.verify(&expired, AUD_TERMINAL).await, Err(Refusal::Expired));
        let parts: Vec<&str> = tok.split('.').collect();
        let other = Claims { sid: "another-sandbox".into(), ..got.clone() };
        let forged =
            format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()), parts[2]);
        assert_eq!(t.verify(&forged, AUD_TERMINAL).await, Err(Refusal::BadSignature));

        // Rotation: the old key still verifies during the overlap, new tokens use the new key.
        let jwks = t.jwks().await.unwrap();
        assert_eq!(jwks.keys.len(), 1);
        let new_kid = t.rotate().await.unwrap();
        assert_eq!(t.jwks().await.unwrap().keys.len(), 2);
        assert!(t.verify(&tok, AUD_TERMINAL).await.is_ok(), "old key verifies during the overlap");
        let (fresh, _) = t.issue("u", "sb", "t1", AUD_TERMINAL, SESSION_TTL, false).await.unwrap();
        assert_eq!(jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap(), new_kid);
    }
}
