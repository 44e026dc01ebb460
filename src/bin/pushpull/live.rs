//! `pushpull live`: the WebSocket mechanism on real sockets. The simulation
//! hands [`websocket::serve_connection`] turmoil's TCP; this hands it
//! tokio's, accepted on a real port, and the same code answers: the chat
//! room at `/chat`, the echo endpoint at `/echo` (what Autobahn's fuzzing
//! client drives), and a small chat page at `/` so that two browser tabs can
//! talk. No simulated network, no faults, no report: the trace is hashed and
//! dropped.

use pushpull::mechanisms::websocket::{self, Room, Settings};
use pushpull::record::trace::{Dir, Tracer};
use pushpull::scenario::Scenario;
use pushpull::wire::http::{Request, Response};
use pushpull::wire::websocket::DEFAULT_MAX_MESSAGE;
use pushpull::world::conn::Conn;
use pushpull::world::event_log::{EventLog, PostTimes};
use pushpull::world::tcp::Loss;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves until the process is stopped. `origins`: pages on other sites
/// that may open `/chat`, besides the server's own.
pub fn live(bind: &str, port: u16, origins: Vec<String>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    // The room is shared through `Rc`s, as in the simulation: one thread,
    // its tasks spawned locally.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(bind, port, origins))
}

async fn serve(bind: &str, port: u16, extra_origins: Vec<String>) -> Result<(), String> {
    let listener = TcpListener::bind((bind, port))
        .await
        .map_err(|e| format!("cannot listen on {bind}:{port}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    // One line, flushed: a test (or a script) reads the port from it.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "pushpull live: http://{addr}/ (WebSocket: ws://{addr}/echo and /chat)"
    );
    let _ = stdout.flush();

    let mut settings = Settings::of(&Scenario::default().websocket);
    // Autobahn's limits cases (9.x) send messages of up to 16 MiB.
    settings.max_message = DEFAULT_MAX_MESSAGE;
    settings.chat_origins = own_origins(addr);
    settings.chat_origins.extend(extra_origins);
    settings.pages = Some(page);
    // Nothing kept, nothing written: each record is hashed and dropped, so
    // the trace costs no memory however long the server runs.
    let trace = Tracer::new(None, false).on("server");
    let room = Room::new(
        EventLog::default(),
        PostTimes::default(),
        trace.clone(),
        settings,
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                eprintln!("pushpull live: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small frames (a pong, a chat line) go out at once, not after
        // Nagle's wait for the previous segment's ACK.
        let _ = stream.set_nodelay(true);
        let name = format!("{peer}>{addr}");
        let conn = Conn::new(stream, name, Dir::Down, trace.clone(), Loss::none());
        tokio::task::spawn_local(websocket::serve_connection(conn, room.clone()));
    }
}

/// The origins of this server's own pages: the address it listens on and,
/// on loopback, the names a browser may use for it. (Bound to every
/// address, it cannot know which one a page came from: `--origin` adds
/// them.)
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut origins = Vec::new();
    if !addr.ip().is_unspecified() {
        origins.push(format!("http://{addr}"));
    }
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let origin = format!("http://{host}:{port}");
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }
    origins
}

/// The pages: the chat at `/`; anything else is not found.
fn page(request: &Request) -> Option<Response> {
    if request.method != "GET" || !matches!(request.path(), "/" | "/index.html") {
        return None;
    }
    let mut response = Response::new(200, "text/html; charset=utf-8", CHAT_PAGE.into());
    response
        .headers
        .push(("Cache-Control".into(), "no-store".into()));
    response.headers.push(("Connection".into(), "close".into()));
    Some(response)
}

/// A chat page with nothing but the browser's `WebSocket`: it opens
/// `/chat` from the start of the room (`since=0`), shows every message and
/// notice, and posts what is typed as `{"id":N,"text":"..."}`. Post numbers
/// start at the clock's milliseconds so that they keep rising across reloads
/// (the room drops a post whose number is not above the user's last).
const CHAT_PAGE: &str = r##"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>pushpull live chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #999; height: 20em; overflow-y: auto; padding: .5em; }
  .notice { color: #777; font-style: italic; }
  form { display: flex; gap: .5em; margin-top: .5em; }
  #text { flex: 1; }
</style>
<h1>pushpull live chat</h1>
<p id="status">connecting...</p>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" placeholder="say something" autofocus><button>Send</button></form>
<p>Open this page in another tab to talk to yourself. <code>/?user=NAME</code> picks a name.</p>
<script>
const user = new URLSearchParams(location.search).get("user")
  || "guest-" + Math.floor(Math.random() * 10000);
let nextId = Date.now();
const log = document.getElementById("log");
const status = document.getElementById("status");
function show(line, notice) {
  const p = document.createElement("div");
  p.textContent = line;
  if (notice) p.className = "notice";
  log.appendChild(p);
  log.scrollTop = log.scrollHeight;
}
const ws = new WebSocket("ws://" + location.host + "/chat?user="
  + encodeURIComponent(user) + "&since=0");
ws.onopen = () => { status.textContent = "connected as " + user; };
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.joined) show(m.joined.who + " joined", true);
  else if (m.left) show(m.left.who + " left", true);
  else if (m.gap) show("messages " + m.gap.from + " to " + m.gap.to + " are gone", true);
  else show("#" + m.seq + " " + m.from + ": " + m.text);
};
ws.onclose = (e) => {
  status.textContent = "disconnected (" + e.code + (e.reason ? " " + e.reason : "") + "): reload to join again";
};
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  const box = document.getElementById("text");
  if (box.value && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ id: nextId++, text: box.value }));
    box.value = "";
  }
};
</script>
</html>
"##;
