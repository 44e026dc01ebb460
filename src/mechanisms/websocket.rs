//! WebSocket: one HTTP request that turns its connection into a two-way
//! channel of frames, and the study notes' chat on top of it (Mike and Jane
//! in one room: every message goes to every member, the sender included,
//! stamped with the room's sequence number, so that all see one order).
//!
//! The handshake (`wire::websocket` checks both halves), then frames both
//! ways on the same connection:
//!
//! ```text
//! GET /chat?user=client-1&since=0 HTTP/1.1\r\n
//! Host: server\r\n
//! Upgrade: websocket\r\n
//! Connection: Upgrade\r\n
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n
//! Sec-WebSocket-Version: 13\r\n
//! \r\n
//!                                 HTTP/1.1 101 Switching Protocols\r\n
//!                                 Upgrade: websocket\r\n
//!                                 Connection: Upgrade\r\n
//!                                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n
//!                                 \r\n
//! 81 9a <mask> {"id":1,"text":"hi Jane"}          (a post: text frame, masked)
//!                                 81 3c {"seq":7,"from":"client-1","id":1,"text":"hi Jane"}
//! 89 80 <mask>                    (ping)          8a 00   (pong)
//! ```
//!
//! The trade-off: after one handshake each message costs a few bytes of
//! framing, either way, one transit after it is sent. The cost: a connection
//! held per client, and everything the browser's `WebSocket` leaves out:
//! it never notices a connection that went silent, and never reconnects.
//! The resilient client below is what Socket.IO and SignalR add: heartbeats,
//! reconnection with backoff, and resume (missed messages once, unsent posts
//! kept and sent again, doubles dropped by the server).
//!
//! The seam with real sockets: [`serve_connection`] takes any byte stream
//! (`Conn<S>`); the simulation hands it turmoil's TCP, `pushpull live`
//! tokio's. The same code serves both.

use crate::mechanisms::chat::{self, Chat, Outbox};
use crate::mechanisms::long_polling;
use crate::record::trace::{Event, HostTrace, Kind};
use crate::scenario::{Reconnect, ReconnectSchedule, Span, WsClient};
use crate::wire::http::{Request, Response, parse_response_head};
use crate::wire::websocket::{self, Frame, Incoming, Message, Opcode, Reader, Sender, close_code};
use crate::world::broker::{BrokerLink, Feed, Publish};
use crate::world::clock::{Instant, sleep, sleep_until, spawn_local, timeout};
use crate::world::conn::{Attempt, Carried, Conn, Label};
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::event_log::{AppEvent, EventLog, PostTimes};
use crate::world::network::SERVER_PORT;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Far enough in the future to mean "never" for a timer.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A post, client to server: the client's own number for it, so that the
/// server can drop a post sent twice (once before a cut, again after).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: u64,
    pub text: String,
}

/// A room message, server to every member: its place in the room's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    pub seq: u64,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<u64>,
    pub text: String,
}

/// The server's other frames: who joined or left, and (to a resuming
/// client further behind than the history) which messages are gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    Joined { who: String },
    Left { who: String },
    Gap { from: u64, to: u64 },
}

// ANCHOR: room
/// What the server's connections share: the room. Its messages live in the
/// event log, outside the process like a database, so they survive a
/// restart; so does the record of which posts are in (a store such as
/// Redis). Who is connected lives in the process and dies with it.
#[derive(Clone)]
pub struct Room {
    log: EventLog,
    post_times: PostTimes,
    /// Join and leave notices of this process, for its connections.
    notices: Rc<RefCell<Vec<Notice>>>,
    trace: HostTrace,
    pub settings: Settings,
    /// With several servers: the messages this server heard (its own
    /// members' posts, and with a broker everyone's), the only ones its
    /// members are sent live. `None`: the one server hears everything.
    feed: Option<Feed>,
    /// With a broker: where this server's members' posts go, to be
    /// numbered there and come back to every server.
    link: Option<BrokerLink>,
}

/// The server's side of the scenario's `[websocket]`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub heartbeat: Option<Span>,
    pub heartbeat_timeout: Option<Span>,
    pub history: u64,
    pub max_message: usize,
    /// Messages queued for one member past which it is dropped (1008).
    pub max_queued: u64,
    /// Drop posts sent twice (on with `resume`).
    pub dedupe: bool,
    /// The `Origin`s whose pages may open `/chat` (empty: any). A browser
    /// lets any site's page open a WebSocket to any server, cookies and
    /// all, and says which site in `Origin`: a server that does not check
    /// it is open to cross-site WebSocket hijacking. A request without
    /// `Origin` comes from no browser page, and passes. `/echo` takes any.
    pub chat_origins: Vec<String>,
    /// What to answer a request for a path other than `/chat` and `/echo`
    /// (`None`, or the function's: `404`). `pushpull live` serves its chat
    /// page this way; a plain function, since the pages are static.
    pub pages: Option<fn(&Request) -> Option<Response>>,
    /// Tell every member who joined and who left. Each join is then a frame
    /// to every member: N members joining cost N x N / 2 frames.
    pub presence: bool,
}

