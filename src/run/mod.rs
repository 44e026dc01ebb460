//! The run: a plan turned into hosts on turmoil's simulated network, driven
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
//! Layout: one `server` host (or `server-1` .. `server-N`), an optional
//! `proxy`, an optional `broker` between the servers, and the client hosts
//! of the plan (`client-1` .. `client-H`, each running the clients the plan
//! gives it). Each host's role is the first thing the trace records.

pub mod sweep;

use crate::mechanisms;
use crate::record::report::{Metrics, Report};
use crate::record::trace::{Event, NETWORK, Record, Role, Tracer};
use crate::scenario::plan::derive_seed;
use crate::scenario::{CutKind, FaultPlan, Plan, Span};
use crate::world::broker::{BrokerCtx, Feed};
use crate::world::clock::{self, counted};
use crate::world::context::{ClientCtx, ServerCtx, Store};
use crate::world::event_log::{EventLog, PostTimes, payload};
use crate::world::network::{HostNet, Switchboard};
use crate::world::proxy::ProxyCtx;
use crate::world::tcp::{Loss, TcpSettings};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// Whether this build can promise determinism. turmoil seeds each host's tokio
/// runtime (whose RNG `select!` uses) from the simulation seed only under
/// `--cfg tokio_unstable`, which `.cargo/config.toml` sets.
pub const DETERMINISTIC: bool = cfg!(tokio_unstable);

/// The simulated wall clock starts here (2026-01-01T00:00:00Z), whatever the
/// real date: anything that reads "the time" inside a run reads this.
pub const EPOCH_UNIX_SECS: u64 = 1_767_225_600;

pub struct RunOptions {
    /// Where to write the trace as JSON lines, if anywhere.
    pub trace_file: Option<Box<dyn Write>>,
    /// Keep the records in memory (for the diagram and for lessons).
    pub keep_records: bool,
    /// Give up when the real clock passes this (the book's playground bounds
    /// every run it starts). It only ever stops a run; it never changes what
    /// a finished run did, so determinism is untouched.
    pub wall_deadline: Option<std::time::Instant>,
    /// Step every host through every tick, instead of crossing stretches in
    /// which nothing can happen in one step (`world::clock` says how and why
    /// that is exact). Slower, with the same trace: the check that it is.
    pub every_tick: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            trace_file: None,
            keep_records: true,
            wall_deadline: None,
            every_tick: false,
        }
    }
}

pub struct RunOutcome {
    pub report: Report,
    /// The trace, if `keep_records` was set.
    pub records: Vec<Record>,
    /// How many steps the run loop took: the simulated time in ticks when
    /// stepping every tick, far fewer when idle stretches are skipped.
    pub steps: u64,
}

/// Runs the same plan (network, workload, faults) under every mechanism, in
/// `Mechanism::ALL` order: what `pushpull compare` prints. A webhooks
/// scenario adds webhooks last: a partner polling an orders API, or
/// holding a stream, against being called when an order changes.
pub fn compare(plan: &Plan) -> Result<Vec<Report>, String> {
    use crate::scenario::Mechanism;
    let mut mechanisms = Mechanism::ALL.to_vec();
    if plan.scenario.mechanism == Mechanism::Webhooks {
        mechanisms.push(Mechanism::Webhooks);
    }
    mechanisms
        .iter()
        .map(|&mechanism| {
            let options = RunOptions {
                trace_file: None,
                keep_records: false,
                ..RunOptions::default()
            };
            run(&plan.with_mechanism(mechanism), options).map(|outcome| outcome.report)
        })
        .collect()
}

/// How far the run loop can step from `now` when nothing can happen before
/// `until` (a timer's deadline, a message's delivery, a publication or
/// fault, the end): whole ticks, ending at least a tick before `until`, so
/// that whatever happens then happens in the same tick as it would have
/// tick by tick. One tick when there is no room to skip.
fn idle_stretch(now: Duration, until: Duration, tick: Duration) -> Duration {
    let ticks = until.saturating_sub(now).as_nanos() / tick.as_nanos().max(1);
    if ticks < 3 {
        return tick;
    }
    tick * u32::try_from(ticks - 1).unwrap_or(u32::MAX)
}

