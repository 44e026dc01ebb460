//! Short polling: the client asks "anything new?" every `interval`, and the
//! server answers at once, usually with nothing.
//!
//! One poll on the wire, with the client's cursor (the last event id it has):
//!
//! ```text
//! GET /updates?after=3 HTTP/1.1\r\n
//! Host: server\r\n
//! Accept: application/json\r\n
//! \r\n
//! ```
//! and the usual answer, empty:
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Content-Type: application/json\r\n
//! Content-Length: 26\r\n
//! \r\n
//! {"events":[],"more":false}
//! ```
//!
//! The trade-off: the server stays trivially simple (no request is ever held,
//! no connection outlives its poll by design), but an event waits for the next
//! poll, on average half an interval, and every poll costs a round trip and a
//! few hundred bytes whether or not anything happened.
//!
//! The parts a production client needs and a tutorial often skips are all
//! here: a cursor so no event is missed or repeated, a timeout on every
//! request, and exponential backoff so a server that is down is not hammered.

use crate::mechanisms::chat::{self, Chat};
use crate::wire::http::{Request, Response};
use crate::world::clock::{Instant, sleep, sleep_until, spawn_local, timeout};
use crate::world::conn::{Attempt, Carried};
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::event_log::{AppEvent, EventLog};
use crate::world::http_conn::ReadError;
use crate::world::network::{SERVER_PORT, TcpConn};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// At most this many events go in one answer; the client asks again at once
/// when `more` says there are others (so a client back from a long outage
/// catches up in pages instead of one giant response).
pub const MAX_EVENTS_PER_ANSWER: usize = 100;

/// The JSON body of an answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Batch {
    pub events: Vec<WireEvent>,
    /// True when events after these were left out (see `MAX_EVENTS_PER_ANSWER`).
    pub more: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireEvent {
    pub id: u64,
    pub data: String,
}

// ANCHOR: server
/// The server: accept connections, answer every poll at once.
pub async fn server(ctx: ServerCtx) -> turmoil::Result {
    let listener = ctx
        .net
        .listen(SERVER_PORT, Some(&ctx.scenario.server))
        .await?;
    loop {
        let conn = ctx.net.accept(&listener).await?;
        // One task per connection, as any HTTP server does. `spawn_local`
        // because a turmoil host runs on one thread.
        spawn_local(serve_connection(
            conn,
            ctx.log.clone(),
            Chat::of(&ctx),
            ctx.scenario.short_polling.server_idle_timeout.to_std(),
        ));
    }
}

/// Answers the polls (and the chat's posts) that arrive on one connection,
/// until the client closes it, goes quiet for `idle_timeout`, or sends
/// something that is not HTTP.
async fn serve_connection(mut conn: TcpConn, log: EventLog, chat: Chat, idle_timeout: Duration) {
    loop {
        let request = match timeout(idle_timeout, conn.read_request()).await {
            // Servers close idle keep-alive connections so that clients that
            // vanished (a cut cable sends no FIN) do not hold them forever.
            Err(_) => return conn.close("idle timeout").await,
            Ok(Ok(None)) => return conn.close("client closed").await,
            Ok(Ok(Some(request))) => request,
            // The peer's bytes were not HTTP: say so (400, 431...), hang up.
            Ok(Err(e)) => return conn.reject(&e).await,
        };
        let (response, events) = match chat.answer(&request) {
            Some(answer) => (answer, None), // a post to the chat (chat.rs)
            None => answer_poll(&request, &log),
        };
        let keep_open = request.keep_alive() && matches!(response.status, 200 | 204);
        if let Err(e) = conn.send_response(&response, events).await {
            return conn.fail(&format!("write failed: {e}"));
        }
        if !keep_open {
            return conn.close("done").await;
        }
    }
}

/// The whole of the server's logic: the events after the client's cursor, now.
pub fn answer_poll(request: &Request, log: &EventLog) -> (Response, Option<Carried>) {
    match cursor_of(request) {
        Err(refusal) => (refusal, None),
        Ok(after) => {
            let (response, carried) = batch_answer(log.after(after, MAX_EVENTS_PER_ANSWER + 1));
            (response, Some(carried))
        }
    }
}

