//! What `sync` never brings down from the sandbox unless asked by name: files that make
//! programs on this machine run code the sandbox wrote. Everything in or named `.git` (its
//! `config` sets `core.fsmonitor` or `core.pager`, `hooks` run, `commondir` or a `.git` file
//! point git at any directory), a bare repository's `config` and `hooks`, direnv's `.envrc`, and
//! an editor's task and settings files.

/// Whether `rel` (a relative path, `/`-separated) is executable configuration. `is_git_dir`
/// tells whether a directory (relative path) is a bare repository (it holds `HEAD`); it is
/// asked only for the parents of files called `config` or of `hooks` folders.
pub(crate) async fn executable_config(rel: &str, is_git_dir: impl AsyncFn(&str) -> bool) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let last = parts.len() - 1;
    if parts.contains(&".git") || parts[last] == ".envrc" {
        return true;
    }
    if last >= 1 && parts[last - 1] == ".vscode" && matches!(parts[last], "tasks.json" | "settings.json") {
        return true;
    }
    for i in 0..last {
        let next = parts[i + 1];
        let guarded_child = (next == "config" && i + 1 == last) || next == "hooks";
        if !guarded_child {
            continue;
        }
        // In a directory git would take for a bare repository.
        if is_git_dir(&parts[..=i].join("/")).await {
            return true;
        }
    }
    false
}

/// Whether the user asked for `rel` by name: `--allow-download` gave it or a folder above it.
pub(crate) fn asked_for(rel: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .map(|a| a.trim_matches('/'))
        .any(|a| rel == a || rel.strip_prefix(a).is_some_and(|r| r.starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn guarded(rel: &str) -> bool {
        executable_config(rel, async |dir: &str| dir == "bare.git" || dir == "x/bare").await
    }

    #[tokio::test]
    async fn guards_executable_configuration() {
        for rel in [
            ".git",
            ".git/config",
            ".git/hooks",
            ".git/hooks/pre-commit",
            "sub/.git/config",
            ".git/modules/lib/config",
            ".git/modules/lib/hooks/post-checkout",
            ".git/commondir",
            ".git/HEAD",
            "bare.git/config",
            "x/bare/hooks/update",
            ".envrc",
            "app/.envrc",
            ".vscode/tasks.json",
        ] {
            assert!(guarded(rel).await, "{rel} must be guarded");
        }
        for rel in [
            "src/config",
            "config",
            ".gitignore",
            ".git-blame-ignore-revs",
            "hooks/x",
            "src/main.rs",
            ".vscode/extensions.json",
        ] {
            assert!(!guarded(rel).await, "{rel} must sync");
        }
    }

    #[test]
    fn asked_by_name() {
        let allowed = vec![".git/hooks/".to_string(), ".envrc".to_string()];
        assert!(asked_for(".git/hooks/pre-commit", &allowed));
        assert!(asked_for(".envrc", &allowed));
        assert!(!asked_for(".git/config", &allowed));
        assert!(!asked_for(".git/hooksx", &allowed));
    }
}
