//! The broker: a publish/subscribe host between servers, the part Redis
//! plays when a WebSocket chat grows past one server.
//!
//! A chat server pushes each message to the members connected *to it*. With
//! two servers behind a load balancer, Mike on `server-1` and Jane on
//! `server-2` do not see each other: each process only knows its own
//! members ("hard to scale horizontally", the study notes say). The usual
//! fix puts a broker between the servers: every server publishes what its
//! members post, and hears from the broker everything anyone posted, in one
//! order (the broker's), one hop later.
//!
//! The wire is one JSON object per line, both ways (Redis speaks RESP; the
//! shape is the same: subscribe, publish, messages):
//!
//! ```text
//! server-1 → broker   {"subscribe":41}
//! server-1 → broker   {"publish":{"user":"client-1","client":1,"post":3,"data":"..."}}
//! broker → server-*   {"message":42,"data":"..."}
//! ```
//!
//! The broker numbers the messages (it appends them to the room's log, the
//! store beside it, which survives its crash, as Redis with persistence
//! does), drops a post it already has (the user's name and post number are
//! an idempotency key), and sends every server each message after the one
//! it subscribed from, in order. A server that loses its link subscribes
//! again from the last message it heard, and misses nothing.

use crate::record::trace::{Event, Kind};
use crate::world::clock::{sleep, spawn_local};
use crate::world::conn::{Attempt, Label};
use crate::world::event_log::{EventLog, PostTimes};
use crate::world::network::{HostNet, TcpConn};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// Redis's port.
pub const BROKER_PORT: u16 = 6379;

/// What a server has heard, in the order it heard it: the room messages its
/// members may be sent live. With one server and no broker it is not used
/// (the server hears everything in the log).
#[derive(Clone, Default)]
pub struct Feed {
    heard: Rc<RefCell<Vec<u64>>>,
}

impl Feed {
    /// Message `id` reached this server.
    pub fn hear(&self, id: u64) {
        self.heard.borrow_mut().push(id);
    }

    /// How many messages it has heard.
    pub fn len(&self) -> usize {
        self.heard.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.heard.borrow().is_empty()
    }

    /// The messages heard from position `from` on.
    pub fn from(&self, from: usize) -> Vec<u64> {
        self.heard.borrow()[from.min(self.len())..].to_vec()
    }

    /// The last message heard (0: none).
    pub fn last(&self) -> u64 {
        self.heard.borrow().last().copied().unwrap_or(0)
    }
}

/// A post on its way to the broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client: Option<u32>,
    pub post: u64,
    /// What the log stores for it.
    pub data: String,
}

/// One line, server to broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToBroker {
    Subscribe(u64),
    Publish(Publish),
}

/// One line, broker to server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromBroker {
    pub message: u64,
    pub data: String,
}

/// The next whole line buffered on `conn`, taken and recorded.
fn take_line(conn: &mut TcpConn) -> Option<String> {
    let end = conn.buffered().iter().position(|&b| b == b'\n')?;
    let line = conn.take(end + 1);
    let text = String::from_utf8_lossy(&line[..end]).into_owned();
    let what: String = text.chars().take(40).collect();
    conn.record_received(Kind::Broker, what, end + 1);
    Some(text)
}

async fn send_line(conn: &mut TcpConn, text: String) -> std::io::Result<()> {
    let what: String = text.chars().take(40).collect();
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    conn.send(&bytes, Label::new(Kind::Broker, what)).await
}

/// What the broker host runs with.
#[derive(Clone)]
pub struct BrokerCtx {
    pub net: HostNet,
    /// The room's log: the broker is its one writer when it runs.
    pub log: EventLog,
    pub post_times: PostTimes,
    /// Drop a post already in (on with `websocket.resume`, as the servers do).
    pub dedupe: bool,
}

pub async fn broker(ctx: BrokerCtx) -> turmoil::Result {
    let listener = ctx.net.listen(BROKER_PORT, None).await?;
    loop {
        let conn = ctx.net.accept(&listener).await?;
        spawn_local(serve_subscriber(ctx.clone(), conn));
    }
}

