//! Sidecars: checked against the owner's sidecar policy (an admin's: the server default or the
//! user's quota override), given default limits, and turned into what the driver places.

use podgate_runtime::SidecarPlacement;
use podgate_types::api::{Sidecar, SidecarPolicy};
use podgate_types::{MemorySize, validate};

use crate::{Error, Result};

/// Most sidecars one sandbox may have.
pub const MAX_SIDECARS: usize = 4;
/// CPU limit of a sidecar that names none.
pub const DEFAULT_CPU: f64 = 0.5;
/// Memory limit of a sidecar that names none.
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// The requested sidecars, validated under `policy` (their images by `check_image`), with
/// defaults applied.
pub(crate) fn prepare(
    sidecars: Vec<Sidecar>,
    policy: SidecarPolicy,
    min_memory: u64,
    check_image: impl Fn(&str) -> Result<()>,
) -> Result<Vec<Sidecar>> {
    if sidecars.is_empty() {
        return Ok(sidecars);
    }
    if policy == SidecarPolicy::None {
        return Err(Error::Forbidden("your sidecar policy allows no sidecars: ask an admin".into()));
    }
    if sidecars.len() > MAX_SIDECARS {
        return Err(Error::Invalid(format!("{} sidecars: at most {MAX_SIDECARS}", sidecars.len())));
    }
    let mut names = std::collections::BTreeSet::new();
    sidecars
        .into_iter()
        .map(|mut s| {
            let invalid = |m: String| Error::Invalid(format!("sidecar {:?}: {m}", s.name));
            validate::sidecar_name(&s.name).map_err(Error::Invalid)?;
            if !names.insert(s.name.clone()) {
                return Err(Error::Invalid(format!("two sidecars are called {:?}", s.name)));
            }
            validate::image(&s.image).map_err(invalid)?;
            check_image(&s.image)?;
            validate::env(&s.env).map_err(invalid)?;
            if let Some(cmd) = &s.cmd {
                validate::argv("cmd", cmd).map_err(invalid)?;
            }
            let cpu = s.cpu.unwrap_or(DEFAULT_CPU);
            if !(cpu.is_finite() && cpu > 0.0 && cpu <= 64.0) {
                return Err(invalid(format!("cpu {cpu}: give cores between 0 and 64")));
            }
            let memory = s.memory.map_or(DEFAULT_MEMORY, |m| m.0);
            if !(min_memory..=crate::spec::MAX_MEMORY).contains(&memory) {
                return Err(invalid(format!("memory {memory} bytes is out of range: give 6Mi to 16Ti")));
            }
            if s.privileged && policy != SidecarPolicy::Privileged {
                return Err(Error::Forbidden(format!(
                    "sidecar {:?}: your sidecar policy allows no privileged sidecars: ask an admin",
                    s.name
                )));
            }
            (s.cpu, s.memory) = (Some(cpu), Some(MemorySize(memory)));
            Ok(s)
        })
        .collect()
}

/// What the driver places for `sidecars` (as [`prepare`] left them).
pub(crate) fn placements(sidecars: &[Sidecar]) -> Vec<SidecarPlacement> {
    sidecars
        .iter()
        .map(|s| SidecarPlacement {
            name: s.name.clone(),
            image: s.image.clone(),
            env: s.env.clone(),
            cmd: s.cmd.clone(),
            cpu: s.cpu.unwrap_or(DEFAULT_CPU),
            memory: s.memory.map_or(DEFAULT_MEMORY, |m| m.0),
            privileged: s.privileged,
        })
        .collect()
}

/// CPU and memory the sidecars add to their sandbox's quota use.
pub(crate) fn charged(sidecars: &[Sidecar]) -> (f64, u64) {
    placements(sidecars).iter().fold((0.0, 0), |(c, m), s| (c + s.cpu, m + s.memory))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(name: &str, privileged: bool) -> Sidecar {
        Sidecar { name: name.into(), image: "redis:7".into(), privileged, ..Default::default() }
    }

    #[test]
    fn policy_decides_and_defaults_apply() {
        let min = 6 << 20;
        assert!(prepare(vec![], SidecarPolicy::None, min, |_| Ok(())).unwrap().is_empty());
        let e = prepare(vec![sc("db", false)], SidecarPolicy::None, min, |_| Ok(())).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        let e = prepare(vec![sc("dind", true)], SidecarPolicy::Unprivileged, min, |_| Ok(())).unwrap_err();
        assert_eq!(e.code(), "forbidden");
        let ok = prepare(vec![sc("db", false), sc("dind", true)], SidecarPolicy::Privileged, min, |_| Ok(())).unwrap();
        assert_eq!(ok[0].cpu, Some(DEFAULT_CPU));
        assert_eq!(charged(&ok), (1.0, 2 * DEFAULT_MEMORY));
        for bad in [
            vec![sc("db", false), sc("db", false)],
            vec![sc("Bad_Name", false)],
            vec![Sidecar { image: "a b".into(), ..sc("x", false) }],
            vec![Sidecar { cpu: Some(0.0), ..sc("x", false) }],
            vec![Sidecar { memory: Some(MemorySize(1024)), ..sc("x", false) }],
            (0..5).map(|i| sc(&format!("s{i}"), false)).collect(),
        ] {
            assert_eq!(prepare(bad, SidecarPolicy::Privileged, min, |_| Ok(())).unwrap_err().code(), "invalid_request");
        }
    }
}