impl Settings {
    pub fn of(ws: &crate::scenario::WebSocket) -> Settings {
        Settings {
            heartbeat: ws.heartbeat,
            heartbeat_timeout: ws.heartbeat_timeout,
            history: ws.history as u64,
            max_message: ws.max_message as usize,
            max_queued: ws.max_queued as u64,
            dedupe: ws.resume,
            chat_origins: Vec::new(),
            pages: None,
            presence: ws.presence,
        }
    }
}

impl Room {
    pub fn new(log: EventLog, post_times: PostTimes, trace: HostTrace, settings: Settings) -> Room {
        Room {
            log,
            post_times,
            notices: Default::default(),
            trace,
            settings,
            feed: None,
            link: None,
        }
    }

    /// One server of several: its members are sent live only what `feed`
    /// heard; with a `link`, posts go through the broker.
    pub fn scaled_out(mut self, feed: Feed, link: Option<BrokerLink>) -> Room {
        self.feed = Some(feed);
        self.link = link;
        self
    }

    /// A post arrives: it becomes the room's next message, unless it is a
    /// resend of one already in.
    fn post(&self, user: &str, client: Option<u32>, post: Post) {
        let stored = |seq| {
            let message = RoomMessage {
                seq,
                from: user.to_string(),
                id: Some(post.id),
                text: post.text.clone(),
            };
            serde_json::to_string(&message).unwrap()
        };
        if let Some(link) = &self.link {
            // The broker numbers it (and drops a resend); it comes back
            // to this server with everyone else's, in the broker's order.
            link.publish(Publish {
                user: user.to_string(),
                client,
                post: post.id,
                data: stored(0),
            });
            return;
        }
        let now = now_us();
        let posted = client
            .and_then(|c| self.post_times.of(c, post.id))
            .unwrap_or(now);
        let id = if self.settings.dedupe {
            // The user's name and post number are an idempotency key, kept
            // in the log (a unique index): a resend adds nothing, even
            // after a restart.
            match self.log.append_once((user, post.id), posted, stored) {
                Some(id) => id,
                None => return,
            }
        } else {
            self.log.append(stored(self.log.last_id() + 1), posted)
        };
        if let Some(feed) = &self.feed {
            feed.hear(id);
        }
        self.trace.record(Event::Publish {
            event: id,
            from: client,
            message: Some(post.id),
        });
    }

    /// Room message `seq` as its frame's text, numbered by its place in
    /// the log. Messages the server itself published (the scenario's
    /// events) are stored as bare text.
    fn message_text(&self, seq: u64, data: String) -> String {
        let message = match serde_json::from_str::<RoomMessage>(&data) {
            Ok(stored) => RoomMessage { seq, ..stored },
            Err(_) => RoomMessage {
                seq,
                from: "server".into(),
                id: None,
                text: data,
            },
        };
        serde_json::to_string(&message).unwrap()
    }

    /// The next messages for a member whose view is at `cursor`, who
    /// joined when the log ended at `joined_at`, and has been sent the
    /// feed up to `feed_pos`. The history is the log's (a store every
    /// server reads); what came after the join, only what this server
    /// heard.
    fn next_for(&self, cursor: u64, joined_at: u64, feed_pos: &mut usize) -> Vec<AppEvent> {
        let Some(feed) = &self.feed else {
            return self.log.after(cursor, 100);
        };
        if cursor < joined_at {
            let mut replay = self.log.after(cursor, 100);
            replay.retain(|m| m.id <= joined_at);
            return replay;
        }
        let heard = feed.from(*feed_pos);
        let heard = &heard[..heard.len().min(100)];
        *feed_pos += heard.len();
        heard
            .iter()
            .filter(|&&id| id > cursor)
            .flat_map(|&id| self.log.after(id - 1, 1))
            .collect()
    }

    /// How many messages wait to be sent to that member.
    fn backlog(&self, cursor: u64, joined_at: u64, feed_pos: usize) -> u64 {
        match &self.feed {
            None => self.log.last_id() - cursor.max(joined_at),
            Some(feed) => feed.len().saturating_sub(feed_pos) as u64,
        }
    }

    fn notify(&self, notice: Notice) {
        self.notices.borrow_mut().push(notice);
        // The log's wakeup doubles as the notices': every session waits on it.
        self.log.wake_all();
    }
}
// ANCHOR_END: room

fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

/// A timer that may be off.
fn deadline(from: Instant, after: Option<Span>) -> Instant {
    from + after.map_or(NEVER, Span::to_std)
}

