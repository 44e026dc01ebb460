//! The scenario: everything a run depends on, in one serde type.
//!
//! A scenario is a TOML file in `lessons/` (or anywhere), plus `--set path=value`
//! overrides from the command line. Every field has a default, so a scenario file
//! only names what its lesson is about:
//!
//! ```toml
//! mechanism = "short_polling"
//! seed = 7
//! duration = "5m"
//!
//! [network]
//! latency = "40ms"      # one way, client <-> server
//! jitter = "10ms"       # extra delay per message, 0..=jitter
//!
//! [workload]
//! clients = 3
//! events = { every = "60s", start = "30s" }
//!
//! [short_polling]
//! interval = "5s"
//!
//! [[faults]]
//! cut = "client-1"      # or "all-clients"
//! from = "60s"
//! to = "80s"
//! ```
//!
//! Bad input is an error that names the field and says what is allowed. There are
//! no silent defaults for a value that was written but not understood.

mod checks;
pub mod lessons;
mod load;
pub mod plan;
pub mod span;

pub use plan::{CutKind, FaultPlan, Plan};
pub use span::{Bandwidth, Offset, Span};

use serde::{Deserialize, Serialize};
use span::zero_is_off;
use std::fmt;

/// Which mechanism carries the events from the server to the clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    ShortPolling,
    LongPolling,
    Sse,
    Websocket,
    /// The provider calls the receivers: signed POSTs, retried on a
    /// schedule. Hosts are `provider` and `receiver-1` .. `receiver-N`.
    Webhooks,
    /// The async-job pattern: the API queues each job (`queue` host), a
    /// `worker` does it, and the front ends learn the outcome by polling
    /// or by a callback (`jobs.notify`).
    Jobs,
}

impl Mechanism {
    /// The mechanisms `compare` runs, in its order: the ones where clients
    /// ask a server for events. (Webhooks turn that around: the receivers
    /// must be servers the provider can reach.)
    pub const ALL: &'static [Mechanism] = &[
        Mechanism::ShortPolling,
        Mechanism::LongPolling,
        Mechanism::Sse,
        Mechanism::Websocket,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ShortPolling => "short_polling",
            Mechanism::LongPolling => "long_polling",
            Mechanism::Sse => "sse",
            Mechanism::Websocket => "websocket",
            Mechanism::Webhooks => "webhooks",
            Mechanism::Jobs => "jobs",
        }
    }
}

