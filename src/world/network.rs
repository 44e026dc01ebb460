//! Opening and accepting traced connections on turmoil's simulated TCP, and
//! the switchboard through which the network resets them.
//!
//! Nothing here is specific to a mechanism; the mechanism modules are where
//! the lesson is.

use crate::record::trace::{Dir, Event, HostTrace};
use crate::scenario::Span;
use crate::world::conn::{Attempt, Conn, Loss, ResetSwitch};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use turmoil::net::{TcpListener, TcpStream};

/// The port every server in the sandbox listens on.
pub const SERVER_PORT: u16 = 80;

/// A traced connection over turmoil's TCP.
pub type TcpConn = Conn<TcpStream>;

/// What a host needs to talk on the network: its trace handle, its loss dice,
/// and the switchboard through which a fault can reset its connections.
#[derive(Clone)]
pub struct HostNet {
    pub trace: HostTrace,
    pub loss: Loss,
    pub switchboard: Switchboard,
}

/// Every open connection of the run, by the host at its end, so that a
/// `reset` cut can reset them the moment it starts.
#[derive(Clone, Default)]
pub struct Switchboard {
    lines: Rc<RefCell<Vec<Line>>>,
}

/// One connection end: its host and its switch.
type Line = (String, Weak<ResetSwitch>);

impl Switchboard {
    fn register(&self, local_host: &str) -> Rc<ResetSwitch> {
        let switch = Rc::new(ResetSwitch::default());
        let mut lines = self.lines.borrow_mut();
        // Forget connections that have gone, now and then, so a long run
        // with many short connections does not grow this list without end.
        if lines.len() >= 1024 && lines.len().is_power_of_two() {
            lines.retain(|(_, s)| s.strong_count() > 0);
        }
        lines.push((local_host.to_string(), Rc::downgrade(&switch)));
        switch
    }

    /// Resets every live connection end *on* one of `hosts`; returns how many.
    /// Only those: the hosts across the cut hear nothing (no reset crosses a
    /// cut) and find out later, by a timeout or a failed write.
    pub fn reset(&self, hosts: &[String]) -> usize {
        let mut count = 0;
        for (local, switch) in self.lines.borrow().iter() {
            if hosts.contains(local)
                && let Some(s) = switch.upgrade()
            {
                s.reset();
                count += 1;
            }
        }
        count
    }
}

/// `client-1:49153`: a socket address with the host's name instead of its IP,
/// so that trace lines read like the diagram.
fn named(addr: SocketAddr) -> String {
    let host = turmoil::reverse_lookup(addr.ip()).unwrap_or_else(|| addr.ip().to_string());
    format!("{host}:{}", addr.port())
}

impl HostNet {
    /// Opens a connection to `host:port`, recording it (or the failure).
    pub async fn connect(&self, host: &str, port: u16, attempt: Attempt) -> io::Result<TcpConn> {
        match TcpStream::connect((host, port)).await {
            Ok(stream) => {
                let name = format!(
                    "{}>{}",
                    named(stream.local_addr()?),
                    named(stream.peer_addr()?)
                );
                self.trace.record(Event::Connect {
                    conn: name.clone(),
                    reconnect: attempt == Attempt::Retry,
                });
                let switch = self.switchboard.register(self.trace.host());
                Ok(
                    Conn::new(stream, name, Dir::Up, self.trace.clone(), self.loss.clone())
                        .with_reset_switch(switch),
                )
            }
            Err(e) => {
                self.trace.record(Event::ConnectFailed {
                    target: format!("{host}:{port}"),
                    reason: e.kind().to_string(),
                    retry: attempt == Attempt::Retry,
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
    pub async fn accept(&self, listener: &TcpListener) -> io::Result<TcpConn> {
        let (stream, peer) = listener.accept().await?;
        let name = format!("{}>{}", named(peer), named(stream.local_addr()?));
        self.trace.record(Event::Accept { conn: name.clone() });
        let switch = self.switchboard.register(self.trace.host());
        Ok(Conn::new(
            stream,
            name,
            Dir::Down,
            self.trace.clone(),
            self.loss.clone(),
        )
        .with_reset_switch(switch))
    }
}

/// Runs `f` under a timeout of `limit`, or without one when it is `None`
/// ("off"); `None` if it ran out.
pub async fn within<T>(limit: Option<Span>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match limit {
        None => Some(f.await),
        Some(limit) => tokio::time::timeout(limit.to_std(), f).await.ok(),
    }
}

/// Sleeps for `span`, or forever when it is `None` ("off").
pub async fn sleep_or_never(span: Option<Span>) {
    match span {
        None => std::future::pending::<()>().await,
        Some(span) => tokio::time::sleep(span.to_std()).await,
    }
}
