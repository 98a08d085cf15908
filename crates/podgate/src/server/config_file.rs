//! The config file as clap's lowest layer: each key of the TOML file becomes the default of the
//! flag it names, so clap itself orders the layers (flag over `PODGATE_*` variable over file over
//! nothing) and parses every value once, as it parses flags. A boolean is `true`/`false` at
//! every layer (`--flag`, `--flag=false`, `PODGATE_FLAG=false`, `flag = false`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// One `[[oidc]]` table of the config file (more issuers than the `--oidc-*` flags' one).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFileEntry {
    pub(super) issuer: String,
    pub(super) jwks_url: Option<String>,
    pub(super) jwks_file: Option<PathBuf>,
    pub(super) audience: Vec<String>,
    pub(super) algorithms: Option<Vec<String>>,
    pub(super) leeway_seconds: Option<u64>,
    pub(super) user_claim: Option<String>,
    pub(super) auto_provision: Option<bool>,
}

/// A config file read: flag defaults by argument id, and the `[[oidc]]` tables.
#[derive(Debug, Default)]
pub struct ConfigFile {
    defaults: Vec<(String, Vec<String>)>,
    pub(crate) oidc: Vec<OidcFileEntry>,
}

impl ConfigFile {
    /// Reads `path` and checks every key against the flags of `server` (the `podgate server`
    /// command): an unknown key is an error, as is a value of the wrong shape.
    pub fn read(path: &Path, server: &clap::Command) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text, server).with_context(|| format!("config {}", path.display()))
    }

    fn parse(text: &str, server: &clap::Command) -> anyhow::Result<ConfigFile> {
        let table: toml::Table = toml::from_str(text)?;
        let mut file = ConfigFile::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("oidc", value) => file.oidc = value.try_into().context("[[oidc]] tables")?,
                ("kubernetes", toml::Value::Table(kube)) => {
                    for (k, v) in kube {
                        let id = if k == "kubeconfig" { k.clone() } else { format!("kube_{k}") };
                        file.push(server, &id, &format!("kubernetes.{k}"), v)?;
                    }
                }
                (_, value) => file.push(server, &key, &key, value)?,
            }
        }
        Ok(file)
    }

    fn push(&mut self, server: &clap::Command, id: &str, key: &str, value: toml::Value) -> anyhow::Result<()> {
        let Some(arg) = server.get_arguments().find(|a| a.get_id() == id && a.get_long().is_some()) else {
            bail!("unknown key {key:?}");
        };
        if id == "config" {
            bail!("{key:?} cannot be set in the config file");
        }
        let scalar = |v: toml::Value| match v {
            toml::Value::String(s) => Ok(s),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => bail!("{key}: {} is not a value of --{}", other.type_str(), arg.get_long().unwrap_or(id)),
        };
        let values = match value {
            toml::Value::Array(items) if arg.get_value_delimiter().is_some() => {
                items.into_iter().map(scalar).collect::<anyhow::Result<_>>()?
            }
            v => vec![scalar(v)?],
        };
        self.defaults.push((id.to_string(), values));
        Ok(())
    }

    /// `server` with the file's values as its flags' defaults.
    pub fn apply(&self, mut server: clap::Command) -> clap::Command {
        for (id, values) in &self.defaults {
            let values: Vec<clap::builder::OsStr> = values.iter().map(|v| v.clone().into()).collect();
            server = server.mut_arg(id, |a| a.default_values(values));
        }
        server
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, FromArgMatches as _};

    /// `podgate server` parsed from `argv` and `env` (a clean environment otherwise) over `file`.
    fn parse(file: &str, argv: &[&str], env: &[(&str, &str)]) -> anyhow::Result<super::super::ServerArgs> {
        // Variables are read by clap from the process when the command is built; these tests
        // set only their own.
        for (k, v) in env {
            // SAFETY: each test names its own variables, and nothing else reads them.
            unsafe { std::env::set_var(k, v) };
        }
        let base = crate::Cli::command();
        let server = base.find_subcommand("server").unwrap().clone();
        let file = ConfigFile::parse(file, &server)?;
        let cmd = base.mut_subcommand("server", |s| file.apply(s));
        let m = cmd.try_get_matches_from(
            std::iter::once("podgate").chain(std::iter::once("server")).chain(argv.iter().copied()),
        )?;
        let (_, m) = m.subcommand().unwrap();
        Ok(super::super::ServerArgs::from_arg_matches(m)?)
    }

    #[test]
    fn a_flag_beats_a_variable_beats_the_file_and_false_is_false_everywhere() {
        let file = "allow_root_sandboxes = true\ncode_allow_http = true\nssh_password_auth = true\nlisten = \"127.0.0.1:1\"\n\
                    image_registries = [\"a.example\", \"b.example\"]\n[kubernetes]\nnamespace = \"ns\"\nport_forward = true";
        let a = parse(file, &[], &[]).unwrap();
        assert_eq!(
            (a.allow_root_sandboxes, a.code_allow_http, a.listen.as_deref()),
            (Some(true), Some(true), Some("127.0.0.1:1"))
        );
        assert_eq!(a.image_registries.as_deref(), Some(&["a.example".to_string(), "b.example".to_string()][..]));
        assert_eq!(a.kube.kube_namespace.as_deref(), Some("ns"));
        assert_eq!(a.kube.kube_port_forward, Some(true));
        // The file's true turned off by a flag, and by a variable.
        let a = parse(
            file,
            &["--allow-root-sandboxes=false", "--listen", "127.0.0.1:2"],
            &[("PODGATE_CODE_ALLOW_HTTP", "false")],
        )
        .unwrap();
        assert_eq!(
            (a.allow_root_sandboxes, a.code_allow_http, a.ssh_password_auth),
            (Some(false), Some(false), Some(true))
        );
        assert_eq!(a.listen.as_deref(), Some("127.0.0.1:2"));
        // SAFETY: as in `parse`: this test's own variable.
        unsafe { std::env::remove_var("PODGATE_CODE_ALLOW_HTTP") };
        // A bare flag is true; a variable loses to a flag.
        let a = parse("", &["--code-allow-private-hosts"], &[("PODGATE_SSH_NO_FORWARDING", "true")]).unwrap();
        assert_eq!((a.code_allow_private_hosts, a.ssh_no_forwarding), (Some(true), Some(true)));
        let a = parse("", &["--ssh-no-forwarding=no"], &[]).unwrap();
        assert_eq!(a.ssh_no_forwarding, Some(false));
        // SAFETY: as in `parse`: this test's own variable.
        unsafe { std::env::remove_var("PODGATE_SSH_NO_FORWARDING") };
        assert_eq!(parse("", &[], &[]).unwrap().allow_root_sandboxes, None);
    }

    #[test]
    fn unknown_keys_and_wrong_values_are_refused() {
        let err = |file: &str| format!("{:#}", parse(file, &[], &[]).unwrap_err());
        assert!(err("bogus = 1").contains("unknown key \"bogus\""));
        assert!(err("[kubernetes]\nbogus = 1").contains("unknown key \"kubernetes.bogus\""));
        assert!(err("config = \"x\"").contains("cannot be set"));
        assert!(err("default_cpu = \"lots\"").contains("lots"), "{}", err("default_cpu = \"lots\""));
        assert!(err("allow_root_sandboxes = \"maybe\"").contains("maybe"));
        assert!(err("listen = [\"a\"]").contains("array"));
        assert!(err("[[oidc]]\nissuer = \"x\"\nbogus = 1").contains("oidc"));
    }

    #[test]
    fn secrets_never_print() {
        let a = parse("database_url = \"postgres://u:hunter2@db/p\"", &[], &[]).unwrap();
        assert!(!format!("{a:?}").contains("hunter2"), "{a:?}");
        let s = crate::server::settings::resolve(a).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        use secrecy::ExposeSecret as _;
        assert_eq!(s.database_url.unwrap().expose_secret(), "postgres://u:hunter2@db/p");
    }
}
