//! The report: the numbers of one run, computed from its trace and nothing
//! else (the scenario is only echoed back, so a report says what it is of).
//!
//! `Metrics` watches the trace records go by (so a ten-minute run with a
//! million messages never holds them all in memory); `Report` is what is left
//! at the end, printed as an aligned table or as JSON with fixed field names.

use crate::record::trace::{Dir, Event, Kind, Observer, Record, Role};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Running totals over the trace. Which host plays which part comes from the
/// trace's `host` records; what a message is, from its `kind`.
#[derive(Default)]
pub struct Metrics {
    roles: BTreeMap<String, Role>,
    clients: u32,
    published: u64,
    /// Per client (index `id - 1`): which events it has delivered, and the
    /// highest so far.
    delivered_by_client: Vec<(Vec<bool>, u64)>,
    delivered: u64,
    duplicated: u64,
    out_of_order: u64,
    latencies_us: Vec<u64>,
    /// Chat posts made by users, and which of them reached the room (by
    /// client and post number: a post let in twice counts once more).
    posted: u64,
    posts_in: HashSet<(u32, u64)>,
    dead_lettered: u64,
    rejected: u64,
    /// (client, event) deliveries a webhook provider will try again.
    retry_pending: BTreeSet<(u32, u64)>,
    /// Clients that switched transport, and to which (the last switch).
    switched_to: BTreeMap<u32, String>,
    posts_doubled: u64,
    /// When each post not yet in the room was made, by (client, number),
    /// and how long each that got in took to reach the server.
    posted_at: HashMap<(u32, u64), u64>,
    latencies_up_us: Vec<u64>,
    requests: u64,
    empty_responses: u64,
    bytes_up: u64,
    bytes_down: u64,
    connections_opened: u64,
    reconnects: u64,
    retries: u64,
    resent: u64,
    retransmissions: u64,
    open_at_server: u64,
    peak_connections: u64,
    /// Requests each server connection has read and not finished
    /// answering (a held long poll, an open event stream).
    held_at_server: HashMap<String, u64>,
    held_requests: u64,
    peak_held_requests: u64,
    /// Bytes the server has sent and its peer not yet received, by
    /// message: what its kernel keeps in send buffers meanwhile.
    unreceived_from_server: HashMap<String, HashMap<(Dir, u32), u64>>,
    unreceived_bytes: u64,
    peak_server_memory: u64,
    /// Requests the server read, by whole second of the run.
    requests_at_server_by_second: BTreeMap<u64, u64>,
    requests_at_server: u64,
    connects_failed: u64,
    /// Answers sent with no event in them and not yet received, by
    /// `(conn, dir, seq)`: the sender says what a message carries, the
    /// receiver when it arrived.
    /// (Keyed by connection first, so that the receiving end looks its
    /// message up without copying the connection's name.)
    empty_in_flight: HashMap<String, BTreeSet<(Dir, u32)>>,
    /// Messages carrying events, sent and not yet received, by connection
    /// and `(dir, seq)`: their first event and how many.
    carrying_in_flight: HashMap<String, BTreeMap<(Dir, u32), Carrying>>,
    /// The host that opened each open connection.
    opened_by: HashMap<String, String>,
    /// Which client opened each connection.
    conn_client: HashMap<String, u32>,
    /// The proxy's pairs: the client connection each of its own
    /// connections to the server serves, and back.
    downstream_of: HashMap<String, String>,
    upstream_of: HashMap<String, String>,
    /// Events the proxy has received on a connection to the server and not
    /// yet passed on (a buffering proxy holds them).
    held_at_proxy: HashMap<String, BTreeSet<u64>>,
}