pub async fn server(ctx: ServerCtx) -> turmoil::Result {
    let listener = ctx
        .net
        .listen(SERVER_PORT, Some(&ctx.scenario.server))
        .await?;
    let mut room = Room::new(
        ctx.log.clone(),
        ctx.post_times.clone(),
        ctx.net.trace.clone(),
        Settings::of(&ctx.scenario.websocket),
    );
    if let Some(feed) = &ctx.feed {
        let link = ctx.broker.then(BrokerLink::default);
        if let Some(link) = &link {
            let run = link
                .clone()
                .run(ctx.net.clone(), feed.clone(), ctx.log.clone());
            spawn_local(run);
        }
        room = room.scaled_out(feed.clone(), link);
    }
    let hold = ctx.scenario.long_polling.hold.to_std();
    let chat = Chat::of(&ctx);
    loop {
        let mut conn = ctx.net.accept(&listener).await?;
        let (room, chat, log) = (room.clone(), chat.clone(), ctx.log.clone());
        spawn_local(async move {
            let request = match conn.read_request().await {
                Ok(Some(request)) => request,
                Ok(None) => return conn.close("client closed").await,
                Err(e) => return conn.reject(&e).await,
            };
            // A client whose handshake cannot get through (a proxy that
            // drops `Upgrade`) carries on over long polling, posting with
            // `POST /messages`: the same room, over plain HTTP.
            if matches!(request.path(), "/updates" | "/messages") {
                let first = Some(request);
                return long_polling::serve_connection(conn, log, chat, hold, first).await;
            }
            serve_request(conn, request, room).await
        });
    }
}

/// One connection: its handshake, then the chat (`/chat`) or the echo
/// endpoint (`/echo`, every message sent back as it came: what conformance
/// suites such as Autobahn's drive).
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    mut conn: Conn<S>,
    room: Room,
) {
    let request = match conn.read_request().await {
        Ok(Some(request)) => request,
        Ok(None) => return conn.close("client closed").await,
        Err(e) => return conn.reject(&e).await,
    };
    serve_request(conn, request, room).await
}

/// Answers the first request on a connection: a handshake, a page, or a
/// refusal.
pub async fn serve_request<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    mut conn: Conn<S>,
    request: Request,
    room: Room,
) {
    let endpoint = request.path().to_string();
    if endpoint != "/chat" && endpoint != "/echo" {
        let (response, why) = match room.settings.pages.and_then(|pages| pages(&request)) {
            Some(page) => (page, "page sent"),
            None => (Response::error(404, "try /chat or /echo"), "not found"),
        };
        let _ = conn.send_response(&response, None).await;
        return conn.close(why).await;
    }
    if endpoint == "/chat" && !origin_allowed(&request, &room.settings.chat_origins) {
        let refusal = Response::error(403, "this Origin may not open /chat");
        let _ = conn.send_response(&refusal, None).await;
        return conn.close("foreign origin").await;
    }
    let accept = match websocket::check_request(&request) {
        Ok(accept) => accept,
        Err(refusal) => {
            let _ = conn.send_response(&refusal.response(), None).await;
            return conn.close("handshake refused").await;
        }
    };
    if let Err(e) = conn
        .send_response(&websocket::switching_protocols(&accept), None)
        .await
    {
        return conn.fail(&format!("write failed: {e}"));
    }
    if endpoint == "/echo" {
        // The echo endpoint sends no pings, so it cannot hold a peer's
        // silence against it: a browser's WebSocket, which never pings,
        // may sit idle on it for as long as it likes.
        echo(Socket::new(conn, None, room.settings.max_message)).await
    } else {
        let socket = Socket::new(
            conn,
            room.settings.heartbeat_timeout,
            room.settings.max_message,
        );
        chat(socket, &request, &room).await
    }
}

/// Whether `request` may open `/chat`: no `Origin` (not a browser page),
/// or one of `allowed`, or any when `allowed` is empty.
fn origin_allowed(request: &Request, allowed: &[String]) -> bool {
    match request.header("origin") {
        Some(origin) if !allowed.is_empty() => {
            let origin = origin.trim();
            allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        }
        _ => true,
    }
}