/// The cursor of a `GET /updates?after=<id>` (0 without one), or the answer
/// to a request that is not one. Long polling reads the same requests.
pub fn cursor_of(request: &Request) -> Result<u64, Response> {
    if request.path() != "/updates" {
        return Err(Response::error(404, "try GET /updates?after=<id>"));
    }
    if request.method != "GET" {
        return Err(Response::method_not_allowed("GET"));
    }
    match request.query("after").map(str::parse::<u64>) {
        None => Ok(0),
        Some(Ok(after)) => Ok(after),
        Some(Err(_)) => Err(Response::error(400, "after must be an event id")),
    }
}

/// A `200` carrying up to `MAX_EVENTS_PER_ANSWER` events as a JSON batch
/// (given one more, it sets `more`), and which events it carries.
pub fn batch_answer(mut events: Vec<AppEvent>) -> (Response, Carried) {
    let more = events.len() > MAX_EVENTS_PER_ANSWER;
    events.truncate(MAX_EVENTS_PER_ANSWER);
    let batch = Batch {
        more,
        events: events
            .into_iter()
            .map(|e| WireEvent {
                id: e.id,
                data: e.data,
            })
            .collect(),
    };
    let carried = carried_by(&batch);
    let body = serde_json::to_vec(&batch).expect("a Batch always serializes");
    (Response::new(200, "application/json", body), carried)
}

/// Which events a batch carries, for the trace.
fn carried_by(batch: &Batch) -> Carried {
    Carried::from(
        batch.events.first().map(|e| e.id),
        batch.events.len() as u32,
    )
}
// ANCHOR_END: server

// ANCHOR: client
/// One client: poll, hand new events to the application, wait, repeat.
pub async fn client(ctx: ClientCtx) {
    // The user's chat posts, if any, go up beside the polls (chat.rs).
    let ctx = chat::start_posting(ctx);
    let params = &ctx.scenario.short_polling;
    // The id of the last event this client has. It is the whole of the
    // client's state that matters: with it, no outage can lose an event and no
    // retry can deliver one twice.
    let mut cursor = 0;
    let mut conn: Option<TcpConn> = None;
    let mut failures = 0u32;
    ctx.wait_to_join().await;
    loop {
        let started = Instant::now();
        let poll = Poll {
            after: cursor,
            attempt: Attempt::after_failures(failures),
            keep_alive: params.keep_alive,
        };
        // The timeout covers connecting, sending and reading: a request that
        // crossed a cut cable never gets an answer, and only a timer notices.
        let outcome = timeout(
            params.request_timeout.to_std(),
            poll_once(&ctx, &mut conn, poll),
        )
        .await
        .unwrap_or(Err(PollError::Timeout));
        match outcome {
            Ok(batch) => {
                failures = 0;
                deliver_new(&ctx, &mut cursor, &batch.events);
                if batch.more {
                    continue; // catching up: ask again right away
                }
                // Poll on a fixed schedule: `interval` from the start of this
                // poll, like `setInterval`, not `interval` after its answer.
                sleep_until(started + params.interval.to_std()).await;
            }
            Err(error) => {
                ctx.report_error(error.to_string());
                // Whatever state the connection is in, it cannot be trusted.
                if let Some(c) = conn.take() {
                    c.fail(&error.to_string());
                }
                failures += 1;
                sleep(ctx.backoff(failures, params.backoff_initial, params.backoff_max)).await;
            }
        }
    }
}

/// One poll: "anything after event `after`?"
pub struct Poll {
    /// The client's cursor: the last event id it has.
    pub after: u64,
    /// A retry after a failure, or a first try.
    pub attempt: Attempt,
    /// Keep the connection open for the next poll (HTTP/1.1's default), or
    /// ask the server to close it (`Connection: close`).
    pub keep_alive: bool,
}

