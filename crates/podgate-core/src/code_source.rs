//! Validation of a create request's code bootstrap before anything runs: the URL (scheme,
//! length, credentials, host allowlist, and the addresses it names or resolves to), the pin
//! (sha256 for archives, commit for git) and the install and command lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use podgate_types::bootstrap::{BootstrapSpec, CodeFetch, CodeKind, CodeSource, CommandLine};
use podgate_types::validate;

use crate::{Error, Result};

/// Longest accepted code URL.
pub const MAX_URL: usize = 2048;
/// Longest accepted shell command line.
const MAX_LINE: usize = 16 * 1024;

/// What the server allows for code URLs.
#[derive(Clone, Debug, Default)]
pub struct CodePolicy {
    /// Accept `http://` as well as `https://` (an admin setting, off by default).
    pub allow_http: bool,
    /// Accept loopback, private and link-local addresses (for tests and air-gapped installs;
    /// cloud metadata addresses stay refused).
    pub allow_private: bool,
    /// When not empty, the only hosts allowed: `example.com` matches itself, `*.example.com`
    /// its subdomains.
    pub hosts: Vec<String>,
    /// CA certificates (PEM) trusted for https code hosts besides the public roots.
    pub extra_ca_pem: Option<String>,
}

/// Why an address may not be fetched from, or `None` when it may.
pub fn refused_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    let (metadata, private, unroutable) = match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    };
    if metadata {
        Some("a cloud metadata address")
    } else if unroutable {
        Some("not a routable unicast address")
    } else if private && !allow_private {
        Some("a loopback, private or link-local address")
    } else {
        None
    }
}

/// (metadata, private, unroutable) for an IPv4 address.
fn classify_v4(a: Ipv4Addr) -> (bool, bool, bool) {
    let o = a.octets();
    let metadata = a == Ipv4Addr::new(169, 254, 169, 254)
        || a == Ipv4Addr::new(169, 254, 170, 2)
        || a == Ipv4Addr::new(100, 100, 100, 200);
    let cgnat = o[0] == 100 && (64..128).contains(&o[1]);
    let private = a.is_loopback() || a.is_private() || a.is_link_local() || cgnat;
    let unroutable = a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19));
    (metadata, private, unroutable)
}

/// (metadata, private, unroutable) for an IPv6 address (IPv4-mapped ones are checked as IPv4).
fn classify_v6(a: Ipv6Addr) -> (bool, bool, bool) {
    let s = a.segments();
    let metadata = a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    // NAT64 (64:ff9b::/96), 6to4 (2002::/16), IPv4-translated (::ffff:0:0/96) and the
    // deprecated IPv4-compatible (::/96) forms embed an IPv4 address: judge that one.
    let embedded = match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] | [0, 0, 0, 0, 0xffff, 0, hi, lo] => {
            Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8))
        }
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => {
            Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8))
        }
        _ => None,
    };
    // Teredo (2001::/32) hides an IPv4 address behind a XOR, and local-use NAT64
    // (64:ff9b:1::/48) leads into a private network: neither is fetched from.
    if (s[0] == 0x2001 && s[1] == 0) || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
        return (metadata, true, true);
    }
    if let Some(v4) = embedded {
        let (m, p, u) = classify_v4(v4);
        return (metadata || m, p, u);
    }
    let private = a.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0; // site-local (deprecated)
    let unroutable = a.is_unspecified() || a.is_multicast() || (s[0] == 0x2001 && s[1] == 0xdb8) || s[0] == 0x100;
    (metadata, private, unroutable)
}

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|a| match a.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => a.eq_ignore_ascii_case(host),
        })
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn kind_from_path(path: &str) -> Option<CodeKind> {
    let p = path.to_ascii_lowercase();
    if p.ends_with(".zip") {
        Some(CodeKind::Zip)
    } else if p.ends_with(".tar.gz") || p.ends_with(".tgz") {
        Some(CodeKind::TarGz)
    } else if p.ends_with(".git") || p.ends_with(".git/") {
        Some(CodeKind::Git)
    } else {
        None
    }
}

