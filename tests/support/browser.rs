//! A real headless browser for the page tests: Chromium (Debian's `chromium`, which
//! `scripts/test.sh` installs when missing; `KYZLO_CHROMIUM` names another) driven over
//! the DevTools protocol on a local websocket: navigate, evaluate script in the page,
//! wait for a condition, capture a screenshot.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The Chromium binary: `KYZLO_CHROMIUM`, else the first of `chromium`,
/// `chromium-browser`, `google-chrome` on the `PATH`.
///
/// # Panics
/// When none is found: `scripts/test.sh` installs Debian's `chromium` first.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("KYZLO_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found: run the suite with scripts/test.sh (it installs Debian's chromium) or set KYZLO_CHROMIUM"
    );
}

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

/// One headless Chromium with one page, killed when dropped.
pub struct Browser {
    child: Child,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (a fresh profile, a `width` x `height` window) on a blank page.
    ///
    /// # Panics
    /// When Chromium does not start or its DevTools endpoint does not answer.
    pub fn start(width: u32, height: u32) -> Self {
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("chromium's stderr");
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("chromium ended before its DevTools endpoint")
                .expect("read chromium's stderr");
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining stderr so that Chromium never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let port: u16 = endpoint
            .trim_start_matches("ws://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("a port in the DevTools endpoint");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let targets = crate::common::http(addr, "GET", "/json/list", None, None).json();
        let page = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (page, _) = tungstenite::connect(page).expect("connect to the page's DevTools");
        Self {
            child,
            page,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Sends one DevTools command and returns its result.
    ///
    /// # Panics
    /// When the command fails or the socket breaks.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params});
        self.page
            .send(Message::text(request.to_string()))
            .expect("send a DevTools command");
        loop {
            let message = self.page.read().expect("read from DevTools");
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    /// Opens `url` and waits until its document has loaded.
    pub fn open(&mut self, url: &str) {
        self.call("Page.enable", json!({}));
        self.call("Page.navigate", json!({"url": url}));
        // The page before (about:blank) is complete too: wait for this URL's document.
        let url = Value::String(url.to_owned());
        self.wait_for(
            &format!("location.href === new URL({url}).href && document.readyState === 'complete'"),
            Duration::from_secs(20),
        );
    }

    /// Evaluates `script` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, script: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": script, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{script}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Evaluates `condition` every 50 ms until it is true; returns how long that took.
    ///
    /// # Panics
    /// When it is still false after `limit`.
    pub fn wait_for(&mut self, condition: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.eval(condition) == Value::Bool(true) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "`{condition}` still false after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the page's body.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG of the whole page to `target/screenshots/{name}.png` and returns the
    /// path.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
