//! A headless Debian `chromium` driven through `chromedriver` (WebDriver),
//! one fresh browser profile per test. Absent browser: the test skips
//! loudly, except with `CI=true`, where it fails. Browser tests run one at a
//! time (two cores; their deadlines are 2 s).
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

pub struct Browser {
    pub c: Client,
    driver: Child,
    driver_url: String,
    session: String,
    profile: PathBuf,
    stopped: bool,
    _turn: MutexGuard<'static, ()>,
}

fn program(env: &str, default: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var(env).unwrap_or_else(|_| default.to_string()));
    p.exists().then_some(p)
}

impl Browser {
    /// A browser with a `width` x `height` window, or `None` (skipped) when
    /// chromium or chromedriver is missing outside CI.
    pub async fn start(width: u32, height: u32) -> Option<Browser> {
        let chromium = program("CHATGATE_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("CHATGATE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but chromium/chromedriver is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("SKIPPED: browser test (no /usr/bin/chromium or /usr/bin/chromedriver)");
            return None;
        };
        let turn = ONE_AT_A_TIME.lock().await;
        let port = crate::helpers::free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("chromedriver starts");
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while http
            .get(format!("{driver_url}/status"))
            .send()
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("chatgate-chromium-{}", Uuid::now_v7()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let c = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("a chromium session");
        let session = c.session_id().await.unwrap().unwrap();
        let mut b = Browser {
            c,
            driver,
            driver_url,
            session,
            profile,
            stopped: false,
            _turn: turn,
        };
        b.resize(width, height).await;
        Some(b)
    }

    pub async fn resize(&mut self, width: u32, height: u32) {
        let _ = self.c.set_window_size(width, height).await;
    }

    /// Polls the JS expression `expr` (with `arguments`) every 50 ms until it
    /// is truthy; returns the time it took, or panics with `what` after `within`.
    pub async fn wait_for(
        &self,
        what: &str,
        expr: &str,
        args: Vec<Value>,
        within: Duration,
    ) -> Duration {
        let start = tokio::time::Instant::now();
        let script = format!("return !!({expr});");
        loop {
            let ok = self.c.execute(&script, args.clone()).await.unwrap();
            if ok == Value::Bool(true) {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "not within {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c.execute(script, args).await.unwrap()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Writes a PNG of the window: to `docs/<name>` (the pictures of README.md and docs/)
    /// when `CHATGATE_UPDATE_SCREENSHOTS=1`, else to `target/screenshots/`,
    /// so that a test run leaves the work tree as it found it.
    pub async fn screenshot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = if std::env::var("CHATGATE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            root.join("docs")
        } else {
            root.join("target").join("screenshots")
        };
        let file = dir.join(name);
        std::fs::create_dir_all(file.parent().unwrap_or(&dir)).unwrap();
        std::fs::write(file, png).unwrap();
    }

    /// Runs `js` in every document the browser opens from now on, before
    /// the page's own scripts (CDP `Page.addScriptToEvaluateOnNewDocument`
    /// through chromedriver): a stub of a browser API the page tests for.
    pub async fn on_new_document(&self, js: &str) {
        let url = format!(
            "{}/session/{}/goog/cdp/execute",
            self.driver_url, self.session
        );
        let body =
            json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": js}});
        let res = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "the script was not added");
    }

    /// Entries of one chromedriver log (`browser` or `performance`), read
    /// (and emptied) through the legacy log endpoint.
    async fn log(&self, kind: &str) -> Vec<Value> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let v: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": kind}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"].as_array().cloned().unwrap_or_default()
    }

    /// Script errors: console messages of level SEVERE but those of the
    /// network (an API's 401 or 403 answer is logged as a failed load).
    pub async fn errors(&self) -> Vec<String> {
        self.log("browser")
            .await
            .iter()
            .filter(|e| e["level"] == "SEVERE" && e["source"] != "network")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Fails the test if the page raised a script error (see [`Self::errors`]).
    pub async fn assert_no_script_errors(&self) {
        let errors = self.errors().await;
        assert!(errors.is_empty(), "script errors: {errors:?}");
    }

    /// The URL of every request the browser sent so far (network log).
    pub async fn request_urls(&self) -> Vec<String> {
        self.log("performance")
            .await
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| {
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }

    pub async fn close(mut self) {
        let c = self.c.clone();
        let _ = c.close().await;
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // chromedriver and the chromium it started share its process group.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop_driver();
    }
}
