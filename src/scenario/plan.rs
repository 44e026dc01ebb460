//! The plan: a scenario resolved, once, into what a run needs. Which hosts
//! exist and which clients each runs, when each event is published, which
//! fault happens when and to whom, with every value checked and typed.
//! Nothing downstream reads the scenario's JSON back or checks it again.

use super::{
    MAX_CONNECTIONS_PER_HOST, MAX_DELIVERIES, MAX_EVENTS, Mechanism, Scenario, ScenarioError, Span,
    err,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::rc::Rc;

/// A scenario, checked and resolved.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The parameters, as given (defaults filled in).
    pub scenario: Rc<Scenario>,
    /// The client hosts, `client-1` .. `client-H`, with the clients each runs.
    pub client_hosts: Vec<ClientHost>,
    /// The server hosts: `server`, or `server-1` .. `server-N`.
    pub server_hosts: Vec<String>,
    /// When the server publishes each event, in order.
    pub publications: Vec<Span>,
    /// The faults, in the order the scenario lists them.
    pub faults: Vec<FaultPlan>,
    /// Misconfigurations a real deployment could have: the run goes ahead,
    /// and these one-line warnings say what they will do.
    pub warnings: Vec<String>,
}

/// One client host and the clients it runs (client k lives on host
/// `client-((k-1) mod H + 1)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHost {
    pub name: String,
    pub clients: Vec<u32>,
}

/// How a cut behaves while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CutKind {
    /// Packets vanish and nobody is told: TCP retransmits what was sent,
    /// and it arrives at the first retransmission after the heal.
    Silent,
    /// Packets wait at the cut (a router's queue) and all arrive at the
    /// heal.
    Hold,
    /// The connections crossing the cut are reset at once, both ends (a
    /// middlebox or host answers RST), then packets vanish like a silent cut.
    Reset,
    /// A NAT or load balancer in the path forgets its connections: packets
    /// vanish while the cut lasts and, after the heal, for every connection
    /// that existed before it; new connections work.
    Forget,
}

/// A fault, checked and resolved to hosts: what the run loop acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultPlan {
    /// Cut these hosts off from the hosts they talk to, from `from` until
    /// `to` (or to the end of the run).
    Cut {
        hosts: Vec<String>,
        from: Span,
        to: Option<Span>,
        how: CutKind,
    },
    /// Crash `host`'s process at `at`; start it again at `restart`, if ever.
    Crash {
        host: String,
        at: Span,
        restart: Option<Span>,
    },
}

