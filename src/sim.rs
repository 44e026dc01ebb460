//! The run: a scenario turned into hosts on turmoil's simulated network, driven
//! step by step through simulated time, with events published and faults
//! applied on schedule.
//!
//! ```text
//!   client-1 ─┐
//!   client-2 ─┼── 40 ms ± jitter ── [proxy] ── server   (event log beside it, like a database)
//!   client-3 ─┘
//! ```
//!
//! Every host is real async code on a tokio runtime whose clock is simulated:
//! `sleep(5s)` takes five simulated seconds and no real ones. turmoil moves the
//! bytes between hosts with the scenario's latency and can cut links or crash
//! hosts. Nothing here reads the wall clock, and every random choice comes from
//! the scenario's seed, so one scenario gives one trace, byte for byte.
//!
//! Layout: one `server` host, an optional `proxy`, and `client-1` ..
//! `client-H` hosts. Client k lives on host `client-((k-1) mod H + 1)`. With up
//! to 10 clients each has its own host, so a fault can single one out; with
//! more, clients are tasks spread over 4 hosts, because turmoil's cost per
//! step grows with the number of hosts, not with the number of tasks.

use crate::http::Loss;
use crate::net::{EventLog, HostNet, payload};
use crate::proxy::ProxyCtx;
use crate::report::{Metrics, Report};
use crate::scenario::{FaultPlan, Mechanism, Scenario, Span};
use crate::trace::{Event, Record, Tracer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// Whether this build can promise determinism. turmoil seeds each host's tokio
/// runtime (whose RNG `select!` uses) from the simulation seed only under
/// `--cfg tokio_unstable`, which `.cargo/config.toml` sets.
pub const DETERMINISTIC: bool = cfg!(tokio_unstable);

/// The simulated wall clock starts here (2026-01-01T00:00:00Z), whatever the
/// real date: anything that reads "the time" inside a run reads this.
pub const EPOCH_UNIX_SECS: u64 = 1_767_225_600;

/// What the server side of a mechanism gets.
#[derive(Clone)]
pub struct ServerCtx {
    pub net: HostNet,
    pub log: EventLog,
    pub scenario: Rc<Scenario>,
}

/// What one client gets: its number, its host's network, its own seeded RNG.
pub struct ClientCtx {
    pub id: u32,
    pub net: HostNet,
    pub scenario: Rc<Scenario>,
    /// The host the client talks to.
    pub upstream: String,
    join_after: Duration,
    rng: RefCell<ChaCha8Rng>,
}

impl ClientCtx {
    /// Clients join at different moments, like people opening a page; the
    /// moment is drawn from the seed within `workload.join_spread`.
    pub async fn wait_to_join(&self) {
        tokio::time::sleep(self.join_after).await;
    }

    /// Hands event `id` to the client's application: the moment that counts
    /// for delivery latency.
    pub fn deliver(&self, id: u64) {
        self.net.trace.record(Event::Deliver {
            client: self.id,
            event: id,
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

/// A seed for one purpose, derived from the scenario's seed, so that drawing
/// more random numbers for one thing never shifts another.
pub fn derive_seed(seed: u64, purpose: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// When the events happen, from `workload.events`.
pub fn publication_times(scenario: &Scenario) -> Result<Vec<Span>, String> {
    let e = &scenario.workload.events;
    let end = scenario.duration;
    let mut times = Vec::new();
    let too_many = || {
        format!(
            "workload.events: more than {} events in the run; lower the rate or shorten duration",
            crate::scenario::MAX_EVENTS
        )
    };
    if let Some(every) = e.every {
        let mut t = e.start;
        while t <= end {
            times.push(t);
            if times.len() > crate::scenario::MAX_EVENTS {
                return Err(too_many());
            }
            if e.count.is_some_and(|n| times.len() >= n as usize) {
                break;
            }
            t = Span(t.0 + every.0);
        }
    } else if let Some(rate) = e.rate {
        // Poisson arrivals: exponential gaps with mean 1/rate seconds.
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(scenario.seed, "events"));
        let mut t = e.start.as_micros() as f64;
        loop {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / rate * 1e6;
            if t > end.as_micros() as f64 {
                break;
            }
            // Events land on whole milliseconds, as the network does.
            times.push(Span::from_millis((t / 1000.0).round() as u64));
            if times.len() > crate::scenario::MAX_EVENTS {
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

/// Something the run loop does at a given time.
enum Action {
    Publish,
    /// A partition; `true`: also reset the connections crossing it.
    Cut(Vec<String>, bool),
    /// A cut whose packets wait and arrive at the heal.
    Hold(Vec<String>),
    Release(Vec<String>),
    Heal(Vec<String>),
    Crash,
    Restart,
}

pub struct RunOptions {
    /// Where to write the trace as JSON lines, if anywhere.
    pub trace_file: Option<Box<dyn Write>>,
    /// Keep the records in memory (for the diagram and for lessons).
    pub keep_records: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            trace_file: None,
            keep_records: true,
        }
    }
}

pub struct RunOutcome {
    pub report: Report,
    /// The trace, if `keep_records` was set.
    pub records: Vec<Record>,
}

type HostFuture = Pin<Box<dyn Future<Output = turmoil::Result>>>;

fn server_software(mechanism: Mechanism, ctx: ServerCtx) -> HostFuture {
    match mechanism {
        Mechanism::ShortPolling => Box::pin(crate::short_polling::server(ctx)),
        Mechanism::LongPolling => Box::pin(crate::long_polling::server(ctx)),
        Mechanism::Sse => Box::pin(crate::sse::server(ctx)),
    }
}

/// How a mechanism's answers count events (for the proxy's trace lines).
fn count_events_for(mechanism: Mechanism) -> impl Fn(&crate::http::Response) -> Option<u32> {
    move |response| match mechanism {
        Mechanism::ShortPolling | Mechanism::LongPolling => {
            crate::short_polling::count_events(response)
        }
        // Streams are counted block by block as they pass.
        Mechanism::Sse => None,
    }
}

fn client_software(mechanism: Mechanism, ctx: ClientCtx) -> Pin<Box<dyn Future<Output = ()>>> {
    match mechanism {
        Mechanism::ShortPolling => Box::pin(crate::short_polling::client(ctx)),
        Mechanism::LongPolling => Box::pin(crate::long_polling::client(ctx)),
        Mechanism::Sse => Box::pin(crate::sse::client(ctx)),
    }
}

/// Runs the same scenario (network, workload, faults) under every mechanism,
/// in `Mechanism::ALL` order: what `pushpull compare` prints.
pub fn compare(base: &Scenario) -> Result<Vec<Report>, String> {
    Mechanism::ALL
        .iter()
        .map(|&mechanism| {
            let mut scenario = base.clone();
            scenario.mechanism = mechanism;
            let options = RunOptions {
                trace_file: None,
                keep_records: false,
            };
            run(&scenario, options).map(|outcome| outcome.report)
        })
        .collect()
}

/// Runs `scenario` to the end and reports on it.
pub fn run(scenario: &Scenario, options: RunOptions) -> Result<RunOutcome, String> {
    scenario.validate().map_err(|e| e.to_string())?;
    let scenario = Rc::new(scenario.clone());
    let end = Span(scenario.duration.0 + scenario.drain.0);
    let tracer = Tracer::new(
        options.trace_file,
        options.keep_records,
        Metrics::new(scenario.workload.clients),
    );

    let net = &scenario.network;
    let mut sim = turmoil::Builder::new()
        .rng_seed(derive_seed(scenario.seed, "turmoil"))
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX_SECS))
        .simulation_duration(end.to_std() + Duration::from_secs(1))
        .tick_duration(net.tick.to_std())
        .min_message_latency(net.latency.to_std())
        .max_message_latency(Span(net.latency.0 + net.jitter.0).to_std())
        // turmoil's TCP buffer size is also the listen backlog: more
        // simultaneous connects than this would panic inside turmoil.
        .tcp_capacity(scenario.workload.clients as usize + 256)
        // Linux's ephemeral port range (28k ports), so that connection names
        // look like a real machine's and a host can hold many connections.
        .ephemeral_ports(32768..=60999)
        .build();

    let switchboard = crate::net::Switchboard::default();
    let host_net = |host: &str| HostNet {
        switchboard: switchboard.clone(),
        trace: tracer.on(host),
        loss: Loss {
            probability: net.loss,
            rng: Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(derive_seed(
                scenario.seed,
                &format!("loss/{host}"),
            )))),
        },
    };

    let log = EventLog::default();
    let server_ctx = ServerCtx {
        net: host_net("server"),
        log: log.clone(),
        scenario: scenario.clone(),
    };
    let mechanism = scenario.mechanism;
    // A closure, not a future: turmoil calls it again to restart the host
    // after a crash. The event log is outside it, so it survives.
    sim.host("server", move || {
        server_software(mechanism, server_ctx.clone())
    });

    // With a proxy, clients talk to it and it talks to the server; faults
    // that cut a client cut it from the proxy, the host it really reaches.
    let upstream = if scenario.proxy.enabled {
        let proxy_ctx = ProxyCtx {
            net: host_net("proxy"),
            config: scenario.proxy.clone(),
            count_events: Rc::new(count_events_for(mechanism)),
        };
        sim.host("proxy", move || crate::proxy::proxy(proxy_ctx.clone()));
        "proxy"
    } else {
        "server"
    };

    let hosts = scenario.client_host_names();
    for (h, host) in hosts.iter().enumerate() {
        let ids: Vec<u32> = (1..=scenario.workload.clients)
            .filter(|id| (*id as usize - 1) % hosts.len() == h)
            .collect();
        let hn = host_net(host);
        let scenario = scenario.clone();
        sim.host(host.as_str(), move || {
            let ctxs: Vec<ClientCtx> = ids
                .iter()
                .map(|&id| {
                    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                        scenario.seed,
                        &format!("client/{id}"),
                    ));
                    let spread = scenario.workload.join_spread.as_micros();
                    let join = if spread == 0 {
                        0
                    } else {
                        rng.random_range(0..spread)
                    };
                    ClientCtx {
                        id,
                        net: hn.clone(),
                        scenario: scenario.clone(),
                        upstream: upstream.to_string(),
                        join_after: Duration::from_micros(join),
                        rng: RefCell::new(rng),
                    }
                })
                .collect();
            async move {
                for ctx in ctxs {
                    tokio::task::spawn_local(client_software(mechanism, ctx));
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }

    // The schedule: publications and faults, in time order.
    let mut actions: Vec<(Span, Action)> = publication_times(&scenario)?
        .into_iter()
        .map(|t| (t, Action::Publish))
        .collect();
    for plan in scenario.fault_plans().map_err(|e| e.to_string())? {
        match plan {
            FaultPlan::Cut {
                hosts,
                from,
                to,
                reset,
                hold: true,
            } => {
                let _ = reset; // validated: never with hold
                actions.push((from, Action::Hold(hosts.clone())));
                actions.push((to, Action::Release(hosts)));
            }
            FaultPlan::Cut {
                hosts,
                from,
                to,
                reset,
                hold: false,
            } => {
                actions.push((from, Action::Cut(hosts.clone(), reset)));
                actions.push((to, Action::Heal(hosts)));
            }
            FaultPlan::Crash { at, restart } => {
                actions.push((at, Action::Crash));
                actions.push((restart, Action::Restart));
            }
        }
    }
    // Stable: at equal times, publications first, then faults in file order.
    actions.sort_by_key(|(t, _)| *t);

    let mut next = 0;
    loop {
        let now = Span::from_std(sim.elapsed());
        while next < actions.len() && actions[next].0 <= now {
            let t = now.as_micros();
            match &actions[next].1 {
                Action::Publish => {
                    let id = log.last_id() + 1;
                    log.append(payload(id, scenario.workload.payload_bytes));
                    tracer.at(t, "server".into(), Event::Publish { event: id });
                }
                Action::Cut(hosts, reset) => {
                    for h in hosts {
                        sim.partition(h.as_str(), upstream);
                    }
                    if *reset {
                        switchboard.reset(hosts);
                        tracer.at(
                            t,
                            "network".into(),
                            Event::Fault {
                                kind: "reset".into(),
                                hosts: hosts.clone(),
                            },
                        );
                    }
                    tracer.at(
                        t,
                        "network".into(),
                        Event::Fault {
                            kind: "cut".into(),
                            hosts: hosts.clone(),
                        },
                    );
                }
                Action::Hold(hosts) => {
                    for h in hosts {
                        sim.hold(h.as_str(), upstream);
                    }
                    tracer.at(
                        t,
                        "network".into(),
                        Event::Fault {
                            kind: "cut".into(),
                            hosts: hosts.clone(),
                        },
                    );
                }
                Action::Release(hosts) => {
                    for h in hosts {
                        sim.release(h.as_str(), upstream);
                    }
                    tracer.at(
                        t,
                        "network".into(),
                        Event::Fault {
                            kind: "heal".into(),
                            hosts: hosts.clone(),
                        },
                    );
                }
                Action::Heal(hosts) => {
                    for h in hosts {
                        sim.repair(h.as_str(), upstream);
                    }
                    tracer.at(
                        t,
                        "network".into(),
                        Event::Fault {
                            kind: "heal".into(),
                            hosts: hosts.clone(),
                        },
                    );
                }
                Action::Crash => {
                    sim.crash("server");
                    tracer.at(
                        t,
                        "server".into(),
                        Event::Fault {
                            kind: "crash".into(),
                            hosts: vec!["server".into()],
                        },
                    );
                }
                Action::Restart => {
                    sim.bounce("server");
                    tracer.at(
                        t,
                        "server".into(),
                        Event::Fault {
                            kind: "restart".into(),
                            hosts: vec!["server".into()],
                        },
                    );
                }
            }
            next += 1;
        }
        if now >= end {
            break;
        }
        sim.step()
            .map_err(|e| format!("the simulation stopped: {e}"))?;
    }
    // The hosts hold handles to the trace; they must be gone before it ends.
    drop(sim);
    let (hash, metrics, records) = tracer
        .finish()
        .map_err(|e| format!("could not write the trace: {e}"))?;
    Ok(RunOutcome {
        report: metrics.into_report(&scenario, hash),
        records,
    })
}
