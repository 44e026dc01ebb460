//! Plumbing shared by every mechanism: opening and accepting traced
//! connections on turmoil's simulated TCP, and the server's event log.
//!
//! Nothing here is specific to a mechanism; the mechanism modules are where
//! the lesson is.

use crate::http::{Conn, Loss, Severance};
use crate::scenario::Span;
use crate::trace::{Dir, Event, HostTrace};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use turmoil::net::{TcpListener, TcpStream};

/// The port every server in the sandbox listens on.
pub const SERVER_PORT: u16 = 80;

/// What a host needs to talk on the network: its trace handle, its loss dice,
/// and the switchboard through which a fault can reset its connections.
#[derive(Clone)]
pub struct HostNet {
    pub trace: HostTrace,
    pub loss: Loss,
    pub switchboard: Switchboard,
}

/// Every open connection of the run, by the hosts at its two ends, so that a
/// `cut` fault with `reset = true` can kill them the moment it starts.
#[derive(Clone, Default)]
pub struct Switchboard {
    lines: Rc<RefCell<Vec<Line>>>,
}

/// One connection end: its host, the host at the other end, its switch.
type Line = (String, String, Weak<Severance>);

impl Switchboard {
    fn register(&self, local_host: &str, peer_host: &str) -> Rc<Severance> {
        let severance = Rc::new(Severance::default());
        let mut lines = self.lines.borrow_mut();
        // Forget connections that have gone, now and then, so a long run
        // with many short connections does not grow this list without end.
        if lines.len() >= 1024 && lines.len().is_power_of_two() {
            lines.retain(|(_, _, s)| s.strong_count() > 0);
        }
        lines.push((
            local_host.to_string(),
            peer_host.to_string(),
            Rc::downgrade(&severance),
        ));
        severance
    }

    /// Resets every live connection end *on* one of `hosts`; returns how many.
    /// Only those: the hosts across the cut hear nothing (no reset crosses a
    /// cut) and find out later, by a timeout or a failed write.
    pub fn reset(&self, hosts: &[String]) -> usize {
        let mut count = 0;
        for (local, _peer, severance) in self.lines.borrow().iter() {
            if hosts.contains(local)
                && let Some(s) = severance.upgrade()
            {
                s.sever();
                count += 1;
            }
        }
        count
    }
}

fn host_of(named_addr: &str) -> &str {
    named_addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(named_addr)
}

/// `client-1:49153`: a socket address with the host's name instead of its IP,
/// so that trace lines read like the diagram.
fn named(addr: SocketAddr) -> String {
    let host = turmoil::reverse_lookup(addr.ip()).unwrap_or_else(|| addr.ip().to_string());
    format!("{host}:{}", addr.port())
}

impl HostNet {
    /// Opens a connection to `host:port`, recording it (or the failure).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        reconnect: bool,
    ) -> io::Result<Conn<TcpStream>> {
        match TcpStream::connect((host, port)).await {
            Ok(stream) => {
                let peer = named(stream.peer_addr()?);
                let name = format!("{}>{peer}", named(stream.local_addr()?));
                self.trace.record(Event::Connect {
                    conn: name.clone(),
                    reconnect,
                });
                let severance = self.switchboard.register(self.trace.host(), host_of(&peer));
                Ok(
                    Conn::new(stream, name, Dir::Up, self.trace.clone(), self.loss.clone())
                        .with_severance(severance),
                )
            }
            Err(e) => {
                self.trace.record(Event::ConnectFailed {
                    target: format!("{host}:{port}"),
                    reason: e.kind().to_string(),
                });
                // turmoil's message is a bare IP address; name the host.
                Err(io::Error::new(
                    e.kind(),
                    format!("cannot connect to {host}:{port}: {}", e.kind()),
                ))
            }
        }
    }

    /// Waits for the next connection on `listener`, recording it.
    pub async fn accept(&self, listener: &TcpListener) -> io::Result<Conn<TcpStream>> {
        let (stream, peer) = listener.accept().await?;
        let peer = named(peer);
        let name = format!("{peer}>{}", named(stream.local_addr()?));
        self.trace.record(Event::Accept { conn: name.clone() });
        let severance = self.switchboard.register(self.trace.host(), host_of(&peer));
        Ok(Conn::new(
            stream,
            name,
            Dir::Down,
            self.trace.clone(),
            self.loss.clone(),
        )
        .with_severance(severance))
    }
}

/// Runs `f` under a timeout of `limit`; `None` if it ran out. A limit of 0
/// means no timeout, the scenario files' way of saying "off".
pub async fn within<T>(limit: Span, f: impl std::future::Future<Output = T>) -> Option<T> {
    if limit == Span::ZERO {
        Some(f.await)
    } else {
        tokio::time::timeout(limit.to_std(), f).await.ok()
    }
}

/// Sleeps for `span`, or forever when it is 0 ("off").
pub async fn sleep_or_never(span: Span) {
    if span == Span::ZERO {
        std::future::pending::<()>().await
    } else {
        tokio::time::sleep(span.to_std()).await
    }
}

/// One application event: what the server has to tell its clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppEvent {
    /// 1, 2, 3, ... in publication order. Clients use it as their cursor.
    pub id: u64,
    pub data: String,
}

/// The server's event log. It lives outside the server process, like a
/// database would, so it survives a server crash and restart; the server reads
/// it, the run loop appends to it at the scheduled times.
#[derive(Clone, Default)]
pub struct EventLog {
    events: Rc<RefCell<Vec<AppEvent>>>,
    /// Wakes whoever waits for new events (long polling, streams).
    published: Rc<tokio::sync::Notify>,
}

impl EventLog {
    pub fn append(&self, data: String) -> u64 {
        let mut events = self.events.borrow_mut();
        let id = events.len() as u64 + 1;
        events.push(AppEvent { id, data });
        self.published.notify_waiters();
        id
    }

    /// Events with `id > after`, at most `limit` of them.
    pub fn after(&self, after: u64, limit: usize) -> Vec<AppEvent> {
        let events = self.events.borrow();
        let start = (after as usize).min(events.len());
        events[start..].iter().take(limit).cloned().collect()
    }

    pub fn last_id(&self) -> u64 {
        self.events.borrow().len() as u64
    }

    /// Resolves at the next `append`.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.published.notified()
    }
}

/// The payload of event `id`: `payload_bytes` of readable text, so that a
/// learner reading a trace or a wire dump can tell events apart.
pub fn payload(id: u64, payload_bytes: u32) -> String {
    let mut s = format!("event {id} ");
    let n = payload_bytes as usize;
    while s.len() < n {
        s.push('.');
    }
    s.truncate(n);
    s
}