/// A seed for one purpose, derived from the scenario's seed, so that drawing
/// more random numbers for one thing never shifts another.
pub fn derive_seed(seed: u64, purpose: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Plan {
    /// Reads a scenario from TOML text with `--set` overrides and resolves it.
    pub fn from_toml(text: &str, overrides: &[String]) -> Result<Plan, ScenarioError> {
        Plan::new(Scenario::parse(text, overrides)?)
    }

    /// Checks `scenario` and resolves it: the one place a scenario is checked.
    pub fn new(scenario: Scenario) -> Result<Plan, ScenarioError> {
        let mut warnings = Vec::new();
        scenario.check_sections(&mut warnings)?;
        let s = &scenario;
        cross_section_warnings(s, &mut warnings);
        let e = &s.workload.events;
        for (i, t) in e.at.iter().enumerate() {
            after_the_end(s, &format!("workload.events.at.{i}"), *t)?;
        }
        after_the_end(s, "workload.events.start", e.start)?;
        if s.workload.join_spread > s.duration {
            return Err(err(
                "workload.join_spread",
                "must be at most the run's duration",
            ));
        }
        let client_hosts = client_hosts(s);
        let publications = publication_times(s)?;
        // Memory: the report keeps one latency per delivery.
        let deliveries = (publications.len() as u64).saturating_mul(s.workload.clients as u64);
        if deliveries > MAX_DELIVERIES {
            return Err(err(
                "workload.clients",
                format!(
                    "{} clients x {} events is more than {MAX_DELIVERIES} deliveries to keep; use fewer clients or events",
                    s.workload.clients,
                    publications.len()
                ),
            ));
        }
        // Ports: each client host opens one connection per client at a time,
        // and a proxy one per client towards the server.
        let per_host = client_hosts
            .iter()
            .map(|h| h.clients.len())
            .max()
            .unwrap_or(0) as u32;
        let busiest = if s.proxy.enabled {
            s.workload.clients
        } else {
            per_host
        };
        if s.proxy.enabled
            && busiest > MAX_CONNECTIONS_PER_HOST
            && per_host <= MAX_CONNECTIONS_PER_HOST
        {
            // A real deployment can have this: the proxy runs out of
            // ephemeral ports, and its connects fail as a kernel's do.
            warnings.push(format!(
                "{busiest} clients through one proxy need {busiest} connections to the server at once, but a host has {MAX_CONNECTIONS_PER_HOST} ports: the proxy's connects beyond that fail (\"address not available\") and those clients get 502s"
            ));
        } else if busiest > MAX_CONNECTIONS_PER_HOST {
            return Err(err(
                "workload.clients",
                format!(
                    "a host would need {busiest} connections at once (at most {MAX_CONNECTIONS_PER_HOST}); raise workload.client_hosts{}",
                    if s.proxy.enabled {
                        " or drop the proxy"
                    } else {
                        ""
                    }
                ),
            ));
        }
        // Receivers and callback front ends listen on port 8000 + their
        // number: the port range ends there.
        if matches!(s.mechanism, Mechanism::Webhooks | Mechanism::Jobs)
            && s.workload.clients > 50_000
        {
            return Err(err(
                "workload.clients",
                format!(
                    "{} listens on port 8000 + the client's number: at most 50000 clients",
                    s.mechanism.name()
                ),
            ));
        }
        if s.servers == 0 || s.servers > MAX_SERVERS {
            return Err(err(
                "servers",
                format!("must be between 1 and {MAX_SERVERS}"),
            ));
        }
        let server_hosts = if s.mechanism == Mechanism::Webhooks {
            vec!["provider".to_string()]
        } else {
            server_hosts(s.servers)
        };
        let faults = resolve_faults(s, &client_hosts, &server_hosts)?;
        Ok(Plan {
            scenario: Rc::new(scenario),
            client_hosts,
            server_hosts,
            publications,
            faults,
            warnings,
        })
    }

    /// The same plan under another mechanism (what `compare` runs).
    pub fn with_mechanism(&self, mechanism: Mechanism) -> Plan {
        let mut scenario = (*self.scenario).clone();
        scenario.mechanism = mechanism;
        // Webhooks name their hosts differently (provider, receiver-k):
        // resolve the hosts again, and the faults with them, renamed.
        if client_stem(mechanism) != client_stem(self.scenario.mechanism)
            || (mechanism == Mechanism::Webhooks)
                != (self.scenario.mechanism == Mechanism::Webhooks)
        {
            let (from, to) = (client_stem(self.scenario.mechanism), client_stem(mechanism));
            let server = |m| {
                if m == Mechanism::Webhooks {
                    "provider"
                } else {
                    "server"
                }
            };
            let rename = |host: &mut String| {
                if let Some(n) = host.strip_prefix(&format!("{from}-")) {
                    *host = format!("{to}-{n}");
                } else if host == server(self.scenario.mechanism) {
                    *host = server(mechanism).to_string();
                }
            };
            for fault in &mut scenario.faults {
                fault.cut.as_mut().map(rename);
                fault.crash.as_mut().map(rename);
            }
            let mut plan = Plan::new(scenario).expect("the same scenario, renamed, is valid");
            plan.warnings.clear();
            return plan;
        }
        Plan {
            scenario: Rc::new(scenario),
            ..self.clone()
        }
    }

    /// When the run ends: its duration and the quiet drain after it.
    pub fn end(&self) -> Span {
        Span(self.scenario.duration.0 + self.scenario.drain.0)
    }
}

/// What one section's value does to another's: warnings, never errors.
fn cross_section_warnings(s: &Scenario, warnings: &mut Vec<String>) {
    if s.servers > 1 && s.mechanism != Mechanism::Websocket {
        warnings.push(format!(
            "servers = {}: the {} servers all read one event log and are woken by it, as if it were a database with notifications; only the WebSocket chat keeps each server's members apart",
            s.servers,
            s.mechanism.name()
        ));
    }
    if s.attacker && s.mechanism != Mechanism::Webhooks {
        warnings.push(format!(
            "attacker = true: the attacker only attacks webhook receivers; {} runs without it",
            s.mechanism.name()
        ));
    }
    if s.broker && s.servers == 1 {
        warnings.push(
            "broker = true with one server: every message takes the extra hop through the broker, and no member is on another server to gain from it".into(),
        );
    }
    let round_trip = Span(2 * s.network.latency.0);
    let sp = &s.short_polling;
    if sp.request_timeout <= round_trip {
        warnings.push(format!(
            "short_polling.request_timeout ({}) is not longer than a round trip ({round_trip}): every poll times out",
            sp.request_timeout
        ));
    }
    let lp = &s.long_polling;
    if s.proxy.enabled
        && let Some(idle) = s.proxy.idle_timeout
        && lp.hold >= idle
        && s.mechanism == Mechanism::LongPolling
    {
        warnings.push(format!(
            "long_polling.hold ({}) is not shorter than proxy.idle_timeout ({idle}): the proxy answers 504 to every quiet hold",
            lp.hold
        ));
    }
}

fn after_the_end(s: &Scenario, field: &str, t: Span) -> Result<Span, ScenarioError> {
    if t > s.duration {
        return Err(err(
            field,
            format!(
                "{t} is after the end of the run (duration = {})",
                s.duration
            ),
        ));
    }
    Ok(t)
}

/// How many client hosts: `workload.client_hosts`, or automatically one per
/// client up to 10 clients (so a fault can single one out) and 4 beyond
/// (in every tick in which anything happens turmoil runs every host, so
/// hosts cost time).
fn client_hosts(s: &Scenario) -> Vec<ClientHost> {
    let w = &s.workload;
    let count = match w.client_hosts {
        0 if w.clients <= 10 => w.clients,
        0 => 4,
        n => n,
    };
    (1..=count)
        .map(|h| ClientHost {
            name: format!("{}-{h}", client_stem(s.mechanism)),
            clients: (1..=w.clients)
                .filter(|id| (id - 1) % count == h - 1)
                .collect(),
        })
        .collect()
}

/// When the events happen, from `workload.events`.
fn publication_times(s: &Scenario) -> Result<Vec<Span>, ScenarioError> {
    let e = &s.workload.events;
    let end = s.duration;
    let mut times = Vec::new();
    let too_many = || {
        err(
            "workload.events",
            format!("more than {MAX_EVENTS} events in the run; lower the rate or shorten duration"),
        )
    };
    if let Some(every) = e.every {
        let mut t = e.start;
        while t <= end {
            times.push(t);
            if times.len() > MAX_EVENTS {
                return Err(too_many());
            }
            if e.count.is_some_and(|n| times.len() >= n as usize) {
                break;
            }
            t = Span(t.0 + every.0);
        }
    } else if let Some(rate) = e.rate {
        // Poisson arrivals: exponential gaps with mean 1/rate seconds.
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(s.seed, "events"));
        let mut t = e.start.as_micros() as f64;
        loop {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / rate * 1e6;
            if t > end.as_micros() as f64 {
                break;
            }
            // Events land on whole milliseconds, as the network does.
            times.push(Span::from_millis((t / 1000.0).round() as u64));
            if times.len() > MAX_EVENTS {
                return Err(too_many());
            }
            if e.count.is_some_and(|n| times.len() >= n as usize) {
                break;
            }
        }
    } else {
        times = e.at.clone();
        times.sort();
    }
    Ok(times)
}

