//! The chat over plain HTTP: how short polling, long polling and SSE carry
//! the users' posts (`workload.sends`), so that the same chat room runs on
//! every mechanism and the WebSocket's one connection can be compared with
//! what HTTP needs for the same messages.
//!
//! Down, nothing is new: a post becomes the room's next event, and each
//! mechanism brings it to every member (its sender included) the way it
//! brings any event, with the room message as the payload. Up, the page
//! sends each post as a request of its own, on a second connection (a
//! browser's `fetch` takes another pooled connection while a long poll or
//! an EventSource holds the first). Client-1's first post, with
//! `workload.payload_bytes = 7` so that its text is short:
//!
//! ```text
//! POST /messages?user=client-1 HTTP/1.1\r\n
//! Host: server\r\n
//! Content-Type: application/json\r\n
//! Content-Length: 33\r\n
//! \r\n
//! {"id":1,"text":"client-1 says 1"}
//! ```
//! and the answer, no body at all:
//! ```text
//! HTTP/1.1 204 No Content\r\n
//! \r\n
//! ```
//! then, to every member, as the room's event 7 (say), in a poll's batch or
//! a stream's block:
//! ```text
//! {"events":[{"id":7,"data":"{\"seq\":7,\"from\":\"client-1\",\"id\":1,\"text\":\"client-1 says 1\"}"}],"more":false}
//! id: 7\nevent: update\ndata: {"seq":7,"from":"client-1","id":1,"text":"client-1 says 1"}\n\n
//! ```
//! (a unit test below pins the request and the answer byte for byte).
//!
//! Why `204 No Content` rather than `200` with the message's place in the
//! room: the sender learns the place the way every member does, when the
//! message comes back down, so the answer has nothing to add, and a `204`
//! costs the fewest bytes (no body, no `Content-Length`). A post sent twice
//! gets the same `204`: the answer to a retry must not depend on whether
//! the first try got in.
//!
//! The trade-off against WebSocket: every post pays a request head and an
//! answer (in the lesson's chat, 107 + 27 bytes around a 90-byte body,
//! where a frame adds 6), and each member holds two connections instead
//! of one. A post reaches the server one transit after it is sent, as a
//! frame does, while its connection is open; a cold one adds the TCP
//! handshake.
//!
//! What makes it safe to retry: the post's number (`id`) is an idempotency
//! key. A `POST` is not idempotent, so a client that sent one and lost the
//! answer cannot know whether it got in; with the key, the server lets
//! each (user, number) in once and answers every try alike, so the client
//! may send it again until a `2xx` comes. The record of the keys lives with
//! the event log ([`EventLog::append_once`]), outside the server process,
//! so a post retried across a server restart still enters once.

use crate::mechanisms::short_polling::PollError;
pub use crate::mechanisms::websocket::{Post, RoomMessage};
use crate::record::trace::{Event, HostTrace};
use crate::scenario::Span;
use crate::wire::http::{Request, Response};
use crate::world::clock::{sleep, spawn_local, timeout};
use crate::world::conn::{Attempt, Conn};
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::event_log::{EventLog, PostTimes, payload};
use crate::world::network::TcpConn;
use rand::Rng;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where posts go.
pub const PATH: &str = "/messages";

/// A post with no answer after this long is abandoned and tried again.
/// `fetch` has no timeout of its own; a page sets one
/// (`AbortSignal.timeout(10000)`), or a dead connection hangs it for as long
/// as TCP takes to give up.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait after a failed post; doubled after each further failure...
pub const BACKOFF_INITIAL: Span = Span(500_000);
/// ... up to this.
pub const BACKOFF_MAX: Span = Span(8_000_000);

fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

// ANCHOR: server
/// The server's side: what it needs to let posts into the room.
#[derive(Clone)]
pub struct Chat {
    log: EventLog,
    post_times: PostTimes,
    trace: HostTrace,
}

