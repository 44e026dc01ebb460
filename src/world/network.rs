//! Opening and accepting traced connections on turmoil's simulated TCP, and
//! the switchboard through which the network's faults reach them: cuts that
//! stop packets, resets, middleboxes that forget. What TCP does about it is
//! in `tcp.rs`.
//!
//! Nothing here is specific to a mechanism; the mechanism modules are where
//! the lesson is.

use crate::record::trace::{Dir, Event, HostTrace};
use crate::scenario::{CutKind, MAX_CONNECTIONS_PER_HOST, Span};
use crate::world::conn::{Attempt, Conn};
use crate::world::tcp::{
    Cuts, Loss, Path, SYN_GIVES_UP_AT, SYN_RETRANSMITS_AT, TcpSettings, Wires,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use tokio::time::Instant;
use turmoil::net::{TcpListener, TcpStream};

/// The port every server in the sandbox listens on.
pub const SERVER_PORT: u16 = 80;

/// A traced connection over turmoil's TCP.
pub type TcpConn = Conn<TcpStream>;

/// What a host needs to talk on the network: its trace handle, its loss dice,
/// the switchboard, and whether its kernel runs keep-alive on the
/// connections it opens.
#[derive(Clone)]
pub struct HostNet {
    pub trace: HostTrace,
    pub loss: Loss,
    pub switchboard: Switchboard,
    pub keepalive: Option<Span>,
}

/// Every open connection's path, and which hosts are cut off now: the run
/// loop starts and ends faults here, every transmission looks here.
#[derive(Clone, Default)]
pub struct Switchboard {
    cuts: Rc<Cuts>,
    wires: Rc<Wires>,
    settings: Rc<TcpSettings>,
    /// Paths by connection name, so the accepting end finds the path its
    /// opener made (both ends see the same four-tuple).
    by_name: Rc<RefCell<HashMap<String, Weak<Path>>>>,
    /// Paths in the order they were opened, for faults to walk.
    all: Rc<RefCell<Vec<Weak<Path>>>>,
    /// Open connections each host has opened: one ephemeral port each.
    ports_in_use: Rc<RefCell<std::collections::BTreeMap<String, Rc<std::cell::Cell<u32>>>>>,
    /// Hosts whose server process has crashed: the host is up, so its
    /// kernel answers a SYN with RST.
    crashed: Rc<RefCell<std::collections::BTreeSet<String>>>,
}

impl Switchboard {
    pub fn new(settings: TcpSettings, bits_per_second: Option<u64>) -> Switchboard {
        Switchboard {
            settings: Rc::new(settings),
            wires: Rc::new(Wires::new(bits_per_second)),
            ..Switchboard::default()
        }
    }

    /// The path of connection `name` between `ends`, made by whichever end
    /// gets here first.
    fn path(&self, name: &str, ends: (String, String)) -> Rc<Path> {
        let mut by_name = self.by_name.borrow_mut();
        if let Some(path) = by_name.get(name).and_then(Weak::upgrade) {
            return path;
        }
        let now = turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64;
        let ports = self.ports_of(&ends.0);
        let path = Rc::new(
            Path::new(
                ends,
                self.cuts.clone(),
                self.wires.clone(),
                self.settings.clone(),
                now,
            )
            .holding_port(ports),
        );
        let mut all = self.all.borrow_mut();
        // Forget connections that have gone, now and then, so a long run
        // with many short connections does not grow these without end.
        if all.len() >= 1024 && all.len().is_power_of_two() {
            all.retain(|p| p.strong_count() > 0);
            by_name.retain(|_, p| p.strong_count() > 0);
        }
        all.push(Rc::downgrade(&path));
        by_name.insert(name.to_string(), Rc::downgrade(&path));
        path
    }

    /// The count of `host`'s ports in use by connections it opened.
    fn ports_of(&self, host: &str) -> Rc<std::cell::Cell<u32>> {
        self.ports_in_use
            .borrow_mut()
            .entry(host.to_string())
            .or_default()
            .clone()
    }

    /// Live paths with an end on one of `hosts`.
    fn paths_touching(&self, hosts: &[String]) -> Vec<Rc<Path>> {
        self.all
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|p| hosts.contains(&p.ends.0) || hosts.contains(&p.ends.1))
            .collect()
    }

    /// A cut begins: packets to and from `hosts` stop (except a `hold`,
    /// which turmoil queues). A `reset` cut resets every connection crossing
    /// it, both ends at once; a `forget` cut makes the middlebox forget every
    /// connection crossing it.
    pub fn cut(&self, hosts: &[String], how: CutKind) {
        self.cuts.start(hosts, how);
        let paths = self.paths_touching(hosts);
        for path in &paths {
            match how {
                CutKind::Reset => path.reset(),
                CutKind::Forget => path.forget(),
                CutKind::Silent | CutKind::Hold => {}
            }
        }
    }

    pub fn heal(&self, hosts: &[String]) {
        self.cuts.end(hosts);
    }

    /// `host`'s process crashed (`true`) or started again (`false`).
    pub fn set_crashed(&self, host: &str, crashed: bool) {
        let mut set = self.crashed.borrow_mut();
        if crashed {
            set.insert(host.to_string());
        } else {
            set.remove(host);
        }
    }

    /// Whether a SYN to or from `host` gets through now.
    fn syn_passes(&self, host: &str) -> bool {
        !self.cuts.holds_off(host)
    }

    /// At the end of a run: lets go of the connections ended in silence.
    pub fn clear_graveyard(&self) {
        self.cuts.clear_graveyard();
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
    /// Across a cut the SYN is retransmitted on Linux's schedule, and after
    /// 127 s connecting fails with "connection timed out".
    pub async fn connect(&self, host: &str, port: u16, attempt: Attempt) -> io::Result<TcpConn> {
        self.connect_for(None, host, port, attempt).await
    }

    /// `connect`, on behalf of client `client` (the trace says whose).
    pub async fn connect_for(
        &self,
        client: Option<u32>,
        host: &str,
        port: u16,
        attempt: Attempt,
    ) -> io::Result<TcpConn> {
        let target = format!("{host}:{port}");
        let started = Instant::now();
        let mut syn_retransmits = SYN_RETRANSMITS_AT.iter();
        if self.switchboard.ports_of(self.trace.host()).get() >= MAX_CONNECTIONS_PER_HOST {
            // Every ephemeral port is taken: the kernel's EADDRNOTAVAIL, at once.
            return Err(self.connect_failed(&target, io::ErrorKind::AddrNotAvailable, attempt));
        }
        while !(self.switchboard.syn_passes(self.trace.host()) && self.switchboard.syn_passes(host))
        {
            match syn_retransmits.next() {
                Some(at) => {
                    tokio::time::sleep_until(started + *at).await;
                    let n = SYN_RETRANSMITS_AT.len() - syn_retransmits.len();
                    self.trace.record(Event::SynRetransmit {
                        target: target.clone(),
                        attempt: n as u32,
                    });
                }
                None => {
                    tokio::time::sleep_until(started + SYN_GIVES_UP_AT).await;
                    return Err(self.connect_failed(&target, io::ErrorKind::TimedOut, attempt));
                }
            }
        }
        if self.switchboard.crashed.borrow().contains(host) {
            // Nothing listens on the port of a crashed process, but the
            // host's kernel is alive: it answers the SYN with RST, one
            // round trip after it left (turmoil itself would leave the SYN
            // unanswered until the restart).
            tokio::time::sleep(self.switchboard.settings.round_trip.to_std()).await;
            return Err(self.connect_failed(&target, io::ErrorKind::ConnectionRefused, attempt));
        }
        let handshake = Instant::now();
        match TcpStream::connect((host, port)).await {
            Ok(stream) => {
                // turmoil answers the SYN the moment it arrives; the SYN-ACK's
                // trip back takes as long again, so a connect costs the round
                // trip it costs on a real network before a byte can leave.
                // (At most a round trip: longer means the SYN waited in a
                // held cut, which is not the path's latency.)
                let one_way = handshake
                    .elapsed()
                    .min(self.switchboard.settings.round_trip.to_std());
                tokio::time::sleep(one_way).await;
                let local = named(stream.local_addr()?);
                let peer = named(stream.peer_addr()?);
                let name = format!("{local}>{peer}");
                self.trace.record(Event::Connect {
                    conn: name.clone(),
                    reconnect: attempt == Attempt::Retry,
                    client,
                });
                let path = self.switchboard.path(
                    &name,
                    (self.trace.host().to_string(), host_of(&peer).to_string()),
                );
                // The handshake's round trip: the RTO's first measure.
                path.set_rtt(one_way * 2);
                Ok(
                    Conn::new(stream, name, Dir::Up, self.trace.clone(), self.loss.clone())
                        .on_path(path)
                        .with_keepalive(self.keepalive.map(Span::to_std)),
                )
            }
            Err(e) => Err(self.connect_failed(&target, e.kind(), attempt)),
        }
    }

    fn connect_failed(&self, target: &str, kind: io::ErrorKind, attempt: Attempt) -> io::Error {
        self.trace.record(Event::ConnectFailed {
            target: target.to_string(),
            reason: kind.to_string(),
            retry: attempt == Attempt::Retry,
        });
        // turmoil's message is a bare IP address; name the host.
        io::Error::new(kind, format!("cannot connect to {target}: {kind}"))
    }

    /// Waits for the next connection on `listener`, recording it.
    pub async fn accept(&self, listener: &TcpListener) -> io::Result<TcpConn> {
        let (stream, peer) = listener.accept().await?;
        let peer = named(peer);
        let name = format!("{peer}>{}", named(stream.local_addr()?));
        self.trace.record(Event::Accept { conn: name.clone() });
        let path = self.switchboard.path(
            &name,
            (host_of(&peer).to_string(), self.trace.host().to_string()),
        );
        Ok(Conn::new(
            stream,
            name,
            Dir::Down,
            self.trace.clone(),
            self.loss.clone(),
        )
        .on_path(path))
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