/// Checks a code source without touching the network: scheme, length, credentials, host
/// allowlist, literal addresses, kind and pin. Returns the URL, its kind, host and port.
pub fn check_source(src: &CodeSource, policy: &CodePolicy) -> Result<(url::Url, CodeKind, String, u16)> {
    let invalid = |m: String| Err(Error::Invalid(m));
    if src.url.len() > MAX_URL {
        return invalid(format!("code url is longer than {MAX_URL} characters"));
    }
    let url =
        url::Url::parse(&src.url).map_err(|e| Error::Invalid(format!("code url {:?} is not a URL: {e}", src.url)))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return invalid(format!("code url {:?} must use https (http is not allowed on this server)", src.url));
        }
        other => return invalid(format!("code url scheme {other:?} is not allowed: use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return invalid("code url must not carry credentials".into());
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return invalid(format!("code url {:?} has no host", src.url)),
    };
    if !host_allowed(&host, &policy.hosts) {
        return invalid(format!("code host {host:?} is not on this server's allowlist"));
    }
    if host == "metadata.google.internal" || host == "metadata" {
        return invalid(format!("code host {host:?} is a cloud metadata service"));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        _ => None,
    };
    if let Some(why) = literal.and_then(|ip| refused_address(ip, policy.allow_private)) {
        return invalid(format!("code host {host} is {why}"));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let kind = match src.kind.or_else(|| kind_from_path(url.path())) {
        Some(k) => k,
        None if src.commit.is_some() => CodeKind::Git,
        None => return invalid("cannot tell the code kind from the url: give kind zip, tar.gz or git".into()),
    };
    match kind {
        CodeKind::Zip | CodeKind::TarGz => {
            if src.commit.is_some() {
                return invalid("commit applies to git code only; archives are pinned by sha256".into());
            }
            match &src.sha256 {
                Some(s) if is_hex(s, &[64]) => {}
                Some(s) => return invalid(format!("sha256 {s:?} must be 64 hex digits")),
                None => return invalid("archives must be pinned: give sha256".into()),
            }
        }
        CodeKind::Git => {
            if src.sha256.is_some() {
                return invalid("sha256 applies to archives; git code is pinned by commit".into());
            }
            match &src.commit {
                Some(c) if is_hex(c, &[40, 64]) => {}
                Some(c) => return invalid(format!("commit {c:?} must be a full hash (40 or 64 hex digits)")),
                None => return invalid("git code must be pinned: give commit".into()),
            }
        }
    }
    Ok((url, kind, host, port))
}

/// Resolves `host` and checks every address it resolves to.
async fn resolve_checked(host: &str, port: u16, policy: &CodePolicy) -> Result<Vec<SocketAddr>> {
    let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return Err(Error::Invalid(format!("code host {host:?} does not resolve: {e}"))),
        Err(_) => return Err(Error::Invalid(format!("resolving code host {host:?} timed out"))),
    };
    if addrs.is_empty() {
        return Err(Error::Invalid(format!("code host {host:?} resolves to no address")));
    }
    for a in &addrs {
        if let Some(why) = refused_address(a.ip(), policy.allow_private) {
            return Err(Error::Invalid(format!("code host {host:?} resolves to {}, {why}", a.ip())));
        }
    }
    Ok(addrs)
}

fn check_command(what: &str, c: &CommandLine, shell: bool) -> Result<()> {
    match c {
        CommandLine::Argv(argv) => validate::argv(what, argv).map_err(Error::Invalid),
        CommandLine::Line(_) if !shell => Err(Error::Invalid(format!(
            "{what} is a string: give an argv array, or set shell: true to run it through the sandbox shell"
        ))),
        CommandLine::Line(l) if l.trim().is_empty() || l.len() > MAX_LINE || l.contains('\0') => {
            Err(Error::Invalid(format!("{what} must be a non-empty command line of at most {MAX_LINE} bytes")))
        }
        CommandLine::Line(_) => Ok(()),
    }
}

