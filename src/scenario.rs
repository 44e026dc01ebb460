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

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A span of simulated time, written in scenario files as `250ms`, `5s`, `2m`,
/// `1.5s` or `0`. Stored in microseconds, the resolution of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub u64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn from_millis(ms: u64) -> Span {
        Span(ms * 1000)
    }
    pub fn from_secs(s: u64) -> Span {
        Span(s * 1_000_000)
    }
    pub fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn to_std(self) -> Duration {
        Duration::from_micros(self.0)
    }
    pub fn from_std(d: Duration) -> Span {
        Span(d.as_micros() as u64)
    }

    /// Parses `250ms`, `5s`, `2m`, `1h`, `1.5s`, `300us` or a bare `0`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let wrong = || {
            format!(
                "invalid duration {text:?}: write a number and a unit, like \"250ms\", \"5s\", \"2m\" (units: us, ms, s, m, h)"
            )
        };
        if text == "0" {
            return Ok(Span::ZERO);
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(wrong)?;
        let (number, unit) = text.split_at(split);
        let micros_per_unit: f64 = match unit {
            "us" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" | "min" => 60e6,
            "h" => 3600e6,
            _ => return Err(wrong()),
        };
        let value: f64 = number.parse().map_err(|_| wrong())?;
        let micros = value * micros_per_unit;
        if !micros.is_finite() || micros > 1e15 {
            return Err(format!("duration {text:?} is too long"));
        }
        Ok(Span(micros.round() as u64))
    }
}

