//! `pushpull client sse URL` and `pushpull client ws URL`: the mechanisms'
//! own Rust clients against any real server, printing what happens, one
//! JSON object a line:
//!
//! ```text
//! {"open":{"url":"http://127.0.0.1:8000/events","headers":{"Host":"127.0.0.1:8000","Accept":"text/event-stream","Cache-Control":"no-store"},"last_event_id":""}}
//! {"type":"update","data":"event 1 ...","last_event_id":"1"}
//! {"error":"the server ended the stream","reconnect_in_ms":3000}
//! {"open":{...,"headers":{...,"Last-Event-ID":"1"},"last_event_id":"1"}}
//! {"closed":"status 204 No Content"}
//! ```
//!
//! The EventSource is `mechanisms::sse`'s (its [`Page`] here is a real
//! socket instead of the simulation's client), and the WebSocket client
//! is `mechanisms::websocket`'s handshake and [`Socket`]: one code for the
//! simulation and the real network. Redirects are not followed.
// Real sockets in real time: no simulated clock to tell (world::clock).
#![allow(clippy::disallowed_methods)]

use pushpull::mechanisms::sse::{self, EventSource, Page};
use pushpull::mechanisms::websocket::{self, OpenError, Socket};
use pushpull::record::trace::{Dir, HostTrace, Tracer};
use pushpull::scenario::Span;
use pushpull::wire::event_stream::Dispatched;
use pushpull::wire::http::Request;
use pushpull::wire::websocket::{DEFAULT_MAX_MESSAGE, Incoming, Message, client_key};
use pushpull::world::conn::{Attempt, Conn};
use pushpull::world::tcp::Loss;
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;

#[derive(clap::Subcommand)]
pub enum Kind {
    /// An EventSource (the WHATWG rules: `Last-Event-ID`, `retry:`,
    /// reconnection, and failing for good on a non-200 answer, a wrong
    /// content type or a 204).
    Sse {
        /// `http://host:port/path`.
        url: String,
        #[command(flatten)]
        end: EndAfter,
        /// The reconnection time before any `retry:` field (Chromium's: 3 s).
        #[arg(long, default_value = "3s", value_name = "DURATION")]
        default_retry: String,
    },
    /// The browser's WebSocket (RFC 6455): handshake, masked frames, pongs to
    /// pings, the closing handshake; no reconnection, as in a browser.
    Ws {
        /// `ws://host:port/path` (or `http://`).
        url: String,
        #[command(flatten)]
        end: EndAfter,
        /// A text message to send once open (repeatable, in order).
        #[arg(long = "send", value_name = "TEXT")]
        sends: Vec<String>,
    },
}

#[derive(clap::Args)]
pub struct EndAfter {
    /// Stop after this many events (SSE) or messages (WebSocket).
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Stop after this long (`10s`, `500ms`; a bare number is seconds).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
}

/// A `http://` or `ws://` URL, split for a connect and a request.
#[derive(Debug, PartialEq)]
struct Url {
    host: String,
    port: u16,
    /// `Host:` (the port only when it is not the scheme's default).
    authority: String,
    target: String,
}

fn parse_url(url: &str, schemes: &[&str]) -> Result<Url, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?}: give a URL like {}://127.0.0.1:8000/", schemes[0]))?;
    let scheme = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme.as_str()) {
        return Err(format!(
            "{url:?}: the scheme must be {} (pushpull speaks plain HTTP, not TLS)",
            schemes.join(" or ")
        ));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let target = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.split('#').next().unwrap_or("/").to_string()
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: {port:?} is not a port"))?;
            (host, port)
        }
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(Url {
        host: host.trim_matches(['[', ']']).to_string(),
        port,
        authority: authority.to_string(),
        target,
    })
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<f64>()
        && secs >= 0.0
        && secs.is_finite()
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    Span::parse(text)
        .map(|s| s.to_std())
        .map_err(|e| format!("{text:?}: {e}"))
}

/// A JSON object with its keys in the order given (serde_json's own maps
/// sort them), so that each line reads as documented. Values are JSON text.
struct Ordered(Vec<(String, String)>);

impl std::fmt::Display for Ordered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            let key = j(key);
            write!(f, "{}{key}:{value}", if i > 0 { "," } else { "" })?;
        }
        f.write_str("}")
    }
}

