//! Building a process's command: argv or a shell command line, env, cwd and the user it runs as.
//! Users come from the sandbox's own /etc/passwd, parsed directly (no libc user lookup in a
//! static binary).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::Dirs;

/// A user of the sandbox, from /etc/passwd or given as numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<PathBuf>,
    pub shell: Option<String>,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = Account> + '_ {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Some(Account {
            name: Some(f[0].to_string()),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: non_empty(f[5]).map(PathBuf::from),
            shell: non_empty(f[6]),
        })
    })
}

/// Resolves `user` (a name, a uid, or `uid:gid`) against the text of /etc/passwd.
pub fn account(passwd: &str, user: &str) -> Result<Account, String> {
    let (who, group) = match user.split_once(':') {
        Some((u, g)) => {
            (u, Some(g.parse::<u32>().map_err(|_| format!("group {g:?} in user {user:?} is not a number"))?))
        }
        None => (user, None),
    };
    let found = match who.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|a| a.uid == uid).unwrap_or(Account {
            name: None,
            uid,
            gid: uid,
            home: None,
            shell: None,
        }),
        Err(_) => passwd_entries(passwd)
            .find(|a| a.name.as_deref() == Some(who))
            .ok_or_else(|| format!("no user {who:?} in the sandbox's /etc/passwd"))?,
    };
    Ok(Account { gid: group.unwrap_or(found.gid), ..found })
}

/// The login shell of `uid` from /etc/passwd.
pub fn login_shell(passwd: &str, uid: u32) -> Option<String> {
    passwd_entries(passwd).find(|a| a.uid == uid).and_then(|a| a.shell)
}

fn exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// A usable shell: `preferred` if it exists and is not a no-login placeholder, else bash, else sh.
fn usable_shell(preferred: Option<String>) -> String {
    preferred
        .filter(|s| exists(s) && !s.ends_with("/nologin") && !s.ends_with("/false"))
        .or_else(|| ["/bin/bash", "/bin/sh"].into_iter().find(|s| exists(s)).map(String::from))
        .unwrap_or_else(|| "/bin/sh".into())
}

/// The agent user's login shell.
pub fn default_shell() -> String {
    let uid = crate::privileges::sandbox_user().0;
    usable_shell(std::fs::read_to_string("/etc/passwd").ok().and_then(|p| login_shell(&p, uid)))
}

/// What to run, as requested.
pub struct Request<'a> {
    pub argv: &'a [String],
    pub shell: bool,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a str>,
    pub user: Option<&'a str>,
}

/// A command ready to spawn, with what it will run for messages and listings.
pub struct Prepared {
    pub command: Command,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
}

/// Validates the request and builds its command (not yet spawned). The caller puts it in a
/// new process group (pipes) or session (PTY) so signals reach everything it starts.
pub fn prepare(dirs: &Dirs, req: &Request<'_>) -> Result<Prepared, String> {
    podgate_types::validate::argv("argv", req.argv)?;
    podgate_types::validate::env(req.env)?;
    if req.shell && req.argv.len() != 1 {
        return Err("with shell: true, argv must be exactly one command line".into());
    }
    let account = match req.user {
        None => None,
        Some(u) => {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let acc = account(&passwd, u)?;
            let me = crate::privileges::sandbox_user().0;
            if me != 0 && acc.uid != me {
                return Err(format!("the sandbox user is uid {me}: the agent cannot run processes as {u:?}"));
            }
            Some(acc)
        }
    };
    let argv = if req.shell {
        let shell = match &account {
            Some(a) => usable_shell(a.shell.clone()),
            None => default_shell(),
        };
        vec![shell, "-c".into(), req.argv[0].clone()]
    } else {
        req.argv.to_vec()
    };
    let dirs = match account.as_ref().and_then(|a| a.home.clone()) {
        Some(home) => Dirs { home, workdir: dirs.workdir.clone() },
        None => dirs.clone(),
    };
    // Another user may not be able to enter the sandbox workdir: by default it starts at home.
    let default_cwd = match &account {
        Some(a) if a.uid != crate::privileges::sandbox_user().0 => {
            a.home.clone().filter(|h| h.is_dir()).unwrap_or_else(|| PathBuf::from("/"))
        }
        _ => dirs.workdir.clone(),
    };
    let cwd = req.cwd.map_or(default_cwd, |c| dirs.resolve(c));
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(&cwd);
    if let Some(a) = &account {
        if let Some(home) = &a.home {
            command.env("HOME", home);
        }
        if let Some(name) = &a.name {
            command.env("USER", name).env("LOGNAME", name);
        }
        command.uid(a.uid).gid(a.gid);
    }
    command.envs(claimed_env());
    command.envs(req.env);
    Ok(Prepared { command, argv, cwd })
}

/// Environment every process started from now on gets (under its own request's), set when a
/// sandbox from a warm pool is handed to its user (`PUT /v1/env`).
static CLAIMED_ENV: std::sync::RwLock<BTreeMap<String, String>> = std::sync::RwLock::new(BTreeMap::new());

/// Replaces the environment of [`CLAIMED_ENV`].
pub fn set_claimed_env(env: BTreeMap<String, String>) -> Result<(), String> {
    podgate_types::validate::env(&env)?;
    *CLAIMED_ENV.write().unwrap_or_else(|e| e.into_inner()) = env;
    Ok(())
}

fn claimed_env() -> BTreeMap<String, String> {
    CLAIMED_ENV.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nu:x:1000:1001::/home/u:/bin/zsh\nbad line\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn finds_login_shell() {
        assert_eq!(login_shell(PASSWD, 0).as_deref(), Some("/bin/bash"));
        assert_eq!(login_shell(PASSWD, 1000).as_deref(), Some("/bin/zsh"));
        assert_eq!(login_shell(PASSWD, 5), None);
    }

    #[test]
    fn resolves_users() {
        let u = account(PASSWD, "u").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_deref()), (1000, 1001, Some(Path::new("/home/u"))));
        assert_eq!(account(PASSWD, "1000").unwrap().name.as_deref(), Some("u"));
        let n = account(PASSWD, "4242:7").unwrap();
        assert_eq!((n.uid, n.gid, n.name), (4242, 7, None));
        assert!(account(PASSWD, "ghost").is_err());
        assert!(account(PASSWD, "u:staff").is_err());
    }

    #[test]
    fn refuses_bad_requests() {
        let dirs = Dirs { home: "/root".into(), workdir: "/".into() };
        let env = BTreeMap::new();
        let two = vec!["echo".to_string(), "hi".to_string()];
        let req = Request { argv: &two, shell: true, env: &env, cwd: None, user: None };
        assert!(prepare(&dirs, &req).is_err());
        let req = Request { argv: &[], shell: false, env: &env, cwd: None, user: None };
        assert!(prepare(&dirs, &req).is_err());
        let one = vec!["echo hi".to_string()];
        let req = Request { argv: &one, shell: true, env: &env, cwd: Some("sub"), user: None };
        let p = prepare(&dirs, &req).unwrap();
        assert_eq!(p.argv[1..], ["-c".to_string(), "echo hi".to_string()]);
        assert_eq!(p.cwd, PathBuf::from("/sub"));
    }
}