/// What became of a connection after the chat answered a request on it.
pub enum Served {
    /// Answered; the client may send its next request on it.
    Open,
    /// Answered, and the answer said `Connection: close` (or the client did).
    Close,
    /// The answer could not be written.
    Broken(String),
}

impl Chat {
    pub fn of(ctx: &ServerCtx) -> Chat {
        Chat {
            log: ctx.log.clone(),
            post_times: ctx.post_times.clone(),
            trace: ctx.net.trace.clone(),
        }
    }

    /// Answers `request` on `conn` if it is the chat's (`/messages`);
    /// `None`, without a byte written, if it is not.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + 'static>(
        &self,
        conn: &mut Conn<S>,
        request: &Request,
    ) -> Option<Served> {
        let response = self.answer(request)?;
        if let Err(e) = conn.send_response(&response, None).await {
            return Some(Served::Broken(format!("write failed: {e}")));
        }
        let closing = response.header("connection") == Some("close") || !request.keep_alive();
        Some(if closing { Served::Close } else { Served::Open })
    }

    /// The answer to a request for `/messages` (`None` for any other path):
    /// a post joins the room once, whatever number of times it is sent.
    pub fn answer(&self, request: &Request) -> Option<Response> {
        if request.path() != PATH {
            return None;
        }
        if request.method != "POST" {
            return Some(Response::method_not_allowed("POST"));
        }
        let Some(user) = request.query("user").filter(|u| !u.is_empty()) else {
            return Some(Response::error(
                400,
                "say who posts: POST /messages?user=<name>",
            ));
        };
        let post: Post = match serde_json::from_slice(&request.body) {
            Ok(post) => post,
            Err(e) => {
                let why = format!("the body is not a post {{\"id\":N,\"text\":\"...\"}}: {e}");
                return Some(Response::error(400, &why));
            }
        };
        self.post(user, post);
        let mut done = Response::new(204, "", Vec::new());
        done.headers.clear();
        Some(done)
    }

    /// The room's next message, unless this user's post `post.id` is in
    /// already; as WebSocket's room does, stamped with the moment its user
    /// posted (for latency only).
    fn post(&self, user: &str, post: Post) {
        // The client number, for the trace, when the user is one of ours.
        let client = user.strip_prefix("client-").and_then(|n| n.parse().ok());
        let posted = client
            .and_then(|c| self.post_times.of(c, post.id))
            .unwrap_or_else(now_us);
        let message = |seq| {
            let message = RoomMessage {
                seq,
                from: user.to_string(),
                id: Some(post.id),
                text: post.text.clone(),
            };
            serde_json::to_string(&message).expect("a RoomMessage always serializes")
        };
        if let Some(seq) = self.log.append_once((user, post.id), posted, message) {
            self.trace.record(Event::Publish {
                event: seq,
                from: client,
                message: Some(post.id),
            });
        }
    }
}
// ANCHOR_END: server

// ANCHOR: client
/// The posts a client's user made that are not yet in the room.
#[derive(Clone, Default)]
pub struct Outbox {
    posts: Rc<RefCell<VecDeque<Post>>>,
    added: Rc<tokio::sync::Notify>,
}

impl Outbox {
    /// A new post, last in line; wakes whoever waits for one.
    pub fn push(&self, post: Post) {
        self.posts.borrow_mut().push_back(post);
        self.added.notify_waiters();
    }

    /// The oldest post still waiting.
    pub fn first(&self) -> Option<Post> {
        self.posts.borrow().front().cloned()
    }

    /// The waiting posts numbered after `id`, in order.
    pub fn after(&self, id: u64) -> Vec<Post> {
        let posts = self.posts.borrow();
        posts.iter().filter(|p| p.id > id).cloned().collect()
    }

    /// Post `id` and those before it are done with (in, or given up).
    pub fn remove_up_to(&self, id: u64) {
        self.posts.borrow_mut().retain(|p| p.id > id);
    }

    pub fn clear(&self) {
        self.posts.borrow_mut().clear();
    }

    /// Resolves at the next `push` (`enable` it before looking, as with the
    /// event log's `notified`).
    pub fn added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }
}

