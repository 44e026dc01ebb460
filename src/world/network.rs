//! Opening and accepting traced connections on turmoil's simulated TCP, and
//! the switchboard through which the network's faults reach them: cuts that
//! stop packets, resets, middleboxes that forget. What TCP does about it is
//! in `tcp.rs`.
//!
//! Nothing here is specific to a mechanism; the mechanism modules are where
//! the lesson is.

use crate::record::trace::{Dir, Event, HostTrace};
use crate::scenario::{CutKind, MAX_CONNECTIONS_PER_HOST, Server, Span};
use crate::world::clock::{Instant, sleep, sleep_until, spawn_local, timeout};
use crate::world::conn::{Attempt, Conn};
use crate::world::tcp::{
    Cuts, Loss, Path, SYN_GIVES_UP_AT, SYN_RETRANSMITS_AT, TcpSettings, Wires,
};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
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
    /// The accept queue and connection count of each host listening with
    /// a limit (`server.max_connections`), by host name.
    admissions: Rc<RefCell<HashMap<String, Rc<Admission>>>>,
}

/// A listening socket's kernel side, for a process with a connection
/// limit: the accept queue (completed handshakes the process has not yet
/// accepted) and the connections the process holds.
///
/// Linux completes a handshake without the process and queues it for
/// `accept(2)`; the queue holds up to the `listen(2)` backlog. When it is
/// full, a new SYN is dropped (the `ListenOverflows` counter) and the
/// client retransmits it on its schedule, or, with
/// `net.ipv4.tcp_abort_on_overflow = 1`, answered with RST.
/// A process at its limit (a file-descriptor limit, nginx's
/// `worker_connections`) stops accepting until one of its connections
/// closes, so the queue fills.
pub struct Admission {
    limits: Server,
    /// Handshakes admitted to the queue and not yet accepted (a SYN on its
    /// way counts from the moment it is let in).
    queued: Cell<u32>,
    /// Connections the process has accepted and not yet closed.
    open: Cell<u32>,
    /// Streams whose handshake completed, waiting for `accept`.
    ready: RefCell<VecDeque<(TcpStream, SocketAddr)>>,
    /// Wakes the process's `accept`: a handshake completed or a connection
    /// closed.
    changed: tokio::sync::Notify,
}

/// What the listening kernel does with a SYN.
enum Admit {
    /// Let in: the handshake completes and waits in the accept queue.
    Queued(QueueSlot),
    /// The queue is full: the SYN is dropped (the client will retransmit).
    Dropped,
    /// The queue is full and `abort_on_overflow` is on: RST.
    Refused,
}

/// A place in the accept queue held by a SYN on its way; given back if
/// the connect fails before the handshake completes.
struct QueueSlot(Option<Rc<Admission>>);

impl QueueSlot {
    /// The handshake completed: the place is the connection's until the
    /// process accepts it.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        if let Some(admission) = self.0.take() {
            admission
                .queued
                .set(admission.queued.get().saturating_sub(1));
        }
    }
}

/// One of the process's connections, counted until it is dropped (its
/// file descriptor closed).
pub struct ConnSlot(Rc<Admission>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
        self.0.changed.notify_one();
    }
}

impl Admission {
    fn admit(self: &Rc<Self>) -> Admit {
        // Linux's `sk_acceptq_is_full`: more than `backlog` waiting.
        if self.queued.get() > self.limits.backlog {
            if self.limits.abort_on_overflow {
                Admit::Refused
            } else {
                Admit::Dropped
            }
        } else {
            self.queued.set(self.queued.get() + 1);
            Admit::Queued(QueueSlot(Some(self.clone())))
        }
    }
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