/// The whole scenario. `deny_unknown_fields` everywhere: a typo must be an
/// error, not a parameter that silently keeps its default.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// A one-line description, shown by `pushpull lessons`.
    pub description: String,
    pub mechanism: Mechanism,
    /// Every random choice of a run (jitter, loss, event times) comes from this.
    pub seed: u64,
    /// How long events are published and faults may happen.
    pub duration: Span,
    /// Quiet time after `duration`: no new events and no faults, so that what is
    /// still in flight can arrive. What has not arrived by then counts as lost.
    pub drain: Span,
    pub network: Network,
    pub workload: Workload,
    pub short_polling: ShortPolling,
    pub long_polling: LongPolling,
    pub sse: Sse,
    pub websocket: WebSocket,
    pub webhooks: Webhooks,
    pub receiver: Receiver,
    pub jobs: Jobs,
    /// How many servers run the mechanism. With more than one, the proxy
    /// (if enabled) balances connections over them round robin, as nginx's
    /// `upstream` block does; without a proxy, client k connects to server
    /// ((k-1) mod N) + 1, as DNS round robin would spread them. Hosts are
    /// `server` with one, `server-1` .. `server-N` with more.
    pub servers: u32,
    /// Each server process's connection limits.
    pub server: Server,
    /// A pub/sub host between the servers (`broker`), as Redis is used: the
    /// WebSocket chat's servers publish every post to it and hear every
    /// message from it, so members on different servers see each other,
    /// one hop later. Without it each server's members hear only what that
    /// server heard.
    pub broker: bool,
    /// With webhooks: an `attacker` host that captures a genuine delivery
    /// to receiver-1 and sends it a forged one (wrong key), a tampered one
    /// (changed body, captured signature), and the captured one again,
    /// inside the tolerance and past it.
    pub attacker: bool,
    /// An optional HTTP proxy (a load balancer) between clients and server.
    pub proxy: Proxy,
    pub faults: Vec<Fault>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            description: String::new(),
            mechanism: Mechanism::ShortPolling,
            seed: 1,
            duration: Span::from_secs(300),
            drain: Span::from_secs(30),
            network: Network::default(),
            workload: Workload::default(),
            short_polling: ShortPolling::default(),
            long_polling: LongPolling::default(),
            sse: Sse::default(),
            websocket: WebSocket::default(),
            webhooks: Webhooks::default(),
            receiver: Receiver::default(),
            jobs: Jobs::default(),
            servers: 1,
            server: Server::default(),
            broker: false,
            attacker: false,
            proxy: Proxy::default(),
            faults: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// One-way delay of every message between two hosts.
    pub latency: Span,
    /// Extra one-way delay per message, drawn from 0..=jitter (turmoil's curve
    /// favours small values: most messages get far less than `jitter`).
    pub jitter: Span,
    /// Probability that a transmission of data is lost on the way (SYNs and
    /// FINs are spared). TCP sends it again after the retransmission timeout
    /// (at least 200 ms, doubling): loss costs delay, not connections.
    pub loss: f64,
    /// Resolution of simulated time: every host runs once per tick (a stretch
    /// of ticks in which nothing can happen is crossed in one step; see
    /// `world::clock`).
    pub tick: Span,
    /// Data unacknowledged this long aborts the connection on the sending
    /// side ("connection timed out"). Linux's `tcp_retries2 = 15`: about
    /// 924.6 s with a 200 ms RTO.
    pub tcp_retransmit_timeout: Span,
    /// TCP keep-alive on clients' connections: after this much silence the
    /// kernel probes, then again every this long; 9 unanswered probes abort
    /// the connection. `0`: off (Linux's default for sockets that do not ask
    /// for it). Chromium asks for 45 s.
    #[serde(with = "zero_is_off")]
    pub tcp_keepalive: Option<Span>,
    /// A NAT in the path forgets a connection idle longer than this, and its
    /// packets vanish from then on. `0`: never. RFC 5382 asks NATs to wait at
    /// least 2 h 4 min; the clouds' defaults are shorter: AWS's NAT gateway
    /// 350 s, Azure's load balancer 4 min, Google's Cloud NAT 20 min.
    #[serde(with = "zero_is_off")]
    pub nat_idle_timeout: Option<Span>,
    /// Each link's bandwidth, each way (`10Mbps`), or `0` for unlimited: a
    /// message waits its serialization time (and behind what the link is
    /// still sending) before it leaves. A 1 MiB event on 10 Mbps: 0.84 s.
    pub bandwidth: Bandwidth,
    /// Bytes a connection holds for a reader that has not read them yet
    /// (its receive buffer plus the writer's send buffer), in KiB; then the
    /// writer waits. Linux starts a receive buffer at 128 KiB (`tcp_rmem`)
    /// and autotunes both upward. `0`: no limit.
    pub socket_buffer_kib: u32,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency: Span::from_millis(40),
            jitter: Span::ZERO,
            loss: 0.0,
            tick: Span::from_millis(1),
            tcp_retransmit_timeout: Span::from_millis(924_600),
            tcp_keepalive: None,
            nat_idle_timeout: None,
            bandwidth: Bandwidth(None),
            socket_buffer_kib: 256,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    pub clients: u32,
    /// How many client hosts the clients are spread over. Each host is one
    /// machine on the simulated network (faults address hosts); its clients run
    /// as tasks on it. 0 means automatic: one host per client up to 10
    /// clients (so a fault can single one out), 4 hosts beyond that (in every
    /// tick in which anything happens turmoil runs every host, so each host
    /// costs time).
    pub client_hosts: u32,
    /// When the server's events happen.
    pub events: Events,
    /// Bytes of application payload per event.
    pub payload_bytes: u32,
    /// Clients join at random moments (from the seed) within this span, like
    /// people opening a page, rather than all in the same millisecond.
    pub join_spread: Span,
    /// Each client's user posts a chat message this often (from a moment
    /// drawn from the seed), as in the study notes' chat. `0`: nobody
    /// posts. WebSocket sends them as frames on its one connection; the
    /// HTTP mechanisms as `POST /messages` requests on a second one.
    #[serde(with = "zero_is_off")]
    pub sends: Option<Span>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 3,
            client_hosts: 0,
            events: Events::default(),
            payload_bytes: 64,
            join_spread: Span::from_secs(5),
            sends: None,
        }
    }
}

