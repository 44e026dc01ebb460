//! Server-Sent Events: one long HTTP response that the server keeps writing
//! to, and a client that follows the browser's EventSource rules.
//!
//! The client asks once, saying where it got to (on reconnection only):
//!
//! ```text
//! GET /stream HTTP/1.1\r\n
//! Host: server\r\n
//! Accept: text/event-stream\r\n
//! Cache-Control: no-store\r\n
//! Last-Event-ID: 41\r\n
//! \r\n
//! ```
//! and the answer never ends; each event is a block closed by a blank line:
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Content-Type: text/event-stream\r\n
//! Cache-Control: no-store\r\n
//! \r\n
//! retry: 10000\n\n                      (optional: reconnect after 10 s)
//! id: 42\nevent: update\ndata: event 42 ...\ndata: ......\n\n
//! : heartbeat\n\n                       (a comment, when nothing else was sent)
//! ```
//!
//! The trade-off: one connection per client for the whole session, an event
//! delivered one transit after it is published, and reconnection with replay
//! built into the protocol. The cost: one open connection per client at the
//! server, server-to-client only, and anything between the two that buffers
//! responses (a proxy) or kills quiet connections breaks it.
//!
//! The parser (`wire::event_stream`) turns bytes into events; this file is the
//! connection model around it: when to reconnect, with what, and when to give
//! up for good.

use crate::mechanisms::chat::{self, Chat, Served};
use crate::scenario::{Span, SseRefusal};
use crate::wire::event_stream::{Dispatched, Output, Parser};
use crate::wire::http::{Framing, Request, Response};
use crate::world::clock::{sleep, spawn_local};
use crate::world::conn::{Attempt, Carried, Conn};
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::event_log::AppEvent;
use crate::world::http_conn::StreamBody;
use crate::world::network::{SERVER_PORT, TcpConn, sleep_or_never, within};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The event type our server gives application events.
pub const UPDATE: &str = "update";
/// The event type that says "you are further behind than my history: these
/// events are gone". Its data: `{"missed_from":3,"missed_to":57}`.
pub const GAP: &str = "gap";

pub async fn server(ctx: ServerCtx) -> turmoil::Result {
    let listener = ctx
        .net
        .listen(SERVER_PORT, Some(&ctx.scenario.server))
        .await?;
    loop {
        let conn = ctx.net.accept(&listener).await?;
        spawn_local(serve_stream(conn, ctx.clone(), None));
    }
}

// ANCHOR: server
/// One event as a block: `id`, `event`, and the payload as `data` lines of at
/// most 40 bytes (so long payloads show the multi-line form). A JSON
/// payload (a chat message) goes whole on one line: the client joins
/// `data` lines with newlines, which would land inside its strings.
pub fn event_block(event: &AppEvent) -> Vec<u8> {
    let mut block = format!("id: {}\nevent: {UPDATE}\n", event.id);
    let bytes = event.data.as_bytes();
    let json = bytes.starts_with(b"{");
    let width = if json { bytes.len() } else { 40 };
    // At least one `data` line, even for an empty payload: a block without
    // one dispatches nothing (its id would still count, and the event would
    // be skipped for good).
    for line in bytes.chunks(width).chain(bytes.is_empty().then_some(bytes)) {
        block.push_str("data: ");
        block.push_str(&String::from_utf8_lossy(line));
        block.push('\n');
    }
    block.push('\n');
    block.into_bytes()
}

