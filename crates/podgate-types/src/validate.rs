//! Input validation shared by the server and the CLI: names, env keys, labels, argv.

use std::collections::BTreeMap;

/// Longest sandbox name (a DNS label).
pub const MAX_NAME_LEN: usize = 63;

/// A numeric user: `UID`, or `UID:GID` (the uid as the gid when alone), each below 2^31.
pub fn uid_gid(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    match (u.parse::<u32>(), g.parse::<u32>()) {
        (Ok(u), Ok(g)) if u < 1 << 31 && g < 1 << 31 => Ok((u, g)),
        _ => Err(format!("invalid user {s:?}: give a uid or uid:gid (e.g. 1000:1000)")),
    }
}

/// A user name: the same rules as a sandbox name.
pub fn user_name(name: &str) -> Result<(), String> {
    sandbox_name(name).map_err(|_| {
        format!(
            "invalid user name {name:?}: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
        )
    })
}

/// A sandbox name: 1–63 of `a-z`, `0-9`, `-`, starting and ending with a letter or digit.
pub fn sandbox_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid sandbox name {name:?}: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
        ))
    }
}

/// A sidecar name: 1–32 of `a-z`, `0-9`, `-`, starting and ending with a letter or digit.
pub fn sidecar_name(name: &str) -> Result<(), String> {
    match sandbox_name(name) {
        Ok(()) if name.len() <= 32 => Ok(()),
        _ => Err(format!(
            "invalid sidecar name {name:?}: use 1-32 lowercase letters, digits and '-', not starting or ending with '-'"
        )),
    }
}

/// An image reference: 1–512 characters, no whitespace or control characters.
pub fn image(image: &str) -> Result<(), String> {
    if image.is_empty() || image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("invalid image reference {image:?}"));
    }
    Ok(())
}

/// Environment variables: POSIX-style names, no NUL bytes in values, bounded size.
pub fn env(env: &BTreeMap<String, String>) -> Result<(), String> {
    if env.len() > 1000 {
        return Err(format!("too many env variables: {} (max 1000)", env.len()));
    }
    for (k, v) in env {
        let mut bytes = k.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') || k.len() > 256 {
            return Err(format!("invalid env name {k:?}: use letters, digits and '_', not starting with a digit"));
        }
        if v.contains('\0') {
            return Err(format!("env value of {k:?} contains a NUL byte"));
        }
        if v.len() > 128 * 1024 {
            return Err(format!("env value of {k:?} is longer than 128 KiB"));
        }
    }
    Ok(())
}

/// Labels: keys of `A-Za-z0-9._/-` (1–63), values up to 256 bytes, at most 64 labels.
pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > 64 {
        return Err(format!("too many labels: {} (max 64)", labels.len()));
    }
    for (k, v) in labels {
        let ok = !k.is_empty()
            && k.len() <= 63
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'));
        if !ok {
            return Err(format!("invalid label key {k:?}: use 1-63 of letters, digits, '.', '_', '/', '-'"));
        }
        if v.len() > 256 || v.contains('\0') {
            return Err(format!("invalid label value for {k:?}: at most 256 bytes, no NUL"));
        }
    }
    Ok(())
}

/// A Kubernetes name part: 1-63 lowercase letters, digits and '-', '.' inside.
fn kube_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(format!("invalid {what} {s:?}: use 1-63 lowercase letters, digits, '-' and '.'")) }
}

/// A Kubernetes label key (`[prefix/]name`) or value (`value` true: may be empty).
fn kube_label(what: &str, s: &str, value: bool) -> Result<(), String> {
    if value && s.is_empty() {
        return Ok(());
    }
    let name = match s.split_once('/') {
        Some((prefix, name)) if !value => {
            if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(|p| kube_name(what, p).is_ok()) {
                return Err(format!("invalid {what} {s:?}: the prefix is a DNS name"));
            }
            name
        }
        _ => s,
    };
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(format!("invalid {what} {s:?}: 1-63 letters, digits, '-', '_', '.'")) }
}

