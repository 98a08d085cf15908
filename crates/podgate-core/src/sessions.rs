//! Session tokens for terminal WebSockets: short-lived, single-use EdDSA JWTs signed by keys kept
//! in the store (rotatable with an overlap, published as a JWKS), and longer-lived read-only share
//! tokens that can be exchanged for session tokens.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use podgate_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::clock::now_ms;
use crate::signer::{StoreSigner, TokenSigner};
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
    /// Of a share token: the API token that issued it (the link dies with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<String>,
    /// Of a share token: when it was issued, in unix ms (revocations compare against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_ms: Option<i64>,
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
    /// A share link its owner revoked, or whose issuing API token is revoked or expired.
    Revoked,
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
            Refusal::Revoked => "revoked",
        }
    }
}

pub use crate::signer::{Jwk, Jwks};

/// Issues and verifies session tokens; a [`TokenSigner`] holds the private keys.
#[derive(Clone)]
pub struct SessionTokens {
    store: Store,
    signer: Arc<dyn TokenSigner>,
    /// Verification keys by id, from the signer's public keys.
    verifying: Arc<RwLock<Vec<(String, DecodingKey)>>>,
}

impl SessionTokens {
    /// Session tokens signed by keys kept in `store`, creating the first key if there is none.
    pub async fn load(store: Store) -> Result<SessionTokens> {
        let signer = Arc::new(StoreSigner::load(store.clone()).await?);
        SessionTokens::with_signer(store, signer).await
    }

    /// Session tokens signed by `signer`; `store` records which tokens were used.
    pub async fn with_signer(store: Store, signer: Arc<dyn TokenSigner>) -> Result<SessionTokens> {
        let t = SessionTokens { store, signer, verifying: Arc::default() };
        t.refresh(false).await?;
        Ok(t)
    }

    /// Reloads the verification keys from the signer and returns them as published.
    async fn refresh(&self, fresh: bool) -> Result<Vec<Jwk>> {
        let jwks = self.signer.public_keys(fresh).await?;
        let mut keys = Vec::with_capacity(jwks.len());
        for k in &jwks {
            let decoding = DecodingKey::from_ed_components(&k.x)
                .map_err(|e| Error::Internal(format!("public key {}: {e}", k.kid)))?;
            keys.push((k.kid.clone(), decoding));
        }
        *self.verifying.write().await = keys;
        Ok(jwks)
    }

    /// Makes a new signing key current; older keys stop signing now and stop verifying after
    /// [`ROTATION_OVERLAP`]. Returns the new key id.
    pub async fn rotate(&self) -> Result<String> {
        let kid = self.signer.rotate(ROTATION_OVERLAP).await?;
        self.refresh(false).await?;
        Ok(kid)
    }

    /// The published public keys.
    pub async fn jwks(&self) -> Result<Jwks> {
        // Another replica may have rotated: read them afresh.
        Ok(Jwks { keys: self.refresh(true).await? })
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
        let claims = Self::claims(user, sandbox, terminal, aud, ttl, read_only);
        Ok((self.sign(&claims).await?, claims))
    }

    /// Signs a read-only share token for a terminal that lives `ttl`, tied to the API token
    /// `credential` that asked for it.
    pub async fn issue_share(
        &self,
        user: &str,
        sandbox: &str,
        terminal: &str,
        ttl: Duration,
        credential: Option<&str>,
    ) -> Result<(String, Claims)> {
        let claims = Claims {
            cred: credential.map(str::to_string),
            issued_ms: Some(now_ms()),
            ..Self::claims(user, sandbox, terminal, AUD_SHARE, ttl, true)
        };
        Ok((self.sign(&claims).await?, claims))
    }