/// Something the run loop does at a given time.
enum Action<'a> {
    Publish,
    Cut(&'a [String], CutKind),
    Heal(&'a [String]),
    Crash(&'a str),
    Restart(&'a str),
}

/// Runs `plan` to the end and reports on it.
pub fn run(plan: &Plan, options: RunOptions) -> Result<RunOutcome, String> {
    let scenario = plan.scenario.clone();
    let end = plan.end();
    let tracer = Tracer::new(options.trace_file, options.keep_records);
    let metrics = Rc::new(RefCell::new(Metrics::default()));
    tracer.observe(metrics.clone());

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

    let switchboard = Switchboard::new(
        TcpSettings {
            round_trip: Span(2 * net.latency.0),
            retransmit_timeout: net.tcp_retransmit_timeout,
            keepalive: net.tcp_keepalive,
            nat_idle_timeout: net.nat_idle_timeout,
            window: (net.socket_buffer_kib > 0).then(|| net.socket_buffer_kib as usize * 1024),
        },
        net.bandwidth.0,
    );
    // Keep-alive is a client's choice (a browser asks its kernel for it).
    let host_net = |host: &str, keepalive: Option<Span>| HostNet {
        keepalive,
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
    let declare = |host: &str, role: Role, clients: Vec<u32>| {
        tracer.at(0, host, Event::Host { role, clients });
    };

    let log = EventLog::default();
    let post_times = PostTimes::default();
    let mechanism = scenario.mechanism;
    // With one server and no broker the server hears everything in the
    // log; otherwise each server hears what it was told (its feed).
    let scaled_out = plan.server_hosts.len() > 1 || scenario.broker;
    let feeds: Vec<Option<Feed>> = plan
        .server_hosts
        .iter()
        .map(|_| scaled_out.then(Feed::default))
        .collect();
    // Each server's database, outside its process.
    let stores: Vec<Store> = plan.server_hosts.iter().map(|_| Store::default()).collect();
    for ((name, feed), store) in plan.server_hosts.iter().zip(&feeds).zip(&stores) {
        let server_ctx = ServerCtx {
            net: host_net(name, None),
            log: log.clone(),
            scenario: scenario.clone(),
            post_times: post_times.clone(),
            name: name.clone(),
            feed: feed.clone(),
            broker: scenario.broker,
            store: store.clone(),
        };
        declare(name, Role::Server, Vec::new());
        // A closure, not a future: turmoil calls it again to restart the
        // host after a crash. The event log is outside it, so it survives.
        sim.host(name.as_str(), move || {
            counted(mechanisms::server(mechanism, server_ctx.clone()))
        });
    }
    if scenario.broker {
        let broker_ctx = BrokerCtx {
            net: host_net("broker", None),
            log: log.clone(),
            post_times: post_times.clone(),
            dedupe: scenario.websocket.resume,
        };
        declare("broker", Role::Broker, Vec::new());
        sim.host("broker", move || {
            counted(crate::world::broker::broker(broker_ctx.clone()))
        });
    }

    // With a proxy, clients talk to it and it talks to the servers; faults
    // that cut a client cut it from the proxy, the host it really reaches.
    let proxied = scenario.proxy.enabled;
    if proxied {
        let proxy_ctx = ProxyCtx {
            net: host_net("proxy", None),
            config: scenario.proxy.clone(),
            count_events: mechanisms::event_counters(mechanism),
            upstreams: plan.server_hosts.clone(),
            next_upstream: Default::default(),
        };
        declare("proxy", Role::Proxy, Vec::new());
        sim.host("proxy", move || {
            counted(crate::world::proxy::proxy(proxy_ctx.clone()))
        });
    }
    // Without a proxy, clients are spread over the servers as DNS round
    // robin would: client k on server ((k-1) mod N) + 1.
    let server_hosts = plan.server_hosts.clone();
    let upstream_of = move |id: u32| -> String {
        if proxied {
            "proxy".into()
        } else {
            server_hosts[(id as usize - 1) % server_hosts.len()].clone()
        }
    };

    for host in &plan.client_hosts {
        declare(&host.name, Role::Client, host.clients.clone());
        let ids = host.clients.clone();
        let hn = host_net(&host.name, net.tcp_keepalive);
        let scenario = scenario.clone();
        let publications = log.publications();
        let post_times = post_times.clone();
        let upstream_of = upstream_of.clone();
        // Outside the closure: what the host keeps across a restart.
        let store = Store::default();
        sim.host(host.name.as_str(), move || {
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
                        upstream: upstream_of(id),
                        join_after: Duration::from_micros(join),
                        rng: RefCell::new(rng),
                        publications: publications.clone(),
                        post_times: post_times.clone(),
                        store: store.clone(),
                    }
                })
                .collect();
            counted(async move {
                for ctx in ctxs {
                    clock::spawn_local(mechanisms::client(mechanism, ctx));
                }
                std::future::pending::<()>().await;
                Ok(())
            })
        });
    }

    // Hosts behind the server (the jobs' queue and worker), each with a
    // store that outlives its crashes.
    let backends = mechanisms::backends(mechanism);
    for (name, software) in &backends {
        declare(name, Role::Backend, Vec::new());
        let (hn, store, scenario, software) = (
            host_net(name, None),
            Store::default(),
            scenario.clone(),
            *software,
        );
        sim.host(*name, move || {
            counted(software(hn.clone(), store.clone(), scenario.clone()))
        });
    }

    // The webhooks' attacker: a host of its own, overhearing the provider.
    if let Some(software) = mechanisms::attacker(mechanism).filter(|_| scenario.attacker) {
        declare("attacker", Role::Attacker, Vec::new());
        let hn = host_net("attacker", None);
        let scenario = scenario.clone();
        let (publications, post_times) = (log.publications(), post_times.clone());
        let overheard = stores[0].clone();
        sim.host("attacker", move || {
            let ctx = ClientCtx {
                id: 0,
                net: hn.clone(),
                scenario: scenario.clone(),
                upstream: "receiver-1".into(),
                join_after: Duration::ZERO,
                rng: RefCell::new(ChaCha8Rng::seed_from_u64(derive_seed(
                    scenario.seed,
                    "attacker",
                ))),
                publications: publications.clone(),
                post_times: post_times.clone(),
                store: overheard.clone(),
            };
            counted(async move {
                software(ctx).await;
                std::future::pending::<()>().await;
                Ok(())
            })
        });
    }

    // Every host, for cuts to hold their links to all the others.
    let mut all_hosts: Vec<&str> = plan.server_hosts.iter().map(String::as_str).collect();
    if scenario.proxy.enabled {
        all_hosts.push("proxy");
    }
    if scenario.broker {
        all_hosts.push("broker");
    }
    if scenario.attacker && mechanism == crate::scenario::Mechanism::Webhooks {
        all_hosts.push("attacker");
    }
    all_hosts.extend(backends.iter().map(|(name, _)| *name));
    all_hosts.extend(plan.client_hosts.iter().map(|h| h.name.as_str()));

    // The schedule: publications and faults, in time order.
    let mut actions: Vec<(Span, Action)> = plan
        .publications
        .iter()
        .map(|&t| (t, Action::Publish))
        .collect();
    for fault in &plan.faults {
        match fault {
            FaultPlan::Cut {
                hosts,
                from,
                to,
                how,
            } => {
                actions.push((*from, Action::Cut(hosts, *how)));
                if let Some(to) = to {
                    actions.push((*to, Action::Heal(hosts)));
                }
            }
            FaultPlan::Crash { host, at, restart } => {
                actions.push((*at, Action::Crash(host)));
                if let Some(restart) = restart {
                    actions.push((*restart, Action::Restart(host)));
                }
            }
        }
    }
    // Stable: at equal times, publications first, then faults in file order.
    actions.sort_by_key(|(t, _)| *t);

    let tick = net.tick.to_std();
    let mut watch = clock::Watch::start();
    // Nothing has run yet: the first tick starts every host's software.
    let mut last_tick_was_quiet = false;
    let mut next = 0;
    let mut steps = 0;
    loop {
        let now = Span::from_std(sim.elapsed());
        let acted = next < actions.len() && actions[next].0 <= now;
        while next < actions.len() && actions[next].0 <= now {
            let t = now.as_micros();
            match &actions[next].1 {
                Action::Publish => {
                    let id = log.last_id() + 1;
                    log.append(payload(id, scenario.workload.payload_bytes), t);
                    // The scenario's events happen at the first server (the
                    // broker, when there is one, tells the others).
                    let at = if scenario.broker {
                        "broker"
                    } else {
                        plan.server_hosts[0].as_str()
                    };
                    if !scenario.broker
                        && let Some(Some(feed)) = feeds.first()
                    {
                        feed.hear(id);
                    }
                    tracer.at(
                        t,
                        at,
                        Event::Publish {
                            event: id,
                            from: None,
                            message: None,
                        },
                    );
                }
                Action::Cut(hosts, how) => {
                    // Our TCP (world::tcp) stops data at the cut and
                    // retransmits it; turmoil holds whatever else is on the
                    // wire (a FIN, a message already in flight) until the heal.
                    for h in hosts.iter() {
                        for other in all_hosts.iter().filter(|o| **o != h.as_str()) {
                            sim.hold(h.as_str(), *other);
                        }
                    }
                    switchboard.cut(hosts, *how);
                    let hosts = hosts.to_vec();
                    tracer.at(t, NETWORK, Event::Cut { hosts, how: *how });
                }
                Action::Heal(hosts) => {
                    for h in hosts.iter() {
                        for other in all_hosts.iter().filter(|o| **o != h.as_str()) {
                            sim.release(h.as_str(), *other);
                        }
                    }
                    switchboard.heal(hosts);
                    let hosts = hosts.to_vec();
                    tracer.at(t, NETWORK, Event::Heal { hosts });
                }
                Action::Crash(host) => {
                    sim.crash(*host);
                    switchboard.set_crashed(host, true);
                    tracer.at(t, host, Event::Crash);
                }
                Action::Restart(host) => {
                    sim.bounce(*host);
                    switchboard.set_crashed(host, false);
                    tracer.at(t, host, Event::Restart);
                }
            }
            next += 1;
        }
        if now >= end {
            break;
        }
        if let Some(deadline) = options.wall_deadline
            && std::time::Instant::now() >= deadline
        {
            return Err(format!(
                "the run was stopped after {} of {} simulated: it took longer than its \
                 wall-time limit (fewer clients or a shorter duration run faster)",
                now, end
            ));
        }
        // An action may have woken tasks (a publication, a heal), and a
        // busy tick may have left some woken; both want the next tick. Only
        // after a quiet one can a stretch be crossed at once.
        let step = if options.every_tick || acted || !last_tick_was_quiet {
            tick
        } else {
            let next_action = actions.get(next).map_or(end, |(t, _)| *t).min(end);
            let mut until = next_action.to_std();
            // Timers may fire up to a millisecond after their deadline
            // (tokio's timer wheel rounds up), and deadlines are noted to
            // the millisecond, rounded down: one is forgotten only once
            // both have passed.
            let fired = now.to_std().saturating_sub(tick + Duration::from_millis(2));
            if let Some(timer) = watch.next_timer_after(fired) {
                until = until.min(timer);
            }
            if let Some(delivery) = sim.next_delivery() {
                until = until.min(now.to_std() + delivery);
            }
            idle_stretch(now.to_std(), until, tick)
        };
        let delivered_before = sim.delivered();
        sim.step_by(step)
            .map_err(|e| format!("the simulation stopped: {e}"))?;
        steps += 1;
        // A delivery can wake a task on another host, after that host's
        // turn in the step (a SYN to a closed port wakes the connecting
        // side); that task runs in the next tick.
        let delivered = sim.delivered() != delivered_before;
        let ran = watch.anything_ran();
        debug_assert!(
            step == tick || !ran,
            "a task ran in a stretch skipped as idle ({now} + {}, {} seed {}): something \
             woke it that world::clock does not know of (a timer or task not made through it?)",
            Span::from_std(step),
            scenario.mechanism.name(),
            scenario.seed,
        );
        last_tick_was_quiet = !ran && !delivered;
    }
    drop(watch);
    // The hosts hold handles to the trace; they must be gone before it ends.
    switchboard.clear_graveyard();
    drop(sim);
    let finished = tracer
        .finish()
        .map_err(|e| format!("could not write the trace: {e}"))?;
    let metrics = Rc::try_unwrap(metrics)
        .unwrap_or_else(|_| panic!("the trace is finished, so nothing else observes it"))
        .into_inner();
    Ok(RunOutcome {
        report: metrics.into_report(&scenario, finished.hash),
        records: finished.records,
        steps,
    })
}
