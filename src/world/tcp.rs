//! What a kernel's TCP does for a connection that turmoil does not: turmoil
//! moves each write to the peer after the network's latency, and can hold,
//! partition or crash hosts, but it never retransmits, never gives up, and
//! knows no middlebox. This module is the approximation pushpull adds, from
//! the RFCs and Linux's defaults:
//!
//! - **Retransmission** (RFC 6298). A write that does not get through (the
//!   path is cut, a middlebox forgot the connection, `network.loss` struck)
//!   is sent again after the retransmission timeout (RTO), which doubles
//!   each time, from at least 200 ms (Linux's `TCP_RTO_MIN`) to at most
//!   120 s (`TCP_RTO_MAX`). The first RTO comes from the handshake's round
//!   trip R: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR (RFC 6298 section
//!   2.2). So a cut delays data until the sender's *next* retransmission
//!   after the heal, not the heal itself.
//! - **Giving up.** Data unacknowledged longer than
//!   `network.tcp_retransmit_timeout` (Linux's `tcp_retries2 = 15`: about
//!   924.6 s with a 200 ms RTO) aborts the connection on the sending side:
//!   "connection timed out". The other side learns nothing until it sends.
//! - **Connecting** costs a round trip (turmoil's SYN, SYN-ACK). Across a cut
//!   the SYN is retransmitted after 1, 3, 7, 15, 31 and 63 s (Linux's
//!   `tcp_syn_retries = 6`) and `connect` fails with "connection timed out"
//!   at 127 s, unless the caller's own timeout ends it first.
//! - **Keep-alive** (optional, `network.tcp_keepalive`): after that much
//!   silence a client's kernel probes the connection, then every interval
//!   again; 9 unanswered probes (Linux's `tcp_keepalive_probes`) abort it.
//!   Chromium turns it on for its sockets with 45 s and 45 s, so a browser
//!   finds a dead, silent stream after 45 + 9 x 45 = 450 s.
//! - **Flow control.** A reader that does not read fills the socket buffers
//!   between the two ends (its receive buffer, the writer's send buffer:
//!   `network.socket_buffer_kib`, 256 KiB by default, about Linux's
//!   default `tcp_rmem` of 128 KiB plus a send buffer autotuned to the
//!   same); then the writer waits until the reader makes room. A server
//!   that keeps producing for a slow client must queue the rest itself, or
//!   drop the client.
//! - **Middleboxes.** A `forget` cut is a NAT or load balancer that loses its
//!   table: after the heal, packets of connections from before the cut
//!   vanish (as cloud NATs and stateful firewalls drop packets of flows
//!   they have no state for; no RST, so neither end is told), while new
//!   connections work. `network.nat_idle_timeout`
//!   does the same to any connection idle longer than it.
//!
//! What it leaves out: acknowledgements are not messages (a write that got
//! through is known to have got through), so a lost ACK never causes a
//! spurious retransmission; there is no congestion window, no fast
//! retransmit, no reordering; later writes wait behind an unacknowledged one
//! (as in TCP), but the writer waits too, where a real `write()` returns as
//! soon as the socket buffer has room; a message in flight when a cut
//! begins, and a FIN sent during one, wait at the cut (turmoil holds them)
//! and arrive at the heal; SYNs and FINs are never lost to `network.loss`.
//! A connection the kernel aborted, or one on a forgotten path, ends
//! without a word to the peer: its stream is kept, silent, until the run
//! ends.

use crate::scenario::{CutKind, Span};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Linux's `TCP_RTO_MIN`.
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// Linux's `TCP_RTO_MAX`.
pub const RTO_MAX: Duration = Duration::from_secs(120);
/// When a SYN is retransmitted, counted from the first (Linux: initial RTO
/// 1 s, doubling, `tcp_syn_retries = 6`), and when connecting gives up.
pub const SYN_RETRANSMITS_AT: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(7),
    Duration::from_secs(15),
    Duration::from_secs(31),
    Duration::from_secs(63),
];
pub const SYN_GIVES_UP_AT: Duration = Duration::from_secs(127);
/// Linux's `tcp_keepalive_probes`.
pub const KEEPALIVE_PROBES: u32 = 9;

