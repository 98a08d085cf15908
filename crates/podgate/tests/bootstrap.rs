//! Code bootstrap end to end: zip, tar.gz and git bundles served by a test host on the Docker
//! network, fetched and verified inside the sandbox, installed, and the command started in the
//! main terminal; bad checksums, bad commits and failing installs fail the sandbox with a reason
//! that `podgate logs` shows; every URL validation case is refused before anything runs.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use common::{Opts, Server};
use podgate_types::api::{CreateSandboxRequest, ExecRequest, Sandbox, SandboxState};
use podgate_types::bootstrap::{BootstrapPhase, CodeSource, CommandLine};
use sha2::{Digest as _, Sha256};

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Builds app.zip, app.tar.gz and repo.git in `dir`; returns the git commit.
fn build_bundles(dir: &Path) -> String {
    let zip_file = std::fs::File::create(dir.join("app.zip")).unwrap();
    let mut z = zip::ZipWriter::new(zip_file);
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    z.add_directory("app-1.0/", opts).unwrap();
    z.start_file("app-1.0/hello.txt", opts).unwrap();
    z.write_all(b"hello from zip\n").unwrap();
    z.finish().unwrap();

    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("app-2.0")).unwrap();
    std::fs::write(src.path().join("app-2.0/hello.txt"), "hello from tar.gz\n").unwrap();
    run(Command::new("tar").arg("-C").arg(src.path()).arg("-czf").arg(dir.join("app.tar.gz")).arg("app-2.0"));

    let repo = src.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(repo.join("README"), "hello from git\n").unwrap();
    let git = |args: &[&str], cwd: &Path| {
        run(Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(cwd))
    };
    git(&["init", "-q"], &repo);
    git(&["add", "README"], &repo);
    git(&["commit", "-q", "-m", "first"], &repo);
    let commit = git(&["rev-parse", "HEAD"], &repo).trim().to_string();
    git(&["clone", "-q", "--bare", repo.to_str().unwrap(), dir.join("repo.git").to_str().unwrap()], src.path());
    git(&["update-server-info"], &dir.join("repo.git"));
    commit
}

async fn wait_final(c: &podgate_client::Client, id: &str) -> Sandbox {
    let mut last = None;
    common::eventually(120, "the bootstrap to end", async || {
        let sb = c.get(id).await.unwrap();
        let done = sb.bootstrap.as_ref().is_some_and(|b| b.phase.is_final());
        last = Some(sb);
        done
    })
    .await;
    last.unwrap()
}

/// Server flags for tests whose code host is a sandbox: a network of their own on which
/// sandboxes may reach private addresses (each other), the metadata service staying blocked.
fn code_host_flags(extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    flags.extend(
        ["--sandbox-network", "podgate-codetest", "--egress-allow", "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"]
            .map(String::from),
    );
    flags
}

fn code(url: String, sha256: Option<String>, commit: Option<String>) -> Option<CodeSource> {
    Some(CodeSource { url, kind: None, sha256, commit })
}