    /// The claims of a token issued now for `aud` that lives `ttl`.
    fn claims(user: &str, sandbox: &str, terminal: &str, aud: &str, ttl: Duration, read_only: bool) -> Claims {
        let iat = now_ms() / 1000;
        Claims {
            sub: user.into(),
            sid: sandbox.into(),
            tid: terminal.into(),
            aud: aud.into(),
            jti: ids::random_base32(26),
            iat,
            exp: iat + ttl.as_secs() as i64,
            read_only,
            cred: None,
            issued_ms: None,
        }
    }

    /// Builds the JWS and has the signer sign it.
    async fn sign(&self, claims: &Claims) -> Result<String> {
        let kid = self.signer.current_kid().await?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let input = format!("{}.{}", b64_json(&header)?, b64_json(claims)?);
        let signature = self.signer.sign(&kid, input.as_bytes()).await?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
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
        if !self.verifying.read().await.iter().any(|(k, _)| *k == kid) {
            // Maybe rotated by another replica.
            let _ = self.refresh(true).await;
        }
        let keys = self.verifying.read().await;
        let (_, key) = keys.iter().find(|(k, _)| *k == kid).ok_or(Refusal::UnknownKey)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[aud]);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<Claims>(token, key, &v).map(|d| d.claims).map_err(|e| match e.kind() {
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

/// `v` as JSON, base64url without padding (a JWS part).
fn b64_json<T: Serialize>(v: &T) -> Result<String> {
    let json = serde_json::to_vec(v).map_err(|e| Error::Internal(format!("encoding a token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
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

    /// A signer outside the store, as a KMS would be: one in-memory key, and a switch that makes
    /// it unreachable.
    struct RemoteSigner {
        pair: ring::signature::Ed25519KeyPair,
        down: std::sync::atomic::AtomicBool,
        signed: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenSigner for RemoteSigner {
        async fn current_kid(&self) -> Result<String> {
            Ok("kms-1".into())
        }
        async fn sign(&self, kid: &str, input: &[u8]) -> Result<Vec<u8>> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::Unavailable("the key service is unavailable".into()));
            }
            assert_eq!(kid, "kms-1");
            self.signed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.pair.sign(input).as_ref().to_vec())
        }
        async fn public_keys(&self, _fresh: bool) -> Result<Vec<Jwk>> {
            use ring::signature::KeyPair as _;
            Ok(vec![Jwk::ed25519("kms-1", &URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()))])
        }
        async fn rotate(&self, _overlap: Duration) -> Result<String> {
            Err(Error::Forbidden("rotate this key in the key service".into()))
        }
    }

    #[tokio::test]
    async fn another_signer_holds_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let signer = Arc::new(RemoteSigner {
            pair: ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
            down: Default::default(),
            signed: Default::default(),
        });
        let t = SessionTokens::with_signer(store.clone(), signer.clone()).await.unwrap();
        let (tok, claims) = t.issue("u", "sb", "t1", AUD_TERMINAL, SESSION_TTL, false).await.unwrap();
        assert_eq!(signer.signed.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(jsonwebtoken::decode_header(&tok).unwrap().kid.as_deref(), Some("kms-1"));
        assert_eq!(t.verify(&tok, AUD_TERMINAL).await.unwrap(), claims);
        // The published key verifies it without podgate's code, as any JWT library would.
        let jwk = &t.jwks().await.unwrap().keys[0];
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[AUD_TERMINAL]);
        let key = DecodingKey::from_ed_components(&jwk.x).unwrap();
        assert_eq!(jsonwebtoken::decode::<Claims>(&tok, &key, &v).unwrap().claims, claims);
        // Nothing was written to the store's key table.
        assert!(store.signing_keys(0).await.unwrap().is_empty());
        // The key service being down fails the issue as unavailable; rotation is its business.
        signer.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = t.issue("u", "sb", "t1", AUD_TERMINAL, SESSION_TTL, false).await.unwrap_err();
        assert_eq!(err.code(), "unavailable");
        assert_eq!(t.rotate().await.unwrap_err().code(), "forbidden");
    }
}
