//! Templates and warm pools end to end: admins define templates, a create from one merges the
//! caller's fields, a pool keeps ready sandboxes that a create claims (env applied at claim, TTL
//! from then, within the claimer's quota) and refills, and deleting the template empties it.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use podgate_client::Client;
use podgate_types::api::{CreateSandboxRequest, ExecRequest, TemplateRequest};
use podgate_types::users::{CreateUserRequest, QuotaOverrides};

const BUSYBOX: &str = "podgate/busybox:test";

async fn sh(c: &Client, id: &str, cmd: &str) -> String {
    let req = ExecRequest { argv: vec![cmd.into()], shell: true, ..Default::default() };
    let out = c.exec(id, &req).await.unwrap();
    assert_eq!(out.exit_code, 0, "{cmd}");
    String::from_utf8_lossy(&out.stdout.0).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_pools_hand_out_ready_sandboxes_and_refill() {
    let srv = Server::start();
    let admin = srv.client();
    let created = admin.create_user(&CreateUserRequest { name: "kim".into(), role: None }).await.unwrap();
    let kim = Client::new(&srv.url, &created.token.secret).unwrap();
    let template = |pool| TemplateRequest {
        request: CreateSandboxRequest {
            image: Some(BUSYBOX.into()),
            env: [("FROM_TEMPLATE".to_string(), "yes".to_string())].into(),
            ..Default::default()
        },
        pool_size: pool,
        scheduling: None,
    };
    // Only admins define templates; everyone lists them.
    assert!(kim.put_template("py", &template(2)).await.unwrap_err().to_string().contains("admin"));
    admin.put_template("py", &template(2)).await.unwrap();
    eventually(30, "the pool fills", async || kim.list_templates().await.unwrap()[0].pool_ready == 2).await;

    // A claim: ready at once (made before the request), the caller's now, env applied.
    let asked = time::OffsetDateTime::now_utc();
    let req = CreateSandboxRequest {
        name: Some("mine".into()),
        template: Some("py".into()),
        env: [("MINE".to_string(), "1".to_string())].into(),
        ttl_seconds: Some(600),
        ..Default::default()
    };
    let sb = kim.create(&req).await.unwrap();
    assert!(sb.created_at < asked, "a warm sandbox was made before the request");
    assert_eq!((sb.name.as_str(), sb.owner.as_str()), ("mine", created.user.id.as_str()));
    let left = (sb.expires_at.unwrap() - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((590..=600).contains(&left), "the TTL starts at the claim: {left}");
    assert_eq!(sh(&kim, "mine", "echo $FROM_TEMPLATE $MINE").await, "yes 1\n");
    // Terminals get the claim's env too: they start like every other process.
    let session = common::term::open(&srv, &sb.id, serde_json::json!({ "cmd": ["sh"] })).await;
    let mut term = common::term::Term::connect(&srv, &session, 80, 24).await;
    term.send("echo claim-$MINE-$FROM_TEMPLATE\r").await;
    term.until(10, "the claim's env in a terminal", |t| t.screen().contains("claim-1-yes")).await;
    assert_eq!(kim.list().await.unwrap().len(), 1);
    // The pool refills.
    eventually(30, "the pool refills", async || kim.list_templates().await.unwrap()[0].pool_ready == 2).await;

    // A create that changes what the sandbox was made with is made cold, from the merged request.
    let cold = CreateSandboxRequest {
        name: Some("cold".into()),
        template: Some("py".into()),
        memory: Some(podgate_types::MemorySize(64 << 20)),
        ..Default::default()
    };
    let asked = time::OffsetDateTime::now_utc();
    let sb = kim.create(&cold).await.unwrap();
    assert!(sb.created_at >= asked - time::Duration::seconds(1));
    assert_eq!((sb.image.as_str(), sb.memory.map(|m| m.0)), (BUSYBOX, Some(64 << 20)));
    assert_eq!(sh(&kim, "cold", "echo $FROM_TEMPLATE").await, "yes\n");

    // The claimer's quota holds: at its limit, the claim is refused and the pool keeps its sandbox.
    admin.set_quota(&created.user.id, &QuotaOverrides { sandboxes: Some(2), ..Default::default() }).await.unwrap();
    let over = CreateSandboxRequest { name: Some("third".into()), template: Some("py".into()), ..Default::default() };
    let e = kim.create(&over).await.unwrap_err();
    assert!(e.to_string().contains("quota"), "{e}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kim.list_templates().await.unwrap()[0].pool_ready, 2);
    assert_eq!(kim.list().await.unwrap().len(), 2);

    // Unknown template: 404. Deleting the template removes its unclaimed sandboxes only.
    let e = kim.create(&CreateSandboxRequest { template: Some("nope".into()), ..Default::default() }).await;
    assert!(podgate_client::is_not_found(&e.unwrap_err()));
    let o = srv.cli(&["template", "ls"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("2/2"), "{o:?}");
    admin.delete_template("py").await.unwrap();
    assert_eq!(admin.list().await.unwrap().len(), 2, "kim's two stay; the pool's are gone");
    assert_eq!(sh(&kim, "mine", "echo still").await, "still\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn template_images_build_from_a_dockerfile() {
    let srv = Server::start();
    let admin = srv.client();
    let request = CreateSandboxRequest { image: Some(BUSYBOX.into()), ..Default::default() };
    admin.put_template("built", &TemplateRequest { request, pool_size: 0, scheduling: None }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY hello.txt /opt/hello.txt\nRUN echo ran > /opt/ran.txt\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("hello.txt"), "from the context\n").unwrap();
    let o = srv.cli(&["template", "build", "built", dir.path().to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.starts_with("template built built: podgate-template-built:"), "{o:?}");
    let sb =
        admin.create(&CreateSandboxRequest { template: Some("built".into()), ..Default::default() }).await.unwrap();
    assert!(sb.image.starts_with("podgate-template-built:"), "{}", sb.image);
    assert_eq!(sh(&admin, &sb.id, "cat /opt/hello.txt /opt/ran.txt").await, "from the context\nran\n");

    // A failing build says why and leaves the template as it was; only admins build.
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {BUSYBOX}\nRUN exit 3\n")).unwrap();
    let o = srv.cli(&["template", "build", "built", dir.path().to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("build failed"), "{o:?}");
    assert_eq!(admin.list_templates().await.unwrap()[0].request.image.as_deref(), Some(sb.image.as_str()));
    let created = admin.create_user(&CreateUserRequest { name: "max".into(), role: None }).await.unwrap();
    let o = srv
        .cli_command(&["template", "build", "built", dir.path().to_str().unwrap()])
        .env("PODGATE_TOKEN", &created.token.secret)
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("admin"), "{o:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_that_cannot_fill_backs_off_shows_why_and_spends_no_rate() {
    let extra = ["--create-rate-limit", "2"].map(String::from).to_vec();
    let srv = Server::start_with(common::Opts { extra, ..Default::default() });
    let admin = srv.client();
    let me = admin.me().await.unwrap().id;
    // The template's owner may hold two sandboxes: the pool's third never fits.
    let two = QuotaOverrides { sandboxes: Some(2), ..Default::default() };
    admin.set_quota(&me, &two).await.unwrap();
    let request = CreateSandboxRequest { image: Some(BUSYBOX.into()), ..Default::default() };
    admin.put_template("tight", &TemplateRequest { request, pool_size: 3, scheduling: None }).await.unwrap();
    eventually(30, "the refill's failure is on the template", async || {
        admin.list_templates().await.unwrap()[0].pool_error.is_some()
    })
    .await;
    let listed = admin.list_templates().await.unwrap().remove(0);
    assert_eq!(listed.pool_ready, 2);
    assert!(listed.pool_error.as_deref().unwrap().contains("quota"), "{listed:?}");
    assert!(listed.pool_error_at.is_some());
    // The CLI shows it.
    let ls = tokio::task::block_in_place(|| srv.cli(&["template", "ls"]));
    assert!(String::from_utf8_lossy(&ls.stdout).contains("LAST POOL ERROR"), "{ls:?}");
    // Over 12 s of 300 ms reconciler passes, the backoff (5 s, then 10 s) allows a few tries.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let log = std::fs::read_to_string(srv.dir.path().join("server.log")).unwrap();
    let tries = log.matches("refilling a warm pool failed").count();
    assert!((1..=4).contains(&tries), "{tries} failed refills in about 12 s");

    // Room again: the pool fills at its next try and the error is gone.
    admin.set_quota(&me, &QuotaOverrides { sandboxes: Some(10), ..Default::default() }).await.unwrap();
    eventually(40, "the pool fills and its error clears", async || {
        let t = admin.list_templates().await.unwrap().remove(0);
        t.pool_ready == 3 && t.pool_error.is_none()
    })
    .await;
    // Five pool creates in all, and the owner's own rate of two a minute is untouched.
    for name in ["own1", "own2"] {
        let req = CreateSandboxRequest { name: Some(name.into()), image: Some(BUSYBOX.into()), ..Default::default() };
        admin.create(&req).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The limiter itself still works. Its window is a minute: if one ends right after own2,
    // two more fit in the next, and the one after is refused.
    let mut refused = false;
    for name in ["own3", "own4", "own5"] {
        let req = CreateSandboxRequest { name: Some(name.into()), image: Some(BUSYBOX.into()), ..Default::default() };
        if let Err(e) = admin.create(&req).await {
            assert_eq!(e.status(), Some(429), "{name}: {e}");
            refused = true;
            break;
        }
    }
    assert!(refused, "the owner's own creates are rate limited");
}