impl Ordered {
    /// As a value nested in another object.
    fn json(&self) -> String {
        self.to_string()
    }
}

/// `obj!["key" => value, ...]`, each value anything that serializes, or a
/// nested [`Ordered`].
macro_rules! obj {
    ($($key:expr => $value:expr),* $(,)?) => {
        Ordered(vec![$(($key.to_string(), $value.json())),*])
    };
}

/// A value as JSON text.
trait AsJson {
    fn json(&self) -> String;
}
impl<T: serde::Serialize> AsJson for T {
    fn json(&self) -> String {
        j(self)
    }
}

fn j(value: &(impl serde::Serialize + ?Sized)) -> String {
    serde_json::to_string(value).expect("values serialize")
}

fn print(line: Ordered) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The request's headers as an object, in the order they were sent.
fn headers_object(request: &Request) -> Ordered {
    Ordered(
        request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), j(value)))
            .collect(),
    )
}

pub fn run(kind: Kind) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        match kind {
            Kind::Sse {
                url,
                end,
                default_retry,
            } => sse_client(&url, end, parse_duration(&default_retry)?).await,
            Kind::Ws { url, end, sends } => ws_client(&url, end, sends).await,
        }
    })
}

/// Sleeps for `limit`, or forever.
async fn time_limit(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

async fn connect(url: &Url, trace: &HostTrace) -> std::io::Result<Conn<TcpStream>> {
    let stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let _ = stream.set_nodelay(true);
    let name = match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) => format!("{local}>{peer}"),
        _ => url.authority.clone(),
    };
    Ok(Conn::new(
        stream,
        name,
        Dir::Up,
        trace.clone(),
        Loss::none(),
    ))
}

/// The page of a real EventSource: it prints what the model does.
struct PrintingPage {
    url: Url,
    full_url: String,
    trace: HostTrace,
    max_events: Option<u64>,
    events: Cell<u64>,
    enough: Rc<Notify>,
}

impl Page for PrintingPage {
    type Stream = TcpStream;
    async fn connect(&self, _attempt: Attempt) -> std::io::Result<Conn<TcpStream>> {
        connect(&self.url, &self.trace).await
    }
    fn host_header(&self) -> &str {
        &self.url.authority
    }
    fn silence_limit(&self) -> Option<Span> {
        // A browser waits as long as TCP does.
        None
    }
    fn opening(&self, request: &Request) {
        let open = obj![
            "url" => self.full_url,
            "headers" => headers_object(request),
            "last_event_id" => request.header("last-event-id").unwrap_or(""),
        ];
        print(obj!["open" => open]);
    }
    fn dispatch(&self, event: Dispatched) {
        if self.max_events.is_some_and(|max| self.events.get() >= max) {
            return;
        }
        print(obj![
            "type" => event.event_type,
            "data" => event.data,
            "last_event_id" => event.last_event_id,
        ]);
        self.events.set(self.events.get() + 1);
        if self.max_events.is_some_and(|max| self.events.get() >= max) {
            self.enough.notify_one();
        }
    }
}