/// The first retransmission timeout for a path whose handshake took `rtt`
/// (RFC 6298 section 2.2, clamped as Linux does).
pub fn initial_rto(rtt: Duration) -> Duration {
    let srtt = rtt;
    let rttvar = rtt / 2;
    (srtt + 4 * rttvar).clamp(RTO_MIN, RTO_MAX)
}

/// The RTO after one more timeout: doubled (RFC 6298 section 5.5), capped.
pub fn backed_off(rto: Duration) -> Duration {
    (rto * 2).min(RTO_MAX)
}

/// The network's dice for `network.loss`, shared by every connection of a host
/// and seeded from the scenario, so the same seed loses the same messages.
#[derive(Clone)]
pub struct Loss {
    pub probability: f64,
    pub rng: Rc<RefCell<ChaCha8Rng>>,
}

impl Loss {
    pub fn none() -> Loss {
        use rand::SeedableRng;
        Loss {
            probability: 0.0,
            rng: Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(0))),
        }
    }

    pub fn strikes(&self) -> bool {
        // Drawing only when loss is on keeps lossless runs independent of it.
        self.probability > 0.0 && self.rng.borrow_mut().random_bool(self.probability)
    }
}

/// The kernel's settings, from the scenario's `[network]`.
#[derive(Clone, Debug)]
pub struct TcpSettings {
    /// The network's round trip without jitter: what a refused connect
    /// costs (SYN out, RST back).
    pub round_trip: Span,
    pub retransmit_timeout: Span,
    pub keepalive: Option<Span>,
    pub nat_idle_timeout: Option<Span>,
    /// Bytes one end may have written that the other's application has not
    /// read yet: the receiver's buffer plus the sender's. Past it, a writer
    /// waits for the reader (flow control). `None`: no limit.
    pub window: Option<usize>,
}

impl Default for TcpSettings {
    fn default() -> Self {
        TcpSettings {
            round_trip: Span::ZERO,
            retransmit_timeout: Span::from_millis(924_600),
            keepalive: None,
            nat_idle_timeout: None,
            window: None,
        }
    }
}

/// Which hosts are cut off now, and how: what the run loop sets and every
/// transmission looks at.
#[derive(Default)]
pub struct Cuts {
    hosts: RefCell<BTreeMap<String, CutKind>>,
    /// Streams whose end went without a word to the peer (aborted by the
    /// kernel, or on a forgotten path): kept until the run ends, because
    /// dropping one would send turmoil's FIN.
    graveyard: RefCell<Vec<Box<dyn std::any::Any>>>,
}

impl Cuts {
    pub fn start(&self, hosts: &[String], how: CutKind) {
        let mut cut = self.hosts.borrow_mut();
        for h in hosts {
            cut.insert(h.clone(), how);
        }
    }

    pub fn end(&self, hosts: &[String]) {
        let mut cut = self.hosts.borrow_mut();
        for h in hosts {
            cut.remove(h);
        }
    }

    /// Drops the buried streams (at the end of a run, when no more packets
    /// will be delivered).
    pub fn clear_graveyard(&self) {
        self.graveyard.borrow_mut().clear();
    }

    /// Whether `host` is cut off in any way, a held cut included: what a
    /// SYN meets (a connect retransmits it rather than queue it).
    pub fn holds_off(&self, host: &str) -> bool {
        self.hosts.borrow().contains_key(host)
    }

    /// Whether packets from or to `host` get through. A `hold` cut lets them
    /// in: turmoil keeps them until the heal, as a router's queue would.
    pub fn passes(&self, host: &str) -> bool {
        !matches!(
            self.hosts.borrow().get(host),
            Some(CutKind::Silent | CutKind::Reset | CutKind::Forget)
        )
    }
}

/// The links between hosts, when they have a finite bandwidth: a message
/// takes its serialization time (its bits over the link's bits per second)
/// before it leaves, after whatever the link is still sending. One link per
/// direction per pair of hosts, shared by every connection between them.
#[derive(Default)]
pub struct Wires {
    pub bits_per_second: Option<u64>,
    busy_until: RefCell<BTreeMap<(String, String), tokio::time::Instant>>,
}

impl Wires {
    pub fn new(bits_per_second: Option<u64>) -> Wires {
        Wires {
            bits_per_second,
            busy_until: RefCell::default(),
        }
    }

