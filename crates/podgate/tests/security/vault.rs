//! Encrypted workspaces (seed 003's vault): `up --persist --encrypt` keeps `/workspace` encrypted
//! at rest with a key derived from the user's passphrase, which the server never stores;
//! `podgate unlock NAME` opens it. Checked the way an attacker with the host's disk would: by
//! reading the volume's raw image, beside a plain volume whose raw image does show the data.

use crate::common::{Opts, Server};
use crate::{BUSYBOX, sh};

const MARKER: &str = "vault-marker-5f1c2e9a";
const PASSPHRASE: &str = "correct horse battery staple";

fn vault_server() -> Server {
    Server::start_with(Opts { extra: vec!["--allow-encrypted-workspaces".into()], ..Default::default() })
}

/// The raw bytes of a volume's image on the host.
fn raw_image(srv: &Server, volume_id: &str) -> Vec<u8> {
    std::fs::read(srv.dir.path().join("volumes").join(format!("podgate-{volume_id}.ext4"))).unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Runs the CLI; panics unless it succeeds.
fn ok(srv: &Server, args: &[&str]) -> String {
    let out = srv.cli(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_workspace_is_unreadable_at_rest_until_unlocked() {
    let srv = vault_server();
    let admin = srv.client();
    let pass_file = srv.dir.path().join("pass");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    let pass = pass_file.to_str().unwrap();
    let up = ["up", "--persist", "--image", BUSYBOX, "--volume-size", "32Mi"];
    ok(&srv, &[&up[..], &["--name", "vault", "--encrypt", "--passphrase-file", pass]].concat());
    ok(&srv, &[&up[..], &["--name", "plain"]].concat());
    let write = format!("for i in $(seq 200); do echo {MARKER}; done > /workspace/{MARKER}.txt && sync");
    for name in ["vault", "plain"] {
        assert_eq!(sh(&admin, name, &write).await.0, 0);
    }
    let vault = admin.get("vault").await.unwrap().volume.unwrap();
    let plain = admin.get("plain").await.unwrap().volume.unwrap();
    let volumes = admin.list_volumes().await.unwrap();
    assert!(volumes.iter().any(|v| v.id == vault && v.encrypted), "{volumes:?}");

    // The plain volume's raw image shows the file's name and contents; the encrypted one's
    // shows neither, while the sandbox runs and after it is gone.
    assert!(contains(&raw_image(&srv, &plain), MARKER), "the control volume must show its plaintext");
    assert!(!contains(&raw_image(&srv, &vault), MARKER), "plaintext in the encrypted volume's image");
    ok(&srv, &["down", "vault"]);
    assert!(!contains(&raw_image(&srv, &vault), MARKER));
    // Root on the host sees only encrypted names where the volume is mounted.
    let data = srv.dir.path().join("volumes").join(format!("podgate-{vault}")).join("data");
    let names: Vec<String> =
        std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(!names[0].contains(MARKER), "{names:?}");

    // Started again without the passphrase, the workspace is locked.
    ok(&srv, &[&up[..], &["--name", "vault"]].concat());
    let read = format!("head -n 1 /workspace/{MARKER}.txt");
    let (code, _) = sh(&admin, "vault", &read).await;
    assert_ne!(code, 0, "a locked workspace was readable");
    // A wrong passphrase is refused; the right one opens it.
    std::fs::write(&pass_file, "not the passphrase\n").unwrap();
    let wrong = srv.cli(&["unlock", "vault", "--passphrase-file", pass]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"), "{wrong:?}");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    assert_eq!(ok(&srv, &["unlock", "vault", "--passphrase-file", pass]), "volume vault unlocked\n");
    assert_eq!(sh(&admin, "vault", &read).await, (0, format!("{MARKER}\n")));
    // Locked again, new opens fail.
    ok(&srv, &["lock", "vault"]);
    assert_ne!(sh(&admin, "vault", &read).await.0, 0);

    // Nothing the server keeps holds the passphrase.
    for entry in std::fs::read_dir(srv.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("podgate.db") {
            assert!(!contains(&std::fs::read(&path).unwrap(), PASSPHRASE), "the passphrase is in {}", path.display());
        }
    }
    let audit = srv.req(reqwest::Method::GET, "/v1/audit?limit=500").send().await.unwrap().text().await.unwrap();
    assert!(audit.contains("volume.unlock") && !audit.contains(PASSPHRASE), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_workspaces_are_an_admin_policy() {
    let srv = Server::start();
    let pass_file = srv.dir.path().join("pass");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    let pass = pass_file.to_str().unwrap();
    let out = srv.cli(&["up", "--persist", "--name", "v", "--image", BUSYBOX, "--encrypt", "--passphrase-file", pass]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-encrypted-workspaces"), "{err}");
    assert!(srv.client().list_volumes().await.unwrap().is_empty(), "a refused create kept a volume");
}