impl Observer for Metrics {
    fn observe(&mut self, r: &Record) {
        let role = self.roles.get(&r.host).copied();
        match &r.event {
            Event::Connect { conn, .. } => {
                self.opened_by.insert(conn.clone(), r.host.clone());
            }
            // Whatever was on its way to this end of the connection will
            // never be received now: it is not "in flight" any more.
            Event::Close { conn, .. } => {
                let toward_opener = self.opened_by.get(conn) == Some(&r.host);
                if toward_opener {
                    self.opened_by.remove(conn);
                }
                let incoming = if toward_opener { Dir::Down } else { Dir::Up };
                if let Some(messages) = self.carrying_in_flight.get_mut(conn.as_str()) {
                    messages.retain(|(dir, _), _| *dir != incoming);
                    if messages.is_empty() {
                        self.carrying_in_flight.remove(conn.as_str());
                    }
                }
                // A proxy closing a client's connection drops what it held
                // for it.
                if role == Some(Role::Proxy)
                    && let Some(up) = self.upstream_of.get(conn)
                {
                    self.held_at_proxy.remove(up);
                }
            }
            Event::Crash if role == Some(Role::Proxy) => self.held_at_proxy.clear(),
            _ => {}
        }
        match &r.event {
            Event::Host { role, clients } => {
                self.roles.insert(r.host.clone(), *role);
                self.clients += clients.len() as u32;
                let highest = clients.iter().copied().max().unwrap_or(0) as usize;
                if self.delivered_by_client.len() < highest {
                    self.delivered_by_client.resize(highest, (Vec::new(), 0));
                }
            }
            Event::Publish { from, message, .. } => {
                self.published += 1;
                if let (Some(client), Some(message)) = (from, message) {
                    if !self.posts_in.insert((*client, *message)) {
                        self.posts_doubled += 1;
                    } else if let Some(t) = self.posted_at.remove(&(*client, *message)) {
                        self.latencies_up_us.push(r.t_us.saturating_sub(t));
                    }
                }
            }
            Event::DeadLetter { client, event, .. } => {
                self.dead_lettered += 1;
                if let Some(client) = client {
                    self.retry_pending.remove(&(*client, *event));
                }
            }
            Event::RetryScheduled { client, event, .. } => {
                self.retry_pending.insert((*client, *event));
            }
            Event::Refused { .. } => self.rejected += 1,
            Event::Post { client, message } => {
                self.posted += 1;
                self.posted_at.insert((*client, *message), r.t_us);
            }
            Event::Transport {
                client, transport, ..
            } => {
                self.switched_to.insert(*client, transport.clone());
            }
            Event::Deliver {
                client,
                event,
                latency_us,
            } => {
                let Some((seen, highest)) = self
                    .delivered_by_client
                    .get_mut((*client as usize).wrapping_sub(1))
                else {
                    return;
                };
                let index = (*event as usize).saturating_sub(1);
                if seen.len() <= index {
                    seen.resize(index + 1, false);
                }
                if seen[index] {
                    self.duplicated += 1;
                    return;
                }
                seen[index] = true;
                self.delivered += 1;
                if *event < *highest {
                    self.out_of_order += 1;
                }
                *highest = (*highest).max(*event);
                self.latencies_us.push(*latency_us);
            }
            Event::Relay {
                downstream,
                upstream,
            } => {
                self.downstream_of
                    .insert(upstream.clone(), downstream.clone());
                self.upstream_of
                    .insert(downstream.clone(), upstream.clone());
            }
            Event::Send {
                conn,
                dir,
                seq,
                kind,
                bytes,
                events,
                first_event,
                retry,
                resent,
                ..
            } => {
                if *events == Some(0) {
                    entry_for(&mut self.empty_in_flight, conn).insert((*dir, *seq));
                }
                if let (Some(n), Some(first)) = (*events, *first_event)
                    && n > 0
                {
                    entry_for(&mut self.carrying_in_flight, conn).insert((*dir, *seq), (first, n));
                    // The proxy passing on what it held.
                    if role == Some(Role::Proxy)
                        && let Some(up) = self.upstream_of.get(conn)
                        && let Some(held) = self.held_at_proxy.get_mut(up)
                    {
                        for id in first..first + n as u64 {
                            held.remove(&id);
                        }
                    }
                }
                // A webhook provider's deliveries are requests too (the
                // ones carrying events: not a server's calls to its own
                // backends).
                if role == Some(Role::Server) && *kind == Kind::Request && events.is_some() {
                    self.requests += 1;
                    if *retry {
                        self.retries += 1;
                    }
                }
                if role == Some(Role::Client) {
                    if *kind == Kind::Request {
                        self.requests += 1;
                        if *retry {
                            self.retries += 1;
                        }
                        if *resent {
                            self.resent += 1;
                        }
                    }
                    self.bytes_up += bytes;
                }
            }
            Event::Recv {
                conn,
                dir,
                seq,
                bytes,
                ..
            } => {
                let key = (*dir, *seq);
                let was_empty = take_from(&mut self.empty_in_flight, conn, |set| set.remove(&key))
                    == Some(true);
                let carried = take_from(&mut self.carrying_in_flight, conn, |messages| {
                    messages.remove(&key)
                })
                .flatten();
                if let Some((first, n)) = carried
                    && role == Some(Role::Proxy)
                    && self.downstream_of.contains_key(conn)
                {
                    self.held_at_proxy
                        .entry(conn.clone())
                        .or_default()
                        .extend(first..first + n as u64);
                }
                if role == Some(Role::Client) {
                    self.bytes_down += bytes;
                    if was_empty {
                        self.empty_responses += 1;
                    }
                }
            }
            Event::Retransmit { .. } | Event::SynRetransmit { .. } => self.retransmissions += 1,
            // A retry whose connect failed is an attempt too: it sent no
            // request, so it is counted here.
            Event::ConnectFailed { retry: true, .. }
                if matches!(role, Some(Role::Client | Role::Server)) =>
            {
                self.retries += 1;
            }
            Event::Connect {
                conn,
                reconnect,
                client,
            } if role == Some(Role::Client) => {
                if let Some(client) = client {
                    self.conn_client.insert(conn.clone(), *client);
                }
                self.connections_opened += 1;
                if *reconnect {
                    self.reconnects += 1;
                }
            }
            Event::Accept { .. } if role == Some(Role::Server) => {
                self.open_at_server += 1;
                self.peak_connections = self.peak_connections.max(self.open_at_server);
            }
            Event::Close { .. } if role == Some(Role::Server) => {
                self.open_at_server = self.open_at_server.saturating_sub(1);
            }
            Event::Crash if role == Some(Role::Server) => {
                // A crashed process holds no connections any more.
                self.open_at_server = 0;
            }
            _ => {}
        }
        if role == Some(Role::Client) && matches!(r.event, Event::ConnectFailed { .. }) {
            self.connects_failed += 1;
        }
        if role == Some(Role::Server) || self.unreceived_bytes > 0 {
            self.observe_server_burden(r, role);
        }
    }
}