/// A template's Kubernetes scheduling: a runtime class name, label-shaped node selectors, and
/// tolerations `KEY[=VALUE]:EFFECT`.
pub fn scheduling(s: &crate::api::Scheduling) -> Result<(), String> {
    if let Some(rc) = &s.runtime_class {
        kube_name("runtime class", rc)?;
    }
    if s.node_selector.len() > 32 || s.tolerations.len() > 32 {
        return Err("at most 32 node selectors and 32 tolerations".into());
    }
    for (k, v) in &s.node_selector {
        kube_label("node selector key", k, false)?;
        kube_label("node selector value", v, true)?;
    }
    for t in &s.tolerations {
        toleration(t)?;
    }
    Ok(())
}

/// A Kubernetes toleration `KEY[=VALUE]:EFFECT` as (key, value, effect); EFFECT is NoSchedule,
/// PreferNoSchedule or NoExecute, KEY and VALUE have label syntax.
pub fn toleration(t: &str) -> Result<(&str, Option<&str>, &str), String> {
    let (kv, effect) = t.rsplit_once(':').ok_or_else(|| format!("toleration {t:?} is not KEY[=VALUE]:EFFECT"))?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(format!("toleration {t:?}: the effect is NoSchedule, PreferNoSchedule or NoExecute"));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    kube_label("toleration key", key, false)?;
    kube_label("toleration value", value.unwrap_or_default(), true)?;
    Ok((key, value, effect))
}

/// An argv: at least one element, no NUL bytes.
pub fn argv(what: &str, argv: &[String]) -> Result<(), String> {
    if argv.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if argv.len() > 4096 {
        return Err(format!("{what} has too many arguments (max 4096)"));
    }
    if let Some(a) = argv.iter().find(|a| a.contains('\0')) {
        return Err(format!("{what} argument {a:?} contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_scheduling() {
        use crate::api::Scheduling;
        let good = Scheduling {
            runtime_class: Some("gvisor".into()),
            node_selector: BTreeMap::from([
                ("node.example.com/pool".into(), "sandboxes".into()),
                ("gpu".into(), "".into()),
            ]),
            tolerations: vec!["sandbox=true:NoSchedule".into(), "spot:NoExecute".into()],
        };
        assert!(scheduling(&good).is_ok());
        let bad = |s: Scheduling| scheduling(&s).unwrap_err();
        assert!(
            bad(Scheduling { runtime_class: Some("gVisor".into()), ..Default::default() }).contains("runtime class")
        );
        for key in ["", "a b", "-x", "x/", "/x", "bad_prefix/x"] {
            let s = Scheduling { node_selector: BTreeMap::from([(key.to_string(), "v".into())]), ..Default::default() };
            assert!(scheduling(&s).is_err(), "{key:?}");
        }
        for t in ["x", "x:Never", ":NoSchedule", "a b=c:NoSchedule", "k=v v:NoExecute"] {
            assert!(scheduling(&Scheduling { tolerations: vec![t.into()], ..Default::default() }).is_err(), "{t:?}");
        }
    }

    #[test]
    fn names() {
        assert!(sandbox_name("web-1").is_ok());
        assert!(sandbox_name("a").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a b", "é", &"a".repeat(64)] {
            assert!(sandbox_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn env_names() {
        let mut m = BTreeMap::new();
        m.insert("EMPTY".to_string(), String::new());
        m.insert("_X1".to_string(), "v".to_string());
        assert!(env(&m).is_ok());
        for bad in ["1A", "A-B", "", "A=B", "A B"] {
            let m = BTreeMap::from([(bad.to_string(), "v".to_string())]);
            assert!(env(&m).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn argvs() {
        assert!(argv("argv", &[]).is_err());
        assert!(argv("argv", &["a\0b".into()]).is_err());
        assert!(argv("argv", &["echo".into(), String::new()]).is_ok());
    }
}