/// Validates a create request's bootstrap parts and resolves the code host; `None` when the
/// request has no bootstrap.
pub async fn prepare(
    code: Option<&CodeSource>,
    install: Option<&CommandLine>,
    command: Option<&CommandLine>,
    shell: bool,
    policy: &CodePolicy,
) -> Result<Option<BootstrapSpec>> {
    if code.is_none() && install.is_none() && command.is_none() {
        if shell {
            return Err(Error::Invalid("shell: true applies to install and command, and neither is given".into()));
        }
        return Ok(None);
    }
    if install.is_some() && code.is_none() {
        return Err(Error::Invalid("install needs code to run in".into()));
    }
    if let Some(i) = install {
        check_command("install", i, shell)?;
    }
    if let Some(c) = command {
        check_command("command", c, shell)?;
    }
    let code = match code {
        None => None,
        Some(src) => {
            let (url, kind, host, port) = check_source(src, policy)?;
            let addrs = resolve_checked(&host, port, policy).await?;
            Some(CodeFetch {
                url: url.to_string(),
                kind,
                sha256: src.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
                commit: src.commit.as_ref().map(|s| s.to_ascii_lowercase()),
                addrs: addrs.iter().map(SocketAddr::to_string).collect(),
                ca_pem: policy.extra_ca_pem.clone(),
            })
        }
    };
    Ok(Some(BootstrapSpec { code, install: install.cloned(), command: command.cloned(), shell }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(refused_address(ip(a), false), Some("a loopback, private or link-local address"), "{a}");
            assert_eq!(refused_address(ip(a), true), None, "{a} with private allowed");
        }
        for a in ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200", "64:ff9b::a9fe:a9fe"]
        {
            assert_eq!(refused_address(ip(a), true), Some("a cloud metadata address"), "{a}");
        }
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "::",
            "ff02::1",
            "2001:db8::1",
            "198.18.0.1",
        ] {
            assert_eq!(refused_address(ip(a), true), Some("not a routable unicast address"), "{a}");
        }
        for a in ["93.184.216.34", "140.82.112.3", "2606:4700::1111", "64:ff9b::5db8:d822"] {
            assert_eq!(refused_address(ip(a), false), None, "{a}");
        }
        assert!(refused_address(ip("2002:0a00:0001::"), false).is_some(), "6to4 of 10.0.0.1");
        // Other spellings of 127.0.0.1 (found by a red team): IPv4-translated, IPv4-compatible,
        // NAT64 (well-known and local-use prefixes) and Teredo.
        for a in [
            "::ffff:0:7f00:1",
            "::7f00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::7f00:1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            assert!(refused_address(ip(a), false).is_some(), "{a}");
        }
    }

    #[test]
    fn allowlists_hosts() {
        let allowed = vec!["github.com".to_string(), "*.example.org".to_string()];
        assert!(host_allowed("github.com", &allowed));
        assert!(host_allowed("a.b.example.org", &allowed));
        assert!(!host_allowed("example.org", &allowed));
        assert!(!host_allowed("evilgithub.com", &allowed));
        assert!(!host_allowed("github.com.evil", &allowed));
        assert!(host_allowed("anything", &[]));
    }

    fn src(url: &str, sha: Option<&str>, commit: Option<&str>) -> CodeSource {
        CodeSource { url: url.into(), kind: None, sha256: sha.map(String::from), commit: commit.map(String::from) }
    }

    #[test]
    fn checks_sources() {
        let p = CodePolicy::default();
        let sha = "a".repeat(64);
        let commit = "b".repeat(40);
        assert!(check_source(&src("https://example.com/a.zip", Some(&sha), None), &p).is_ok());
        assert_eq!(check_source(&src("https://example.com/a.tgz", Some(&sha), None), &p).unwrap().1, CodeKind::TarGz);
        assert_eq!(check_source(&src("https://example.com/r.git", None, Some(&commit)), &p).unwrap().1, CodeKind::Git);
        let bad = [
            src("http://example.com/a.zip", Some(&sha), None),
            src("ftp://example.com/a.zip", Some(&sha), None),
            src("file:///etc/passwd.zip", Some(&sha), None),
            src("https://user:pw@example.com/a.zip", Some(&sha), None),
            src(&format!("https://example.com/{}.zip", "a".repeat(MAX_URL)), Some(&sha), None),
            src("https://127.0.0.1/a.zip", Some(&sha), None),
            src("https://[::1]/a.zip", Some(&sha), None),
            src("https://169.254.169.254/a.zip", Some(&sha), None),
            src("https://metadata.google.internal/a.zip", Some(&sha), None),
            src("https://example.com/a.zip", None, None),
            src("https://example.com/a.zip", Some("abc"), None),
            src("https://example.com/a.zip", Some(&sha), Some(&commit)),
            src("https://example.com/r.git", None, None),
            src("https://example.com/r.git", None, Some("main")),
            src("https://example.com/r.git", Some(&sha), Some(&commit)),
            src("https://example.com/download", Some(&sha), None),
            src("not a url", Some(&sha), None),
        ];
        for s in bad {
            assert!(check_source(&s, &p).is_err(), "{s:?}");
        }
        let http = CodePolicy { allow_http: true, ..Default::default() };
        assert!(check_source(&src("http://example.com/a.zip", Some(&sha), None), &http).is_ok());
        let list = CodePolicy { hosts: vec!["example.com".into()], ..Default::default() };
        assert!(check_source(&src("https://other.com/a.zip", Some(&sha), None), &list).is_err());
    }
}