/// Serves one connection (any stream: the simulation's, or a real socket
/// in `pushpull live`), starting with `first` when it was already read.
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    mut conn: Conn<S>,
    ctx: ServerCtx,
    mut first: Option<Request>,
) {
    let params = &ctx.scenario.sse;
    let chat = Chat::of(&ctx);
    let request = loop {
        let read = match first.take() {
            Some(request) => Ok(Some(request)),
            None => conn.read_request().await,
        };
        let request = match read {
            Ok(Some(request)) => request,
            Ok(None) => return conn.close("client closed").await,
            Err(e) => return conn.reject(&e).await,
        };
        // Posts to the chat (chat.rs) come on a kept-alive connection of
        // their own: answer each, read the next request.
        match chat.serve(&mut conn, &request).await {
            None => break request,
            Some(Served::Open) => {}
            Some(Served::Close) => return conn.close("done").await,
            Some(Served::Broken(why)) => return conn.fail(&why),
        }
    };
    if let Some(refusal) = check_request(&request, &ctx) {
        let _ = conn.send_response(&refusal, None).await;
        return conn.close("refused").await;
    }
    let mut head = Response::new(200, "text/event-stream", Vec::new());
    head.headers
        .push(("Cache-Control".into(), "no-store".into()));
    if params.no_proxy_buffering {
        // The fix for buffering proxies, asked for by the response itself.
        head.headers.push(("X-Accel-Buffering".into(), "no".into()));
    }
    if let Err(e) = conn.send_stream_head(&head).await {
        return conn.fail(&format!("write failed: {e}"));
    }
    if let Some(retry) = params.retry {
        let block = format!("retry: {}\n\n", retry.as_micros() / 1000);
        if let Err(e) = conn.send_block(block.as_bytes(), None).await {
            return conn.fail(&format!("write failed: {e}"));
        }
    }
    // Where this client got to. Its browser sends the last id it saw; a new
    // client has none and is sent the whole (bounded) history. The id comes
    // from the peer: never trust it to be in range.
    // (or, from a page that opened a new EventSource after one failed, the
    // `lastEventId` of its URL: a new EventSource sends no header).
    let last_event_id = request
        .header("last-event-id")
        .or_else(|| request.query("lastEventId"))
        .and_then(|id| id.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut cursor = last_event_id.min(ctx.log.last_id());
    let oldest_kept = ctx.log.last_id().saturating_sub(params.history as u64) + 1;
    if cursor + 1 < oldest_kept {
        // Too far behind to replay: say so, never skip silently.
        let gap = format!(
            "event: {GAP}\ndata: {{\"missed_from\":{},\"missed_to\":{}}}\n\n",
            cursor + 1,
            oldest_kept - 1
        );
        if let Err(e) = conn.send_block(gap.as_bytes(), None).await {
            return conn.fail(&format!("write failed: {e}"));
        }
        cursor = oldest_kept - 1;
    }
    let heartbeat = params.heartbeat;
    loop {
        let published = ctx.log.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        let events = ctx.log.after(cursor, 100);
        if !events.is_empty() {
            // Replay what the client missed, then each new event as it comes.
            for event in events {
                let carried = Carried::from(Some(event.id), 1);
                if let Err(e) = conn.send_block(&event_block(&event), Some(carried)).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
                cursor = event.id;
            }
            continue;
        }
        // `biased`: branches are tried in this order, so the run does not
        // depend on tokio's branch-picking RNG.
        tokio::select! {
            biased;
            _ = &mut published => {}
            // Silence for `heartbeat`: a comment keeps proxies and the
            // client's own timeout from taking the stream for dead.
            _ = sleep_or_never(heartbeat) => {
                if let Err(e) = conn.send_block(b": heartbeat\n\n", None).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
            }
            _ = conn.until_peer_closes() => return conn.close("client closed").await,
        }
    }
}
// ANCHOR_END: server

/// How many of our events a block carries (for the trace of a proxy that
/// relays it): one for an `update` event, none for anything else.
pub fn block_events(block: &[u8]) -> Option<Carried> {
    let ids: Vec<u64> = Parser::new()
        .feed(block)
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) if e.event_type == UPDATE => e.last_event_id.parse().ok(),
            _ => None,
        })
        .collect();
    (!ids.is_empty()).then(|| Carried::from(ids.first().copied(), ids.len() as u32))
}

/// A wrong path or method, or the scenario's refusal: the answer to send.
fn check_request(request: &Request, ctx: &ServerCtx) -> Option<Response> {
    if request.path() != "/stream" {
        return Some(Response::error(404, "try GET /stream"));
    }
    if request.method != "GET" {
        return Some(Response::method_not_allowed("GET"));
    }
    let now = Span::from_std(turmoil::sim_elapsed().unwrap_or_default());
    match ctx.scenario.sse.refuse_after {
        Some(from) if now >= from => {}
        _ => return None,
    }
    Some(match ctx.scenario.sse.refuse_with {
        SseRefusal::Status500 => Response::error(500, "something broke"),
        SseRefusal::Status204 => {
            let mut r = Response::new(204, "text/plain", Vec::new());
            r.headers.retain(|(n, _)| n != "Content-Type");
            r
        }
        SseRefusal::WrongContentType => Response::new(200, "application/json", b"{}".to_vec()),
    })
}

// ANCHOR: client
/// How one connection of an EventSource ended.
pub enum End {
    /// "Reestablish the connection": wait the reconnection time, try again.
    Reconnect { why: String, cause: Cause },
    /// "Fail the connection": readyState CLOSED, never again.
    Fail(String),
}

/// Why a connection is reestablished.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// It failed (a network error, a timeout): the next request is a retry.
    Failed,
    /// The server ended the stream cleanly.
    ServerEnded,
}

