//! What each host's software runs with: the server's context and each
//! client's. Built by the run, handed to the mechanisms.

use crate::record::trace::Event;
use crate::scenario::{Scenario, Span};
use crate::world::broker::Feed;
use crate::world::clock::sleep;
use crate::world::conn::Attempt;
use crate::world::event_log::{EventLog, PostTimes, Publications};
use crate::world::network::{HostNet, SERVER_PORT, TcpConn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// What the server side of a mechanism gets.
#[derive(Clone)]
pub struct ServerCtx {
    pub net: HostNet,
    pub log: EventLog,
    pub scenario: Rc<Scenario>,
    /// When chat posts were made (for latency only).
    pub post_times: PostTimes,
    /// This server's host name (`server`, or `server-2` of several).
    pub name: String,
    /// With several servers, or a broker: what this server has heard, the
    /// messages its members may be sent live. `None`: everything in the log.
    pub feed: Option<Feed>,
    /// Whether a broker runs (`broker = true`).
    pub broker: bool,
    /// The server's database: what it keeps across a crash and restart.
    pub store: Store,
}

/// A store beside a host, outside its process: what a database or a
/// durable queue keeps across the host's crash and restart (the process's
/// own memory does not survive it). One typed value per name.
#[derive(Clone, Default)]
pub struct Store(Rc<RefCell<std::collections::HashMap<&'static str, Rc<dyn std::any::Any>>>>);

impl Store {
    /// The value kept under `name`, made with `T::default()` the first time.
    pub fn slot<T: Default + 'static>(&self, name: &'static str) -> Rc<T> {
        let value = self
            .0
            .borrow_mut()
            .entry(name)
            .or_insert_with(|| Rc::new(T::default()))
            .clone();
        value
            .downcast::<T>()
            .unwrap_or_else(|_| panic!("store slot {name:?} holds another type"))
    }
}

/// What one client gets: its number, its host's network, its own seeded RNG.
pub struct ClientCtx {
    pub id: u32,
    pub net: HostNet,
    pub scenario: Rc<Scenario>,
    /// The host the client talks to (the server, or the proxy before it).
    pub upstream: String,
    pub join_after: Duration,
    pub rng: RefCell<ChaCha8Rng>,
    /// When each event was published, only to stamp each delivery with its
    /// latency in the trace (measured here, once).
    pub publications: Publications,
    /// Where this client notes when its user posts (for latency only).
    pub post_times: PostTimes,
    /// Its host's store, kept across the host's crash and restart.
    pub store: Store,
}

impl ClientCtx {
    /// Clients join at different moments, like people opening a page; the
    /// moment is drawn from the seed within `workload.join_spread`.
    pub async fn wait_to_join(&self) {
        sleep(self.join_after).await;
    }

    /// Hands event `id` to the client's application: the moment that counts
    /// for delivery latency, measured here once, from the event's
    /// publication or from the moment the client joined, whichever is later
    /// (a page opened at 10 s that shows an event of 5 s has not made anyone
    /// wait 5 s for it).
    pub fn deliver(&self, id: u64) {
        let now = turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64;
        let joined = self.join_after.as_micros() as u64;
        let published = self.publications.of(id).unwrap_or(now).max(joined);
        self.net.trace.record(Event::Deliver {
            client: self.id,
            event: id,
            latency_us: now.saturating_sub(published),
        });
    }

    /// Opens a connection to the host this client talks to.
    pub async fn connect(&self, attempt: Attempt) -> std::io::Result<TcpConn> {
        self.net
            .connect_for(Some(self.id), &self.upstream, SERVER_PORT, attempt)
            .await
    }

    /// Records why a request or a connection failed, for the trace.
    pub fn report_error(&self, what: String) {
        self.net.trace.record(Event::Error {
            client: self.id,
            what,
        });
    }

    /// Exponential backoff with jitter: after the n-th failure in a row, wait
    /// between half and all of `initial * 2^(n-1)` (capped at `max`). The
    /// jitter keeps clients that failed together from retrying together.
    pub fn backoff(&self, failures: u32, initial: Span, max: Span) -> Duration {
        let doubled = initial
            .as_micros()
            .saturating_mul(1u64 << failures.saturating_sub(1).min(30));
        let ceiling = doubled.min(max.as_micros()).max(1);
        let wait = self.rng.borrow_mut().random_range(ceiling / 2..=ceiling);
        Duration::from_micros(wait)
    }
}