/// When events are published: exactly one of `every`, `rate` or `at`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Events {
    /// One event every this long, starting at `start`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<Span>,
    /// Random (Poisson) arrivals at this many events per second, from the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Explicit publication times.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub at: Vec<Span>,
    /// First event time for `every` and `rate`.
    pub start: Span,
    /// With `every` or `rate`: stop after this many events (a burst).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShortPolling {
    /// Time from the start of one poll to the start of the next (a fixed
    /// schedule, like `setInterval`).
    pub interval: Span,
    /// A poll that has no complete answer after this long is abandoned.
    pub request_timeout: Span,
    /// First wait after a failed poll; doubled after each further failure.
    pub backoff_initial: Span,
    /// The doubling stops here.
    pub backoff_max: Span,
    /// Reuse one TCP connection for many polls (HTTP/1.1 keep-alive), as
    /// browsers do. `false` opens a new connection for every poll.
    pub keep_alive: bool,
    /// The server closes a keep-alive connection that has been quiet this long.
    pub server_idle_timeout: Span,
}

impl Default for ShortPolling {
    fn default() -> Self {
        ShortPolling {
            interval: Span::from_secs(5),
            request_timeout: Span::from_secs(2),
            backoff_initial: Span::from_millis(500),
            backoff_max: Span::from_secs(8),
            keep_alive: true,
            server_idle_timeout: Span::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LongPolling {
    /// How long the server holds a request that has nothing to answer yet.
    /// The study notes' notification example holds for 30-60 s.
    pub hold: Span,
    /// The client abandons a request with no answer after this long. A little
    /// above `hold`, so that a held request normally ends with the server's
    /// empty answer, not with the client giving up.
    pub client_timeout: Span,
    /// First wait after a failed request; doubled after each further failure.
    pub backoff_initial: Span,
    /// The doubling stops here.
    pub backoff_max: Span,
}

impl Default for LongPolling {
    fn default() -> Self {
        LongPolling {
            hold: Span::from_secs(30),
            client_timeout: Span::from_secs(35),
            backoff_initial: Span::from_millis(500),
            backoff_max: Span::from_secs(8),
        }
    }
}

/// What an SSE server does instead of streaming, from `refuse_after` on
/// (to show how EventSource reacts to each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SseRefusal {
    /// `500 Internal Server Error`.
    #[serde(rename = "status_500")]
    Status500,
    /// `204 No Content`: the documented way to tell EventSource to stop.
    #[serde(rename = "status_204")]
    Status204,
    /// `200 OK` with `Content-Type: application/json`.
    WrongContentType,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sse {
    /// Send `retry: <ms>` at the start of each stream, setting the client's
    /// reconnection time. Unset: the client keeps its default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Span>,
    /// The client's reconnection time until a `retry` field says otherwise.
    /// Browsers pick a few seconds (Chromium 3 s, Firefox 5 s).
    pub client_default_retry: Span,
    /// A comment line (`: heartbeat`) after this much silence. `0` sends none.
    #[serde(with = "zero_is_off")]
    pub heartbeat: Option<Span>,
    /// The client treats this much silence as a dead connection and
    /// reconnects. `0` never does, like a browser's EventSource.
    #[serde(with = "zero_is_off")]
    pub client_heartbeat_timeout: Option<Span>,
    /// How many recent events the server keeps for `Last-Event-ID` replay.
    pub history: u32,
    /// From this time on the server answers new stream requests with
    /// `refuse_with` instead of a stream. `0` never.
    #[serde(with = "zero_is_off")]
    pub refuse_after: Option<Span>,
    pub refuse_with: SseRefusal,
    /// Send `X-Accel-Buffering: no` with the stream: the header nginx (and
    /// our proxy in `buffer` mode) obeys to pass this response on unbuffered.
    pub no_proxy_buffering: bool,
    /// The page's own error handler: after an EventSource fails for good,
    /// open a new one this long later (doubling after each failure in a
    /// row, up to 60 s), carrying the last event id in its URL
    /// (`/stream?lastEventId=41`), since a new EventSource starts without
    /// one. `0`: the page does nothing, as a bare EventSource.
    #[serde(with = "zero_is_off")]
    pub reopen_after_failure: Option<Span>,
}

impl Default for Sse {
    fn default() -> Self {
        Sse {
            retry: None,
            client_default_retry: Span::from_secs(3),
            heartbeat: Some(Span::from_secs(15)),
            client_heartbeat_timeout: None,
            history: 1000,
            refuse_after: None,
            refuse_with: SseRefusal::Status500,
            no_proxy_buffering: false,
            reopen_after_failure: None,
        }
    }
}

/// Which WebSocket client the page runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WsClient {
    /// The browser's `WebSocket` as it is: answers pings, but sends none,
    /// never notices a silent connection, and never reconnects.
    Browser,
    /// What production libraries (Socket.IO, SignalR) add on top:
    /// heartbeats, reconnection with backoff, and (with `resume`) no
    /// message lost or doubled across a reconnection.
    Resilient,
}

/// When a resilient client tries again after its connection dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectSchedule {
    /// Never: the page stays disconnected.
    Off,
    /// Socket.IO's defaults: 1 s doubling to 5 s, each delay randomized by
    /// +-50% (`randomizationFactor: 0.5`), forever.
    Socketio,
    /// SignalR's `withAutomaticReconnect()`: after 0, 2, 10 and 30 s, then
    /// it gives up.
    Signalr,
    /// RFC 6455 section 7.2.3: the first attempt after a random 0-5 s, then
    /// truncated binary exponential backoff (a random delay in a window
    /// that doubles, up to 5 min 20 s).
    Rfc6455,
}

/// A named schedule or a list of delays (`["0s", "1s", "5s"]`: one try
/// after each, then give up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "\"off\", \"socketio\", \"signalr\", \"rfc6455\" or a list of delays like [\"1s\", \"5s\"]"
)]
pub enum Reconnect {
    Named(ReconnectSchedule),
    Delays(Vec<Span>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocket {
    pub client: WsClient,
    /// The server pings each client this often, and a resilient client
    /// pings the server as often (Socket.IO's `pingInterval`: 25 s). `0`:
    /// no heartbeat.
    #[serde(with = "zero_is_off")]
    pub heartbeat: Option<Span>,
    /// A peer heard nothing from for this long is taken for dead: the
    /// server drops it, a resilient client reconnects (Socket.IO: 25 s +
    /// `pingTimeout` 20 s). `0`: never.
    #[serde(with = "zero_is_off")]
    pub heartbeat_timeout: Option<Span>,
    /// A resilient client's reconnection schedule.
    pub reconnect: Reconnect,
    /// A resilient client reconnects with the last sequence number it saw
    /// and receives what it missed, once; the posts it could not send are
    /// kept and sent again, and the server drops the doubles (Socket.IO's
    /// connection state recovery, SignalR's stateful reconnect).
    pub resume: bool,
    /// How many recent room messages the server keeps for resuming clients.
    pub history: u32,
    /// Largest message either side accepts, in bytes (Socket.IO's
    /// `maxHttpBufferSize`: 1 MB); larger ones close the connection with
    /// 1009.
    pub max_message: u32,
    /// Room messages the server queues for one member beyond what its TCP
    /// connection has taken (a slow reader's backlog, the `bufferedAmount`
    /// a server watches); past it the server drops the member with close
    /// code 1008 (policy violation), so that one slow reader cannot grow
    /// the server's memory without bound.
    pub max_queued: u32,
    /// How many clients (client-1, client-2, ...) read slowly: their
    /// application spends `slow_read_pause` on each message before it
    /// takes the next from the socket, like a phone busy rendering.
    pub slow_readers: u32,
    pub slow_read_pause: Span,
    /// The server tells every member who joined and who left, as a chat
    /// room's member list needs. Each join is then a frame to everyone:
    /// 10,000 members joining cost 50 million frames. A feed turns it off.
    pub presence: bool,
}

impl Default for WebSocket {
    fn default() -> Self {
        WebSocket {
            client: WsClient::Resilient,
            heartbeat: Some(Span::from_secs(25)),
            heartbeat_timeout: Some(Span::from_secs(45)),
            reconnect: Reconnect::Named(ReconnectSchedule::Socketio),
            resume: true,
            history: 1000,
            max_message: 1_000_000,
            max_queued: 1000,
            slow_readers: 0,
            slow_read_pause: Span::from_secs(1),
            presence: true,
        }
    }
}

/// A provider's retry schedule, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrySchedule {
    /// The Standard Webhooks example: at once, then 5 s, 5 min, 30 min,
    /// 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after each failure.
    Standard,
    /// Svix's: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    Svix,
    /// Stripe's "up to three days with an exponential back off" (Stripe
    /// does not publish the steps; here: 1 min doubling, at most 12 h
    /// apart, until three days after the first attempt).
    Stripe,
    /// GitHub's: one attempt, no automatic retry, and 10 s for the answer.
    Github,
}

/// A named schedule or a list of delays after each failure (`["5s",
/// "1m"]`: three attempts in all).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "\"standard\", \"svix\", \"stripe\", \"github\" or a list of delays like [\"5s\", \"5m\"]"
)]
pub enum Retries {
    Named(RetrySchedule),
    Delays(Vec<Span>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// When the provider tries again after a failed attempt.
    pub schedule: Retries,
    /// Each retry delay is moved by up to this fraction either way, from
    /// the seed, so that receivers that failed together are not retried
    /// together.
    pub jitter: f64,
    /// An attempt with no answer this long after it was sent is a failure
    /// (Svix waits 15 s; GitHub 10 s).
    pub attempt_timeout: Span,
    /// Attempts in flight to one receiver at once; the others wait.
    pub concurrency: u32,
    /// Manual redelivery: at this time the provider sends every message
    /// in its dead-letter list again, with a fresh schedule. `0`: never.
    #[serde(with = "zero_is_off")]
    pub replay_dead_letters_at: Option<Span>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            schedule: Retries::Named(RetrySchedule::Standard),
            jitter: 0.1,
            attempt_timeout: Span::from_secs(15),
            concurrency: 10,
            replay_dead_letters_at: None,
        }
    }
}