/// The user: posts a message every `every` (the first at a moment drawn
/// from the client's seed within `every`), connected or not, until the
/// scenario's duration. Each post is recorded (`Event::Post`) and noted in
/// `post_times`, so its latency runs from the moment its user pressed Send.
pub async fn user_posts(ctx: Rc<ClientCtx>, outbox: Outbox, every: Span) {
    let id = ctx.id;
    let first = ctx
        .rng
        .borrow_mut()
        .random_range(0..every.as_micros().max(1));
    sleep(Duration::from_micros(first)).await;
    // The last post number lives in the client's store (the page's
    // localStorage), not in this task: after the device restarts, a post
    // numbered 1 again would be taken for a resend of the old post 1 and
    // dropped by the server's dedupe.
    let numbers = ctx.store.slot::<std::cell::Cell<u64>>("chat_last_post");
    while Span::from_std(turmoil::sim_elapsed().unwrap_or_default()) < ctx.scenario.duration {
        let number = numbers.get() + 1;
        numbers.set(number);
        ctx.net.trace.record(Event::Post {
            client: id,
            message: number,
        });
        ctx.post_times.note(id, number, now_us());
        let text = payload(number, ctx.scenario.workload.payload_bytes).replacen(
            "event",
            &format!("client-{id} says"),
            1,
        );
        outbox.push(Post { id: number, text });
        sleep(every.to_std()).await;
    }
}

/// The chat's client side for an HTTP mechanism: when users post
/// (`workload.sends`), the user and the poster run as tasks beside the
/// mechanism's client, from the moment the client joins. Returns the
/// client's context, now shared with them.
pub fn start_posting(ctx: ClientCtx) -> Rc<ClientCtx> {
    let ctx = Rc::new(ctx);
    if let Some(every) = ctx.scenario.workload.sends {
        let outbox = Outbox::default();
        let user = ctx.clone();
        let posts = outbox.clone();
        spawn_local(async move {
            user.wait_to_join().await;
            user_posts(user, posts, every).await
        });
        spawn_local(poster(ctx.clone(), outbox));
    }
    ctx
}

/// Sends the user's posts, oldest first, one at a time, each until a `2xx`
/// says it is in, on a kept-alive connection of its own.
pub async fn poster(ctx: Rc<ClientCtx>, outbox: Outbox) {
    let mut conn: Option<TcpConn> = None;
    let mut failures = 0u32;
    loop {
        let added = outbox.added();
        tokio::pin!(added);
        added.as_mut().enable();
        let Some(post) = outbox.first() else {
            added.await;
            continue;
        };
        let attempt = Attempt::after_failures(failures);
        let outcome = timeout(POST_TIMEOUT, send_post(&ctx, &mut conn, &post, attempt))
            .await
            .unwrap_or(Err(PollError::Timeout));
        match outcome {
            Ok(()) => {
                failures = 0;
                outbox.remove_up_to(post.id);
            }
            // The server refused this post: sending it again would be
            // refused again. 408 and 429 say "not now", not "never".
            Err(PollError::Status(status))
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                ctx.report_error(format!("post {} refused with status {status}", post.id));
                failures = 0;
                outbox.remove_up_to(post.id);
            }
            Err(error) => {
                ctx.report_error(format!("post {}: {error}", post.id));
                if let Some(c) = conn.take() {
                    c.fail(&error.to_string());
                }
                failures += 1;
                sleep(ctx.backoff(failures, BACKOFF_INITIAL, BACKOFF_MAX)).await;
            }
        }
    }
}

/// `POST /messages?user=client-N` with the post as JSON.
pub fn post_request(client: u32, post: &Post) -> Request {
    let mut request = Request::get(&format!("{PATH}?user=client-{client}"), "server");
    request.method = "POST".into();
    request
        .headers
        .push(("Content-Type".into(), "application/json".into()));
    request.body = serde_json::to_vec(post).expect("a Post always serializes");
    request
}

