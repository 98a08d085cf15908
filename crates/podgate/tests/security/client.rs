//! A hostile sandbox against its user's machine: setuid files through `cp` (finding 3) and
//! executable configuration through `sync` (finding 4). The CLI runs as root here, as it did for
//! the red team.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use crate::common::Server;
use crate::{busybox, sh};

#[tokio::test(flavor = "multi_thread")]
async fn downloads_drop_privilege_bits() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("planter")).await.unwrap();
    let plant = "cp /bin/busybox /workspace/suid && chmod 6755 /workspace/suid && mkdir -p /workspace/d && \
                 cp /bin/busybox /workspace/d/suid && chmod 6755 /workspace/d/suid && chmod 3777 /workspace/d";
    assert_eq!(sh(&admin, &sb.id, plant).await.0, 0);
    let here = tempfile::tempdir().unwrap();
    // One file, and a directory (one tar stream).
    for (src, local) in [("planter:/workspace/suid", "suid"), ("planter:/workspace/d", "d")] {
        let o = srv.cli(&["cp", src, here.path().join(local).to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for p in ["suid", "d/suid", "d"] {
        let md = std::fs::metadata(here.path().join(p)).unwrap();
        assert_eq!(md.permissions().mode() & 0o7000, 0, "{p} kept mode {:o}", md.permissions().mode());
        assert_eq!(md.uid(), nix::unistd::getuid().as_raw(), "{p} is owned by the user who copied it");
    }
    assert_eq!(std::fs::metadata(here.path().join("suid")).unwrap().permissions().mode() & 0o777, 0o755);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_keeps_executable_config_out() {
    let srv = Server::start();
    let admin = srv.client();
    let sb = admin.create(&busybox("repo")).await.unwrap();
    let plant = "mkdir -p /workspace/p/.git/hooks /workspace/p/src /workspace/p/bare/hooks /workspace/p/.vscode && cd /workspace/p && \
                 printf '[core]\\n\\tfsmonitor = touch /tmp/pwned-by-fsmonitor\\n' > .git/config && \
                 printf '#!/bin/sh\\ntouch /tmp/pwned-by-hook\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && \
                 echo 'ref: refs/heads/main' > .git/HEAD && echo 'ref: refs/heads/main' > bare/HEAD && \
                 printf '[core]\\n\\tpager = touch /tmp/pwned\\n' > bare/config && echo x > bare/hooks/update && \
                 echo 'export PATH=/tmp/evil:$PATH' > .envrc && echo '{}' > .vscode/tasks.json && \
                 echo 'fn main() {}' > src/main.rs";
    assert_eq!(sh(&admin, &sb.id, plant).await.0, 0);
    let here = tempfile::tempdir().unwrap();
    let local = here.path().to_str().unwrap();
    let o = srv.cli(&["sync", "--once", local, "repo:/workspace/p"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert_eq!(std::fs::read_to_string(here.path().join("src/main.rs")).unwrap(), "fn main() {}\n", "{out}");
    assert_eq!(std::fs::read_to_string(here.path().join("bare/HEAD")).unwrap(), "ref: refs/heads/main\n");
    for guarded in
        [".git/config", ".git/hooks/pre-commit", "bare/config", "bare/hooks/update", ".envrc", ".vscode/tasks.json"]
    {
        assert!(!here.path().join(guarded).exists(), "{guarded} came down: {out}");
        // Reported as skipped, itself or a folder above it.
        let mut reported = false;
        let mut p = guarded;
        loop {
            reported |= out.lines().any(|l| l.starts_with(&format!("skipped  {p}:")));
            match p.rsplit_once('/') {
                Some((parent, _)) => p = parent,
                None => break,
            }
        }
        assert!(reported, "{guarded} not reported: {out}");
    }
    // The user's own repository here: nothing the sandbox writes into its `.git` comes down
    // (`commondir` would point git at a config of the sandbox's choosing).
    std::fs::create_dir_all(here.path().join(".git")).unwrap();
    std::fs::write(here.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    let (code, _) = sh(&admin, &sb.id, "echo ../bare > /workspace/p/.git/commondir").await;
    assert_eq!(code, 0);
    let o = srv.cli(&["sync", "--once", local, "repo:/workspace/p"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(!here.path().join(".git/commondir").exists(), "{out}");
    assert!(!here.path().join(".git/config").exists(), "{out}");

    // Asked for by name, hooks come down.
    let o = srv.cli(&["sync", "--once", "--allow-download", ".git", local, "repo:/workspace/p"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(here.path().join(".git/hooks/pre-commit").exists());
    assert!(!here.path().join(".envrc").exists(), "only what was named");
}