/// What an EventSource keeps across its connections: the parser's last event
/// id (sent as `Last-Event-ID`), the reconnection time (set by `retry`), and
/// how the last connection ended.
pub struct EventSource {
    /// The URL it was opened with.
    pub url: String,
    pub parser: Parser,
    pub reconnection_time: Duration,
    connections: u32,
    last_cause: Option<Cause>,
}

impl EventSource {
    /// `new EventSource(url)`, starting with the browser's reconnection time
    /// (`default_retry`) and `connections` made by earlier ones.
    pub fn open(url: String, default_retry: Duration, connections: u32) -> EventSource {
        EventSource {
            url,
            parser: Parser::new(),
            reconnection_time: default_retry,
            connections,
            last_cause: None,
        }
    }

    /// Before the next connection, after `end`: a half-received event dies
    /// with its connection; the last event id does not.
    pub fn prepare_reconnect(&mut self, cause: Cause) {
        self.last_cause = Some(cause);
        self.parser.end_of_stream();
        self.parser.reset_for_new_connection();
    }
}

/// Where an EventSource runs: the simulation's client ([`ClientCtx`]) or a
/// real socket (`pushpull client sse URL`). This is the seam between the
/// two: the model above and `connect_and_stream` below are one code.
#[allow(async_fn_in_trait)] // used generically only, never as `dyn Page`
pub trait Page {
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    /// Opens a connection to the server.
    async fn connect(&self, attempt: Attempt) -> std::io::Result<Conn<Self::Stream>>;
    /// The `Host` header.
    fn host_header(&self) -> &str;
    /// No byte for this long means the connection is dead (`None`: wait as
    /// long as TCP does, as a browser does).
    fn silence_limit(&self) -> Option<Span>;
    /// A connection's request is about to go out.
    fn opening(&self, _request: &Request) {}
    /// The parser dispatched an event (the page's `onmessage` and
    /// `addEventListener`).
    fn dispatch(&self, event: Dispatched);
}

/// The simulated page: our `update` events go to the application (the
/// delivery the report counts), a `gap` is reported, other types have no
/// listener.
impl Page for ClientCtx {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self, attempt: Attempt) -> std::io::Result<TcpConn> {
        ClientCtx::connect(self, attempt).await
    }
    fn host_header(&self) -> &str {
        "server"
    }
    fn silence_limit(&self) -> Option<Span> {
        self.scenario.sse.client_heartbeat_timeout
    }
    fn dispatch(&self, event: Dispatched) {
        if event.event_type == UPDATE {
            if let Ok(id) = event.last_event_id.parse::<u64>() {
                self.deliver(id);
            }
        } else if event.event_type == GAP {
            self.report_error(format!("server says events are gone: {}", event.data));
        }
    }
}

/// An EventSource: connect, stream, and on any end but a fatal one, wait the
/// reconnection time and connect again, resuming from the last event id.
pub async fn client(ctx: ClientCtx) {
    // The user's chat posts, if any, go up as POSTs (chat.rs).
    let ctx = chat::start_posting(ctx);
    let default_retry = ctx.scenario.sse.client_default_retry.to_std();
    let mut source = EventSource::open("/stream".into(), default_retry, 0);
    // Failures for good in a row, for the page's own backoff, and the last
    // event id the page has seen (a new EventSource starts without one).
    let mut failures = 0;
    let mut page_last_id = String::new();
    ctx.wait_to_join().await;
    loop {
        match connect_and_stream(&*ctx, &mut source).await {
            End::Fail(why) => {
                // readyState CLOSED: the browser will not try again. Only the
                // page can, with a new EventSource, if its code says so.
                let Some(first_wait) = ctx.scenario.sse.reopen_after_failure else {
                    ctx.report_error(format!("EventSource failed for good: {why}"));
                    return;
                };
                failures += 1;
                let wait = ctx.backoff(failures, first_wait, Span::from_secs(60));
                ctx.report_error(format!(
                    "EventSource failed for good: {why}; the page opens a new one in {} ms",
                    wait.as_millis()
                ));
                sleep(wait).await;
                if !source.parser.last_event_id().is_empty() {
                    page_last_id = source.parser.last_event_id().to_string();
                }
                let url = if page_last_id.is_empty() {
                    "/stream".to_string()
                } else {
                    format!("/stream?lastEventId={page_last_id}")
                };
                source = EventSource::open(url, default_retry, source.connections);
            }
            End::Reconnect { why, cause } => {
                ctx.report_error(format!(
                    "{why}; reconnecting in {} ms",
                    source.reconnection_time.as_millis()
                ));
                source.prepare_reconnect(cause);
                // At least a millisecond, the simulation's clock resolution:
                // with `retry: 0` and a refused connect (which costs no
                // simulated time here) the loop would otherwise spin without
                // time passing.
                sleep(source.reconnection_time.max(Duration::from_millis(1))).await;
            }
        }
    }
}