/// When a receiver answers a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// Does the work, then answers `200`.
    AfterProcessing,
    /// Queues the work and answers `202` at once: what providers advise.
    BeforeProcessing,
}

/// How a front end learns that its job is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobNotify {
    /// Asks the API's status endpoint every `poll_interval`.
    Poll,
    /// Registers a URL; the API calls it, signed, when a job is done.
    Callback,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Jobs {
    pub notify: JobNotify,
    /// How long the worker takes over one job.
    pub work: Span,
    /// Polling front ends ask this often.
    pub poll_interval: Span,
    /// A job taken from the queue and not acknowledged within this long is
    /// given out again (SQS's visibility timeout: 30 s by default).
    pub visibility_timeout: Span,
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs {
            notify: JobNotify::Poll,
            work: Span::from_secs(5),
            poll_interval: Span::from_secs(2),
            visibility_timeout: Span::from_secs(30),
        }
    }
}

/// How a receiver treats deliveries that arrive out of their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Applies each as it comes, whatever came before.
    AsArrived,
    /// Each event carries its order's version; one that comes before the
    /// version it follows is answered `409` and comes back on a retry.
    VersionCheck,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receiver {
    pub ack: Ack,
    /// How long applying one event takes.
    pub work: Span,
    /// Remember each `webhook-id` applied (in a store that survives the
    /// receiver's restart) and apply a delivery seen before only once.
    pub dedupe: bool,
    /// How far a delivery's timestamp may be from the receiver's clock.
    pub tolerance: Span,
    /// The receiver's clock runs this far ahead of true time (`"-10m"`:
    /// behind). Past the tolerance, genuine deliveries look too old (or
    /// from the future) and are refused.
    pub clock_skew: Offset,
    /// What the receiver does with an event that arrives before the one
    /// it follows (an order's update before its creation).
    pub ordering: Ordering,
    /// Deliveries the receiver works on at once; one more is answered
    /// `503 Service Unavailable` with `Retry-After: 10`. `0`: no limit.
    pub max_concurrent: u32,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            ack: Ack::AfterProcessing,
            work: Span::from_millis(100),
            dedupe: true,
            tolerance: Span::from_secs(300),
            clock_skew: Offset(0),
            ordering: Ordering::AsArrived,
            max_concurrent: 0,
        }
    }
}