/// One server's link: its publications in, every message out, in order.
async fn serve_subscriber(ctx: BrokerCtx, mut conn: TcpConn) {
    // Until the server says where it is, it is sent nothing.
    let mut cursor: Option<u64> = None;
    loop {
        let published = ctx.log.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        while let Some(line) = take_line(&mut conn) {
            match serde_json::from_str::<ToBroker>(&line) {
                Ok(ToBroker::Subscribe(since)) => cursor = Some(since.min(ctx.log.last_id())),
                Ok(ToBroker::Publish(p)) => publish(&ctx, p),
                Err(_) => return conn.fail("a line the broker does not understand"),
            }
        }
        if let Some(at) = cursor.as_mut() {
            for event in ctx.log.after(*at, 100) {
                let line = serde_json::to_string(&FromBroker {
                    message: event.id,
                    data: event.data,
                })
                .expect("a line always serializes");
                if let Err(e) = send_line(&mut conn, line).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
                *at = event.id;
            }
            if ctx.log.last_id() > *at {
                continue;
            }
        }
        tokio::select! {
            biased;
            read = conn.read_more() => match read {
                Ok(true) => {}
                Ok(false) => return conn.close("server closed").await,
                Err(e) => return conn.fail(&e.to_string()),
            },
            _ = &mut published => {}
        }
    }
}

/// A post joins the room's log (once), numbered by the broker.
fn publish(ctx: &BrokerCtx, p: Publish) {
    let now = turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64;
    let posted = p
        .client
        .and_then(|c| ctx.post_times.of(c, p.post))
        .unwrap_or(now);
    let id = if ctx.dedupe {
        ctx.log.append_once((&p.user, p.post), posted, |_| p.data)
    } else {
        Some(ctx.log.append(p.data, posted))
    };
    if let Some(id) = id {
        ctx.net.trace.record(Event::Publish {
            event: id,
            from: p.client,
            message: Some(p.post),
        });
    }
}

/// A server's side of the broker: what it has to publish, and the task
/// that keeps its link up.
#[derive(Clone, Default)]
pub struct BrokerLink {
    outbox: Rc<RefCell<VecDeque<Publish>>>,
    added: Rc<tokio::sync::Notify>,
}

impl BrokerLink {
    /// Queues a post for the broker (sent when the link is up: a post made
    /// while the broker is away waits, it is not lost).
    pub fn publish(&self, p: Publish) {
        self.outbox.borrow_mut().push_back(p);
        self.added.notify_waiters();
    }

    /// Keeps the link to the broker up for as long as the server runs:
    /// subscribes from the last message `feed` heard, sends what is queued,
    /// and hears every message; `log`'s wakeup tells the sessions.
    pub async fn run(self, net: HostNet, feed: Feed, log: EventLog) {
        let mut failures = 0u32;
        loop {
            let attempt = Attempt::after_failures(failures);
            match net.connect("broker", BROKER_PORT, attempt).await {
                Ok(conn) => {
                    failures = 0;
                    // Why it ended is in the trace, on the connection.
                    self.serve(conn, &feed, &log).await;
                }
                Err(_) => failures += 1,
            }
            // Redis clients retry at once, then back off; a fixed second
            // keeps it simple.
            sleep(Duration::from_secs(1)).await;
        }
    }

    async fn serve(&self, mut conn: TcpConn, feed: &Feed, log: &EventLog) {
        let subscribe = serde_json::to_string(&ToBroker::Subscribe(feed.last())).unwrap();
        if let Err(e) = send_line(&mut conn, subscribe).await {
            return conn.fail(&format!("write failed: {e}"));
        }
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            let mut heard = false;
            while let Some(line) = take_line(&mut conn) {
                if let Ok(m) = serde_json::from_str::<FromBroker>(&line)
                    && m.message > feed.last()
                {
                    feed.hear(m.message);
                    heard = true;
                }
            }
            if heard {
                log.wake_all();
            }
            let next = self.outbox.borrow().front().cloned();
            if let Some(p) = next {
                let line = serde_json::to_string(&ToBroker::Publish(p)).unwrap();
                if let Err(e) = send_line(&mut conn, line).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
                // Sent (TCP got it through): off the queue.
                self.outbox.borrow_mut().pop_front();
                continue;
            }
            tokio::select! {
                biased;
                read = conn.read_more() => match read {
                    Ok(true) => {}
                    Ok(false) => return conn.close("broker closed").await,
                    Err(e) => return conn.fail(&e.to_string()),
                },
                _ = &mut added => {}
            }
        }
    }
}