/// What a message in flight carries: its first event and how many.
type Carrying = (u64, u32);

/// The entry of `conn` in a map keyed by connection, copying the name only
/// when the connection is new to it.
fn entry_for<'a, T: Default>(map: &'a mut HashMap<String, T>, conn: &str) -> &'a mut T {
    if !map.contains_key(conn) {
        map.insert(conn.to_string(), T::default());
    }
    map.get_mut(conn).expect("just inserted")
}

/// Takes something out of `conn`'s entry, dropping the entry once it is
/// empty; `None` when the connection has no entry.
fn take_from<T: Emptiable, R>(
    map: &mut HashMap<String, T>,
    conn: &str,
    take: impl FnOnce(&mut T) -> R,
) -> Option<R> {
    let entry = map.get_mut(conn)?;
    let taken = take(entry);
    if entry.is_empty() {
        map.remove(conn);
    }
    Some(taken)
}

/// The sets and maps `take_from` works on.
trait Emptiable {
    fn is_empty(&self) -> bool;
}

impl<K> Emptiable for BTreeSet<K> {
    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
}

impl<K, V> Emptiable for BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

/// What the memory model charges a server (see `ServerMemory` in the
/// report): an nginx-like event-loop server on Linux.
pub mod memory_model {
    /// An open connection: the kernel's socket without queued data (about
    /// 2.3 KiB `tcp_sock` in the TCP slab, 0.7 KiB socket inode, file,
    /// dentry and epoll entry: `/proc/slabinfo`, Linux 6.1 x86_64), rounded
    /// to 4 KiB, plus nginx's `connection_pool_size` (512 B on 64-bit) and
    /// its `ngx_connection_t` with two events (about 0.5 KiB).
    pub const PER_CONNECTION: u64 = 5 * 1024;
    /// A request read and not yet fully answered (a held long poll, an
    /// open event stream): nginx's `request_pool_size` (4 KiB) and
    /// `client_header_buffer_size` (1 KiB).
    pub const PER_HELD_REQUEST: u64 = 5 * 1024;
}