// ANCHOR: server
/// The server's side of one chat member.
async fn chat<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    mut socket: Socket<S>,
    request: &Request,
    room: &Room,
) {
    let settings = &room.settings;
    let user = request.query("user").unwrap_or("anonymous").to_string();
    // The client number, for the trace, when the user is one of ours.
    let client = user.strip_prefix("client-").and_then(|n| n.parse().ok());
    // Where this member's view of the room starts: after `since` when it
    // asks (a page loading the room asks since=0; a resuming client, the
    // last sequence number it saw), else from now on. The number comes
    // from the peer: never trust it to be in range.
    let last = room.log.last_id();
    let mut cursor = match request.query("since").and_then(|s| s.parse::<u64>().ok()) {
        Some(since) => since.min(last),
        None => last,
    };
    let oldest_kept = last.saturating_sub(settings.history) + 1;
    if cursor + 1 < oldest_kept {
        // Too far behind to replay: say so, never skip silently.
        let gap = Notice::Gap {
            from: cursor + 1,
            to: oldest_kept - 1,
        };
        if let Err(end) = socket.send_notice(&gap).await {
            return socket.finish(end).await;
        }
        cursor = oldest_kept - 1;
    }
    // The replay is owed; what arrives from now on is what a slow reader
    // can fall behind on.
    let joined_at = last;
    let mut feed_pos = room.feed.as_ref().map_or(0, Feed::len);
    let mut notices_seen = room.notices.borrow().len();
    if room.settings.presence {
        room.notify(Notice::Joined { who: user.clone() });
    }
    let ending = 'session: loop {
        let woken = room.log.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // What the member said: posts join the room; pings and closes are
        // answered.
        let frames = match socket.take_frames() {
            Ok(frames) => frames,
            Err(end) => break end,
        };
        for incoming in frames {
            let handled = match incoming {
                Incoming::Message(Message::Text(text)) => match serde_json::from_str(&text) {
                    Ok(post) => {
                        room.post(&user, client, post);
                        Ok(())
                    }
                    Err(_) => Err(End::Violation(websocket::Violation {
                        close_code: close_code::INVALID_DATA,
                        why: "a post is {\"id\":N,\"text\":\"...\"}".into(),
                    })),
                },
                Incoming::Message(Message::Binary(_)) => {
                    Err(End::Violation(websocket::Violation {
                        close_code: close_code::INVALID_DATA,
                        why: "the chat takes text messages".into(),
                    }))
                }
                control => socket.answer_control(control).await,
            };
            if let Err(end) = handled {
                break 'session end;
            }
        }
        // What the room said since this member last heard, in the room's
        // order: the same order for every member.
        let messages = room.next_for(cursor, joined_at, &mut feed_pos);
        if !messages.is_empty() {
            for message in messages {
                // Backpressure: TCP takes no more than the member reads, so
                // the rest waits here. Past `max_queued` the member is
                // dropped rather than let grow the server's memory.
                let queued = room.backlog(cursor, joined_at, feed_pos);
                if queued > settings.max_queued {
                    break 'session End::TooSlow(queued);
                }
                let text = room.message_text(message.id, message.data);
                let what = format!("message {}", message.id);
                let carried = Some(Carried::from(Some(message.id), 1));
                if let Err(end) = socket.send_text(&text, what, carried).await {
                    break 'session end;
                }
                cursor = message.id;
            }
            continue;
        }
        let notices: Vec<Notice> = room.notices.borrow()[notices_seen..].to_vec();
        notices_seen += notices.len();
        for notice in notices {
            if let Err(end) = socket.send_notice(&notice).await {
                break 'session end;
            }
        }
        // `biased`: branches are tried in this order, so the run does not
        // depend on tokio's branch-picking RNG.
        let (ping_at, silent_at) = (socket.next_ping(settings.heartbeat), socket.silent_at());
        tokio::select! {
            biased;
            read = socket.read_more() => if let Err(end) = read { break end },
            _ = &mut woken => {}
            // The heartbeat: a ping every `heartbeat`, whatever else is sent.
            _ = sleep_until(ping_at) => {
                if let Err(end) = socket.ping().await { break end }
            }
            // Nothing heard (not even a pong) for `heartbeat_timeout`: the
            // member is gone, whether or not TCP knows it yet.
            _ = sleep_until(silent_at) => break End::Silent,
        }
    };
    if room.settings.presence {
        room.notify(Notice::Left { who: user });
    }
    socket.finish(ending).await
}
// ANCHOR_END: server

/// The echo endpoint: every message back as it came, every rule enforced.
async fn echo<S: AsyncRead + AsyncWrite + Unpin + 'static>(mut socket: Socket<S>) {
    let ending = 'session: loop {
        let frames = match socket.take_frames() {
            Ok(frames) => frames,
            Err(end) => break end,
        };
        for incoming in frames {
            let sent = match incoming {
                Incoming::Message(Message::Text(text)) => {
                    socket.send_text(&text, "echo".into(), None).await
                }
                Incoming::Message(Message::Binary(data)) => {
                    let frame = Frame::new(Opcode::Binary, data);
                    socket.send(frame, "echo".into(), None).await
                }
                control => socket.answer_control(control).await,
            };
            if let Err(end) = sent {
                break 'session end;
            }
        }
        let silent_at = socket.silent_at();
        tokio::select! {
            biased;
            read = socket.read_more() => if let Err(end) = read { break end },
            _ = sleep_until(silent_at) => break End::Silent,
        }
    };
    socket.finish(ending).await
}

/// How a WebSocket session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The peer sent a close frame (already answered): its code and reason.
    PeerClosed(Option<(u16, String)>),
    /// The peer's TCP ended without a close frame (the API reports 1006).
    Dropped,
    /// The connection broke: reset, timed out.
    Broken(String),
    /// The peer broke a rule of RFC 6455: fail the connection with this code.
    Violation(websocket::Violation),
    /// Nothing heard for the heartbeat timeout.
    Silent,
    /// The member reads too slowly: this many messages were queued for it.
    TooSlow(u64),
}

impl End {
    pub fn describe(&self) -> String {
        match self {
            End::PeerClosed(Some((code, reason))) if reason.is_empty() => {
                format!("closed by the peer ({code})")
            }
            End::PeerClosed(Some((code, reason))) => {
                format!("closed by the peer ({code} {reason})")
            }
            End::PeerClosed(None) => "closed by the peer (1005)".into(),
            End::Dropped => "connection closed without a close frame (1006)".into(),
            End::Broken(why) => format!("connection broke: {why} (1006)"),
            End::Violation(v) => format!(
                "protocol violation, closing with {}: {}",
                v.close_code, v.why
            ),
            End::Silent => "heartbeat timeout: nothing heard from the peer".into(),
            End::TooSlow(queued) => format!(
                "too slow: {queued} messages queued, past websocket.max_queued; closing with 1008"
            ),
        }
    }
}

