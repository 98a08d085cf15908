//! OIDC bearer tokens from one or more configured issuers (Keycloak, Dex, Auth0, Google,
//! Firebase, any standard issuer): signature by the issuer's published keys (found through
//! discovery, a JWKS URL, or a JWKS file for offline use), issuer, audience, expiry and
//! not-before with a leeway, and an allowed algorithm. Keys are cached; an unknown key id
//! refetches them, at most once per [`REFETCH_EVERY`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use tokio::sync::{Mutex, RwLock};

pub use jsonwebtoken::Algorithm;

use crate::{Error, Result};

/// Shortest time between two fetches of one issuer's keys.
pub const REFETCH_EVERY: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
const MAX_DOCUMENT: usize = 1 << 20;

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
    Url(String),
    File(PathBuf),
}

/// One trusted issuer.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    /// Must equal the tokens' `iss` exactly.
    pub issuer: String,
    pub keys: KeySource,
    /// The token's `aud` must contain one of these.
    pub audience: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway_seconds: u64,
    /// The claim that names the user (e.g. `sub`, `email`, `preferred_username`).
    pub user_claim: String,
    /// Create a podgate user for an identity seen for the first time.
    pub auto_provision: bool,
}

/// Checks an issuer's settings.
pub fn validate_config(c: &IssuerConfig) -> std::result::Result<(), String> {
    let url = |u: &str, what: &str| match url_allowed(u) {
        true => Ok(()),
        false => Err(format!("{what} {u:?} must be https (http only on loopback)")),
    };
    match &c.keys {
        KeySource::Discovery => url(&c.issuer, "issuer")?,
        KeySource::Url(u) => url(u, "JWKS URL")?,
        KeySource::File(_) => {}
    }
    if c.issuer.is_empty() || c.audience.is_empty() || c.algorithms.is_empty() || c.user_claim.is_empty() {
        return Err(format!("issuer {:?} needs an audience, algorithms and a user claim", c.issuer));
    }
    if c.algorithms.iter().any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) {
        return Err("HMAC algorithms need a shared secret: use the issuer's public keys (RS*, PS*, ES*, EdDSA)".into());
    }
    Ok(())
}

fn url_allowed(u: &str) -> bool {
    match reqwest::Url::parse(u) {
        Ok(url) if url.scheme() == "https" => true,
        Ok(url) if url.scheme() == "http" => {
            matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
        }
        _ => false,
    }
}

struct Issuer {
    cfg: IssuerConfig,
    keys: RwLock<JwkSet>,
    /// When the keys were last fetched (or a fetch was tried).
    fetched: Mutex<Option<Instant>>,
}

/// The identity a valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub auto_provision: bool,
}

/// Verifies OIDC tokens against the configured issuers.
pub struct Oidc {
    issuers: Vec<Issuer>,
    http: reqwest::Client,
}