impl Metrics {
    /// The server's burden: requests it holds, bytes waiting in its send
    /// buffers, requests per second, and the memory those cost.
    fn observe_server_burden(&mut self, r: &Record, role: Option<Role>) {
        let at_server = role == Some(Role::Server);
        match &r.event {
            Event::Recv {
                conn,
                kind,
                seq,
                dir,
                ..
            } => {
                if at_server && *kind == Kind::Request {
                    *self.held_at_server.entry(conn.clone()).or_default() += 1;
                    self.held_requests += 1;
                    self.peak_held_requests = self.peak_held_requests.max(self.held_requests);
                    self.requests_at_server += 1;
                    *self
                        .requests_at_server_by_second
                        .entry(r.t_us / 1_000_000)
                        .or_default() += 1;
                }
                if !at_server
                    && let Some(sent) = self.unreceived_from_server.get_mut(conn)
                    && let Some(bytes) = sent.remove(&(*dir, *seq))
                {
                    self.unreceived_bytes -= bytes;
                }
            }
            Event::Send {
                conn,
                dir,
                kind,
                seq,
                bytes,
                ..
            } if at_server => {
                if matches!(kind, Kind::Response | Kind::StreamEnd)
                    && let Some(held) = self.held_at_server.get_mut(conn)
                    && *held > 0
                {
                    *held -= 1;
                    self.held_requests -= 1;
                }
                // Only what goes down to the server's peers: a request it
                // sends (a webhook) is in flight the same way.
                entry_for(&mut self.unreceived_from_server, conn).insert((*dir, *seq), *bytes);
                self.unreceived_bytes += bytes;
            }
            Event::Close { conn, .. } => {
                // Whichever end closes, nothing more will be received on it.
                if at_server && let Some(held) = self.held_at_server.remove(conn) {
                    self.held_requests -= held;
                }
                if let Some(sent) = self.unreceived_from_server.remove(conn) {
                    self.unreceived_bytes -= sent.values().sum::<u64>();
                }
            }
            Event::Crash if at_server => {
                self.held_at_server.clear();
                self.held_requests = 0;
            }
            _ => {}
        }
        let memory = self.open_at_server * memory_model::PER_CONNECTION
            + self.held_requests * memory_model::PER_HELD_REQUEST
            + self.unreceived_bytes;
        self.peak_server_memory = self.peak_server_memory.max(memory);
    }
}

impl Metrics {
    /// The client a connection serves: the one that opened it, or, for the
    /// proxy's connection to the server, the client of its pair.
    fn client_of(&self, conn: &str) -> Option<u32> {
        let conn = self.downstream_of.get(conn).map_or(conn, String::as_str);
        self.conn_client.get(conn).copied()
    }

    fn was_delivered(&self, client: u32, event: u64) -> bool {
        self.delivered_by_client
            .get((client as usize).wrapping_sub(1))
            .and_then(|(seen, _)| seen.get((event as usize).wrapping_sub(1)))
            .copied()
            .unwrap_or(false)
    }

    /// (client, event) pairs not delivered when the run ended but on their
    /// way: in flight (sent, not yet received; TCP may still be
    /// retransmitting), and held by a proxy.
    fn undelivered_at_end(&self) -> (u64, u64) {
        let mut in_flight = BTreeSet::new();
        for (conn, messages) in &self.carrying_in_flight {
            let Some(client) = self.client_of(conn) else {
                continue;
            };
            for (first, n) in messages.values() {
                for id in *first..*first + *n as u64 {
                    if !self.was_delivered(client, id) {
                        in_flight.insert((client, id));
                    }
                }
            }
        }
        // A webhook still due another attempt is on its way too.
        for &(client, id) in &self.retry_pending {
            if !self.was_delivered(client, id) {
                in_flight.insert((client, id));
            }
        }
        let mut held = BTreeSet::new();
        for (upstream, ids) in &self.held_at_proxy {
            if let Some(client) = self.client_of(upstream) {
                for &id in ids {
                    if !self.was_delivered(client, id) && !in_flight.contains(&(client, id)) {
                        held.insert((client, id));
                    }
                }
            }
        }
        (in_flight.len() as u64, held.len() as u64)
    }