/// What the proxy does to the traffic it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// Forward each request, response and stream block as soon as it is complete.
    Forward,
    /// Hold a streamed response's bytes until `buffer_kib` have gathered or
    /// the response ends, as nginx does with `proxy_buffering on`.
    Buffer,
    /// Forward like `forward`, but treat `Upgrade` as the hop-by-hop header
    /// it is (RFC 9110 section 7.8) and drop it, as an nginx without
    /// `proxy_set_header Upgrade $http_upgrade` or an old corporate proxy
    /// does: no WebSocket handshake gets through.
    RefuseUpgrade,
}

/// A server process's connection limits (each of `servers` has its own).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Most connections the process holds open at once: its file-descriptor
    /// limit (`ulimit -n`, 1024 by default on Linux) or nginx's
    /// `worker_connections` (512 in its default config). At the limit it
    /// stops accepting until one closes. `0`: unlimited (the default).
    pub max_connections: u32,
    /// Completed handshakes the kernel keeps for the process to accept: the
    /// `listen(2)` backlog (nginx's default is 511; Linux caps it at
    /// `net.core.somaxconn`, 4096 since 5.4). Linux holds one more than
    /// this; beyond that a SYN is dropped and the client retransmits it.
    /// Only matters with `max_connections`.
    pub backlog: u32,
    /// Answer a SYN that finds the queue full with RST ("connection
    /// refused") instead of dropping it: Linux's
    /// `net.ipv4.tcp_abort_on_overflow`, off by default.
    pub abort_on_overflow: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            max_connections: 0,
            backlog: 511,
            abort_on_overflow: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    /// Put a `proxy` host between the clients and the server.
    pub enabled: bool,
    pub mode: ProxyMode,
    /// Close a connection pair on which no message has moved for this long,
    /// as load balancers do (60 s is a common default). `0` never closes.
    #[serde(with = "zero_is_off")]
    pub idle_timeout: Option<Span>,
    /// In `buffer` mode: how much of a streamed response to gather before
    /// passing it on.
    pub buffer_kib: u32,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            enabled: false,
            mode: ProxyMode::Forward,
            idle_timeout: Some(Span::from_secs(60)),
            buffer_kib: 16,
        }
    }
}

