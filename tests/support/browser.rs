//! Headless Chromium for the browser tests: whether it is here, a page's DOM
//! after its scripts ran, and a live page's state read over the DevTools
//! protocol (with pushpull's own WebSocket client).
//!
//! Without Chromium a browser test says so and passes, unless
//! `PUSHPULL_REQUIRE_BROWSER=1` (which `.ci/run` sets after installing it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The flags of every start: no sandbox (tests may run as root), and none
/// of the background traffic a closed network refuses.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The browser, or `None` with a note (a failure when CI requires it).
pub fn browser_or_skip(test: &str) -> Option<&'static str> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("PUSHPULL_REQUIRE_BROWSER").is_err(),
            "{test}: PUSHPULL_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("{test}: skipped, no chromium (apt-get install chromium)");
    }
    found
}

pub fn tempdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pushpull-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The DOM of `url` once it has loaded and its fetches have answered
/// (virtual time runs while nothing is pending).
pub fn dom_after_scripts(browser: &str, url: &str) -> String {
    let profile = tempdir("chromium");
    let out = Command::new(browser)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=60000", "--dump-dom", url])
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A browser left running, driven over the DevTools protocol: for pages
/// that never finish loading (an EventSource, a WebSocket).
pub struct Devtools {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Devtools {
    pub fn start(browser: &str) -> Devtools {
        let profile = tempdir("chromium-devtools");
        let mut child = Command::new(browser)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--remote-debugging-port=0", "about:blank"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // Chromium keeps writing to its stderr: read it to the end in a
        // thread (a closed pipe would kill it), and take the port from it.
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let line = line.unwrap_or_default();
                // DevTools listening on ws://127.0.0.1:PORT/devtools/browser/...
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    let port: Option<u16> = rest.split('/').next().and_then(|p| p.parse().ok());
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .ok()
            .flatten();
        Devtools {
            child,
            port: port.expect("chromium prints its DevTools address"),
            profile,
        }
    }

    fn http(&self, method: &str, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        // Chromium's DevTools server keeps the connection open: read the
        // head, then exactly Content-Length bytes.
        let mut reader = BufReader::new(s);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }

    /// Opens `url` in a new tab; returns the tab's DevTools WebSocket URL.
    pub fn open(&self, url: &str) -> String {
        let body = self.http("PUT", &format!("/json/new?{url}"));
        let tab: serde_json::Value = serde_json::from_str(&body).expect("a tab as JSON");
        tab["webSocketDebuggerUrl"].as_str().unwrap().to_string()
    }

    /// Evaluates `expression` in the tab (its value, as a string), with
    /// `pushpull client ws` as the DevTools client.
    pub fn evaluate(&self, tab: &str, expression: &str) -> String {
        let command = serde_json::json!({
            "id": 1,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        let out = Command::new(env!("CARGO_BIN_EXE_pushpull"))
            .args(["client", "ws", tab, "--send", &command.to_string()])
            .args(["--max-events", "1", "--timeout", "20s"])
            .output()
            .expect("pushpull runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(data) = line["data"].as_str() {
                let reply: serde_json::Value = serde_json::from_str(data).unwrap();
                return reply["result"]["result"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
        }
        panic!("no answer from DevTools: {stdout}");
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