    pub fn into_report(mut self, scenario: &Scenario, trace_hash: String) -> Report {
        self.latencies_us.sort_unstable();
        let latency_ms = LatencyMs::from_sorted_micros(&self.latencies_us);
        self.latencies_up_us.sort_unstable();
        let latency_up_ms = LatencyMs::from_sorted_micros(&self.latencies_up_us);
        let expected = self.published * self.clients as u64;
        let (in_flight_at_end, held_by_proxy_at_end) = self.undelivered_at_end();
        Report {
            mechanism: scenario.mechanism.name().to_string(),
            seed: scenario.seed,
            scenario: serde_json::to_value(scenario).expect("a Scenario always serializes"),
            trace_hash,
            clients: self.clients,
            published: self.published,
            delivered: self.delivered,
            lost: expected
                .saturating_sub(self.delivered)
                .saturating_sub(in_flight_at_end + held_by_proxy_at_end),
            in_flight_at_end,
            held_by_proxy_at_end,
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            latency_ms,
            posted: self.posted,
            messages_up: self.posts_in.len() as u64,
            latency_up_ms,
            posts_doubled: self.posts_doubled,
            messages_down: self.delivered,
            transports: {
                // Every client ends on the scenario's mechanism unless it
                // switched.
                let mut counts = BTreeMap::new();
                let switched = self.switched_to.len() as u64;
                for transport in self.switched_to.values() {
                    *counts.entry(transport.clone()).or_insert(0) += 1;
                }
                let stayed = (self.clients as u64).saturating_sub(switched);
                if stayed > 0 {
                    *counts
                        .entry(scenario.mechanism.name().to_string())
                        .or_insert(0) += stayed;
                }
                counts
            },
            dead_lettered: self.dead_lettered,
            rejected: self.rejected,
            requests: self.requests,
            empty_responses: self.empty_responses,
            bytes_up: self.bytes_up,
            bytes_down: self.bytes_down,
            connections_opened: self.connections_opened,
            reconnects: self.reconnects,
            retries: self.retries,
            resent: self.resent,
            retransmissions: self.retransmissions,
            peak_connections: self.peak_connections,
            peak_held_requests: self.peak_held_requests,
            requests_at_server: self.requests_at_server,
            requests_per_s_at_server: PerSecond {
                mean: {
                    let seconds = (scenario.duration.to_std() + scenario.drain.to_std())
                        .as_secs_f64()
                        .max(1.0);
                    (self.requests_at_server as f64 / seconds * 100.0).round() / 100.0
                },
                peak: self
                    .requests_at_server_by_second
                    .values()
                    .copied()
                    .max()
                    .unwrap_or(0),
            },
            peak_server_memory_bytes: self.peak_server_memory,
            connects_failed: self.connects_failed,
            clients_unserved: if self.published == 0 {
                0
            } else {
                self.delivered_by_client
                    .iter()
                    .filter(|(seen, _)| !seen.contains(&true))
                    .count() as u64
            },
        }
    }
}

/// Delivery latency, from publication at the server to hand-over to the
/// client's application, in milliseconds of simulated time. `null` when
/// nothing was delivered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl LatencyMs {
    /// Nearest-rank percentiles: the smallest value with at least p% of the
    /// samples at or below it. Always a latency that really happened.
    pub fn from_sorted_micros(sorted: &[u64]) -> LatencyMs {
        let pick = |p: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            Some(sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0)
        };
        LatencyMs {
            p50: pick(50.0),
            p95: pick(95.0),
            p99: pick(99.0),
            max: sorted.last().map(|m| *m as f64 / 1000.0),
        }
    }
}

