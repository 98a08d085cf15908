//! Signed file URLs (envd's `/files?…&signature=v1_…`): a download or upload link that proves
//! knowledge of the sandbox's access token without carrying it. The signature is
//! `v1_` + unpadded base64 of SHA-256 over `path:operation:user:token[:expiration]`, as the SDKs'
//! `download_url` and `upload_url` compute it; an expired one is refused.

use axum::http::Method;
use axum::http::request::Parts;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::E2bError;

/// What a signed URL claims: the file, the operation, the user and the expiry it was signed for.
pub struct SignedUrl {
    signature: String,
    path: String,
    operation: &'static str,
    user: String,
    expiration: Option<i64>,
}

impl SignedUrl {
    /// The signed-URL parameters of a `/files` request, if it has a signature.
    pub fn of(parts: &Parts) -> Option<Result<SignedUrl, E2bError>> {
        if parts.uri.path() != "/files" {
            return None;
        }
        let mut signature = None;
        let (mut path, mut user, mut expiration) = (String::new(), String::new(), None);
        for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            match &*k {
                "signature" => signature = Some(v.into_owned()),
                "path" => path = v.into_owned(),
                "username" => user = v.into_owned(),
                "signature_expiration" => expiration = Some(v.into_owned()),
                _ => {}
            }
        }
        let signature = signature?;
        let operation = if parts.method == Method::GET { "read" } else { "write" };
        let expiration = match expiration.map(|e| e.parse::<i64>()) {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Some(Err(E2bError::bad_request("signature_expiration must be a Unix time"))),
        };
        Some(Ok(SignedUrl { signature, path, operation, user, expiration }))
    }

    /// Refuses a URL whose expiry has passed at `now` (Unix seconds).
    pub fn check_expiry(&self, now: i64) -> Result<(), E2bError> {
        match self.expiration {
            Some(e) if e < now => Err(E2bError::unauthenticated("the signed URL has expired")),
            _ => Ok(()),
        }
    }

    /// Whether the signature is the one `token` makes.
    pub fn made_with(&self, token: &str) -> bool {
        let expected = sign(&self.path, self.operation, &self.user, token, self.expiration);
        bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), self.signature.as_bytes()))
    }
}

/// The signature of `operation` (`read` or `write`) on `path` as `user` with `token`.
pub fn sign(path: &str, operation: &str, user: &str, token: &str, expiration: Option<i64>) -> String {
    let raw = match expiration {
        Some(e) => format!("{path}:{operation}:{user}:{token}:{e}"),
        None => format!("{path}:{operation}:{user}:{token}"),
    };
    let digest = Sha256::digest(raw.as_bytes());
    format!("v1_{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str) -> Parts {
        axum::http::Request::builder().method(method).uri(uri).body(()).unwrap().into_parts().0
    }

    #[test]
    fn signatures_match_the_sdks_formula() {
        // hashlib.sha256(b"/tmp/a:read::tok").digest(), base64 without padding (the SDKs' get_signature).
        assert_eq!(sign("/tmp/a", "read", "", "tok", None), "v1_jRv7bf35peDXq059OOOyWD0PBnF4OWRLw0tBteoU7A4");
        let s = sign("/tmp/a", "write", "user", "tok", Some(1_700_000_000));
        let uri = format!("/files?path=%2Ftmp%2Fa&username=user&signature={s}&signature_expiration=1700000000");
        let url = SignedUrl::of(&parts(Method::POST, &uri)).unwrap().unwrap();
        assert!(url.made_with("tok"));
        assert!(!url.made_with("other"));
        assert!(url.check_expiry(1_699_999_999).is_ok());
        assert!(url.check_expiry(1_700_000_001).is_err());
        // The same signature does not read, nor reach another path.
        assert!(!SignedUrl::of(&parts(Method::GET, &uri)).unwrap().unwrap().made_with("tok"));
        let other = uri.replace("%2Ftmp%2Fa", "%2Ftmp%2Fb");
        assert!(!SignedUrl::of(&parts(Method::POST, &other)).unwrap().unwrap().made_with("tok"));
    }

    #[test]
    fn only_signed_file_requests_count() {
        assert!(SignedUrl::of(&parts(Method::GET, "/files?path=/a")).is_none());
        assert!(SignedUrl::of(&parts(Method::GET, "/envs?signature=v1_x")).is_none());
        let bad = "/files?path=/a&signature=v1_x&signature_expiration=soon";
        assert!(SignedUrl::of(&parts(Method::GET, bad)).unwrap().is_err());
    }
}
