//! The web UI in a real browser: Debian's Chromium driven through chromedriver (WebDriver).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Opts, Server};
use fantoccini::{ClientBuilder, Locator};

/// The built web UI: PODGATE_WEB_DIR, else built by scripts/build-web.
fn web_dir() -> String {
    std::env::var("PODGATE_WEB_DIR").unwrap_or_else(|_| {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-web");
        let out = Command::new(script).output().expect("running scripts/build-web");
        assert!(out.status.success(), "build-web: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

struct Chromedriver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> Chromedriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian package chromium-driver) is installed");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Chromedriver { child, url, _profile: tempfile::tempdir().unwrap() }
}

async fn screen(c: &fantoccini::Client) -> String {
    c.execute("return window.podgate ? window.podgate.screenText() : ''", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_screen(c: &fantoccini::Client, secs: u64, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = screen(c).await;
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the screen ends with `line` followed by the shell's next prompt.
fn settled_after(screen: &str, line: &str) -> bool {
    let lines = text_lines(screen);
    lines.len() >= 2 && lines[lines.len() - 2] == line && lines[lines.len() - 1].ends_with('$')
}

/// The non-blank lines of a screen.
fn text_lines(screen: &str) -> Vec<&str> {
    screen.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect()
}

fn hello_line(screen: &str) -> Option<String> {
    screen
        .lines()
        .map(str::trim)
        .find(|l| l.strip_prefix("hello-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
        .map(String::from)
}

#[tokio::test]
async fn browser_terminal_signs_in_creates_types_and_survives_reload() {
    let srv = Server::start_with(Opts { extra: vec!["--web-dir".into(), web_dir()], ..Default::default() });
    let driver = chromedriver().await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                     "--window-size=1100,750", format!("--user-data-dir={}", driver._profile.path().display())]
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("webdriver session");

    c.goto(&format!("{}/", srv.url)).await.unwrap();
    c.wait().for_element(Locator::Css("#token")).await.unwrap().send_keys(&srv.token).await.unwrap();
    c.find(Locator::Css("#signin-button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#create-name")).await.unwrap().send_keys("web").await.unwrap();
    c.find(Locator::Css("#create-env")).await.unwrap().send_keys("GREETING=from-the-browser").await.unwrap();
    c.find(Locator::Css("#create-button")).await.unwrap().click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("tr[data-name='web'] td.state-running"))
        .await
        .expect("the new sandbox is listed as running");
    c.find(Locator::Css("tr[data-name='web'] button.open-terminal")).await.unwrap().click().await.unwrap();
    wait_screen(&c, 20, "the shell prompt", |s| s.contains('$')).await;

    let input = c.find(Locator::Css("textarea.xterm-helper-textarea")).await.unwrap();
    input.send_keys("echo hello-$RANDOM\n").await.unwrap();
    let before = wait_screen(&c, 20, "the echoed number", |s| hello_line(s).is_some()).await;
    input.send_keys("echo $GREETING\n").await.unwrap();
    let hello = hello_line(&before);
    // Settled: the value, then the next prompt (the reload must compare against a finished screen).
    let before =
        wait_screen(&c, 20, "the env value and the next prompt", |s| settled_after(s, "from-the-browser")).await;
    assert_eq!(hello_line(&before), hello, "the earlier output is still on screen");
    let png = c.screenshot().await.unwrap();
    std::fs::write(std::env::temp_dir().join("podgate-web-terminal.png"), png).unwrap();

    // Reload: the page re-attaches to the same terminal and shows the same screen.
    c.refresh().await.unwrap();
    let after = wait_screen(&c, 20, "the restored screen", |s| s == before).await;
    assert_eq!(hello_line(&after), hello_line(&before));
    // And it still types.
    let input = c.find(Locator::Css("textarea.xterm-helper-textarea")).await.unwrap();
    input.send_keys("echo again-$((40+2))\n").await.unwrap();
    let owner_view = wait_screen(&c, 20, "typing after the reload", |s| settled_after(s, "again-42")).await;

    // The read-only share link shows the same terminal, and typing there does nothing.
    c.find(Locator::Css("#share")).await.unwrap().click().await.unwrap();
    let link_box = c.wait().for_element(Locator::Css("#share-link:not([hidden])")).await.unwrap();
    let link = link_box.prop("value").await.unwrap().unwrap();
    assert!(link.contains("#share="), "{link}");
    let owner_page = c.current_url().await.unwrap();
    c.goto(&link).await.unwrap();
    c.wait().for_element(Locator::Css("#terminal-view:not([hidden])")).await.unwrap();
    // The viewer's page has its own layout (no share box), so compare the text, not the blank rows.
    wait_screen(&c, 20, "the shared screen", |s| text_lines(s) == text_lines(&owner_view)).await;
    let status = c.find(Locator::Css("#terminal-status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("read-only"), "{status}");
    let input = c.find(Locator::Css("textarea.xterm-helper-textarea")).await.unwrap();
    input.send_keys("echo typed-in-share\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(text_lines(&screen(&c).await), text_lines(&owner_view), "a read-only viewer changed the terminal");

    // The owner revokes the terminal's links: the same link no longer opens it.
    c.goto(owner_page.as_str()).await.unwrap();
    c.refresh().await.unwrap();
    c.wait().for_element(Locator::Css("#unshare:not([hidden])")).await.unwrap().click().await.unwrap();
    wait_status(&c, |s| s.contains("revoked")).await;
    c.goto(&link).await.unwrap();
    c.refresh().await.unwrap();
    let refused = wait_status(&c, |s| s.contains("refused") || s.contains("connected")).await;
    assert_eq!(refused, "share token refused: revoked", "a revoked link still opened the terminal");
    c.close().await.unwrap();
}

/// Waits (10 s at most) until the terminal's status line satisfies `ok`; returns it.
async fn wait_status(c: &fantoccini::Client, ok: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = match c.find(Locator::Css("#terminal-status")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&status) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "terminal status stayed {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