/// One end of a WebSocket: the connection, the frame reader, the heartbeat
/// clocks. Both the server's sessions and the clients use it.
pub struct Socket<S> {
    conn: Conn<S>,
    reader: Reader,
    /// A client masks every frame, with keys from this seeded RNG.
    masks: Option<rand_chacha::ChaCha8Rng>,
    /// When anything was last heard from the peer.
    last_heard: Instant,
    last_ping: Instant,
    /// Silence longer than this means the peer is gone (`None`: never).
    silence_limit: Option<Span>,
    close_sent: bool,
    /// Which side we are: the server closes TCP first.
    is_server: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Socket<S> {
    /// The server's end, reading what a client sends (masked).
    pub fn new(conn: Conn<S>, silence_limit: Option<Span>, max_message: usize) -> Socket<S> {
        Socket {
            conn,
            reader: Reader::new(Sender::Client, max_message),
            masks: None,
            last_heard: Instant::now(),
            last_ping: Instant::now(),
            silence_limit,
            close_sent: false,
            is_server: true,
        }
    }

    /// A client's end, masking with keys drawn from `mask_seed`.
    pub fn client(
        conn: Conn<S>,
        silence_limit: Option<Span>,
        max_message: usize,
        mask_seed: u64,
    ) -> Socket<S> {
        use rand::SeedableRng;
        Socket {
            reader: Reader::new(Sender::Server, max_message),
            masks: Some(rand_chacha::ChaCha8Rng::seed_from_u64(mask_seed)),
            is_server: false,
            ..Socket::new(conn, silence_limit, max_message)
        }
    }

    /// When the peer will have been silent too long.
    pub fn silent_at(&self) -> Instant {
        deadline(self.last_heard, self.silence_limit)
    }

    pub fn next_ping(&self, interval: Option<Span>) -> Instant {
        deadline(self.last_ping, interval)
    }

    /// Reads more bytes (cancel-safe: bytes read are kept).
    pub async fn read_more(&mut self) -> Result<(), End> {
        match self.conn.read_more().await {
            Ok(true) => {
                self.last_heard = Instant::now();
                Ok(())
            }
            Ok(false) => Err(End::Dropped),
            Err(e) => Err(End::Broken(e.to_string())),
        }
    }

    /// Every whole frame read so far, each recorded; what they mean (the
    /// fragments of an unfinished message mean nothing yet).
    pub fn take_frames(&mut self) -> Result<Vec<Incoming>, End> {
        self.take_frames_up_to(usize::MAX)
    }

    /// As [`Socket::take_frames`], stopping once `limit` frames have meant
    /// something (a slow application takes one at a time).
    pub fn take_frames_up_to(&mut self, limit: usize) -> Result<Vec<Incoming>, End> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.reader.next(self.conn.buffered()) {
                Ok(Some((frame, used, incoming))) => {
                    self.conn.take(used);
                    self.conn
                        .record_received(Kind::Frame, describe(&frame), used);
                    out.extend(incoming);
                }
                Ok(None) => return Ok(out),
                Err(violation) => return Err(End::Violation(violation)),
            }
        }
        Ok(out)
    }

    /// Sends one frame (masked if we are a client). A send that TCP cannot
    /// get through for longer than the heartbeat timeout ends the session
    /// like silence does: the application's timer fires whatever the kernel
    /// is still retrying.
    pub async fn send(
        &mut self,
        frame: Frame,
        what: String,
        carried: Option<Carried>,
    ) -> Result<(), End> {
        let frame = match &mut self.masks {
            Some(rng) => frame.masked(rng.random()),
            None => frame,
        };
        let bytes = frame.encode();
        let label = Label::new(Kind::Frame, what).carrying(carried);
        let silent_at = self.silent_at();
        tokio::select! {
            biased;
            sent = self.conn.send(&bytes, label) => sent.map_err(|e| End::Broken(e.to_string())),
            _ = sleep_until(silent_at) => Err(End::Silent),
        }
    }

    pub async fn send_text(
        &mut self,
        text: &str,
        what: String,
        carried: Option<Carried>,
    ) -> Result<(), End> {
        self.send(Frame::text(text), what, carried).await
    }

    async fn send_notice(&mut self, notice: &Notice) -> Result<(), End> {
        let what = match notice {
            Notice::Joined { who } => format!("{who} joined"),
            Notice::Left { who } => format!("{who} left"),
            Notice::Gap { from, to } => format!("gap {from}..{to}"),
        };
        let text = serde_json::to_string(notice).unwrap();
        self.send_text(&text, what, None).await
    }

    pub async fn ping(&mut self) -> Result<(), End> {
        self.last_ping = Instant::now();
        self.send(Frame::new(Opcode::Ping, Vec::new()), "ping".into(), None)
            .await
    }

    /// Answers a ping with a pong carrying the same payload, and a close
    /// with a close (section 5.5); a pong needs nothing. `Err` when the
    /// session is over.
    pub async fn answer_control(&mut self, incoming: Incoming) -> Result<(), End> {
        match incoming {
            Incoming::Ping(payload) => {
                self.send(Frame::new(Opcode::Pong, payload), "pong".into(), None)
                    .await
            }
            Incoming::Close(close) => {
                if !self.close_sent {
                    self.close_sent = true;
                    // Echo the code (section 5.5.1); a close without one is
                    // answered without one.
                    let reply = match &close {
                        Some((code, _)) => Frame::close(*code, ""),
                        None => Frame::new(Opcode::Close, Vec::new()),
                    };
                    let what = format!("close {}", close.as_ref().map_or(1005, |c| c.0));
                    self.send(reply, what, None).await?;
                }
                Err(End::PeerClosed(close))
            }
            Incoming::Pong(_) | Incoming::Message(_) => Ok(()),
        }
    }

    /// Ends the session as `end` requires: after a closing handshake the
    /// server closes TCP first and the client waits for it (section 7.1.1);
    /// a violation is answered with a close frame carrying its code.
    pub async fn finish(mut self, end: End) {
        match end {
            End::PeerClosed(_) if self.is_server => self.conn.close("closing handshake done").await,
            End::PeerClosed(_) => {
                // Give the server a moment to close first, as it should.
                let _ = timeout(Duration::from_secs(2), self.conn.until_peer_closes()).await;
                self.conn.close("closing handshake done").await
            }
            End::Violation(v) => {
                if !self.close_sent {
                    self.close_sent = true;
                    let what = format!("close {}", v.close_code);
                    let _ = self
                        .send(Frame::close(v.close_code, &v.why), what, None)
                        .await;
                }
                self.conn
                    .close(&format!("failed the connection: {}", v.why))
                    .await
            }
            End::Dropped => self.conn.close("peer closed without a close frame").await,
            End::Broken(why) => self.conn.fail(&why),
            End::Silent => self.conn.close("heartbeat timeout").await,
            End::TooSlow(queued) => {
                // The close frame waits behind what TCP already holds: the
                // member reads its backlog, then learns why.
                if !self.close_sent {
                    self.close_sent = true;
                    let reason = format!("too slow: {queued} messages queued");
                    let code = close_code::POLICY_VIOLATION;
                    let _ = self
                        .send(Frame::close(code, &reason), format!("close {code}"), None)
                        .await;
                }
                self.conn.close("dropped a slow reader").await
            }
        }
    }

    /// Sends a close frame with `code` (the closing handshake begins).
    pub async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), End> {
        self.close_sent = true;
        self.send(Frame::close(code, reason), format!("close {code}"), None)
            .await
    }
}

