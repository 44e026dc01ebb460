//! The book's playground: `POST /api/run` against a served book answers
//! what the CLI answers (the same `trace_hash`, the same one-line error),
//! and a chapter opened in headless Chromium with `?set=...` shows the new
//! run's report.
//!
//! The browser test needs Chromium (`apt-get install chromium`); without it
//! the test says so and passes, unless `PUSHPULL_REQUIRE_BROWSER=1` (which
//! `.ci/run` sets after installing it).

mod support;

use pushpull::book::playground::Limits;
use pushpull::book::serve::serve_with;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use support::browser::{browser_or_skip, dom_after_scripts};

/// Serves `root` with the API on a free port, for the rest of the tests.
fn serve(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = Limits {
        // Debug builds are slower than the release build a learner serves.
        wall_time: Duration::from_secs(120),
        ..Limits::default()
    };
    std::thread::spawn(move || serve_with(&root, listener, limits));
    port
}

/// The book built once (mdBook only, from the committed generated files)
/// into a temporary directory, and served.
fn served_book() -> u16 {
    built_book().1
}

/// The built book's directory and the port it is served on.
fn built_book() -> &'static (PathBuf, u16) {
    static BOOK: OnceLock<(PathBuf, u16)> = OnceLock::new();
    BOOK.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("pushpull-playground-{}", std::process::id()));
        let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("book");
        let html = pushpull::book::build_book(&book, Some(&out)).expect("the book builds");
        (html.clone(), serve(html))
    })
}

/// `(status, body)` of one request.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pushpull"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_run_through_the_api_is_the_clis_run() {
    let port = served_book();
    let request = r#"{"scenario":"sse","set":["sse.retry=10s","network.latency=80ms"],"seed":4,"window":"10s..30s"}"#;
    let (status, body) = http(port, "POST", "/api/run", request);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer["svg"].as_str().unwrap().starts_with("<svg"));
    let command = answer["command"].as_str().unwrap();
    assert_eq!(
        command,
        "pushpull run sse --set sse.retry=10s --set network.latency=80ms --seed 4 \
         --diagram run.svg --window 10s..30s"
    );
    let (ok, stdout, _) = cli(&[
        "run",
        "sse",
        "--set",
        "sse.retry=10s",
        "--set",
        "network.latency=80ms",
        "--seed",
        "4",
        "--format",
        "json",
    ]);
    assert!(ok);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        answer["report"], report,
        "the same object as run --format json"
    );
    assert_eq!(answer["report"]["seed"], 4);
}

#[test]
fn a_bad_parameter_gets_the_clis_message() {
    let port = served_book();
    let (status, body) = http(
        port,
        "POST",
        "/api/run",
        r#"{"scenario":"long_polling","set":["network.loss=1.5"]}"#,
    );
    assert_eq!(status, 400);
    let error = serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, stderr) = cli(&["run", "long_polling", "--set", "network.loss=1.5"]);
    assert!(!ok);
    assert_eq!(stderr.trim_end(), format!("error: {error}"));
    // Bounds, a file path, a wrong method, not JSON.
    let (status, body) = http(
        port,
        "POST",
        "/api/run",
        r#"{"scenario":"sse","set":["workload.clients=50000"]}"#,
    );
    assert_eq!(status, 400);
    assert!(body.contains("at most"), "{body}");
    let (status, body) = http(port, "POST", "/api/run", r#"{"scenario":"../Cargo.toml"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("unknown lesson"), "{body}");
    assert_eq!(http(port, "GET", "/api/run", "").0, 405);
    assert_eq!(http(port, "POST", "/api/run", "run it").0, 400);
    let (status, body) = http(port, "GET", "/api/health", "");
    assert_eq!(status, 200);
    assert!(body.contains("\"playground\":true"));
}

#[test]
fn a_chapter_opened_with_set_shows_the_new_run() {
    let Some(browser) = browser_or_skip("a_chapter_opened_with_set_shows_the_new_run") else {
        return;
    };
    let port = served_book();
    let (_, stdout, _) = cli(&[
        "run",
        "short_polling",
        "--set",
        "short_polling.interval=1s",
        "--seed",
        "3",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let hash = report["trace_hash"].as_str().unwrap();
    let url = format!(
        "http://127.0.0.1:{port}/short_polling.html?set=short_polling.interval%3D1s&seed=3"
    );
    let dom = dom_after_scripts(browser, &url);
    assert!(dom.contains("pp-try"), "the panels are there");
    assert!(
        dom.contains(&format!("trace_hash          {}", &hash[..16])),
        "the report in place is the new run's ({hash})"
    );
    // Read from files, a panel shows the command instead of a button.
    let file = built_book().0.join("short_polling.html");
    let dom = dom_after_scripts(browser, &format!("file://{}", file.display()));
    assert!(dom.contains("pp-try"), "the panels are there");
    assert!(dom.contains("run this in a terminal"));
    assert!(!dom.contains("class=\"pp-run\""));
}