/// Hands the application the events after the cursor, and moves it. Only
/// ids after the cursor are new; anything else would be a duplicate (our
/// server never sends one, but a client should not trust that). Long
/// polling does the same with its answers.
pub fn deliver_new(ctx: &ClientCtx, cursor: &mut u64, events: &[WireEvent]) {
    for event in events {
        if event.id > *cursor {
            ctx.deliver(event.id);
            *cursor = event.id;
        }
    }
}

/// One request and its answer, on the open connection or a new one. Long
/// polling sends exactly this request too; only the server's timing differs.
pub async fn poll_once(
    ctx: &ClientCtx,
    conn: &mut Option<TcpConn>,
    poll: Poll,
) -> Result<Batch, PollError> {
    let mut request = Request::get(&format!("/updates?after={}", poll.after), "server");
    request
        .headers
        .push(("Accept".into(), "application/json".into()));
    if !poll.keep_alive {
        request.headers.push(("Connection".into(), "close".into()));
    }
    let mut attempt = poll.attempt;
    let response = loop {
        let reused = conn.is_some();
        if conn.is_none() {
            *conn = Some(ctx.connect(attempt).await?);
        }
        let c = conn.as_mut().expect("just set");
        match ask(c, &request, attempt).await {
            Ok(response) => break response,
            // The server closed the kept-alive connection while it sat idle,
            // and our request crossed its FIN: nothing was answered, so the
            // GET is safe to send again, at once, on a new connection (RFC
            // 9112 section 9.3.1; browsers do this without telling the page).
            Err(e) if reused && attempt != Attempt::Resend && e.closed_before_answer() => {
                if let Some(dead) = conn.take() {
                    dead.fail(&e.to_string());
                }
                attempt = Attempt::Resend;
            }
            Err(e) => return Err(e),
        }
    };
    if response.status != 200 {
        return Err(PollError::Status(response.status));
    }
    let batch: Batch = serde_json::from_slice(&response.body).map_err(|_| PollError::BadBody)?;
    if (!poll.keep_alive || response.header("connection") == Some("close"))
        && let Some(c) = conn.take()
    {
        c.close("done").await;
    }
    Ok(batch)
}
// ANCHOR_END: client

/// Sends the request and reads the whole answer.
async fn ask(
    conn: &mut TcpConn,
    request: &Request,
    attempt: Attempt,
) -> Result<Response, PollError> {
    conn.send_request(request, attempt).await?;
    Ok(conn.read_response().await?)
}

/// How many events an answer carries, for the trace of a proxy that relays
/// it (empty answers are the cost of polling, so the report counts them).
pub fn count_events(response: &Response) -> Option<Carried> {
    if response.status != 200 {
        return None;
    }
    serde_json::from_slice::<Batch>(&response.body)
        .ok()
        .map(|b| carried_by(&b))
}

/// Why a poll failed. Every one of them leads to the same thing: back off, retry.
#[derive(Debug)]
pub enum PollError {
    Timeout,
    Io(std::io::Error),
    Read(ReadError),
    Status(u16),
    BadBody,
}

impl PollError {
    /// Did the connection close (or reset) before any byte of the answer?
    /// On a reused connection that is the keep-alive race, not a failure.
    pub fn closed_before_answer(&self) -> bool {
        let reset = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        };
        match self {
            PollError::Read(ReadError::ClosedBeforeAnswer) => true,
            PollError::Read(ReadError::Io(e)) | PollError::Io(e) => reset(e),
            _ => false,
        }
    }
}

impl std::fmt::Display for PollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollError::Timeout => write!(f, "request timeout"),
            PollError::Io(e) => write!(f, "{e}"),
            PollError::Read(e) => write!(f, "{e}"),
            PollError::Status(s) => write!(f, "status {s}"),
            PollError::BadBody => write!(f, "answer is not a JSON batch"),
        }
    }
}

impl From<std::io::Error> for PollError {
    fn from(e: std::io::Error) -> Self {
        PollError::Io(e)
    }
}

impl From<ReadError> for PollError {
    fn from(e: ReadError) -> Self {
        PollError::Read(e)
    }
}