/// The room message a server's frame carries, if it is one (how a proxy
/// relaying the chat counts what it passes on, for the trace).
pub fn frame_events(bytes: &[u8]) -> Option<Carried> {
    let (frame, _) = websocket::decode_frame(bytes, Sender::Server, usize::MAX).ok()??;
    if frame.opcode != Opcode::Text {
        return None;
    }
    let message: RoomMessage = serde_json::from_slice(&frame.payload).ok()?;
    Some(Carried::from(Some(message.seq), 1))
}

/// How the trace names a frame read.
fn describe(frame: &Frame) -> String {
    match frame.opcode {
        Opcode::Close => match websocket::parse_close(&frame.payload) {
            Ok(Some((code, _))) => format!("close {code}"),
            _ => "close".into(),
        },
        Opcode::Text | Opcode::Continuation | Opcode::Binary => {
            let text = String::from_utf8_lossy(&frame.payload);
            let short: String = text.chars().take(32).collect();
            format!("{} {short}", frame.opcode.name())
        }
        other => other.name().into(),
    }
}

// ANCHOR: client
/// When a resilient client tries again, after its `attempt`-th failure in a
/// row (1 for the first); `None`: it gives up.
pub fn reconnect_delay(schedule: &Reconnect, attempt: u32, rng: &mut impl Rng) -> Option<Duration> {
    let n = attempt.max(1);
    match schedule {
        Reconnect::Named(ReconnectSchedule::Off) => None,
        // socket.io-client's Backoff: 1 s x 2^(n-1), moved by up to 50% either
        // way, then capped at 5 s.
        Reconnect::Named(ReconnectSchedule::Socketio) => {
            let base = 1000u64.saturating_mul(1 << (n - 1).min(20));
            let deviation = (rng.random::<f64>() * 0.5 * base as f64) as u64;
            let ms = if rng.random_bool(0.5) {
                base - deviation
            } else {
                base + deviation
            };
            Some(Duration::from_millis(ms.min(5000)))
        }
        // @microsoft/signalr's DefaultReconnectPolicy.
        Reconnect::Named(ReconnectSchedule::Signalr) => [0, 2, 10, 30]
            .get(n as usize - 1)
            .map(|&s| Duration::from_secs(s)),
        // RFC 6455 section 7.2.3: random 0-5 s first, then a random delay in
        // a window that doubles (truncated at 2^6 x 5 s).
        Reconnect::Named(ReconnectSchedule::Rfc6455) => {
            let window_ms = 5000u64 << (n - 1).min(6);
            Some(Duration::from_millis(rng.random_range(0..=window_ms)))
        }
        Reconnect::Delays(delays) => delays.get(n as usize - 1).map(|d| d.to_std()),
    }
}

