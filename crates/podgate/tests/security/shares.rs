//! Read-only share links (finding 15): their owner revokes them, and they die with the API token
//! that asked for them.

use crate::common::Server;
use crate::{busybox, user};
use podgate_client::Client;
use podgate_types::terminal::OpenTerminalRequest;
use podgate_types::users::CreateTokenRequest;

/// Asks for a share link of `terminal` with `c`'s token.
async fn share(srv: &Server, c: &Client, sb: &str, terminal: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/sandboxes/{sb}/terminals/{terminal}/share", srv.url))
        .bearer_auth(c.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    v["share_token"].as_str().unwrap().to_string()
}

/// The status of exchanging a share link for a viewer's session.
async fn exchange(srv: &Server, share_token: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/terminal-sessions", srv.url))
        .json(&serde_json::json!({ "share_token": share_token }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn share_links_can_be_revoked() {
    let srv = Server::start();
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let sb = alice.create(&busybox("shared")).await.unwrap();
    let term = alice.open_terminal(&sb.id, &OpenTerminalRequest::default()).await.unwrap();
    let tid = term.terminal_id.clone();

    let link = share(&srv, &alice, &sb.id, &tid).await;
    assert_eq!(exchange(&srv, &link).await, 201);
    // Only the owner revokes.
    let revoke = |c: &Client| {
        reqwest::Client::new()
            .delete(format!("{}/v1/sandboxes/{}/terminals/{tid}/share", srv.url, sb.id))
            .bearer_auth(c.token().to_string())
            .send()
    };
    assert_eq!(revoke(&bob).await.unwrap().status().as_u16(), 404);
    assert_eq!(exchange(&srv, &link).await, 201);
    assert_eq!(revoke(&alice).await.unwrap().status().as_u16(), 204);
    assert_eq!(exchange(&srv, &link).await, 401, "a revoked link");
    // Links shared after the revocation work.
    let fresh = share(&srv, &alice, &sb.id, &tid).await;
    assert_eq!(exchange(&srv, &fresh).await, 201);

    // A link made with a token dies with that token.
    let laptop = alice
        .create_token("me", &CreateTokenRequest { name: "laptop".into(), expires_in_seconds: None })
        .await
        .unwrap();
    let with_laptop = Client::new(&srv.url, &laptop.secret).unwrap();
    let link = share(&srv, &with_laptop, &sb.id, &tid).await;
    assert_eq!(exchange(&srv, &link).await, 201);
    alice.revoke_token(&laptop.info.id).await.unwrap();
    assert_eq!(exchange(&srv, &link).await, 401, "its token was revoked");
    assert_eq!(exchange(&srv, &fresh).await, 201, "other links stay");
    let events: serde_json::Value = srv.get_json("/v1/audit?action=terminal.share_revoke").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
}