/// One run's report. The JSON field names are a contract: later mechanisms add
/// fields, they never rename these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub mechanism: String,
    pub seed: u64,
    /// The resolved scenario: every parameter, defaults filled in.
    pub scenario: serde_json::Value,
    pub trace_hash: String,
    /// How many clients the run had.
    pub clients: u32,
    pub published: u64,
    /// Distinct (client, event) pairs handed to client applications.
    pub delivered: u64,
    /// What some client never got and nothing was bringing it when the run
    /// ended: published x clients - delivered - the two below.
    pub lost: u64,
    /// (client, event) pairs on their way when the run ended: sent, not yet
    /// received (TCP may still be retransmitting them), or waiting for a
    /// webhook provider's next attempt.
    pub in_flight_at_end: u64,
    /// (client, event) pairs a proxy had received and was holding (a
    /// buffering proxy) when the run ended.
    pub held_by_proxy_at_end: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub latency_ms: LatencyMs,
    /// Chat messages users posted (`workload.sends`).
    pub posted: u64,
    /// Posts that reached the room (each counted once).
    pub messages_up: u64,
    /// From a user's post to its first arrival in the room at the server,
    /// in milliseconds; `null` when nobody posted.
    pub latency_up_ms: LatencyMs,
    /// Posts let into the room a second time (a resend nobody dropped).
    pub posts_doubled: u64,
    /// Messages handed to clients' applications (the same as `delivered`:
    /// every event or room message, counted once per client).
    pub messages_down: u64,
    /// How many clients ended the run on each transport: the scenario's
    /// mechanism, or the one a client fell back to.
    pub transports: BTreeMap<String, u64>,
    /// Webhook messages the provider gave up on after its last attempt.
    pub dead_lettered: u64,
    /// Deliveries a receiver refused (bad signature, stale timestamp).
    pub rejected: u64,
    /// HTTP requests sent by clients (retries included).
    pub requests: u64,
    /// Responses that reached a client carrying no event.
    pub empty_responses: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub connections_opened: u64,
    pub reconnects: u64,
    pub retries: u64,
    /// Requests re-sent at once on a new connection because the server had
    /// closed the kept-alive one they went out on (RFC 9112 section 9.3.1).
    pub resent: u64,
    /// Segments TCP sent again, on every host, because an earlier
    /// transmission did not get through (SYNs included).
    pub retransmissions: u64,
    /// Most connections open at the server at once.
    pub peak_connections: u64,
    /// Most requests the server had read and not finished answering at
    /// once: held long polls, open event streams (a WebSocket is no longer
    /// a request after its `101`).
    #[serde(default)]
    pub peak_held_requests: u64,
    /// Requests the server read (through a proxy: the proxy's).
    #[serde(default)]
    pub requests_at_server: u64,
    /// Requests the server read per second: over the whole run, and in its
    /// busiest second.
    #[serde(default)]
    pub requests_per_s_at_server: PerSecond,
    /// The server's memory at its peak, by the stated model
    /// (`memory_model`): connections and held requests at their fixed
    /// cost, plus the bytes sent and not yet received (kept in the
    /// kernel's send buffers).
    #[serde(default)]
    pub peak_server_memory_bytes: u64,
    /// Connects by clients that failed: refused, timed out, no port left.
    #[serde(default)]
    pub connects_failed: u64,
    /// Clients that received none of the events published.
    #[serde(default)]
    pub clients_unserved: u64,
}

/// A rate: its mean over the run, and its busiest second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerSecond {
    pub mean: f64,
    pub peak: u64,
}

/// `1.2 MiB`, `340 KiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{v:.1} ms"),
        None => "-".to_string(),
    }
}

