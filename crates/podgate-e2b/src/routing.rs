//! Which sandbox and port a request is for: the `E2b-Sandbox-Id` and `E2b-Sandbox-Port` headers
//! (what the SDKs send with `E2B_SANDBOX_URL`, and always alongside the host name), or a host
//! name `PORT-SANDBOXID.DOMAIN`.

use axum::http::HeaderMap;
use axum::http::header::HOST;

use crate::E2bError;

/// A sandbox's port, as a request addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub sandbox_id: String,
    pub port: u16,
}

const ID_HEADER: &str = "e2b-sandbox-id";
const PORT_HEADER: &str = "e2b-sandbox-port";

fn port(s: &str) -> Result<u16, E2bError> {
    s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| E2bError::bad_request(format!("invalid sandbox port {s:?}")))
}

fn sandbox_id(s: &str) -> Result<String, E2bError> {
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(s.to_string()) } else { Err(E2bError::bad_request(format!("invalid sandbox id {s:?}"))) }
}

/// The host label of the control plane under the domain (`api.DOMAIN`).
const API_LABEL: &str = "api";

/// The target of a request, if it names one; a malformed name is an error.
pub fn target(headers: &HeaderMap, domain: Option<&str>) -> Result<Option<Target>, E2bError> {
    let header = |name: &str| {
        headers.get(name).map(|v| v.to_str().map_err(|_| E2bError::bad_request(format!("invalid {name} header"))))
    };
    if let Some(id) = header(ID_HEADER) {
        let id = sandbox_id(id?)?;
        let port = match header(PORT_HEADER) {
            Some(p) => port(p?)?,
            None => crate::ENVD_PORT,
        };
        return Ok(Some(Target { sandbox_id: id, port }));
    }
    let (Some(domain), Some(Ok(host))) = (domain, headers.get(HOST).map(|h| h.to_str())) else { return Ok(None) };
    let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    let Some(label) = host.strip_suffix(domain).and_then(|h| h.strip_suffix('.')) else { return Ok(None) };
    if label == API_LABEL {
        // `api.DOMAIN`: where the SDKs send control-plane calls when only E2B_DOMAIN is set.
        return Ok(None);
    }
    let Some((p, id)) = label.split_once('-') else {
        return Err(E2bError::bad_request(format!("host {host:?} is not PORT-SANDBOXID.{domain}")));
    };
    Ok(Some(Target { sandbox_id: sandbox_id(id)?, port: port(p)? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn headers_name_the_sandbox_and_port() {
        let t = target(&headers(&[(ID_HEADER, "sb-abc"), (PORT_HEADER, "8080")]), None).unwrap();
        assert_eq!(t, Some(Target { sandbox_id: "sb-abc".into(), port: 8080 }));
        let t = target(&headers(&[(ID_HEADER, "sb-abc")]), None).unwrap();
        assert_eq!(t.unwrap().port, crate::ENVD_PORT);
        assert!(target(&headers(&[(ID_HEADER, "../x")]), None).is_err());
        assert!(target(&headers(&[(ID_HEADER, "sb-a"), (PORT_HEADER, "0")]), None).is_err());
        assert!(target(&headers(&[(ID_HEADER, "sb-a"), (PORT_HEADER, "70000")]), None).is_err());
    }

    #[test]
    fn host_names_under_the_domain_name_the_sandbox() {
        let d = Some("sb.example.com");
        let t = target(&headers(&[("host", "49983-sb-abc.sb.example.com:443")]), d).unwrap();
        assert_eq!(t, Some(Target { sandbox_id: "sb-abc".into(), port: 49983 }));
        // The control plane's own host, and a host that only ends like the domain, are not sandboxes.
        assert_eq!(target(&headers(&[("host", "api.example.com")]), d).unwrap(), None);
        assert_eq!(target(&headers(&[("host", "3000-sb-a.evilsb.example.com")]), d).unwrap(), None);
        assert!(target(&headers(&[("host", "nope.sb.example.com")]), d).is_err());
        assert_eq!(target(&headers(&[("host", "api.sb.example.com:443")]), d).unwrap(), None, "E2B_DOMAIN's API");
        assert_eq!(target(&headers(&[("host", "49983-sb-a.sb.example.com")]), None).unwrap(), None);
    }
}