impl fmt::Display for Span {
    /// Prints the shortest exact form: `250ms`, `5s`, `1m30s` is written `90s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us == 0 {
            write!(f, "0s")
        } else if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a duration such as \"250ms\" or \"5s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Span, E> {
                Span::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Span, E> {
                if v == 0 {
                    Ok(Span::ZERO)
                } else {
                    Err(E::custom(format!(
                        "a bare number ({v}) has no unit: write \"{v}ms\" or \"{v}s\""
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Span, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Span, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) has no unit: write \"{v}ms\" or \"{v}s\""
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Which mechanism carries the events from the server to the clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    ShortPolling,
    LongPolling,
    Sse,
}

impl Mechanism {
    /// Every mechanism the sandbox can run, in the order `compare` shows them.
    pub const ALL: &'static [Mechanism] = &[
        Mechanism::ShortPolling,
        Mechanism::LongPolling,
        Mechanism::Sse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ShortPolling => "short_polling",
            Mechanism::LongPolling => "long_polling",
            Mechanism::Sse => "sse",
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
    /// Probability that a message breaks the connection carrying it, the way a
    /// TCP connection gives up when its segments stop getting through. The
    /// message is not delivered and both ends see the connection die.
    pub loss: f64,
    /// Resolution of simulated time: every host runs once per tick.
    pub tick: Span,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency: Span::from_millis(40),
            jitter: Span::ZERO,
            loss: 0.0,
            tick: Span::from_millis(1),
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
    /// clients (so a fault can single one out), 4 hosts beyond that (turmoil
    /// visits every host every tick, so each host costs time even when idle).
    pub client_hosts: u32,
    /// When the server's events happen.
    pub events: Events,
    /// Bytes of application payload per event.
    pub payload_bytes: u32,
    /// Clients join at random moments (from the seed) within this span, like
    /// people opening a page, rather than all in the same millisecond.
    pub join_spread: Span,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 3,
            client_hosts: 0,
            events: Events::default(),
            payload_bytes: 64,
            join_spread: Span::from_secs(5),
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
    /// The seed notes' notification example holds for 30-60 s.
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
    pub heartbeat: Span,
    /// The client treats this much silence as a dead connection and
    /// reconnects. `0` never does, like a browser's EventSource.
    pub client_heartbeat_timeout: Span,
    /// How many recent events the server keeps for `Last-Event-ID` replay.
    pub history: u32,
    /// From this time on the server answers new stream requests with
    /// `refuse_with` instead of a stream. `0` never.
    pub refuse_after: Span,
    pub refuse_with: SseRefusal,
    /// Send `X-Accel-Buffering: no` with the stream: the header nginx (and
    /// our proxy in `buffer` mode) obeys to pass this response on unbuffered.
    pub no_proxy_buffering: bool,
}

impl Default for Sse {
    fn default() -> Self {
        Sse {
            retry: None,
            client_default_retry: Span::from_secs(3),
            heartbeat: Span::from_secs(15),
            client_heartbeat_timeout: Span::ZERO,
            history: 1000,
            refuse_after: Span::ZERO,
            refuse_with: SseRefusal::Status500,
            no_proxy_buffering: false,
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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    /// Put a `proxy` host between the clients and the server.
    pub enabled: bool,
    pub mode: ProxyMode,
    /// Close a connection pair on which no message has moved for this long,
    /// as load balancers do (60 s is a common default). `0` never closes.
    pub idle_timeout: Span,
    /// In `buffer` mode: how much of a streamed response to gather before
    /// passing it on.
    pub buffer_kib: u32,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            enabled: false,
            mode: ProxyMode::Forward,
            idle_timeout: Span::from_secs(60),
            buffer_kib: 16,
        }
    }
}

/// One fault: either a cut-off (`cut`, `from`, `to`) or a crash (`crash`, `at`, `restart`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    /// Cut these off from the server: `"client-2"` (a client host) or `"all-clients"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Span>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Span>,
    /// With a cut: reset the cut hosts' connections when it starts (a phone
    /// losing its network: every app hears at once). Without it the cut is
    /// silent: packets vanish and nobody is told until a timer says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// With a cut: packets wait at the cut and all arrive when it heals, as
    /// TCP's retransmissions deliver them after a short outage whose path
    /// survived. Connections live on, only late. Without it (and without
    /// `reset`) packets sent during the cut are gone, and so is any
    /// connection that lost one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// Crash this host (only `"server"` for now) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
    /// ... at this time ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Span>,
    /// ... and start it again at this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Span>,
}

/// A fault after validation: what the run loop acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultPlan {
    /// Partition these client hosts from the server between `from` and `to`.
    Cut {
        hosts: Vec<String>,
        from: Span,
        to: Span,
        reset: bool,
        hold: bool,
    },
    /// Crash the server at `at`, start it again at `restart`.
    Crash { at: Span, restart: Span },
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

impl Scenario {
    /// Reads a scenario from TOML text and applies `--set` overrides, in order.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| {
            // toml's message carries a source snippet over several lines; keep
            // the first line and the position, which name the problem.
            let position = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            err("", format!("not valid TOML{position}: {}", e.message()))
        })?;
        let mut scenario = Self::from_value(value)?;
        for o in overrides {
            scenario = scenario.with_override(o)?;
        }
        Ok(scenario)
    }

    fn from_value(value: toml::Value) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            // toml adds "\nin `table`" to its messages; the path says that already.
            let message = e.into_inner().to_string();
            let first_line = message.lines().next().unwrap_or_default().trim();
            err(field, first_line.to_string())
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Applies one `path=value` override. The path must name an existing
    /// parameter; the value is read as TOML (`5`, `true`, `0.1`, `[..]`), and
    /// anything else as a string (`80ms`).
    pub fn with_override(&self, assignment: &str) -> Result<Scenario, ScenarioError> {
        let (path, raw) = assignment.split_once('=').ok_or_else(|| {
            err(
                "",
                format!("--set {assignment:?}: write it as path=value, like network.latency=80ms"),
            )
        })?;
        let path = path.trim();
        let raw = raw.trim();
        let mut root = toml::Value::try_from(self).expect("a Scenario always serializes");
        let new_value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let mut node = &mut root;
        let parts: Vec<&str> = path.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            let so_far = parts[..=depth].join(".");
            node = match node {
                toml::Value::Table(table) => {
                    let known: Vec<String> = table.keys().cloned().collect();
                    // Optional fields are left out when unset; they are still
                    // settable, so look them up in the schema's list.
                    let settable = optional_fields(&parts[..depth]);
                    if !table.contains_key(*part) && !settable.contains(part) {
                        let mut all: Vec<String> = known;
                        all.extend(settable.iter().map(|s| s.to_string()));
                        all.sort();
                        all.dedup();
                        return Err(err(
                            so_far,
                            format!(
                                "--set names a parameter that does not exist; known here: {}",
                                all.join(", ")
                            ),
                        ));
                    }
                    table
                        .entry(part.to_string())
                        .or_insert_with(|| toml::Value::Table(Default::default()))
                }
                toml::Value::Array(items) => {
                    let index: usize = part.parse().map_err(|_| {
                        err(
                            &so_far,
                            "this is a list: index it with a number, like faults.0.from",
                        )
                    })?;
                    let len = items.len();
                    items.get_mut(index).ok_or_else(|| {
                        err(&so_far, format!("the list has {len} entries (0..{len})"))
                    })?
                }
                _ => {
                    return Err(err(
                        parts[..depth].join("."),
                        "is a single value; it has no fields to set",
                    ));
                }
            };
        }
        *node = new_value;
        // `every`, `rate` and `at` are three ways to say one thing: setting
        // one on the command line replaces whichever the file used.
        if let ["workload", "events", kind @ ("every" | "rate" | "at")] = parts.as_slice()
            && let Some(events) = root
                .get_mut("workload")
                .and_then(|w| w.get_mut("events"))
                .and_then(|e| e.as_table_mut())
        {
            events.retain(|k, _| k == *kind || !matches!(k, "every" | "rate" | "at"));
        }
        Self::from_value(root)
    }

    /// Checks what serde cannot: ranges, and how fields relate to each other.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.duration == Span::ZERO || self.duration > MAX_DURATION {
            return Err(err("duration", "must be more than 0 and at most 24h"));
        }
        if self.drain > MAX_DURATION {
            return Err(err("drain", "must be at most 24h"));
        }
        let n = &self.network;
        if !(0.0..=1.0).contains(&n.loss) || n.loss.is_nan() {
            return Err(err(
                "network.loss",
                format!("is {}, but a probability must be between 0 and 1", n.loss),
            ));
        }
        if n.loss >= 1.0 {
            return Err(err(
                "network.loss",
                "1 would break every connection; use less than 1",
            ));
        }
        if n.tick < Span::from_millis(1) || n.tick > Span::from_secs(1) {
            return Err(err("network.tick", "must be between 1ms and 1s"));
        }
        if n.latency > Span::from_secs(60) {
            return Err(err("network.latency", "must be at most 60s"));
        }
        if n.jitter > Span::from_secs(60) {
            return Err(err("network.jitter", "must be at most 60s"));
        }
        let w = &self.workload;
        if w.clients == 0 || w.clients > MAX_CLIENTS {
            return Err(err(
                "workload.clients",
                format!("must be between 1 and {MAX_CLIENTS}"),
            ));
        }
        if w.client_hosts > MAX_CLIENT_HOSTS || w.client_hosts > w.clients {
            return Err(err(
                "workload.client_hosts",
                format!("must be 0 (automatic) or between 1 and min(clients, {MAX_CLIENT_HOSTS})"),
            ));
        }
        if w.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(err(
                "workload.payload_bytes",
                format!("must be at most {MAX_PAYLOAD_BYTES}"),
            ));
        }
        let e = &w.events;
        let kinds = e.every.is_some() as u8 + e.rate.is_some() as u8 + (!e.at.is_empty()) as u8;
        if kinds > 1 {
            return Err(err(
                "workload.events",
                "give exactly one of `every`, `rate` or `at`",
            ));
        }
        if let Some(every) = e.every
            && every < Span::from_millis(1)
        {
            return Err(err("workload.events.every", "must be at least 1ms"));
        }
        if let Some(rate) = e.rate
            && !(rate > 0.0 && rate <= 10_000.0)
        {
            return Err(err(
                "workload.events.rate",
                format!("is {rate}; events per second must be more than 0 and at most 10000"),
            ));
        }
        for (i, t) in e.at.iter().enumerate() {
            if *t > self.duration {
                return Err(err(
                    format!("workload.events.at.{i}"),
                    format!(
                        "{t} is after the end of the run (duration = {})",
                        self.duration
                    ),
                ));
            }
        }
        if e.start > self.duration {
            return Err(err(
                "workload.events.start",
                format!(
                    "{} is after the end of the run (duration = {})",
                    e.start, self.duration
                ),
            ));
        }
        let sp = &self.short_polling;
        if sp.interval < Span::from_millis(1) {
            return Err(err("short_polling.interval", "must be at least 1ms"));
        }
        if sp.server_idle_timeout < Span::from_millis(1) {
            return Err(err(
                "short_polling.server_idle_timeout",
                "must be at least 1ms",
            ));
        }
        if w.join_spread > self.duration {
            return Err(err(
                "workload.join_spread",
                "must be at most the run's duration",
            ));
        }
        if sp.request_timeout < Span::from_millis(1) {
            return Err(err("short_polling.request_timeout", "must be at least 1ms"));
        }
        if sp.backoff_initial < Span::from_millis(1) || sp.backoff_max < sp.backoff_initial {
            return Err(err(
                "short_polling.backoff_initial",
                "must be at least 1ms and at most short_polling.backoff_max",
            ));
        }
        let lp = &self.long_polling;
        if lp.hold < Span::from_millis(1) {
            return Err(err("long_polling.hold", "must be at least 1ms"));
        }
        if lp.client_timeout <= lp.hold {
            return Err(err(
                "long_polling.client_timeout",
                format!(
                    "{} must be longer than long_polling.hold ({}) plus a round trip, or quiet holds end with the client giving up",
                    lp.client_timeout, lp.hold
                ),
            ));
        }
        if lp.backoff_initial < Span::from_millis(1) || lp.backoff_max < lp.backoff_initial {
            return Err(err(
                "long_polling.backoff_initial",
                "must be at least 1ms and at most long_polling.backoff_max",
            ));
        }
        let sse = &self.sse;
        if sse.client_default_retry < Span::from_millis(1) {
            return Err(err("sse.client_default_retry", "must be at least 1ms"));
        }
        if sse.history == 0 || sse.history > 1_000_000 {
            return Err(err("sse.history", "must be between 1 and 1000000 events"));
        }
        if let Some(retry) = sse.retry
            && retry < Span::from_millis(1)
        {
            return Err(err("sse.retry", "must be at least 1ms"));
        }
        if self.proxy.buffer_kib == 0 || self.proxy.buffer_kib > 1024 {
            return Err(err("proxy.buffer_kib", "must be between 1 and 1024"));
        }
        if e.count == Some(0) {
            return Err(err("workload.events.count", "must be at least 1"));
        }
        if e.count.is_some() && e.every.is_none() && e.rate.is_none() {
            return Err(err("workload.events.count", "goes with `every` or `rate`"));
        }
        // Memory: the report keeps one latency per delivery.
        let expected_events = match (e.every, e.rate) {
            (Some(every), _) => self.duration.0 / every.0.max(1) + 1,
            (_, Some(rate)) => (rate * self.duration.as_millis_f64() / 1000.0) as u64,
            _ => e.at.len() as u64,
        };
        let expected_events = e
            .count
            .map_or(expected_events, |c| expected_events.min(c as u64));
        if expected_events.saturating_mul(w.clients as u64) > MAX_DELIVERIES {
            return Err(err(
                "workload.clients",
                format!(
                    "{} clients x about {expected_events} events is more than {MAX_DELIVERIES} deliveries to keep; use fewer clients or events",
                    w.clients
                ),
            ));
        }
        // Ports: each client host opens one connection per client at a time,
        // and a proxy one per client towards the server.
        let per_host = w.clients.div_ceil(self.client_host_count());
        let busiest = if self.proxy.enabled {
            w.clients
        } else {
            per_host
        };
        if busiest > MAX_CONNECTIONS_PER_HOST {
            return Err(err(
                "workload.clients",
                format!(
                    "a host would need {busiest} connections at once (at most {MAX_CONNECTIONS_PER_HOST}); raise workload.client_hosts{}",
                    if self.proxy.enabled {
                        " or drop the proxy"
                    } else {
                        ""
                    }
                ),
            ));
        }
        self.fault_plans()?;
        Ok(())
    }

    /// Names of the client hosts, `client-1` .. `client-H`.
    pub fn client_host_count(&self) -> u32 {
        if self.workload.client_hosts == 0 {
            if self.workload.clients <= 10 {
                self.workload.clients
            } else {
                4
            }
        } else {
            self.workload.client_hosts
        }
    }

    pub fn client_host_names(&self) -> Vec<String> {
        (1..=self.client_host_count())
            .map(|h| format!("client-{h}"))
            .collect()
    }

    /// The faults, checked and resolved to hosts.
    pub fn fault_plans(&self) -> Result<Vec<FaultPlan>, ScenarioError> {
        let hosts = self.client_host_names();
        let mut plans = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            let at = |field: &str| format!("faults.{i}.{field}");
            let within = |field: &str, t: Span| -> Result<Span, ScenarioError> {
                if t > self.duration {
                    Err(err(
                        at(field),
                        format!(
                            "{t} is after the end of the run (duration = {}); faults must happen within it",
                            self.duration
                        ),
                    ))
                } else {
                    Ok(t)
                }
            };
            match (&f.cut, &f.crash) {
                (Some(target), None) => {
                    if f.at.is_some() || f.restart.is_some() {
                        return Err(err(
                            at("cut"),
                            "a cut-off takes `from` and `to`, not `at`/`restart`",
                        ));
                    }
                    let from = within(
                        "from",
                        f.from
                            .ok_or_else(|| err(at("from"), "a cut-off needs `from`"))?,
                    )?;
                    let to = within(
                        "to",
                        f.to.ok_or_else(|| err(at("to"), "a cut-off needs `to`"))?,
                    )?;
                    if to <= from {
                        return Err(err(at("to"), format!("{to} must be after `from` ({from})")));
                    }
                    let cut_hosts = if target == "all-clients" {
                        hosts.clone()
                    } else if hosts.contains(target) {
                        vec![target.clone()]
                    } else {
                        return Err(err(
                            at("cut"),
                            format!(
                                "{target:?} is not a client host; allowed: \"all-clients\" or one of {}",
                                hosts.join(", ")
                            ),
                        ));
                    };
                    if f.reset && f.hold {
                        return Err(err(
                            at("hold"),
                            "a cut either holds packets (hold) or resets connections (reset), not both",
                        ));
                    }
                    plans.push(FaultPlan::Cut {
                        hosts: cut_hosts,
                        from,
                        to,
                        reset: f.reset,
                        hold: f.hold,
                    });
                }
                (None, Some(target)) => {
                    if f.from.is_some() || f.to.is_some() || f.reset || f.hold {
                        return Err(err(
                            at("crash"),
                            "a crash takes `at` and `restart`, not `from`/`to`",
                        ));
                    }
                    if target != "server" {
                        return Err(err(
                            at("crash"),
                            format!("{target:?} cannot crash; allowed: \"server\""),
                        ));
                    }
                    let when = within(
                        "at",
                        f.at.ok_or_else(|| err(at("at"), "a crash needs `at`"))?,
                    )?;
                    let restart = within(
                        "restart",
                        f.restart.ok_or_else(|| {
                            err(
                                at("restart"),
                                "a crash needs `restart` (when the server starts again)",
                            )
                        })?,
                    )?;
                    if restart <= when {
                        return Err(err(
                            at("restart"),
                            format!("{restart} must be after `at` ({when})"),
                        ));
                    }
                    plans.push(FaultPlan::Crash { at: when, restart });
                }
                _ => {
                    return Err(err(
                        format!("faults.{i}"),
                        "a fault is either `cut = \"client-1\"` with `from`/`to`, or `crash = \"server\"` with `at`/`restart`",
                    ));
                }
            }
        }
        // Overlapping windows would heal a link that another cut still holds,
        // or restart a server that is running: refuse them.
        for (i, a) in plans.iter().enumerate() {
            for (j, b) in plans.iter().enumerate().skip(i + 1) {
                let overlap = match (a, b) {
                    (
                        FaultPlan::Cut {
                            hosts: ha,
                            from: fa,
                            to: ta,
                            ..
                        },
                        FaultPlan::Cut {
                            hosts: hb,
                            from: fb,
                            to: tb,
                            ..
                        },
                    ) => ha.iter().any(|h| hb.contains(h)) && fa < tb && fb < ta,
                    (
                        FaultPlan::Crash {
                            at: aa,
                            restart: ra,
                        },
                        FaultPlan::Crash {
                            at: ab,
                            restart: rb,
                        },
                    ) => aa <= rb && ab <= ra,
                    _ => false,
                };
                if overlap {
                    return Err(err(
                        format!("faults.{j}"),
                        format!("overlaps faults.{i} on the same host; make the windows disjoint"),
                    ));
                }
            }
        }
        Ok(plans)
    }
}

/// Fields that are left out of the serialized scenario when unset, by table
/// path, so that `--set` can still name them.
fn optional_fields(table_path: &[&str]) -> &'static [&'static str] {
    match table_path {
        ["workload", "events"] => &["every", "rate", "at", "count"],
        ["sse"] => &["retry"],
        ["faults", _] => &[
            "cut", "from", "to", "reset", "hold", "crash", "at", "restart",
        ],
        _ => &[],
    }
}
