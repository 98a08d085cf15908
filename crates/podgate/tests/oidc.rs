//! OIDC bearer tokens end to end against a local issuer on loopback that signs with its own
//! keys (ES256 and RS256): discovery, audience, expiry with leeway, not-before, wrong issuer,
//! forged and `none`/HMAC tokens, key rotation with a rate-limited refetch, auto-provisioning,
//! linking by name (never to an admin), and a JWKS file for offline use.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Opts, Server};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use podgate_client::Client;
use podgate_types::api::{AuditList, UserInfo};
use serde_json::{Value, json};

/// A signing key and its public JWK.
struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

/// A key with its public JWK as the issuer publishes it.
fn key(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Key {
    let mut jwk = serde_json::to_value(jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
    jwk["kid"] = kid.into();
    jwk["use"] = "sig".into();
    Key { kid: kid.into(), alg, encoding, jwk }
}

fn es256(kid: &str) -> Key {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    key(kid, Algorithm::ES256, EncodingKey::from_ec_der(pkcs8.as_ref()))
}

/// An RSA key made by the `openssl` tool (ring signs with RSA but does not make keys).
fn rs256(kid: &str) -> Key {
    // PKCS#1 DER, the form `EncodingKey::from_rsa_der` reads.
    let script = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl rsa -traditional -outform DER";
    let out = std::process::Command::new("sh").args(["-c", script]).output().expect("running openssl");
    assert!(out.status.success() && !out.stdout.is_empty(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    key(kid, Algorithm::RS256, EncodingKey::from_rsa_der(&out.stdout))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An OIDC issuer on loopback: discovery and a JWKS that the test can change.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: &[&Key]) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/keys")});
        let (j, f) = (jwks.clone(), fetches.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/keys",
                axum::routing::get(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = j.lock().unwrap().clone();
                    async move { axum::Json(body) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Issuer { url, jwks, fetches }
    }

    fn publish(&self, keys: &[&Key]) {
        *self.jwks.lock().unwrap() = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    }

    fn token(&self, key: &Key, claims: Value) -> String {
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        let mut c = json!({"iss": self.url, "aud": "podgate", "exp": now() + 300, "iat": now()});
        c.as_object_mut().unwrap().extend(claims.as_object().unwrap().clone());
        jsonwebtoken::encode(&header, &c, &key.encoding).unwrap()
    }
}

async fn status(srv: &Server, token: &str) -> u16 {
    let r = reqwest::Client::new().get(format!("{}/v1/users/me", srv.url)).bearer_auth(token).send().await.unwrap();
    r.status().as_u16()
}

async fn me(srv: &Server, token: &str) -> UserInfo {
    Client::new(&srv.url, token).unwrap().me().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_tokens_are_verified_provisioned_and_keys_rotate() {
    let (k1, k2, rsa) = (es256("k1"), es256("k2"), rs256("r1"));
    let issuer = Issuer::start(&[&k1, &rsa]).await;
    let flags = vec![
        "--oidc-issuer".to_string(),
        issuer.url.clone(),
        "--oidc-audience".into(),
        "podgate,other".into(),
        "--oidc-user-claim".into(),
        "email".into(),
        "--oidc-auto-provision".into(),
    ];
    let srv = Server::start_with(Opts { extra: flags, ..Default::default() });

    // A first token provisions a user named after the claim; it is an ordinary user.
    let alice = issuer.token(&k1, json!({"sub": "1", "email": "Alice@Example.com"}));
    let info = me(&srv, &alice).await;
    assert_eq!((info.name.as_str(), info.role.as_str()), ("alice-example-com", "user"));
    assert_eq!(me(&srv, &alice).await.id, info.id, "the identity stays linked to its user");
    let rsa_token = issuer.token(&rsa, json!({"email": "Alice@Example.com"}));
    assert_eq!(me(&srv, &rsa_token).await.id, info.id, "RS256 from the same issuer");
    // Another identity whose name would collide gets its own user.
    let other = issuer.token(&k1, json!({"email": "alice-example.com"}));
    assert_eq!(me(&srv, &other).await.name, "alice-example-com-2");

    // Refusals.
    let k_other = es256("k1");
    let cases: Vec<(&str, String)> = vec![
        ("wrong audience", issuer.token(&k1, json!({"email": "a@x", "aud": "someone-else"}))),
        ("expired past the leeway", issuer.token(&k1, json!({"email": "a@x", "exp": now() - 120}))),
        ("not valid yet", issuer.token(&k1, json!({"email": "a@x", "nbf": now() + 600}))),
        ("another issuer", issuer.token(&k1, json!({"email": "a@x", "iss": "https://evil.example"}))),
        ("forged: same kid, other key", issuer.token(&k_other, json!({"email": "a@x"}))),
        ("no user claim", issuer.token(&k1, json!({"sub": "x"}))),
        ("no exp", {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some("k1".into());
            jsonwebtoken::encode(&h, &json!({"iss": issuer.url, "aud": "podgate", "email": "a@x"}), &k1.encoding)
                .unwrap()
        }),
        ("HMAC with the public key as secret", {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("k1".into());
            let claims = json!({"iss": issuer.url, "aud": "podgate", "exp": now() + 300, "email": "a@x"});
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(k1.jwk.to_string().as_bytes())).unwrap()
        }),
        ("alg none", {
            let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
            let body = URL_SAFE_NO_PAD
                .encode(json!({"iss": issuer.url, "aud": "podgate", "exp": now() + 300, "email": "a@x"}).to_string());
            format!("{head}.{body}.")
        }),
        ("garbage", "eyJ.not.a-token".into()),
    ];
    for (what, token) in &cases {
        assert_eq!(status(&srv, token).await, 401, "{what}");
    }
    // Within the leeway (60 s), a just-expired token still works.
    let late = issuer.token(&k1, json!({"email": "Alice@Example.com", "exp": now() - 20}));
    assert_eq!(status(&srv, &late).await, 200);

    // Key rotation: a token signed by a new key makes the server refetch the keys once (at
    // most one fetch per 5 s: wait out the one of the first token).
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    let before = issuer.fetches.load(Ordering::SeqCst);
    issuer.publish(&[&k2]);
    let rotated = issuer.token(&k2, json!({"email": "Alice@Example.com"}));
    assert_eq!(me(&srv, &rotated).await.id, info.id);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), before + 1);
    // Unknown key ids do not make the server hammer the issuer.
    let k9 = es256("k9");
    for _ in 0..5 {
        assert_eq!(status(&srv, &issuer.token(&k9, json!({"email": "x@y"}))).await, 401);
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), before + 1, "refetches are rate-limited");

    // The API tokens still work beside OIDC, and the trail shows the provisioning and refusals.
    let audit: AuditList = srv.get_json("/v1/audit?action=user.provision").await;
    assert_eq!(audit.events.len(), 2, "{:?}", audit.events);
    let failed: AuditList = srv.get_json("/v1/audit?action=auth.failed").await;
    assert!(failed.events.len() >= cases.len(), "{:?}", failed.events);
    assert!(failed.events.iter().any(|e| e.detail.as_deref().is_some_and(|d| d.contains("wrong audience"))));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_provisioning_identities_link_to_existing_users_only() {
    let key = es256("offline");
    // Offline: the issuer's keys from a file; the issuer URL is never contacted.
    let jwks = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwks.path(), json!({"keys": [key.jwk]}).to_string()).unwrap();
    let iss = "https://idp.example.com/realms/podgate";
    let flags = vec![
        "--oidc-issuer".to_string(),
        iss.into(),
        "--oidc-jwks-file".into(),
        jwks.path().display().to_string(),
        "--oidc-audience".into(),
        "podgate".into(),
    ];
    let srv = Server::start_with(Opts { extra: flags, ..Default::default() });
    let token = |sub: &str| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("offline".into());
        let claims = json!({"iss": iss, "aud": "podgate", "exp": now() + 300, "sub": sub});
        jsonwebtoken::encode(&h, &claims, &key.encoding).unwrap()
    };
    assert_eq!(status(&srv, &token("bob")).await, 401, "no user bob yet");
    let o = srv.cli(&["user", "create", "bob"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bob = me(&srv, &token("bob")).await;
    assert_eq!((bob.name.as_str(), bob.role.as_str()), ("bob", "user"));
    assert_eq!(status(&srv, &token("admin")).await, 401, "an identity never becomes the admin by its name");
}