/// The faults, checked and resolved to hosts.
/// What the hosts that receive the events are called: `client-k`, or
/// with webhooks, where they are servers the provider calls, `receiver-k`.
pub fn client_stem(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Webhooks => "receiver",
        _ => "client",
    }
}

/// The most servers a run may have.
pub const MAX_SERVERS: u32 = 16;

/// The server hosts' names: `server` alone, or `server-1` .. `server-N`.
pub fn server_hosts(servers: u32) -> Vec<String> {
    if servers <= 1 {
        return vec!["server".into()];
    }
    (1..=servers).map(|i| format!("server-{i}")).collect()
}

fn resolve_faults(
    s: &Scenario,
    client_hosts: &[ClientHost],
    server_hosts: &[String],
) -> Result<Vec<FaultPlan>, ScenarioError> {
    let clients: Vec<String> = client_hosts.iter().map(|h| h.name.clone()).collect();
    // Any host can be named: the client hosts, the servers, the proxy, the
    // broker.
    let mut hosts = clients.clone();
    hosts.extend(server_hosts.iter().cloned());
    if s.proxy.enabled {
        hosts.push("proxy".into());
    }
    if s.broker {
        hosts.push("broker".into());
    }
    if s.attacker && s.mechanism == Mechanism::Webhooks {
        hosts.push("attacker".into());
    }
    if s.mechanism == Mechanism::Jobs {
        hosts.extend(["queue".into(), "worker".into()]);
    }
    let mut plans = Vec::new();
    for (i, f) in s.faults.iter().enumerate() {
        let at = |field: &str| format!("faults.{i}.{field}");
        let within = |field: &str, t: Span| -> Result<Span, ScenarioError> {
            if t > s.duration {
                Err(err(
                    at(field),
                    format!(
                        "{t} is after the end of the run (duration = {}); faults must happen within it",
                        s.duration
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
                // Without `to`, the cut outlasts the run.
                let to = f.to.map(|t| within("to", t)).transpose()?;
                if let Some(to) = to
                    && to <= from
                {
                    return Err(err(at("to"), format!("{to} must be after `from` ({from})")));
                }
                let cut_hosts = if target == "all-clients" {
                    clients.clone()
                } else if hosts.contains(target) {
                    vec![target.clone()]
                } else {
                    return Err(err(
                        at("cut"),
                        format!(
                            "{target:?} is not a host of this run; allowed: \"all-clients\" or one of {}",
                            hosts.join(", ")
                        ),
                    ));
                };
                let how = match (f.hold, f.reset, f.forget) {
                    (false, false, false) => CutKind::Silent,
                    (true, false, false) => CutKind::Hold,
                    (false, true, false) => CutKind::Reset,
                    (false, false, true) => CutKind::Forget,
                    _ => {
                        return Err(err(
                            at("hold"),
                            "a cut either holds packets (hold), resets connections (reset) or forgets them (forget): at most one",
                        ));
                    }
                };
                plans.push(FaultPlan::Cut {
                    hosts: cut_hosts,
                    from,
                    to,
                    how,
                });
            }
            (None, Some(target)) => {
                if f.from.is_some() || f.to.is_some() || f.reset || f.hold || f.forget {
                    return Err(err(
                        at("crash"),
                        "a crash takes `at` and `restart`, not `from`/`to`",
                    ));
                }
                if !hosts.contains(target) {
                    return Err(err(
                        at("crash"),
                        format!(
                            "{target:?} is not a host of this run; allowed: one of {}",
                            hosts.join(", ")
                        ),
                    ));
                }
                let when = within(
                    "at",
                    f.at.ok_or_else(|| err(at("at"), "a crash needs `at`"))?,
                )?;
                // Without `restart`, the host stays down to the end.
                let restart = f.restart.map(|t| within("restart", t)).transpose()?;
                if let Some(restart) = restart
                    && restart <= when
                {
                    return Err(err(
                        at("restart"),
                        format!("{restart} must be after `at` ({when})"),
                    ));
                }
                plans.push(FaultPlan::Crash {
                    host: target.clone(),
                    at: when,
                    restart,
                });
            }
            _ => {
                return Err(err(
                    format!("faults.{i}"),
                    "a fault is either `cut = \"client-1\"` with `from` (and `to`), or `crash = \"server\"` with `at` (and `restart`)",
                ));
            }
        }
    }
    // Overlapping windows would heal a link that another cut still holds,
    // or restart a host that is running: refuse them. A window without an
    // end lasts to the end of the run.
    let window = |from: Span, to: Option<Span>| (from, to.unwrap_or(Span(u64::MAX)));
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
                ) => {
                    let ((fa, ta), (fb, tb)) = (window(*fa, *ta), window(*fb, *tb));
                    ha.iter().any(|h| hb.contains(h)) && fa < tb && fb < ta
                }
                (
                    FaultPlan::Crash {
                        host: ha,
                        at: aa,
                        restart: ra,
                    },
                    FaultPlan::Crash {
                        host: hb,
                        at: ab,
                        restart: rb,
                    },
                ) => {
                    let ((aa, ra), (ab, rb)) = (window(*aa, *ra), window(*ab, *rb));
                    ha == hb && aa <= rb && ab <= ra
                }
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
