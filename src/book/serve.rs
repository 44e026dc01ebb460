//! `pushpull book --serve`: the built book in a browser, and the runs its
//! "Try it" panels ask for (`POST /api/run`, see [`super::playground`]).
//! Real sockets, blocking, one thread and one request per connection,
//! bound to 127.0.0.1 by the caller. Requests are read with the project's
//! own HTTP/1.1 parser ([`crate::wire::http::decode_request`]).

use super::playground::{self, Limits, RunRequest};
use crate::wire::http::decode_request;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The largest request the server reads (a run request is a few hundred
/// bytes): past it, `413`.
const MAX_REQUEST: usize = 64 * 1024;

/// One run at a time: a run takes a core, and this machine may have two.
/// A second panel's run waits for the first.
static RUNNING: Mutex<()> = Mutex::new(());

/// Serves the files under `root` on `listener`, and the playground's API,
/// forever.
pub fn serve_dir(root: &Path, listener: TcpListener) {
    serve_with(root, listener, Limits::default())
}

/// [`serve_dir`] with other bounds on the runs.
pub fn serve_with(root: &Path, listener: TcpListener, limits: Limits) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let _ = handle_connection(&root, stream, &limits);
        });
    }
}

/// Reads one whole request (head and body), or the answer that refuses it.
fn read_request(stream: &mut TcpStream) -> Result<crate::wire::http::Request, Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match decode_request(&buf) {
            Ok(Some((request, _))) => return Ok(request),
            Ok(None) => {}
            Err(e) => return Err(text_response("400 Bad Request", &e.to_string())),
        }
        if buf.len() > MAX_REQUEST {
            return Err(text_response("413 Content Too Large", "request too large"));
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(text_response("400 Bad Request", "incomplete request")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn handle_connection(root: &Path, mut stream: TcpStream, limits: &Limits) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let response = match read_request(&mut stream) {
        Err(refusal) => refusal,
        Ok(request) => match (request.method.as_str(), request.path()) {
            (_, "/api/run") if request.method != "POST" => {
                text_response("405 Method Not Allowed", "POST a JSON run request")
            }
            ("POST", "/api/run") => api_run(&request.body, limits),
            (_, "/api/health") => json_response(
                "200 OK",
                &serde_json::json!({
                    "playground": true,
                    "lessons": crate::scenario::lessons::LESSONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                }),
            ),
            _ => respond(
                root,
                &format!("{} {} HTTP/1.1", request.method, request.target),
            ),
        },
    };
    let location = response
        .location
        .as_deref()
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// `POST /api/run`: `200` with the run, or `400` with the CLI's message.
fn api_run(body: &[u8], limits: &Limits) -> Response {
    let request: RunRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            return json_response(
                "400 Bad Request",
                &serde_json::json!({ "error": format!("the request is not a run request: {e}") }),
            );
        }
    };
    // A run that panicked poisons the lock, not the server.
    let _one_at_a_time = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    match playground::run_request(&request, limits) {
        Ok(answer) => json_response("200 OK", &answer),
        Err(error) => json_response("400 Bad Request", &serde_json::json!({ "error": error })),
    }
}

fn json_response(status: &'static str, value: &impl serde::Serialize) -> Response {
    Response {
        status,
        content_type: "application/json",
        location: None,
        body: serde_json::to_vec(value).expect("answers serialize"),
    }
}

/// An HTTP response of the static file server.
#[derive(Debug)]
pub struct Response {
    /// Status code and reason, e.g. `200 OK`.
    pub status: &'static str,
    pub content_type: &'static str,
    /// Where a redirect points.
    pub location: Option<String>,
    pub body: Vec<u8>,
}

fn text_response(status: &'static str, text: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        location: None,
        body: format!("{text}\n").into_bytes(),
    }
}

/// The content type of a file, from its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "json" => "application/json",
        "txt" | "md" | "jsonl" | "toml" => "text/plain; charset=utf-8",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The answer to one request line (`GET /path HTTP/1.1`) for the files
/// under `root`.
pub fn respond(root: &Path, request_line: &str) -> Response {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return text_response("400 Bad Request", "bad request");
    };
    if method != "GET" {
        return text_response("405 Method Not Allowed", "only GET is supported");
    }
    let raw_path = target.split(['?', '#']).next().unwrap_or("");
    let Some(path) = percent_decode(raw_path) else {
        return text_response("400 Bad Request", "bad path");
    };
    if !path.starts_with('/') {
        return text_response("400 Bad Request", "bad path");
    }
    let mut file = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." || segment.contains(['\\', '\0']) || segment.contains(':') {
            return text_response("403 Forbidden", "forbidden");
        }
        file.push(segment);
    }
    if file.is_dir() {
        if !path.ends_with('/') {
            // Relative links in the index must resolve inside the directory.
            let mut moved = text_response("301 Moved Permanently", "moved");
            moved.location = Some(format!("{raw_path}/"));
            return moved;
        }
        file.push("index.html");
    }
    match std::fs::read(&file) {
        Ok(body) => Response {
            status: "200 OK",
            content_type: content_type(&file),
            location: None,
            body,
        },
        Err(_) => match std::fs::read(root.join("404.html")) {
            Ok(body) => Response {
                status: "404 Not Found",
                content_type: "text/html; charset=utf-8",
                location: None,
                body,
            },
            Err(_) => text_response("404 Not Found", "not found"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;

    fn temp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pushpull-book-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.join("sub/a b.svg"), "<svg/>").unwrap();
        std::fs::write(dir.join("sub/index.html"), "sub").unwrap();
        dir
    }

    #[test]
    fn static_files() {
        let root = temp_root("respond");
        let r = respond(&root, "GET / HTTP/1.1\r\n");
        assert_eq!(
            (r.status, r.content_type),
            ("200 OK", "text/html; charset=utf-8")
        );
        assert_eq!(r.body, b"<h1>hi</h1>");
        let r = respond(&root, "GET /sub/a%20b.svg?x=1 HTTP/1.1");
        assert_eq!((r.status, r.content_type), ("200 OK", "image/svg+xml"));
        let r = respond(&root, "GET /sub HTTP/1.1");
        assert_eq!(r.status, "301 Moved Permanently");
        assert_eq!(r.location.as_deref(), Some("/sub/"));
        assert_eq!(respond(&root, "GET /sub/ HTTP/1.1").body, b"sub");
        assert_eq!(
            respond(&root, "GET /nope.html HTTP/1.1").status,
            "404 Not Found"
        );
        assert_eq!(
            respond(&root, "GET /../etc/passwd HTTP/1.1").status,
            "403 Forbidden"
        );
        assert_eq!(
            respond(&root, "GET /sub/%2e%2e/%2e%2e/x HTTP/1.1").status,
            "403 Forbidden"
        );
        assert_eq!(
            respond(&root, "POST / HTTP/1.1").status,
            "405 Method Not Allowed"
        );
        assert_eq!(respond(&root, "GET").status, "400 Bad Request");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn serves_over_tcp() {
        let root = temp_root("serve");
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = root.clone();
        std::thread::spawn(move || serve_dir(&served, listener));
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Content-Length: 11\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n<h1>hi</h1>"), "{answer}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