/// A network error: reconnect, and say the next request is a retry.
fn network_error(why: impl std::fmt::Display) -> End {
    End::Reconnect {
        why: format!("network error: {why}"),
        cause: Cause::Failed,
    }
}

fn server_ended() -> End {
    End::Reconnect {
        why: "the server ended the stream".into(),
        cause: Cause::ServerEnded,
    }
}

/// One connection of `source`, from connect to its end: the request (with
/// `Last-Event-ID` when there is one), the spec's check of the answer, and
/// the stream fed to the parser.
pub async fn connect_and_stream<P: Page>(page: &P, source: &mut EventSource) -> End {
    let silence = page.silence_limit();
    // Every connection after the first re-establishes the stream, whether
    // the last one failed or the server ended it: a reconnect.
    let reconnecting = if source.connections == 0 {
        Attempt::First
    } else {
        Attempt::Retry
    };
    source.connections += 1;
    let mut conn = match page.connect(reconnecting).await {
        Ok(conn) => conn,
        Err(e) => return network_error(e),
    };
    let mut request = Request::get(&source.url, page.host_header());
    request
        .headers
        .push(("Accept".into(), "text/event-stream".into()));
    request
        .headers
        .push(("Cache-Control".into(), "no-store".into()));
    let last_event_id = source.parser.last_event_id();
    if !last_event_id.is_empty() {
        request
            .headers
            .push(("Last-Event-ID".into(), last_event_id.to_string()));
    }
    let attempt = match source.last_cause {
        Some(Cause::Failed) => Attempt::Retry,
        Some(Cause::ServerEnded) | None => Attempt::First,
    };
    page.opening(&request);
    if let Err(e) = conn.send_request(&request, attempt).await {
        conn.fail(&format!("write failed: {e}"));
        return network_error(e);
    }
    let (response, framing) = match within(silence, conn.read_response_start()).await {
        None => {
            conn.fail("heartbeat timeout");
            return End::Reconnect {
                why: "no answer within the heartbeat timeout".into(),
                cause: Cause::Failed,
            };
        }
        Some(Err(e)) => {
            conn.fail(&e.to_string());
            return network_error(e);
        }
        Some(Ok(start)) => start,
    };
    if let Err(why) = check_response(&response) {
        conn.close("not an event stream").await;
        return End::Fail(why);
    }
    if let Framing::Length(_) = framing {
        // A stream with a length is a stream that has already ended: its
        // events count, then it is reestablished like any other.
        let outputs = source.parser.feed(&response.body);
        dispatch(page, outputs, &mut source.reconnection_time);
        conn.close("end of stream").await;
        return server_ended();
    }
    let mut body = StreamBody::new(framing);
    loop {
        match within(silence, body.next(&mut conn)).await {
            None => {
                // No byte for the whole timeout: a partition or a dead
                // server sends no FIN, so only a timer can tell.
                conn.fail("heartbeat timeout");
                return End::Reconnect {
                    why: "no byte within the heartbeat timeout".into(),
                    cause: Cause::Failed,
                };
            }
            Some(Err(e)) => {
                conn.fail(&e.to_string());
                return network_error(e);
            }
            Some(Ok(None)) => {
                conn.close("end of stream").await;
                return server_ended();
            }
            Some(Ok(Some((bytes, _blocks)))) => {
                let outputs = source.parser.feed(&bytes);
                dispatch(page, outputs, &mut source.reconnection_time);
            }
        }
    }
}

/// What the parser produced: `retry` sets the reconnection time, events go
/// to the page.
fn dispatch<P: Page>(page: &P, outputs: Vec<Output>, reconnection_time: &mut Duration) {
    for output in outputs {
        match output {
            Output::Retry { retry } => *reconnection_time = Duration::from_millis(retry),
            Output::Event(event) => page.dispatch(event),
        }
    }
}
// ANCHOR_END: client

/// The spec's test before a stream is "announced": status 200 and the
/// `text/event-stream` MIME type. Anything else fails the connection for good
/// (a 204 included: it is how a server says "stop").
pub fn check_response(response: &Response) -> Result<(), String> {
    if response.status != 200 {
        return Err(format!("status {} {}", response.status, response.reason));
    }
    let essence = response.header("content-type").map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if essence.as_deref() != Some("text/event-stream") {
        return Err(format!(
            "Content-Type {:?} is not text/event-stream",
            response.header("content-type").unwrap_or("(none)")
        ));
    }
    Ok(())
}