    /// When `bytes` sent from `from` to `to` now will have left, after the
    /// link's backlog and their own serialization time (booking the link
    /// until then); `None` on an unlimited link: at once.
    pub fn leaves_at(&self, from: &str, to: &str, bytes: usize) -> Option<tokio::time::Instant> {
        let bps = self.bits_per_second?;
        let now = tokio::time::Instant::now();
        let serialization = Duration::from_secs_f64(bytes as f64 * 8.0 / bps as f64);
        let mut busy = self.busy_until.borrow_mut();
        let link = busy
            .entry((from.to_string(), to.to_string()))
            .or_insert(now);
        let done = (*link).max(now) + serialization;
        *link = done;
        Some(done)
    }
}

/// One connection's path through the network, shared by its two ends: the
/// state a middlebox keeps about it, the handshake's round trip, and the
/// switch through which a reset reaches both ends.
pub struct Path {
    /// The hosts at its two ends (opener, acceptor).
    pub ends: (String, String),
    cuts: Rc<Cuts>,
    wires: Rc<Wires>,
    settings: Rc<TcpSettings>,
    /// A middlebox on the path has forgotten this connection.
    forgotten: Cell<bool>,
    /// When a packet last crossed, in microseconds (for NAT idle timeouts).
    last_crossed_us: Cell<u64>,
    /// The handshake's round trip, once known.
    rtt: Cell<Option<Duration>>,
    reset: Cell<bool>,
    /// The count of open connections its opener's host holds (one port
    /// each), given back when the path goes.
    opener_ports: Option<Rc<Cell<u32>>>,
    /// The tasks blocked reading either end, to wake when it is reset. (A
    /// plain waker slot: `Notify` costs more on every read, and every read
    /// of every connection pays it.)
    readers: [RefCell<Option<std::task::Waker>>; 2],
    /// Per end (0: the opener's), bytes it wrote that the other end has not
    /// read yet, and its writer waiting for room.
    unread: [Cell<usize>; 2],
    writers: [RefCell<Option<std::task::Waker>>; 2],
}

impl Path {
    pub fn new(
        ends: (String, String),
        cuts: Rc<Cuts>,
        wires: Rc<Wires>,
        settings: Rc<TcpSettings>,
        now_us: u64,
    ) -> Path {
        Path {
            ends,
            cuts,
            wires,
            settings,
            forgotten: Cell::new(false),
            last_crossed_us: Cell::new(now_us),
            rtt: Cell::new(None),
            reset: Cell::new(false),
            opener_ports: None,
            readers: Default::default(),
            unread: Default::default(),
            writers: Default::default(),
        }
    }