pub async fn client(ctx: ClientCtx) {
    ctx.wait_to_join().await;
    let ctx = Rc::new(ctx);
    let ws = ctx.scenario.websocket.clone();
    let outbox = Outbox::default();
    if let Some(every) = ctx.scenario.workload.sends {
        spawn_local(chat::user_posts(ctx.clone(), outbox.clone(), every));
    }
    let resilient = ws.client == WsClient::Resilient;
    let mut last_seq: u64 = 0;
    let mut failures = 0;
    let mut sessions = 0;
    loop {
        // The page loads the room's history (since=0); a resuming client
        // asks for what it missed; any other reconnection starts from now.
        let since = match (sessions, ws.resume && resilient) {
            (0, _) => Some(0),
            (_, true) => Some(last_seq),
            (_, false) => None,
        };
        let attempt = if sessions == 0 && failures == 0 {
            Attempt::First
        } else {
            Attempt::Retry
        };
        match open(&ctx, since, attempt).await {
            Ok(socket) => {
                sessions += 1;
                failures = 0;
                let end = session(&ctx, socket, &outbox, &mut last_seq).await;
                ctx.report_error(end);
            }
            // Something on the path answered the handshake, but not with
            // 101: it does not pass WebSocket on (a proxy that drops
            // `Upgrade`). Socket.IO and SignalR then carry on over HTTP;
            // a server in trouble (5xx) is only tried again.
            Err(OpenError::Refused(status, why)) if resilient && status < 500 => {
                ctx.report_error(why);
                return fall_back_to_long_polling(ctx, outbox, status, last_seq).await;
            }
            Err(OpenError::Refused(_, why) | OpenError::Failed(why)) => ctx.report_error(why),
        }
        if !resilient {
            // The browser's WebSocket fires `close` and is done: the page
            // shows nothing new until someone reloads it.
            return;
        }
        failures += 1;
        let delay = reconnect_delay(&ws.reconnect, failures, &mut *ctx.rng.borrow_mut());
        match delay {
            Some(delay) => sleep(delay).await,
            None => {
                ctx.report_error(format!("gave up after {} failed attempts", failures));
                return;
            }
        }
    }
}

/// The rest of the run over long polling, from the last room message seen;
/// the posts still waiting go up with `POST /messages`. The trace says so.
async fn fall_back_to_long_polling(ctx: Rc<ClientCtx>, outbox: Outbox, status: u16, last_seq: u64) {
    ctx.net.trace.record(Event::Transport {
        client: ctx.id,
        transport: "long_polling".into(),
        why: format!("the WebSocket handshake was answered {status}, not 101"),
    });
    spawn_local(chat::poster(ctx.clone(), outbox));
    long_polling::poll_from(&ctx, last_seq).await
}

/// Why opening a WebSocket failed.
#[derive(Debug)]
pub enum OpenError {
    /// The handshake got an HTTP answer other than `101`, with this status.
    Refused(u16, String),
    /// No answer, or a wrong one.
    Failed(String),
}

/// Connects and shakes hands; `Err` says why it failed.
async fn open(
    ctx: &ClientCtx,
    since: Option<u64>,
    attempt: Attempt,
) -> Result<Socket<turmoil::net::TcpStream>, OpenError> {
    let ws = &ctx.scenario.websocket;
    let conn = ctx
        .connect(attempt)
        .await
        .map_err(|e| OpenError::Failed(format!("connect failed: {e}")))?;
    let key = websocket::client_key(ctx.rng.borrow_mut().random());
    let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
    let target = format!("/chat?user=client-{}{since}", ctx.id);
    // A resilient client gives the handshake as long as a heartbeat; the
    // browser waits as long as TCP does.
    let limit = match ws.client {
        WsClient::Resilient => ws.heartbeat_timeout,
        WsClient::Browser => None,
    };
    let conn = handshake(conn, &target, &ctx.upstream, &key, attempt, limit).await?;
    let mask_seed = ctx.rng.borrow_mut().random();
    let silence = match ws.client {
        WsClient::Resilient => ws.heartbeat_timeout,
        WsClient::Browser => None,
    };
    Ok(Socket::client(
        conn,
        silence,
        ws.max_message as usize,
        mask_seed,
    ))
}