/// One fault: either a cut-off (`cut`, `from`, `to`) or a crash (`crash`, `at`, `restart`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    /// Cut this host off from every other: `"client-2"`, `"all-clients"`,
    /// `"server"`, `"proxy"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Span>,
    /// With a cut (at most one of `reset`, `hold` and `forget`): a
    /// middlebox answers RST, so the connections crossing the cut are reset
    /// at both ends when it starts. Without any of the three the cut is
    /// silent: packets vanish, nobody is told, and TCP retransmits what was
    /// sent until the heal (or until it gives up).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// With a cut: packets wait at the cut (a router's queue) and all arrive
    /// at the heal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// With a cut: the NAT or load balancer in the path forgets its
    /// connections. After the heal, packets of connections from before the
    /// cut vanish for good (no RST: neither end is told); new connections
    /// work. Only a heartbeat or TCP keep-alive finds such a connection.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forget: bool,
    /// Crash this host's process (`"server"`, `"proxy"`, a client host) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
    /// ... at this time ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Span>,
    /// ... and start it again at this time (left out: it stays down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Span>,
}

/// A scenario error: the dotted path of the field at fault and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ScenarioError {}

fn err(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        field: field.into(),
        message: message.into(),
    }
}

/// Upper bounds, so that a typo cannot ask for a run that never ends.
pub const MAX_CLIENTS: u32 = 100_000;
pub const MAX_CLIENT_HOSTS: u32 = 100;
pub const MAX_DURATION: Span = Span(24 * 3600 * 1_000_000);
pub const MAX_PAYLOAD_BYTES: u32 = 1 << 20;
pub const MAX_EVENTS: usize = 1_000_000;
/// (client, event) deliveries a run may keep latencies for.
pub const MAX_DELIVERIES: u64 = 50_000_000;
/// Simultaneous connections one host can open (its port range, 32768..=60999,
/// with room for the ones still closing).
pub const MAX_CONNECTIONS_PER_HOST: u32 = 25_000;
