//! Turning bollard errors into the engine's own words, without the host's details, and into
//! the driver's errors.

use podgate_runtime::{Error, Result};

/// Whether the engine answered 404.
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// The engine's message without bollard's wrapping, with host paths and network addresses
/// (resolvers, registries' addresses) replaced: the message reaches users. The full message is
/// logged at debug level.
pub(crate) fn engine_error(e: &bollard::errors::Error) -> String {
    let raw = match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    tracing::debug!(error = %raw, "docker engine error");
    redact(&raw)
}

/// `text` with every word that is an absolute path or an IP address (with or without a port)
/// replaced by `<path>` or `<address>`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            out.push_str(&redact_word(word));
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | '(' | ')' | ',' | '[' | ']' | '=') {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn redact_word(word: &str) -> String {
    // Trailing punctuation stays ("… on 10.0.0.2:53: no such host").
    let core = word.trim_end_matches([':', '.', ';']);
    let tail = &word[core.len()..];
    let bare = core.strip_prefix("tcp://").or_else(|| core.strip_prefix("unix://")).unwrap_or(core);
    if bare.starts_with('/') && bare.len() > 1 {
        return format!("<path>{tail}");
    }
    let host = bare.rsplit_once(':').map_or(bare, |(h, port)| if port.parse::<u16>().is_ok() { h } else { bare });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let is_ip = |s: &str| s.parse::<std::net::IpAddr>().is_ok();
    if is_ip(bare) || bare.parse::<std::net::SocketAddr>().is_ok() || is_ip(host) {
        return format!("<address>{tail}");
    }
    word.to_string()
}

/// A pause or unpause refused because the container is in that state already ("is already
/// paused", "is not paused") is done; a missing container is `NotFound`.
pub(crate) fn already(e: bollard::errors::Error, sandbox_id: &str) -> Result<()> {
    match e {
        // The engine answers 409 or 500, depending on its version.
        bollard::errors::Error::DockerResponseServerError { ref message, .. }
            if message.contains("already paused") || message.contains("not paused") =>
        {
            Ok(())
        }
        e if is_not_found(&e) => Err(Error::NotFound(sandbox_id.to_string())),
        e => Err(Error::Unavailable(engine_error(&e))),
    }
}

pub(crate) fn map_create_error(e: bollard::errors::Error, image: &str) -> Error {
    match &e {
        bollard::errors::Error::DockerResponseServerError { status_code: 400, message } => {
            Error::InvalidSpec(format!("image {image:?}: {message}"))
        }
        bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => {
            Error::ImageUnavailable { image: image.to_string(), reason: message.clone() }
        }
        bollard::errors::Error::DockerResponseServerError { status_code: 409, message } => {
            Error::InvalidSpec(format!("container already exists: {message}"))
        }
        _ => Error::Unavailable(engine_error(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_paths_and_addresses() {
        let m = "Get \"https://reg.example/v2/\": dial tcp: lookup reg.example on 10.0.0.2:53: no such host";
        assert_eq!(
            redact(m),
            "Get \"https://reg.example/v2/\": dial tcp: lookup reg.example on <address>: no such host"
        );
        let m = "open /var/lib/docker/overlay2/abc/merged/etc: no such file or directory";
        assert_eq!(redact(m), "open <path>: no such file or directory");
        assert_eq!(redact("connect to 127.0.0.1:5000 refused"), "connect to <address> refused");
        assert_eq!(redact("via [::1]:80."), "via [<address>]:80.");
        assert_eq!(redact("image \"podgate/base:latest\" not found"), "image \"podgate/base:latest\" not found");
    }
}