    /// The accept queue of `host`'s listening socket, if it has limits.
    fn admission(&self, host: &str) -> Option<Rc<Admission>> {
        self.admissions.borrow().get(host).cloned()
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
        let queue_slot = loop {
            if self.switchboard.syn_passes(self.trace.host()) && self.switchboard.syn_passes(host) {
                if self.switchboard.crashed.borrow().contains(host) {
                    // Nothing listens on the port of a crashed process, but
                    // the host's kernel is alive: it answers the SYN with
                    // RST, one round trip after it left (turmoil itself
                    // would leave the SYN unanswered until the restart).
                    sleep(self.switchboard.settings.round_trip.to_std()).await;
                    return Err(self.connect_failed(
                        &target,
                        io::ErrorKind::ConnectionRefused,
                        attempt,
                    ));
                }
                match self.switchboard.admission(host).map(|a| a.admit()) {
                    None => break None,
                    Some(Admit::Queued(slot)) => break Some(slot),
                    Some(Admit::Refused) => {
                        sleep(self.switchboard.settings.round_trip.to_std()).await;
                        return Err(self.connect_failed(
                            &target,
                            io::ErrorKind::ConnectionRefused,
                            attempt,
                        ));
                    }
                    // A full accept queue drops the SYN, as a cut does.
                    Some(Admit::Dropped) => {}
                }
            }
            match syn_retransmits.next() {
                Some(at) => {
                    sleep_until(started + *at).await;
                    let n = SYN_RETRANSMITS_AT.len() - syn_retransmits.len();
                    self.trace.record(Event::SynRetransmit {
                        target: target.clone(),
                        attempt: n as u32,
                    });
                }
                None => {
                    sleep_until(started + SYN_GIVES_UP_AT).await;
                    return Err(self.connect_failed(&target, io::ErrorKind::TimedOut, attempt));
                }
            }
        };
        let handshake = Instant::now();
        match TcpStream::connect((host, port)).await {
            Ok(stream) => {
                if let Some(slot) = queue_slot {
                    slot.keep();
                }
                // turmoil answers the SYN the moment it arrives; the SYN-ACK's
                // trip back takes as long again, so a connect costs the round
                // trip it costs on a real network before a byte can leave.
                // (At most a round trip: longer means the SYN waited in a
                // held cut, which is not the path's latency.)
                let one_way = handshake
                    .elapsed()
                    .min(self.switchboard.settings.round_trip.to_std());
                sleep(one_way).await;
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

    /// Listens on `port`. With a connection limit (`server.max_connections`),
    /// the kernel's accept queue and the limit stand in front of `accept`;
    /// without (`None`, or a limit of 0), the process accepts every
    /// connection at once.
    pub async fn listen(&self, port: u16, limits: Option<&Server>) -> io::Result<Listener> {
        let socket = TcpListener::bind(("0.0.0.0", port)).await?;
        let Some(limits) = limits.filter(|l| l.max_connections > 0).cloned() else {
            return Ok(Listener::Unlimited(socket));
        };
        let admission = Rc::new(Admission {
            limits,
            queued: Cell::new(0),
            open: Cell::new(0),
            ready: RefCell::new(VecDeque::new()),
            changed: tokio::sync::Notify::new(),
        });
        self.switchboard
            .admissions
            .borrow_mut()
            .insert(self.trace.host().to_string(), admission.clone());
        // The kernel's half: turmoil completes a handshake only when
        // `accept` is called, so this task calls it for every SYN let in
        // and queues the result for the process.
        let queue = admission.clone();
        let kernel = spawn_local(async move {
            while let Ok(accepted) = socket.accept().await {
                queue.ready.borrow_mut().push_back(accepted);
                queue.changed.notify_one();
            }
        });
        Ok(Listener::Limited {
            admission,
            kernel: kernel.abort_handle(),
        })
    }

    /// Waits for the next connection on `listener`, recording it. A process
    /// at its connection limit waits here until one of its connections
    /// closes, while new ones wait in the accept queue.
    pub async fn accept(&self, listener: &Listener) -> io::Result<TcpConn> {
        let (admission, _) = match listener {
            Listener::Unlimited(socket) => {
                let (stream, peer) = socket.accept().await?;
                return self.accepted(stream, peer, None);
            }
            Listener::Limited { admission, kernel } => (admission, kernel),
        };
        loop {
            let max = admission.limits.max_connections;
            if max == 0 || admission.open.get() < max {
                let next = admission.ready.borrow_mut().pop_front();
                if let Some((stream, peer)) = next {
                    admission
                        .queued
                        .set(admission.queued.get().saturating_sub(1));
                    admission.open.set(admission.open.get() + 1);
                    return self.accepted(stream, peer, Some(ConnSlot(admission.clone())));
                }
            }
            admission.changed.notified().await;
        }
    }

    fn accepted(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Option<ConnSlot>,
    ) -> io::Result<TcpConn> {
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
        .on_path(path)
        .holding(slot))
    }
}

/// A listening socket (`HostNet::listen`).
pub enum Listener {
    Unlimited(TcpListener),
    Limited {
        admission: Rc<Admission>,
        /// The task completing handshakes; it ends with the listener.
        kernel: tokio::task::AbortHandle,
    },
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Limited { kernel, .. } = self {
            kernel.abort();
        }
    }
}

/// Runs `f` under a timeout of `limit`, or without one when it is `None`
/// ("off"); `None` if it ran out.
pub async fn within<T>(limit: Option<Span>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match limit {
        None => Some(f.await),
        Some(limit) => timeout(limit.to_std(), f).await.ok(),
    }
}

/// Sleeps for `span`, or forever when it is `None` ("off").
pub async fn sleep_or_never(span: Option<Span>) {
    match span {
        None => std::future::pending::<()>().await,
        Some(span) => sleep(span.to_std()).await,
    }
}