    /// Waits until end `index` may write `bytes` more: while the reader's
    /// unread bytes fill the window, a writer waits (a blocking `write()`
    /// blocks; an event loop queues in user space). A message larger than
    /// the window goes when nothing is unread, so nothing waits forever.
    pub async fn room_for(&self, index: usize, bytes: usize) {
        let Some(window) = self.settings.window else {
            return;
        };
        std::future::poll_fn(|cx| {
            let unread = self.unread[index].get();
            if unread == 0 || unread + bytes <= window || self.reset.get() {
                return std::task::Poll::Ready(());
            }
            *self.writers[index].borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// End `index` wrote `bytes`.
    pub fn wrote(&self, index: usize, bytes: usize) {
        if self.settings.window.is_some() {
            let unread = &self.unread[index];
            unread.set(unread.get() + bytes);
        }
    }

    /// End `index` read `bytes` the other end wrote: room for its writer.
    pub fn read(&self, index: usize, bytes: usize) {
        if self.settings.window.is_some() && bytes > 0 {
            let unread = &self.unread[1 - index];
            unread.set(unread.get().saturating_sub(bytes));
            if let Some(waker) = self.writers[1 - index].borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// Counts this path against its opener's ports until it goes.
    pub fn holding_port(mut self, ports: Rc<Cell<u32>>) -> Path {
        ports.set(ports.get() + 1);
        self.opener_ports = Some(ports);
        self
    }

    /// Whether a packet sent now gets through: neither end is cut off, and
    /// no middlebox has forgotten the connection (or forgets it now, for
    /// having been idle too long).
    pub fn passes(&self, now_us: impl Fn() -> u64) -> bool {
        if let Some(idle) = self.settings.nat_idle_timeout
            && now_us().saturating_sub(self.last_crossed_us.get()) > idle.as_micros()
        {
            self.forgotten.set(true);
        }
        !self.forgotten.get() && self.cuts.passes(&self.ends.0) && self.cuts.passes(&self.ends.1)
    }

    /// A packet crossed now. (Only a NAT's idle timer needs to know when:
    /// the clock is read only then, every message pays for it otherwise.)
    pub fn crossed(&self, now_us: impl Fn() -> u64) {
        if self.settings.nat_idle_timeout.is_some() {
            self.last_crossed_us.set(now_us());
        }
    }

    pub fn forget(&self) {
        self.forgotten.set(true);
    }

    pub fn is_forgotten(&self) -> bool {
        self.forgotten.get()
    }

    /// Keeps a stream whose end went silently until the run ends.
    pub fn bury(&self, stream: Box<dyn std::any::Any>) {
        self.cuts.graveyard.borrow_mut().push(stream);
    }

    pub fn set_rtt(&self, rtt: Duration) {
        self.rtt.set(Some(rtt));
    }

    /// The first RTO for a write on this path.
    pub fn rto(&self) -> Duration {
        // Before any round trip is measured, RFC 6298's initial 1 s.
        self.rtt.get().map_or(Duration::from_secs(1), initial_rto)
    }

    /// When `bytes` sent now from end `from_opener` (the opener's side, or
    /// the acceptor's) will have left, on a link of finite bandwidth.
    pub fn leaves_at(&self, from_opener: bool, bytes: usize) -> Option<tokio::time::Instant> {
        let (from, to) = if from_opener {
            (&self.ends.0, &self.ends.1)
        } else {
            (&self.ends.1, &self.ends.0)
        };
        self.wires.leaves_at(from, to, bytes)
    }

    pub fn settings(&self) -> &TcpSettings {
        &self.settings
    }

    pub fn reset(&self) {
        self.reset.set(true);
        for slot in self.readers.iter().chain(&self.writers) {
            if let Some(waker) = slot.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    pub fn is_reset(&self) -> bool {
        self.reset.get()
    }

    /// Wakes the reader of end `index` (0: the opener's) at a reset.
    pub fn register_reader(&self, index: usize, waker: &std::task::Waker) {
        let mut slot = self.readers[index].borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        if let Some(ports) = &self.opener_ports {
            ports.set(ports.get().saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_follows_rfc_6298_with_linux_bounds() {
        // R = 80 ms: 80 + 4 x 40 = 240 ms.
        assert_eq!(
            initial_rto(Duration::from_millis(80)),
            Duration::from_millis(240)
        );
        // A LAN's 1 ms round trip: Linux's floor.
        assert_eq!(initial_rto(Duration::from_millis(1)), RTO_MIN);
        // Doubling, capped at 120 s: from the 200 ms floor, 15 retransmissions
        // and the wait after the last are Linux's 924.6 s (tcp_retries2 = 15),
        // the default of network.tcp_retransmit_timeout.
        let mut rto = RTO_MIN;
        let mut total = Duration::ZERO;
        for _ in 0..16 {
            total += rto;
            rto = backed_off(rto);
        }
        assert_eq!(rto, RTO_MAX);
        assert_eq!(total, Duration::from_millis(924_600));
        assert_eq!(TcpSettings::default().retransmit_timeout.to_std(), total);
    }

    #[test]
    fn a_forgotten_or_cut_path_drops_packets_a_held_one_passes() {
        let cuts = Rc::new(Cuts::default());
        let settings = Rc::new(TcpSettings {
            nat_idle_timeout: Some(Span::from_secs(30)),
            ..TcpSettings::default()
        });
        let path = Path::new(
            ("client-1".into(), "server".into()),
            cuts.clone(),
            Default::default(),
            settings,
            0,
        );
        assert!(path.passes(|| 1_000_000));
        cuts.start(&["client-1".into()], CutKind::Hold);
        assert!(
            path.passes(|| 2_000_000),
            "held packets are turmoil's to keep"
        );
        cuts.end(&["client-1".into()]);
        cuts.start(&["client-1".into()], CutKind::Silent);
        assert!(!path.passes(|| 3_000_000));
        cuts.end(&["client-1".into()]);
        path.crossed(|| 3_000_000);
        assert!(path.passes(|| 30_000_000));
        assert!(!path.passes(|| 34_000_000), "idle 31 s: the NAT forgot it");
        assert!(!path.passes(|| 35_000_000), "and it stays forgotten");
    }
}
