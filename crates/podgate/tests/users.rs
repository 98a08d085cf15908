//! Users and API tokens end to end: admins create users, each user manages their own tokens
//! (named, optionally expiring, revocable, shown once, last use recorded), another user's
//! sandboxes and tokens answer like missing ones, and non-admins cannot manage users.

mod common;

use common::Server;
use podgate_client::{Client, Error};
use podgate_types::api::CreateSandboxRequest;
use podgate_types::users::{CreateTokenRequest, CreateUserRequest};

fn status(e: Error) -> u16 {
    match e {
        Error::Api { status, .. } => status,
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn users_and_tokens() {
    let srv = Server::start();
    let admin = srv.client();
    let alice = admin.create_user(&CreateUserRequest { name: "alice".into(), role: None }).await.unwrap();
    assert_eq!((alice.user.name.as_str(), alice.user.role.as_str()), ("alice", "user"));
    let a = Client::new(&srv.url, &alice.token.secret).unwrap();
    assert_eq!(a.me().await.unwrap().name, "alice");
    let bob = admin.create_user(&CreateUserRequest { name: "bob".into(), role: None }).await.unwrap();
    let b = Client::new(&srv.url, &bob.token.secret).unwrap();

    // Owner-only: bob cannot see or use alice's sandbox, by id or by name.
    let sb = a.create(&CreateSandboxRequest { name: Some("mine".into()), ..Default::default() }).await.unwrap();
    assert_eq!(status(b.get(&sb.id).await.unwrap_err()), 404);
    assert_eq!(status(b.get("mine").await.unwrap_err()), 404);
    assert_eq!(status(b.delete(&sb.id).await.unwrap_err()), 404);
    assert!(b.list().await.unwrap().is_empty());
    assert_eq!(admin.get(&sb.id).await.unwrap().owner, alice.user.id, "admins see everyone's");

    // Only admins manage users; bad input is refused.
    assert_eq!(status(a.list_users().await.unwrap_err()), 403);
    assert_eq!(
        status(a.create_user(&CreateUserRequest { name: "eve".into(), role: Some("admin".into()) }).await.unwrap_err()),
        403
    );
    assert_eq!(
        status(admin.create_user(&CreateUserRequest { name: "alice".into(), role: None }).await.unwrap_err()),
        409
    );
    assert_eq!(
        status(admin.create_user(&CreateUserRequest { name: "Bad Name".into(), role: None }).await.unwrap_err()),
        422
    );
    assert_eq!(
        status(
            admin.create_user(&CreateUserRequest { name: "x".into(), role: Some("root".into()) }).await.unwrap_err()
        ),
        422
    );
    let names: Vec<String> = admin.list_users().await.unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["admin", "alice", "bob"]);

    // Tokens: shown once, listed without secrets, last use recorded, expiring, revocable.
    let ci = a.create_token("me", &CreateTokenRequest { name: "ci".into(), expires_in_seconds: None }).await.unwrap();
    let ci_client = Client::new(&srv.url, &ci.secret).unwrap();
    assert_eq!(ci_client.me().await.unwrap().name, "alice");
    let listed = a.list_tokens("me").await.unwrap();
    assert_eq!(listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["initial", "ci"]);
    assert!(listed.iter().all(|t| t.last_used_at.is_some()), "{listed:?}");
    let raw = srv
        .req(reqwest::Method::GET, &format!("/v1/users/{}/tokens", alice.user.id))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains(&ci.secret) && !raw.contains("hash"), "no secrets in listings: {raw}");
    let short =
        a.create_token("me", &CreateTokenRequest { name: "short".into(), expires_in_seconds: Some(1) }).await.unwrap();
    let short_client = Client::new(&srv.url, &short.secret).unwrap();
    assert!(short_client.me().await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(status(short_client.me().await.unwrap_err()), 401, "expired");
    assert_eq!(status(b.revoke_token(&ci.info.id).await.unwrap_err()), 404, "another user's token");
    assert_eq!(status(b.list_tokens(&alice.user.id).await.unwrap_err()), 404);
    assert_eq!(
        status(
            b.create_token(&alice.user.id, &CreateTokenRequest { name: "x".into(), expires_in_seconds: None })
                .await
                .unwrap_err()
        ),
        404
    );
    let revoked = a.revoke_token(&ci.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(status(ci_client.me().await.unwrap_err()), 401, "revoked");
    assert_eq!(status(ci_client.list().await.unwrap_err()), 401);
    // An admin manages anyone's tokens.
    let by_admin = admin
        .create_token(&bob.user.id, &CreateTokenRequest { name: "ops".into(), expires_in_seconds: None })
        .await
        .unwrap();
    assert_eq!(Client::new(&srv.url, &by_admin.secret).unwrap().me().await.unwrap().name, "bob");
    admin.revoke_token(&bob.token.info.id).await.unwrap();
    assert_eq!(status(b.me().await.unwrap_err()), 401);
    for bad in [
        CreateTokenRequest { name: "".into(), expires_in_seconds: None },
        CreateTokenRequest { name: "x".into(), expires_in_seconds: Some(0) },
    ] {
        assert_eq!(status(a.create_token("me", &bad).await.unwrap_err()), 422);
    }

    // Signing keys: admins rotate them; the new key is published, users are refused.
    let o = srv.cli(&["keys", "rotate"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let kid = out.split_whitespace().nth(2).unwrap().to_string();
    let jwks: serde_json::Value = srv.get_json("/.well-known/jwks.json").await;
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid.as_str()), "{jwks}");
    assert_eq!(status(a.rotate_signing_keys().await.unwrap_err()), 403);

    // The CLI.
    let o = srv.cli(&["user", "create", "carol"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && out.contains("user carol"), "{out}");
    let secret = out.lines().find_map(|l| l.split("(shown once): ").nth(1)).unwrap().trim().to_string();
    let carol = Client::new(&srv.url, &secret).unwrap();
    assert_eq!(carol.me().await.unwrap().name, "carol");
    let o = srv.cli(&["user", "ls"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("carol"));
    let o = srv.cli_command(&["token", "ls"]).env("PODGATE_TOKEN", &secret).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("initial") && out.contains("active") && !out.contains(&secret), "{out}");
}
