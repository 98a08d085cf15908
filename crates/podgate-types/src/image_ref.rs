//! Image references as the Docker engine reads them (registry, repository, tag, digest), the
//! short form the engine lists an image's names in, and the admin's registry allowlist.
//!
//! A reference names an image; it never selects one by id. The engine itself also resolves
//! image ids and id prefixes (`3bc6`, `sha256:…`), which would let a caller reach an image it
//! was never given a name for; [`ImageRef::parse`] refuses id forms, and the Docker driver only
//! uses a local image whose listed names include the reference.

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (and port), lower-case; [`DEFAULT_REGISTRY`] when the reference names none.
    pub registry: String,
    /// Repository path within the registry (`library/debian` for `debian` on Docker Hub).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn path_component_ok(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&x| alnum(x) || matches!(x, b'.' | b'_' | b'-'))
}

fn tag_ok(t: &str) -> bool {
    let b = t.as_bytes();
    (1..=128).contains(&b.len())
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'))
}

fn registry_ok(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && r.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl ImageRef {
    /// Parses `image` as a name (`[registry/]repository[:tag][@sha256:…]`). Id forms (`sha256:…`,
    /// 64 hex digits) are refused: images are used by name only.
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        crate::validate::image(image)?;
        let bad = |why: &str| Err(format!("invalid image reference {image:?}: {why}"));
        if image.starts_with("sha256:") || (image.len() == 64 && is_hex(image)) {
            return bad("images are named by repository and tag, never by id");
        }
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => {
                let ok = d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && is_hex(h));
                if !ok {
                    return bad("a digest is sha256: and 64 lower-case hex digits");
                }
                (n, Some(d.to_string()))
            }
            None => (image, None),
        };
        let (name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => {
                if !tag_ok(t) {
                    return bad("a tag is 1-128 letters, digits, '.', '_' or '-'");
                }
                (n, Some(t.to_string()))
            }
            _ => (name, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_ascii_lowercase(), rest)
            }
            _ => (DEFAULT_REGISTRY.to_string(), name),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if !registry_ok(&registry) {
            return bad("the registry is not a host name");
        }
        if path.is_empty() || !path.split('/').all(path_component_ok) {
            return bad("repository names are lower-case letters, digits and '.', '_', '-' between '/'");
        }
        if path.len() == 64 && is_hex(path) {
            return bad("images are named by repository and tag, never by id");
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// The repository as the engine lists it (`debian`, `podgate/base`, `host:5000/team/app`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository.strip_prefix("library/").unwrap_or(&self.repository).to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The name the engine lists among an image's `RepoTags` (`debian:latest`), unless the
    /// reference is by digest only.
    pub fn familiar_tagged(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(format!("{}:{t}", self.familiar_name())),
            (None, None) => Some(format!("{}:latest", self.familiar_name())),
            (None, Some(_)) => None,
        }
    }

    /// The name the engine lists among an image's `RepoDigests`, for a reference by digest.
    pub fn familiar_digested(&self) -> Option<String> {
        self.digest.as_ref().map(|d| format!("{}@{d}", self.familiar_name()))
    }

    /// The full reference to pull: with its digest, else its tag, else `latest` (an engine
    /// asked to pull a repository without either pulls every tag of it).
    pub fn pull_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}/{}@{d}", self.registry, self.repository),
            (None, t) => format!("{}/{}:{}", self.registry, self.repository, t.as_deref().unwrap_or("latest")),
        }
    }

    /// Whether an image whose names are `repo_tags` and `repo_digests` is the one this
    /// reference names (and not one the engine found by an id prefix).
    pub fn names_one_of(&self, repo_tags: &[String], repo_digests: &[String]) -> bool {
        match self.familiar_digested() {
            Some(d) => repo_digests.contains(&d),
            None => self.familiar_tagged().is_some_and(|t| repo_tags.contains(&t)),
        }
    }
}

/// Whether `registry` is on the admin's allowlist (`*` allows every registry).
pub fn registry_allowed(allowlist: &[String], registry: &str) -> bool {
    allowlist.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_names() {
        let r = ImageRef::parse("debian").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("docker.io", "library/debian"));
        assert_eq!(r.familiar_tagged().as_deref(), Some("debian:latest"));
        let r = ImageRef::parse("docker.io/library/debian:12").unwrap();
        assert_eq!(r.familiar_tagged().as_deref(), Some("debian:12"));
        let r = ImageRef::parse("podgate/base:latest").unwrap();
        assert_eq!(r.familiar_tagged().as_deref(), Some("podgate/base:latest"));
        let r = ImageRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.familiar_tagged().as_deref(), Some("localhost:5000/team/app:v1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("ghcr.io/o/x@{d}")).unwrap();
        assert_eq!(r.familiar_digested(), Some(format!("ghcr.io/o/x@{d}")));
        assert_eq!(r.familiar_tagged(), None);
        assert_eq!(r.pull_reference(), format!("ghcr.io/o/x@{d}"));
        assert_eq!(ImageRef::parse("debian").unwrap().pull_reference(), "docker.io/library/debian:latest");
    }

    #[test]
    fn refuses_ids_and_junk() {
        for bad in
            ["sha256:3bc6e0", &"3bc6e0a1".repeat(8), "UPPER/case", "a//b", "x:", "x@sha256:12", "-lead", "", "a b"]
        {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn short_hex_is_a_name_that_must_match() {
        // `b2` is a valid repository name; an image found by id prefix does not list it.
        let r = ImageRef::parse("b2").unwrap();
        assert!(!r.names_one_of(&["podgate-snapshot:abc".into()], &[]));
        assert!(r.names_one_of(&["b2:latest".into()], &[]));
    }

    #[test]
    fn allowlist() {
        let list = vec!["docker.io".to_string(), "registry.example.com:5000".to_string()];
        assert!(registry_allowed(&list, "docker.io"));
        assert!(registry_allowed(&list, "Registry.Example.com:5000"));
        assert!(!registry_allowed(&list, "127.0.0.1:5000"));
        assert!(registry_allowed(&["*".to_string()], "127.0.0.1:5000"));
    }
}