impl Report {
    /// The aligned, human-readable form (`--format table`).
    pub fn to_table(&self) -> String {
        let clients = self.clients as u64;
        let rows: Vec<(&str, String)> = vec![
            ("mechanism", self.mechanism.clone()),
            ("seed", self.seed.to_string()),
            (
                "trace_hash",
                self.trace_hash[..16.min(self.trace_hash.len())].to_string(),
            ),
            ("published", format!("{} events", self.published)),
            (
                "delivered",
                format!(
                    "{} of {} ({} events x {} clients)",
                    self.delivered,
                    self.published * clients,
                    self.published,
                    clients
                ),
            ),
            ("lost", self.lost.to_string()),
            (
                "undelivered_at_end",
                format!(
                    "{} in flight, {} held by the proxy",
                    self.in_flight_at_end, self.held_by_proxy_at_end
                ),
            ),
            ("duplicated", self.duplicated.to_string()),
            ("out_of_order", self.out_of_order.to_string()),
            ("latency p50", ms(self.latency_ms.p50)),
            ("latency p95", ms(self.latency_ms.p95)),
            ("latency p99", ms(self.latency_ms.p99)),
            ("latency max", ms(self.latency_ms.max)),
            ("posted", self.posted.to_string()),
            ("messages_up", {
                let lost = self.posted.saturating_sub(self.messages_up);
                if self.posted > 0 {
                    format!(
                        "{} ({lost} posts never arrived, {} doubled)",
                        self.messages_up, self.posts_doubled
                    )
                } else {
                    self.messages_up.to_string()
                }
            }),
            ("latency_up p50/p99", {
                let (p50, p99) = (self.latency_up_ms.p50, self.latency_up_ms.p99);
                if p50.is_some() {
                    format!("{} / {}", ms(p50), ms(p99))
                } else {
                    "-".to_string()
                }
            }),
            ("messages_down", self.messages_down.to_string()),
            (
                "transports",
                self.transports
                    .iter()
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("dead_lettered", self.dead_lettered.to_string()),
            ("rejected", self.rejected.to_string()),
            ("requests", self.requests.to_string()),
            ("empty_responses", {
                let pct = if self.requests > 0 {
                    format!(
                        " ({:.0}% of requests)",
                        100.0 * self.empty_responses as f64 / self.requests as f64
                    )
                } else {
                    String::new()
                };
                format!("{}{pct}", self.empty_responses)
            }),
            ("bytes_up", format!("{} B", self.bytes_up)),
            ("bytes_down", format!("{} B", self.bytes_down)),
            ("connections_opened", self.connections_opened.to_string()),
            ("reconnects", self.reconnects.to_string()),
            ("retries", self.retries.to_string()),
            ("resent", self.resent.to_string()),
            ("retransmissions", self.retransmissions.to_string()),
            ("peak_connections", self.peak_connections.to_string()),
            ("peak_held_requests", self.peak_held_requests.to_string()),
            (
                "requests_at_server",
                format!(
                    "{} ({:.2}/s on average, {}/s in the busiest second)",
                    self.requests_at_server,
                    self.requests_per_s_at_server.mean,
                    self.requests_per_s_at_server.peak
                ),
            ),
            (
                "peak_server_memory",
                format!(
                    "{} (model: {} KiB per connection, {} KiB per held request, unreceived bytes)",
                    human_bytes(self.peak_server_memory_bytes),
                    memory_model::PER_CONNECTION / 1024,
                    memory_model::PER_HELD_REQUEST / 1024
                ),
            ),
            ("connects_failed", self.connects_failed.to_string()),
            ("clients_unserved", self.clients_unserved.to_string()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Report always serializes")
    }
}

/// Several reports side by side, one row per mechanism (`pushpull compare`).
/// When users posted (`workload.sends`), the chat's columns follow: posts
/// in the room of those made, latency up (post to server), and bytes per
/// message each way (all bytes up per post in, all bytes down per message
/// delivered).
pub fn comparison_table(reports: &[Report]) -> String {
    let chat = reports.iter().any(|r| r.posted > 0);
    let mut header = vec![
        "mechanism",
        "requests",
        "empty",
        "p50 ms",
        "p99 ms",
        "max ms",
        "bytes up",
        "bytes down",
        "peak conns",
        "lost",
        "dup",
    ];
    if chat {
        header.extend([
            "posts up",
            "up p50 ms",
            "up p99 ms",
            "B/post up",
            "B/msg down",
        ]);
    }
    let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    let per = |bytes: u64, n: u64| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", bytes as f64 / n as f64)
        }
    };
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let mut row = vec![
                r.mechanism.clone(),
                r.requests.to_string(),
                r.empty_responses.to_string(),
                f(r.latency_ms.p50),
                f(r.latency_ms.p99),
                f(r.latency_ms.max),
                r.bytes_up.to_string(),
                r.bytes_down.to_string(),
                r.peak_connections.to_string(),
                r.lost.to_string(),
                r.duplicated.to_string(),
            ];
            if chat {
                row.extend([
                    format!("{}/{}", r.messages_up, r.posted),
                    f(r.latency_up_ms.p50),
                    f(r.latency_up_ms.p99),
                    per(r.bytes_up, r.messages_up),
                    per(r.bytes_down, r.messages_down),
                ]);
            }
            row
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                s.push_str(&format!("{c:<w$}", w = widths[i]));
            } else {
                s.push_str(&format!("  {c:>w$}", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|s| s.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// Every delivery's delay in ms (publication at the server to hand-over to
/// the client's application), read from a trace, in delivery order.
pub fn delivery_delays_ms(records: &[Record]) -> Vec<f64> {
    records
        .iter()
        .filter_map(|r| match r.event {
            Event::Deliver { latency_us, .. } => Some(latency_us as f64 / 1000.0),
            _ => None,
        })
        .collect()
}