/// The opening handshake on a connected `conn` (any stream: the
/// simulation's or a real socket, for `pushpull client ws`): sends the
/// `GET` with `Upgrade: websocket` and `key`, and reads the answer within
/// `limit`. `Ok`: a correct `101`, the connection now speaks frames.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    mut conn: Conn<S>,
    target: &str,
    host: &str,
    key: &str,
    attempt: Attempt,
    limit: Option<Span>,
) -> Result<Conn<S>, OpenError> {
    let request = websocket::handshake_request(target, host, key);
    if let Err(e) = conn.send_request(&request, attempt).await {
        conn.fail(&format!("write failed: {e}"));
        return Err(OpenError::Failed(format!("handshake failed: {e}")));
    }
    // `Err` carries the answer's status when there was one.
    let answer = crate::world::network::within(limit, async {
        loop {
            match parse_response_head(conn.buffered()) {
                Ok(Some((head_len, response, _))) => {
                    conn.take(head_len);
                    conn.record_received(Kind::Response, response.summary(), head_len);
                    let status = (response.status != 101).then_some(response.status);
                    return websocket::check_response(&response, key).map_err(|why| (status, why));
                }
                Ok(None) => {}
                Err(e) => return Err((None, format!("a bad answer: {e}"))),
            }
            match conn.read_more().await {
                Ok(true) => {}
                Ok(false) => return Err((None, "the server closed the connection".into())),
                Err(e) => return Err((None, e.to_string())),
            }
        }
    })
    .await
    .unwrap_or_else(|| Err((None, "no answer to the handshake".into())));
    if let Err((status, why)) = answer {
        conn.fail(&why);
        let why = format!("handshake failed: {why}");
        return Err(match status {
            Some(status) => OpenError::Refused(status, why),
            None => OpenError::Failed(why),
        });
    }
    Ok(conn)
}

/// One connection's life: messages in, posts out, heartbeats, until it
/// ends; returns why it ended.
async fn session(
    ctx: &ClientCtx,
    mut socket: Socket<turmoil::net::TcpStream>,
    outbox: &Outbox,
    last_seq: &mut u64,
) -> String {
    let ws = &ctx.scenario.websocket;
    let resilient = ws.client == WsClient::Resilient;
    let keep_until_acked = resilient && ws.resume;
    let me = format!("client-{}", ctx.id);
    let heartbeat = if resilient { ws.heartbeat } else { None };
    // A slow reader's application takes one message at a time and is busy
    // with it for a while; meanwhile what the server sends waits in the
    // socket buffers, and then at the server. (A browser reads its sockets
    // on its network thread whatever the page does, so there a slow page
    // grows the browser's memory instead; this is a program's client, or a
    // page on a link slower than the stream.)
    let slow = ctx.id <= ws.slow_readers;
    // Posts already written on this connection (a new one sends again all
    // that are still waiting for their acknowledgment).
    let mut sent_up_to = 0;
    let ending = 'session: loop {
        let added = outbox.added();
        tokio::pin!(added);
        added.as_mut().enable();
        let frames = match socket.take_frames_up_to(if slow { 1 } else { usize::MAX }) {
            Ok(frames) => frames,
            Err(end) => break end,
        };
        let busy = slow && !frames.is_empty();
        for incoming in frames {
            match incoming {
                Incoming::Message(Message::Text(text)) => {
                    let Ok(message) = serde_json::from_str::<RoomMessage>(&text) else {
                        continue; // a notice
                    };
                    // A resilient client drops what it has seen (a replay
                    // overlapping what arrived); the page shows the rest.
                    if !resilient || message.seq > *last_seq {
                        ctx.deliver(message.seq);
                        *last_seq = (*last_seq).max(message.seq);
                    }
                    // Our own post, back from the room: it is in.
                    if message.from == me
                        && let Some(id) = message.id
                    {
                        outbox.remove_up_to(id);
                    }
                }
                Incoming::Message(Message::Binary(_)) => {}
                control => {
                    if let Err(end) = socket.answer_control(control).await {
                        break 'session end;
                    }
                }
            }
        }
        for post in outbox.after(sent_up_to) {
            let text = serde_json::to_string(&post).unwrap();
            if let Err(end) = socket
                .send_text(&text, format!("post {}", post.id), None)
                .await
            {
                break 'session end;
            }
            sent_up_to = post.id;
            if !keep_until_acked {
                // Written is gone: a post on a connection that turns out to
                // be dead is lost.
                outbox.remove_up_to(post.id);
            }
        }
        if busy {
            // Busy with that message: the socket is not read meanwhile.
            sleep(ws.slow_read_pause.to_std()).await;
            continue;
        }
        let (ping_at, silent_at) = (socket.next_ping(heartbeat), socket.silent_at());
        tokio::select! {
            biased;
            read = socket.read_more() => if let Err(end) = read { break end },
            _ = &mut added => {}
            _ = sleep_until(ping_at) => {
                if let Err(end) = socket.ping().await { break end }
            }
            _ = sleep_until(silent_at) => break End::Silent,
        }
    };
    if !resilient {
        // Posts typed into a closed WebSocket are dropped (`send()` on a
        // CLOSED socket discards the data).
        outbox.clear();
    }
    let why = ending.describe();
    socket.finish(ending).await;
    why
}
// ANCHOR_END: client