async fn sse_client(url: &str, end: EndAfter, default_retry: Duration) -> Result<(), String> {
    let parsed = parse_url(url, &["http"])?;
    let limit = end.timeout.as_deref().map(parse_duration).transpose()?;
    let page = PrintingPage {
        full_url: url.to_string(),
        trace: Tracer::new(None, false).on("client"),
        max_events: end.max_events,
        events: Cell::new(0),
        enough: Rc::new(Notify::new()),
        url: parsed,
    };
    if end.max_events == Some(0) {
        return Ok(());
    }
    let mut source = EventSource::open(page.url.target.clone(), default_retry, 0);
    let enough = page.enough.clone();
    let follow = async {
        loop {
            let end = sse::connect_and_stream(&page, &mut source).await;
            if page.max_events.is_some_and(|max| page.events.get() >= max) {
                // The last event wanted came with the end of its stream.
                return;
            }
            match end {
                sse::End::Fail(why) => {
                    // readyState CLOSED: the EventSource never tries again.
                    print(obj!["closed" => why]);
                    return;
                }
                sse::End::Reconnect { why, cause } => {
                    let wait = source.reconnection_time;
                    print(obj!["error" => why, "reconnect_in_ms" => wait.as_millis() as u64]);
                    source.prepare_reconnect(cause);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    };
    tokio::select! {
        _ = follow => {}
        _ = enough.notified() => {}
        _ = time_limit(limit) => {}
    }
    Ok(())
}

async fn ws_client(url: &str, end: EndAfter, sends: Vec<String>) -> Result<(), String> {
    let parsed = parse_url(url, &["ws", "http"])?;
    let limit = end.timeout.as_deref().map(parse_duration).transpose()?;
    let trace = Tracer::new(None, false).on("client");
    let session = async {
        let conn = match connect(&parsed, &trace).await {
            Ok(conn) => conn,
            Err(e) => return print(obj!["closed" => format!("connect failed: {e}")]),
        };
        let key = client_key(rand::random());
        let request =
            pushpull::wire::websocket::handshake_request(&parsed.target, &parsed.authority, &key);
        let handshake_limit = Some(Span::from_secs(30));
        let conn = match websocket::handshake(
            conn,
            &parsed.target,
            &parsed.authority,
            &key,
            Attempt::First,
            handshake_limit,
        )
        .await
        {
            Ok(conn) => conn,
            Err(OpenError::Refused(_, why) | OpenError::Failed(why)) => {
                return print(obj!["closed" => why]);
            }
        };
        let open = obj!["url" => url, "headers" => headers_object(&request)];
        print(obj!["open" => open]);
        let socket = Socket::client(conn, None, DEFAULT_MAX_MESSAGE, rand::random());
        run_socket(socket, &sends, end.max_events).await
    };
    tokio::select! {
        _ = session => {}
        _ = time_limit(limit) => {}
    }
    Ok(())
}

/// Sends `sends`, prints every message, answers pings and closes; with
/// `max_messages`, starts the closing handshake after that many.
async fn run_socket(mut socket: Socket<TcpStream>, sends: &[String], max: Option<u64>) {
    let mut received = 0u64;
    let mut closing = false;
    let mut ending = None;
    for text in sends {
        if let Err(end) = socket.send_text(text, "send".into(), None).await {
            ending = Some(end);
            break;
        }
    }
    if max == Some(0) && ending.is_none() {
        closing = true;
        if let Err(end) = socket.send_close(1000, "").await {
            ending = Some(end);
        }
    }
    let end = match ending {
        Some(end) => end,
        None => 'session: loop {
            let frames = match socket.take_frames() {
                Ok(frames) => frames,
                Err(end) => break end,
            };
            for incoming in frames {
                match incoming {
                    Incoming::Message(message) => {
                        if closing {
                            continue;
                        }
                        print(match message {
                            Message::Text(text) => obj!["message" => "text", "data" => text],
                            Message::Binary(data) => {
                                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                                obj!["message" => "binary", "data_hex" => hex]
                            }
                        });
                        received += 1;
                        if max.is_some_and(|max| received >= max) {
                            closing = true;
                            if let Err(end) = socket.send_close(1000, "").await {
                                break 'session end;
                            }
                        }
                    }
                    control => {
                        if let Incoming::Close(close) = &control {
                            let (code, reason) = close.clone().unwrap_or((1005, String::new()));
                            print(obj!["close_code" => code, "reason" => reason]);
                        }
                        if let Err(end) = socket.answer_control(control).await {
                            break 'session end;
                        }
                    }
                }
            }
            if let Err(end) = socket.read_more().await {
                break end;
            }
        },
    };
    let why = end.describe();
    // Answered closes and violations get their frames; the TCP close
    // follows (after a closing handshake, the server closes first).
    socket.finish(end).await;
    print(obj!["closed" => why]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8000/events?x=1", &["http"]).unwrap();
        assert_eq!(
            u,
            Url {
                host: "127.0.0.1".into(),
                port: 8000,
                authority: "127.0.0.1:8000".into(),
                target: "/events?x=1".into()
            }
        );
        let u = parse_url("ws://localhost/echo", &["ws", "http"]).unwrap();
        assert_eq!(
            (u.port, u.target.as_str(), u.authority.as_str()),
            (80, "/echo", "localhost")
        );
        let u = parse_url("http://[::1]:9000", &["http"]).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 9000, "/")
        );
        assert!(
            parse_url("https://x/", &["http"])
                .unwrap_err()
                .contains("not TLS")
        );
        assert!(parse_url("127.0.0.1:80", &["http"]).is_err());
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    }
}
