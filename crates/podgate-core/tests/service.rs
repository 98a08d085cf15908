//! The Sandboxes service with a fake driver and a fake agent at the trait seam: protocol-version
//! refusal and owner-only access. The real path is covered by the end-to-end suite.

use std::path::PathBuf;
use std::sync::Arc;

use podgate_core::{Auth, Caller, CoreConfig, Error, Metrics, Role, Sandboxes};
use podgate_runtime::fake::FakeDriver;
use podgate_store::Store;
use podgate_types::api::CreateSandboxRequest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers every request with a health body claiming `version`.
async fn fake_agent(socket: PathBuf, version: u32) {
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = format!(r#"{{"protocol_version":{version},"agent_version":"9.9.9","pid":1}}"#);
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
}

#[tokio::test]
async fn agent_with_another_protocol_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    fake_agent(socket.clone(), podgate_types::AGENT_PROTOCOL_VERSION + 1).await;
    let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let (user, _) = Auth::new(store.clone()).create_user("u", Role::User, "t").await.unwrap();
    let driver = Arc::new(FakeDriver::new(socket));
    let sandboxes = Sandboxes::new(store.clone(), driver.clone(), CoreConfig::default(), Metrics::default());
    let caller = Caller { user_id: user.id, user_name: user.name, role: Role::User, source: None, credential: None };

    let err = sandboxes.create(&caller, CreateSandboxRequest::default()).await.unwrap_err();
    match &err {
        Error::Unavailable(m) => {
            assert!(m.contains(&format!("protocol {}", podgate_types::AGENT_PROTOCOL_VERSION + 1)), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(driver.deleted.lock().unwrap().len(), 1, "the refused sandbox's instance is removed");
    assert!(sandboxes.list(&caller).await.unwrap().is_empty(), "and it is not listed");
}

#[tokio::test]
async fn other_users_sandboxes_answer_like_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    fake_agent(socket.clone(), podgate_types::AGENT_PROTOCOL_VERSION).await;
    let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let auth = Auth::new(store.clone());
    let caller = |u: podgate_store::UserRow, role| Caller {
        user_id: u.id,
        user_name: u.name,
        role,
        source: None,
        credential: None,
    };
    let alice = caller(auth.create_user("alice", Role::User, "t").await.unwrap().0, Role::User);
    let bob = caller(auth.create_user("bob", Role::User, "t").await.unwrap().0, Role::User);
    let admin = caller(auth.create_user("root", Role::Admin, "t").await.unwrap().0, Role::Admin);
    let driver = Arc::new(FakeDriver::new(socket));
    let sandboxes = Sandboxes::new(store, driver.clone(), CoreConfig::default(), Metrics::default());

    let req = |name: &str| CreateSandboxRequest { name: Some(name.into()), ..Default::default() };
    let a = sandboxes.create(&alice, req("box")).await.unwrap();
    // Bob may use the same name, and even name his sandbox after Alice's id.
    let b = sandboxes.create(&bob, req("box")).await.unwrap();
    let b2 = sandboxes.create(&bob, req(&a.id)).await.unwrap();
    assert_eq!(sandboxes.get(&bob, "box").await.unwrap().id, b.id);
    assert_eq!(sandboxes.get(&bob, &a.id).await.unwrap().id, b2.id, "bob's name, not alice's id");
    // Alice's sandbox, by id, is missing for Bob on every operation, with the same error.
    let not_found = |e: Error| matches!(e, Error::NotFound(_));
    let bob_sees = sandboxes.list(&bob).await.unwrap();
    assert!(bob_sees.iter().all(|s| s.owner == bob.user_id) && bob_sees.len() == 2);
    let alice2 = sandboxes.create(&alice, req("other")).await.unwrap();
    for op in ["get", "delete", "exec"] {
        let err = match op {
            "get" => sandboxes.get(&bob, &alice2.id).await.map(|_| ()).unwrap_err(),
            "delete" => sandboxes.delete(&bob, &alice2.id).await.unwrap_err(),
            _ => sandboxes
                .exec(
                    &bob,
                    &alice2.id,
                    podgate_types::api::ExecRequest { argv: vec!["true".into()], ..Default::default() },
                )
                .await
                .map(|_| ())
                .unwrap_err(),
        };
        let missing = sandboxes.get(&bob, "sb-neverexisted").await.map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string().replace(&alice2.id, "X"),
            missing.to_string().replace("sb-neverexisted", "X"),
            "{op}"
        );
        assert!(not_found(err), "{op} of another user's sandbox");
    }
    assert!(driver.deleted.lock().unwrap().is_empty(), "bob deleted nothing");
    // Bob cannot pause Alice's sandbox; Alice hears clearly that this driver cannot pause, and
    // her sandbox stays running.
    assert!(not_found(sandboxes.lifecycle().pause(&bob, &alice2.id).await.unwrap_err()));
    match sandboxes.lifecycle().pause(&alice, &alice2.id).await.unwrap_err() {
        Error::Conflict(m) => assert_eq!(m, "not supported by the fake driver: pause"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(sandboxes.get(&alice, &alice2.id).await.unwrap().state, podgate_types::api::SandboxState::Running);
    // The admin sees and manages everything.
    assert_eq!(sandboxes.list(&admin).await.unwrap().len(), 4);
    sandboxes.delete(&admin, &alice2.id).await.unwrap();
    assert_eq!(sandboxes.list(&alice).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_idle_pause_the_runtime_refuses_is_tried_once() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    fake_agent(socket.clone(), podgate_types::AGENT_PROTOCOL_VERSION).await;
    let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let auth = Auth::new(store.clone());
    let (user, _) = auth.create_user("alice", Role::User, "t").await.unwrap();
    let alice = Caller { user_id: user.id, user_name: user.name, role: Role::User, source: None, credential: None };
    let driver = Arc::new(FakeDriver::new(socket));
    let sandboxes = Sandboxes::new(store, driver.clone(), CoreConfig::default(), Metrics::default());
    let req = CreateSandboxRequest { name: Some("idle".into()), idle_timeout_seconds: Some(1), ..Default::default() };
    let sb = sandboxes.create(&alice, req).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for _ in 0..3 {
        sandboxes.reconciler().reconcile().await.unwrap();
    }
    assert_eq!(*driver.pauses.lock().unwrap(), 1, "a refusal is not retried every pass");
    assert_eq!(sandboxes.get(&alice, &sb.id).await.unwrap().state, podgate_types::api::SandboxState::Running);
}

/// A sandbox whose instance cannot be removed does not stop the reconciler from putting the
/// others right, nor a server from starting.
#[tokio::test]
async fn one_sandbox_the_runtime_refuses_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    fake_agent(socket.clone(), podgate_types::AGENT_PROTOCOL_VERSION).await;
    let store = Store::open_sqlite(&dir.path().join("db")).await.unwrap();
    let (user, _) = Auth::new(store.clone()).create_user("alice", Role::User, "t").await.unwrap();
    let alice = Caller { user_id: user.id, user_name: user.name, role: Role::User, source: None, credential: None };
    let driver = Arc::new(FakeDriver::new(socket));
    let sandboxes = Sandboxes::new(store.clone(), driver.clone(), CoreConfig::default(), Metrics::default());
    let req = |name: &str| CreateSandboxRequest { name: Some(name.into()), ..Default::default() };
    let (a, b) = (sandboxes.create(&alice, req("a")).await.unwrap(), sandboxes.create(&alice, req("b")).await.unwrap());
    // Both vanish from the runtime; removing what is left of the first one fails.
    driver.vanished.lock().unwrap().extend([a.id.clone(), b.id.clone()]);
    driver.undeletable.lock().unwrap().push(a.id.clone());
    sandboxes.reconciler().reconcile().await.unwrap();
    let state = |id: String| {
        let store = store.clone();
        async move { store.sandbox(&id).await.unwrap().unwrap().state }
    };
    assert_eq!(state(a.id.clone()).await, podgate_types::api::SandboxState::Failed);
    assert_eq!(state(b.id.clone()).await, podgate_types::api::SandboxState::Failed, "the second one is reached too");
    assert!(driver.deleted.lock().unwrap().contains(&b.id));

    // A create interrupted by a stop, whose instance the runtime will not remove: the server
    // still starts (recover), and the create is marked failed.
    let c = podgate_store::SandboxRow {
        id: "sb-interrupted".into(),
        name: "c".into(),
        state: podgate_types::api::SandboxState::Starting,
        ..store.sandbox(&b.id).await.unwrap().unwrap()
    };
    store.insert_sandbox(&c).await.unwrap();
    driver.undeletable.lock().unwrap().push(c.id.clone());
    sandboxes.reconciler().recover().await.unwrap();
    assert_eq!(state(c.id.clone()).await, podgate_types::api::SandboxState::Failed);
}