impl Oidc {
    pub fn new(configs: Vec<IssuerConfig>) -> Result<Oidc> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| Error::Internal(format!("OIDC http client: {e}")))?;
        let issuers = configs
            .into_iter()
            .map(|cfg| Issuer { cfg, keys: RwLock::new(JwkSet { keys: Vec::new() }), fetched: Mutex::new(None) })
            .collect();
        Ok(Oidc { issuers, http })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Whether `token` is shaped like a JWT (three base64url parts, a JSON header).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.starts_with("eyJ") && token.split('.').count() == 3
    }

    /// The identity a valid token names; every refusal is a 401 with the reason.
    pub async fn verify(&self, token: &str) -> Result<Identity> {
        let refused = |why: &str| Error::Unauthenticated(format!("OIDC token refused: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed"))?;
        let iss = unverified_issuer(token).ok_or_else(|| refused("no issuer"))?;
        let issuer = self.issuers.iter().find(|i| i.cfg.issuer == iss).ok_or_else(|| refused("unknown issuer"))?;
        if !issuer.cfg.algorithms.contains(&header.alg) {
            return Err(refused(&format!("algorithm {:?} is not accepted", header.alg)));
        }
        let key = match self.key(issuer, header.kid.as_deref(), false).await? {
            Some(k) => k,
            // An unknown key id: the issuer may have rotated.
            None => self.key(issuer, header.kid.as_deref(), true).await?.ok_or_else(|| refused("unknown key"))?,
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_audience(&issuer.cfg.audience);
        v.set_issuer(&[&issuer.cfg.issuer]);
        v.leeway = issuer.cfg.leeway_seconds;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            refused(match e.kind() {
                K::ExpiredSignature => "expired",
                K::ImmatureSignature => "not valid yet",
                K::InvalidAudience => "wrong audience",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidSignature => "bad signature",
                K::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "invalid",
            })
        })?;
        let subject = match data.claims.get(&issuer.cfg.user_claim) {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
            _ => return Err(refused(&format!("no {} claim", issuer.cfg.user_claim))),
        };
        Ok(Identity { issuer: issuer.cfg.issuer.clone(), subject, auto_provision: issuer.cfg.auto_provision })
    }

    /// The key for `kid` (or the only key, without one); with `refetch`, fetches the issuer's
    /// keys first unless that happened within [`REFETCH_EVERY`]. The first use always fetches.
    async fn key(&self, issuer: &Issuer, kid: Option<&str>, refetch: bool) -> Result<Option<DecodingKey>> {
        {
            let mut fetched = issuer.fetched.lock().await;
            let due = match *fetched {
                None => true,
                Some(at) => refetch && at.elapsed() >= REFETCH_EVERY,
            };
            if due {
                *fetched = Some(Instant::now());
                match self.fetch(&issuer.cfg).await {
                    Ok(set) => *issuer.keys.write().await = set,
                    Err(e) => tracing::warn!(issuer = %issuer.cfg.issuer, error = %e, "fetching OIDC keys failed"),
                }
            }
        }
        let set = issuer.keys.read().await;
        let jwk = match kid {
            Some(kid) => set.find(kid),
            None if set.keys.len() == 1 => set.keys.first(),
            None => None,
        };
        Ok(jwk.and_then(|k| DecodingKey::from_jwk(k).ok()))
    }

    async fn fetch(&self, cfg: &IssuerConfig) -> std::result::Result<JwkSet, String> {
        let bytes = match &cfg.keys {
            KeySource::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
            KeySource::Url(u) => self.get(u).await?,
            KeySource::Discovery => {
                let url = format!("{}/.well-known/openid-configuration", cfg.issuer.trim_end_matches('/'));
                let doc: serde_json::Value =
                    serde_json::from_slice(&self.get(&url).await?).map_err(|e| format!("{url}: {e}"))?;
                if doc.get("issuer").and_then(|i| i.as_str()) != Some(cfg.issuer.as_str()) {
                    return Err(format!("{url} names another issuer"));
                }
                let jwks = doc.get("jwks_uri").and_then(|u| u.as_str()).ok_or_else(|| format!("{url}: no jwks_uri"))?;
                if !url_allowed(jwks) {
                    return Err(format!("jwks_uri {jwks:?} must be https"));
                }
                self.get(jwks).await?
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| format!("not a JWKS: {e}"))
    }

    async fn get(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let mut resp = self.http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
            }
        }
        Ok(body)
    }
}

/// The `iss` claim, read before any verification only to pick the issuer's keys.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

/// A podgate user name for an identity: lowercase letters, digits and `-`, at most 63.
pub fn user_name_for(subject: &str) -> String {
    let mut name: String = subject
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    // Cut to leave room for a `-NN` suffix, then trim: a cut may end on a `-`.
    name = name.trim_matches('-').chars().take(56).collect::<String>().trim_end_matches('-').to_string();
    if name.is_empty() { "user".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_subject_makes_a_valid_user_name(s in "\\PC{0,100}", n in 2u32..60) {
            let name = user_name_for(&s);
            proptest::prop_assert!(podgate_types::validate::user_name(&name).is_ok(), "{s:?} -> {name:?}");
            let suffixed = format!("{name}-{n}");
            proptest::prop_assert!(podgate_types::validate::user_name(&suffixed).is_ok(), "{:?}", suffixed);
        }
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(user_name_for("Alice.Smith@Example.com"), "alice-smith-example-com");
        assert_eq!(user_name_for("@@"), "user");
        assert!(url_allowed("https://accounts.google.com"));
        assert!(url_allowed("http://127.0.0.1:8080/realms/x"));
        assert!(!url_allowed("http://idp.example.com"));
        assert!(!url_allowed("file:///etc/passwd"));
        assert!(Oidc::looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJ9.c2ln"));
        assert!(!Oidc::looks_like_jwt("pgt_abc"));
    }
}
