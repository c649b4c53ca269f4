//! A real headless Chromium driven through Debian's chromedriver: the driver is
//! started on a free port of loopback for each test, the browser with a fresh profile
//! and everything that would reach the internet turned off.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver, and a browser session on it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Where screenshots go.
    artefacts: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile; screenshots
    /// go to `artefacts`.
    pub async fn start(artefacts: &Path) -> Browser {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "chromedriver is not installed: `apt-get install chromium chromium-driver` (scripts/test does)",
            );
        let port = e2e::free_port();
        // In a process group of its own, with the browser it starts, so that a test
        // that fails before closing the session still ends them all.
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad",
                    "--window-size=1280,1400",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if started.elapsed() < WAIT => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("no browser session from chromedriver at {url}: {error}"),
            }
        };
        std::fs::create_dir_all(artefacts).expect("create the artefacts directory");
        Browser {
            client,
            driver,
            _profile: profile,
            artefacts: artefacts.to_path_buf(),
        }
    }

    /// Ends the browser session (and so the browser), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The element with this id, once it is on the page.
    pub async fn id(&self, id: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no element #{id}: {e}"))
    }

    pub async fn click(&self, id: &str) {
        self.id(id)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    /// Replaces what the field holds with `text`, as a person typing would.
    pub async fn type_into(&self, id: &str, text: &str) {
        let field = self.id(id).await;
        field.clear().await.unwrap_or_else(|e| panic!("clear #{id}: {e}"));
        field
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    }

    pub async fn text(&self, id: &str) -> String {
        self.id(id).await.text().await.unwrap_or_default()
    }

    /// Waits until the element's text satisfies `done`; returns it, or panics with the
    /// last text seen.
    pub async fn wait_text(&self, id: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(id).await;
            if done(&text) {
                return text;
            }
            if started.elapsed() > WAIT {
                panic!("#{id} never showed what was expected; it shows {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `done(elements matching css)` holds; returns them.
    pub async fn wait_all(&self, css: &str, done: impl Fn(usize) -> bool) -> Vec<Element> {
        let started = Instant::now();
        loop {
            let found = self.client.find_all(Locator::Css(css)).await.unwrap_or_default();
            if done(found.len()) {
                return found;
            }
            if started.elapsed() > WAIT {
                panic!("{css} matched {} elements, not what was expected", found.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes what the browser shows to `NAME.png` in the artefacts directory.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.artefacts.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.driver.id()) {
            // SAFETY: kill(2) on the process group this browser's driver leads.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.driver.wait();
    }
}