#[tokio::test]
async fn bootstrap_from_zip_tar_gz_and_git() {
    let flags = code_host_flags(&["--code-allow-http", "--code-allow-private-hosts"]);
    let mut srv = Server::start_with(Opts { extra: flags.clone(), ..Default::default() });
    let c = srv.client();

    // The test's own file host: busybox httpd in a container on the Docker network.
    let host = c
        .create(&CreateSandboxRequest {
            image: Some("podgate/busybox:test".into()),
            cmd: Some(vec!["sh".into(), "-c".into(), "mkdir -p /srv && exec httpd -f -p 8080 -h /srv".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let bundles = tempfile::tempdir().unwrap();
    let commit = build_bundles(bundles.path());
    c.upload_dir(&host.id, bundles.path(), "/srv", None).await.unwrap();
    let ip = common::docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &common::container(&host.id),
    ]);
    let base = format!("http://{}:8080", ip.trim());
    let zip_sha = sha256(&bundles.path().join("app.zip"));
    let tgz_sha = sha256(&bundles.path().join("app.tar.gz"));

    // zip through the CLI: install in the single top-level folder, then the command in the main terminal.
    let o = srv.cli(&[
        "up",
        "--name",
        "zipped",
        "--code",
        &format!("{base}/app.zip"),
        "--sha256",
        &zip_sha,
        "--shell",
        "--install",
        "echo installing; echo built > built.txt",
        "--run",
        "cat hello.txt > /tmp/ran; echo main-terminal-ready; read x; echo got:$x",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = srv.cli(&["logs", "zipped", "-f"]);
    let log = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{log}");
    for want in ["fetching", "sha256 verified", "extracted 1 files", "installing", "bootstrap done"] {
        assert!(log.contains(want), "{want:?} in {log}");
    }
    let sb = wait_final(&c, "zipped").await;
    let b = sb.bootstrap.unwrap();
    assert_eq!((b.phase, b.workdir.as_deref()), (BootstrapPhase::Ready, Some("/workspace/code/app-1.0")));
    assert_eq!(sb.state, SandboxState::Running);
    let terminal = b.terminal_id.expect("the main terminal");
    assert!(c.list_terminals("zipped").await.unwrap().iter().any(|t| t.id == terminal));
    let cat = |path: &str| ExecRequest { argv: vec!["cat".into(), path.into()], ..Default::default() };
    assert_eq!(c.exec("zipped", &cat("/workspace/code/app-1.0/built.txt")).await.unwrap().stdout.0, b"built\n");
    common::eventually(10, "the command to run", async || {
        c.exec("zipped", &cat("/tmp/ran")).await.unwrap().stdout.0 == b"hello from zip\n"
    })
    .await;
    // `podgate enter` goes to the main terminal: its screen, our input, the command's exit code.
    let o = srv.cli_stdin(&["enter", "zipped"], Some(b"typed\r"));
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(screen.contains("main-terminal-ready") && screen.contains("got:typed"), "{screen}");
    assert_eq!(o.status.code(), Some(0));

    // tar.gz with an argv install; git pinned by commit.
    let tgz = c
        .create(&CreateSandboxRequest {
            code: code(format!("{base}/app.tar.gz"), Some(tgz_sha.clone()), None),
            install: Some(CommandLine::Argv(vec!["sh".into(), "-c".into(), "cat hello.txt > copied".into()])),
            ..Default::default()
        })
        .await
        .unwrap();
    let sb = wait_final(&c, &tgz.id).await;
    assert_eq!(sb.bootstrap.as_ref().unwrap().phase, BootstrapPhase::Ready, "{sb:?}");
    assert_eq!(c.exec(&tgz.id, &cat("/workspace/code/app-2.0/copied")).await.unwrap().stdout.0, b"hello from tar.gz\n");
    let git = c
        .create(&CreateSandboxRequest {
            code: code(format!("{base}/repo.git"), None, Some(commit.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    let sb = wait_final(&c, &git.id).await;
    let b = sb.bootstrap.unwrap();
    assert_eq!((b.phase, b.workdir.as_deref()), (BootstrapPhase::Ready, Some("/workspace/code")), "{:?}", sb.error);
    let head = ExecRequest {
        argv: vec!["git".into(), "-C".into(), "/workspace/code".into(), "rev-parse".into(), "HEAD".into()],
        ..Default::default()
    };
    assert_eq!(String::from_utf8(c.exec(&git.id, &head).await.unwrap().stdout.0).unwrap().trim(), commit);
    assert_eq!(c.exec(&git.id, &cat("/workspace/code/README")).await.unwrap().stdout.0, b"hello from git\n");

    // A server that stops mid-bootstrap follows it again when it is back.
    let slow = c
        .create(&CreateSandboxRequest {
            code: code(format!("{base}/app.tar.gz"), Some(tgz_sha.clone()), None),
            install: Some(CommandLine::Argv(vec!["sh".into(), "-c".into(), "sleep 2; echo slow install done".into()])),
            ..Default::default()
        })
        .await
        .unwrap();
    common::eventually(30, "the install to start", async || {
        c.get(&slow.id).await.unwrap().bootstrap.is_some_and(|b| b.phase == BootstrapPhase::Installing)
    })
    .await;
    let addr = srv.url.trim_start_matches("http://").to_string();
    srv.kill9();
    srv.spawn(Opts { listen: Some(addr), extra: flags.clone(), ..Default::default() });
    // A fresh client: the old one's pooled connections died with the server.
    let c = srv.client();
    let sb = wait_final(&c, &slow.id).await;
    assert_eq!(sb.bootstrap.as_ref().unwrap().phase, BootstrapPhase::Ready, "{sb:?}");
    let log = String::from_utf8_lossy(&srv.cli(&["logs", &slow.id]).stdout).into_owned();
    assert!(log.contains("slow install done") && log.contains("bootstrap done"), "{log}");

    // Failures: the sandbox fails with the reason, and the log says why (also once it is gone).
    let failing = [
        ("bad-sha", code(format!("{base}/app.zip"), Some("0".repeat(64)), None), None, "sha256 mismatch"),
        ("bad-commit", code(format!("{base}/repo.git"), None, Some("1".repeat(40))), None, "is not in"),
        (
            "bad-install",
            code(format!("{base}/app.tar.gz"), Some(tgz_sha.clone()), None),
            Some(CommandLine::Argv(vec!["sh".into(), "-c".into(), "echo about to fail; exit 3".into()])),
            "exited with code 3",
        ),
        ("missing", code(format!("{base}/nope.zip"), Some("0".repeat(64)), None), None, "HTTP 404"),
    ];
    for (name, code, install, reason) in failing {
        let sb = c
            .create(&CreateSandboxRequest { name: Some(name.into()), code, install, ..Default::default() })
            .await
            .unwrap();
        common::eventually(60, "the sandbox to fail", async || {
            c.get(&sb.id).await.unwrap().state == SandboxState::Failed
        })
        .await;
        let sb = c.get(&sb.id).await.unwrap();
        let error = sb.error.clone().unwrap_or_default();
        assert!(error.contains(reason), "{name}: {error}");
        assert_eq!(sb.bootstrap.as_ref().unwrap().phase, BootstrapPhase::Failed);
        // The reconciler removes failed containers; the log stays.
        common::eventually(20, "the failed container to go", async || {
            !srv.containers().iter().any(|n| n.contains(&sb.id))
        })
        .await;
        let o = srv.cli(&["logs", name]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        let log = String::from_utf8_lossy(&o.stdout);
        assert!(log.contains(reason), "{name}: {log}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(reason));
    }

    // Metadata addresses stay refused even where private hosts are allowed.
    let r = c
        .create(&CreateSandboxRequest {
            code: code("http://169.254.169.254/x.zip".into(), Some("0".repeat(64)), None),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(r, podgate_client::Error::Api { status: 422, .. }), "{r}");
    // A sandbox without a bootstrap has no bootstrap log.
    let plain = c.create(&CreateSandboxRequest::default()).await.unwrap();
    let o = srv.cli(&["logs", &plain.id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no code bootstrap"));
}

#[tokio::test]
async fn code_urls_are_validated_before_anything_runs() {
    let srv = Server::start();
    let c = srv.client();
    let sha = Some("a".repeat(64));
    let commit = Some("b".repeat(40));
    let cases: Vec<(&str, CreateSandboxRequest)> = vec![
        (
            "http without the admin setting",
            CreateSandboxRequest {
                code: code("http://example.com/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "ftp",
            CreateSandboxRequest {
                code: code("ftp://example.com/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "file",
            CreateSandboxRequest {
                code: code("file:///etc/passwd.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "credentials",
            CreateSandboxRequest {
                code: code("https://u:p@example.com/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "too long",
            CreateSandboxRequest {
                code: code(format!("https://example.com/{}.zip", "a".repeat(3000)), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "loopback",
            CreateSandboxRequest {
                code: code("https://127.0.0.1/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "loopback v6",
            CreateSandboxRequest { code: code("https://[::1]/a.zip".into(), sha.clone(), None), ..Default::default() },
        ),
        (
            "mapped v4",
            CreateSandboxRequest {
                code: code("https://[::ffff:127.0.0.1]/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "private",
            CreateSandboxRequest {
                code: code("https://10.1.2.3/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "private 172",
            CreateSandboxRequest {
                code: code("https://172.17.0.2/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "link-local",
            CreateSandboxRequest {
                code: code("https://169.254.10.10/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "metadata",
            CreateSandboxRequest {
                code: code("https://169.254.169.254/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "metadata name",
            CreateSandboxRequest {
                code: code("https://metadata.google.internal/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "decimal loopback",
            CreateSandboxRequest {
                code: code("https://2130706433/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "resolves to loopback",
            CreateSandboxRequest {
                code: code("https://localhost/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "does not resolve",
            CreateSandboxRequest {
                code: code("https://no-such-host.invalid/a.zip".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "no sha256",
            CreateSandboxRequest { code: code("https://example.com/a.zip".into(), None, None), ..Default::default() },
        ),
        (
            "bad sha256",
            CreateSandboxRequest {
                code: code("https://example.com/a.zip".into(), Some("xyz".into()), None),
                ..Default::default()
            },
        ),
        (
            "no commit",
            CreateSandboxRequest { code: code("https://example.com/r.git".into(), None, None), ..Default::default() },
        ),
        (
            "short commit",
            CreateSandboxRequest {
                code: code("https://example.com/r.git".into(), None, Some("abc123".into())),
                ..Default::default()
            },
        ),
        (
            "commit on zip",
            CreateSandboxRequest {
                code: code("https://example.com/a.zip".into(), sha.clone(), commit.clone()),
                ..Default::default()
            },
        ),
        (
            "unknown kind",
            CreateSandboxRequest {
                code: code("https://example.com/download".into(), sha.clone(), None),
                ..Default::default()
            },
        ),
        (
            "string install without shell",
            CreateSandboxRequest {
                code: code("https://example.com/a.zip".into(), sha.clone(), None),
                install: Some(CommandLine::Line("make".into())),
                ..Default::default()
            },
        ),
        (
            "install without code",
            CreateSandboxRequest { install: Some(CommandLine::Argv(vec!["make".into()])), ..Default::default() },
        ),
        ("empty command", CreateSandboxRequest { command: Some(CommandLine::Argv(vec![])), ..Default::default() }),
    ];
    for (what, req) in cases {
        match c.create(&req).await {
            Err(podgate_client::Error::Api { status: 422, message, .. }) => eprintln!("{what}: {message}"),
            other => panic!("{what}: expected 422, got {:?}", other.map(|s| s.id)),
        }
    }
    assert!(c.list().await.unwrap().is_empty(), "nothing was created");
    assert!(srv.containers().is_empty());

    // The host allowlist.
    let listed =
        Server::start_with(Opts { extra: vec!["--code-hosts".into(), "example.com".into()], ..Default::default() });
    let r = listed
        .client()
        .create(&CreateSandboxRequest {
            code: code("https://example.org/a.zip".into(), sha.clone(), None),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(r, Err(podgate_client::Error::Api { status: 422, ref message, .. }) if message.contains("allowlist")),
        "{r:?}"
    );
}

#[tokio::test]
async fn bootstrap_over_https_trusts_only_the_configured_ca() {
    // The code host: `openssl s_server -WWW` in a sandbox, with a test CA and a certificate for
    // its own address, both made inside it.
    let srv =
        Server::start_with(Opts { extra: code_host_flags(&["--code-allow-private-hosts"]), ..Default::default() });
    let c = srv.client();
    let script = "mkdir -p srv && cd srv \
        && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -subj /CN=podgate-test-ca -days 2 \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null \
        && ip=$(hostname -i | cut -d' ' -f1) \
        && openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=$ip 2>/dev/null \
        && printf 'subjectAltName=IP:%s\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' $ip > leaf.ext \
        && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext 2>/dev/null \
        && touch ready && exec openssl s_server -accept 8443 -cert leaf.pem -key leaf.key -WWW -quiet";
    let host = c
        .create(&CreateSandboxRequest {
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let cat = |path: &str| ExecRequest { argv: vec!["cat".into(), path.into()], ..Default::default() };
    common::eventually(30, "the test CA and certificate", async || {
        c.exec(&host.id, &cat("/workspace/srv/ready")).await.unwrap().exit_code == 0
    })
    .await;
    let ca = c.exec(&host.id, &cat("/workspace/srv/ca.pem")).await.unwrap().stdout.0;
    let bundles = tempfile::tempdir().unwrap();
    build_bundles(bundles.path());
    c.upload(&host.id, "/workspace/srv/app.zip", &bundles.path().join("app.zip"), None, None).await.unwrap();
    let ip = common::docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &common::container(&host.id),
    ]);
    let url = format!("https://{}:8443/app.zip", ip.trim());
    let sha = sha256(&bundles.path().join("app.zip"));
    let req = || CreateSandboxRequest { code: code(url.clone(), Some(sha.clone()), None), ..Default::default() };

    // Without the CA: TLS verification fails and so does the sandbox.
    let untrusted = c.create(&req()).await.unwrap();
    common::eventually(60, "the sandbox to fail", async || {
        c.get(&untrusted.id).await.unwrap().state == SandboxState::Failed
    })
    .await;
    let error = c.get(&untrusted.id).await.unwrap().error.unwrap_or_default();
    assert!(error.contains("TLS") && error.to_lowercase().contains("certificate"), "{error}");
    eprintln!("without the CA: {error}");

    // With the CA configured by the admin: fetched over https, verified, extracted.
    let ca_file = bundles.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let trusting = Server::start_with(Opts {
        extra: code_host_flags(&["--code-allow-private-hosts", "--code-ca-file", &ca_file.display().to_string()]),
        ..Default::default()
    });
    let tc = trusting.client();
    let sb = tc.create(&req()).await.unwrap();
    let sb = wait_final(&tc, &sb.id).await;
    assert_eq!(sb.bootstrap.as_ref().unwrap().phase, BootstrapPhase::Ready, "{:?}", sb.error);
    assert_eq!(tc.exec(&sb.id, &cat("/workspace/code/app-1.0/hello.txt")).await.unwrap().stdout.0, b"hello from zip\n");
}
