//! The example app (`examples/app.rs`) used by a person, in a real browser: headless Chromium
//! driven over WebDriver (`chromedriver`, through `fantoccini`). Opens the page, logs in through
//! the form, bumps the counter with its button, logs out, and checks the session cookie along
//! the way (set by the first change, replaced at login, removed at logout).
//!
//! Needs `chromedriver` and Chromium (Debian: `apt-get install chromium chromium-driver`; or
//! `CHROMEDRIVER=/path` and `CHROME=/path`). Without chromedriver the test prints a notice and
//! passes, unless `CI=true`: then it fails. `bash ci/browser.sh` installs both and runs it.
//!
//! Needs the `axum` and `tower-sessions` features: `cargo test --all-features --test browser`.

#[path = "../examples/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::sync::oneshot;
use unlocked::{Blocking, LockFree, Strategy};

/// How long to wait for chromedriver to listen, and for a page to show what is expected.
const PATIENCE: Duration = Duration::from_secs(30);

/// The app on a free port; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve<S: Strategy>() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let router = app::router::<S>(app::templates_dir());
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        stop: Some(stop),
    }
}

/// A running chromedriver; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$CHROMEDRIVER`, else `chromedriver` on `PATH`.
fn chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

fn start_driver(bin: &PathBuf) -> Driver {
    // A free port: bind port 0, read it, let it go for chromedriver.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < PATIENCE,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut chrome = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions"],
    });
    if let Some(bin) = std::env::var_os("CHROME") {
        chrome["binary"] = json!(bin.to_string_lossy());
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), chrome);
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session on chromedriver")
}

/// The text of the element `css`, once the page shows one (re-found each time: a form post
/// replaces the page).
async fn text_of(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

/// Waits until `css` shows `want`; fails with the page source after `PATIENCE`.
async fn wait_text(c: &Client, css: &str, want: &str) {
    let start = Instant::now();
    loop {
        if text_of(c, css).await.as_deref() == Some(want) {
            return;
        }
        if start.elapsed() > PATIENCE {
            let page = c.source().await.unwrap_or_default();
            panic!("{css} never showed {want:?}; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element `css` is on the page.
async fn wait_present(c: &Client, css: &str) {
    let start = Instant::now();
    while c.find(Locator::Css(css)).await.is_err() {
        if start.elapsed() > PATIENCE {
            let page = c.source().await.unwrap_or_default();
            panic!("{css} never appeared; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The browser's `sessionid` cookie value, if it has one.
async fn session_cookie(c: &Client) -> Option<String> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name() == "sessionid")
        .map(|k| k.value().to_owned())
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .click()
        .await
        .unwrap();
}

/// The counter shown on the page, as a number.
async fn shown_count(c: &Client) -> i64 {
    let t = text_of(c, "#count")
        .await
        .expect("the page shows the counter");
    t.parse()
        .unwrap_or_else(|_| panic!("counter {t:?} is not a number"))
}

/// One person's visit: open, bump, log in, bump, log out, each through the page's own controls.
async fn visit<S: Strategy>(c: &Client) {
    let server = serve::<S>().await;
    let base = format!("http://{}/", server.addr);
    c.goto(&base).await.unwrap();
    wait_present(c, "#user-name").await;
    assert_eq!(shown_count(c).await, 0);
    assert_eq!(
        session_cookie(c).await,
        None,
        "a page view alone sets no cookie"
    );

    // The counter button.
    click(c, "#bump").await;
    wait_text(c, "#count", "1").await;
    let anonymous = session_cookie(c)
        .await
        .expect("the first change sets the session cookie");

    // The login form: the name typed in and the button clicked.
    c.find(Locator::Css("#user-name"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    click(c, "#login").await;
    wait_text(c, "#user", "alice").await;
    let logged_in = session_cookie(c)
        .await
        .expect("logged in, the browser holds a session cookie");
    assert_ne!(logged_in, anonymous, "login did not change the session key");
    assert_eq!(shown_count(c).await, 1, "the counter was lost at login");

    // Bump again, logged in: the number shown goes up.
    let before = shown_count(c).await;
    click(c, "#bump").await;
    wait_text(c, "#count", &(before + 1).to_string()).await;
    assert_eq!(session_cookie(c).await.as_deref(), Some(&*logged_in));

    // Log out: back to the login form, the counter gone, the cookie removed.
    click(c, "#logout").await;
    wait_present(c, "#user-name").await;
    assert_eq!(shown_count(c).await, 0, "the session survived logout");
    assert_eq!(session_cookie(c).await, None, "logout left the cookie");
    // A reload (a GET) is harmless and still logged out.
    c.goto(&base).await.unwrap();
    wait_present(c, "#user-name").await;
    assert_eq!(session_cookie(c).await, None);
}

#[test]
fn a_person_logs_in_bumps_and_logs_out() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(bin) = chromedriver() else {
        assert!(
            !ci,
            "CI=true and no chromedriver: install chromium and chromium-driver (bash ci/browser.sh)"
        );
        eprintln!(
            "notice: chromedriver not found (PATH or $CHROMEDRIVER); browser test skipped. \
             `bash ci/browser.sh` installs it and runs this test."
        );
        return;
    };
    let driver = start_driver(&bin);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver).await;
        visit::<LockFree>(&c).await;
        c.delete_all_cookies().await.unwrap();
        visit::<Blocking>(&c).await;
        c.close().await.unwrap();
    });
}