/// One post and its answer, on the open connection or a new one.
async fn send_post(
    ctx: &ClientCtx,
    conn: &mut Option<TcpConn>,
    post: &Post,
    mut attempt: Attempt,
) -> Result<(), PollError> {
    let request = post_request(ctx.id, post);
    let response = loop {
        let reused = conn.is_some();
        if conn.is_none() {
            *conn = Some(ctx.connect(attempt).await?);
        }
        let c = conn.as_mut().expect("just set");
        let answer = match c.send_request(&request, attempt).await {
            Ok(()) => c.read_response().await.map_err(PollError::from),
            Err(e) => Err(PollError::from(e)),
        };
        match answer {
            Ok(response) => break response,
            // The server closed the kept-alive connection as our post
            // crossed its FIN: nothing was answered. A browser never sends
            // a POST again on its own; this one may, at once, since its
            // number makes a second copy harmless.
            Err(e) if reused && attempt != Attempt::Resend && e.closed_before_answer() => {
                if let Some(dead) = conn.take() {
                    dead.fail(&e.to_string());
                }
                attempt = Attempt::Resend;
            }
            Err(e) => return Err(e),
        }
    };
    if response.header("connection") == Some("close")
        && let Some(c) = conn.take()
    {
        c.close("done").await;
    }
    match response.status {
        200..=299 => Ok(()),
        status => Err(PollError::Status(status)),
    }
}
// ANCHOR_END: client

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::trace::Tracer;

    fn chat() -> Chat {
        Chat {
            log: EventLog::default(),
            post_times: PostTimes::default(),
            trace: Tracer::new(None, false).on("server"),
        }
    }

    fn post(target: &str, body: &str) -> Request {
        let mut request = post_request(
            1,
            &Post {
                id: 0,
                text: String::new(),
            },
        );
        request.target = target.into();
        request.body = body.as_bytes().to_vec();
        request
    }

    /// The bytes the module doc shows.
    #[test]
    fn a_post_and_its_answer_on_the_wire() {
        let post = Post {
            id: 1,
            text: "client-1 says 1".into(),
        };
        assert_eq!(
            String::from_utf8(post_request(1, &post).to_bytes()).unwrap(),
            "POST /messages?user=client-1 HTTP/1.1\r\nHost: server\r\n\
             Content-Type: application/json\r\nContent-Length: 33\r\n\r\n\
             {\"id\":1,\"text\":\"client-1 says 1\"}"
        );
        let answer = chat().answer(&post_request(1, &post)).unwrap();
        assert_eq!(
            String::from_utf8(answer.to_bytes()).unwrap(),
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
    }

    #[test]
    fn a_post_sent_twice_joins_the_room_once() {
        let chat = chat();
        let body = r#"{"id":1,"text":"hi"}"#;
        for _ in 0..2 {
            let answer = chat.answer(&post("/messages?user=client-1", body));
            assert_eq!(answer.unwrap().status, 204);
        }
        // Another user's post 1 is another post.
        chat.answer(&post("/messages?user=client-2", body));
        let events = chat.log.after(0, 10);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].data,
            r#"{"seq":1,"from":"client-1","id":1,"text":"hi"}"#
        );
    }

    #[test]
    fn bad_posts_are_refused_with_a_reason() {
        let chat = chat();
        let status = |r: Request| chat.answer(&r).map(|a| a.status);
        assert_eq!(
            status(post("/messages", r#"{"id":1,"text":"hi"}"#)),
            Some(400)
        );
        assert_eq!(status(post("/messages?user=client-1", "hi")), Some(400));
        assert_eq!(
            status(post("/messages?user=client-1", r#"{"text":"hi"}"#)),
            Some(400)
        );
        let mut get = post("/messages?user=client-1", "");
        get.method = "GET".into();
        let refused = chat.answer(&get).unwrap();
        assert_eq!(
            (refused.status, refused.header("allow")),
            (405, Some("POST"))
        );
        assert_eq!(status(post("/updates", "")), None);
        assert_eq!(chat.log.last_id(), 0);
    }
}
