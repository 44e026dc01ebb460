//! Webhooks: the provider calls the receiver. Nobody holds a connection
//! and nobody polls: when an order is created, the provider POSTs it to
//! every receiver that subscribed, signed so the receiver knows it is
//! genuine (`wire::webhook`), and tries again, for hours or days, until a
//! `2xx` says it arrived. Event 7 (order 3 created, with
//! `workload.payload_bytes = 7` so that its note is short, and the
//! specification's example secret; a unit test pins these bytes):
//!
//! ```text
//! POST /webhooks HTTP/1.1\r\n
//! Host: receiver-1:8001\r\n
//! Content-Type: application/json\r\n
//! webhook-id: msg_7\r\n
//! webhook-timestamp: 1767225810\r\n
//! webhook-signature: v1,R2h8BhYV3GsR5/vhepNdmBdP9FDdIv3nie07H2KG6gA=\r\n
//! Connection: close\r\n
//! Content-Length: 123\r\n
//! \r\n
//! {"type":"order.created","timestamp":"2026-01-01T00:03:30Z","data":{"event":7,"order":"ord_3","version":1,"note":"event 7"}}
//!                                             HTTP/1.1 200 OK\r\n
//!                                             Content-Type: text/plain\r\n
//!                                             Content-Length: 0\r\n
//!                                             \r\n
//! ```
//!
//! The trade-off: nothing is spent while nothing happens, and an event
//! leaves the moment it happens; but the receiver must be a server the
//! provider can reach, must check every request (anyone can POST to it),
//! and gets each event *at least* once: an answer lost on the way back
//! looks like a failure to the provider, which sends it again. Hence the
//! receiver's deduplication on `webhook-id`.
//!
//! Both stores outlive their hosts' crashes: the provider's subscriptions
//! and pending deliveries (a database and a queue), the receiver's record
//! of applied messages. What lives in a process (attempts in flight, a
//! receiver's queue of work acknowledged but not done) dies with it.

use crate::record::trace::{Event, Kind};
use crate::scenario::plan::derive_seed;
use crate::scenario::{Ack, Ordering, Retries, RetrySchedule, Scenario};
use crate::wire::http::{Request, Response};
use crate::wire::webhook::{self, Headers};
use crate::world::clock::{sleep, sleep_until, spawn_local, timeout};
use crate::world::conn::{Attempt, Carried, Label};
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::network::{SERVER_PORT, TcpConn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

/// The event types of the study notes' shop, in turn.
pub const EVENT_TYPES: [&str; 3] = ["order.created", "order.updated", "payment.succeeded"];

/// The type of event `id`.
pub fn event_type(id: u64) -> &'static str {
    EVENT_TYPES[(id as usize).wrapping_sub(1) % EVENT_TYPES.len()]
}

/// A receiver's registration, `POST /subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    pub url: String,
    pub events: Vec<String>,
}

/// The provider's answer: the subscription and the secret to verify with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribed {
    pub id: String,
    pub secret: String,
}

/// The body of a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub data: OrderData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    pub event: u64,
    pub order: String,
    /// The order's version this event makes: 1 created, 2 updated, 3 paid.
    pub version: u32,
    pub note: String,
}

/// The order event `id` is about, and the version it makes: each order is
/// created, updated, then paid, three events in a row.
pub fn order_of(id: u64) -> (String, u32) {
    let index = id.saturating_sub(1);
    (format!("ord_{}", index / 3 + 1), (index % 3) as u32 + 1)
}

/// `2026-01-01T00:00:42Z` for `unix` seconds (the run's clock).
fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The run's wall clock, unix seconds (it starts at 2026-01-01).
fn unix_now() -> u64 {
    turmoil::since_epoch().unwrap_or_default().as_secs()
}

fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

// ANCHOR: schedule
/// How long after the `failures`-th failed attempt in a row the next one
/// goes (before jitter); `None`: that was the last, the message is dead.
pub fn retry_delay(schedule: &Retries, failures: u32) -> Option<Duration> {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    let n = failures as usize;
    let secs = |list: &[u64]| list.get(n - 1).map(|&s| Duration::from_secs(s));
    match schedule {
        // Standard Webhooks' example schedule.
        Retries::Named(RetrySchedule::Standard) => secs(&[
            5,
            5 * MIN,
            30 * MIN,
            2 * HOUR,
            5 * HOUR,
            10 * HOUR,
            14 * HOUR,
            20 * HOUR,
            24 * HOUR,
        ]),
        Retries::Named(RetrySchedule::Svix) => secs(&[
            5,
            5 * MIN,
            30 * MIN,
            2 * HOUR,
            5 * HOUR,
            10 * HOUR,
            10 * HOUR,
        ]),
        // "Up to three days with an exponential back off": 1 min doubling,
        // at most 12 h apart, while the total stays within three days.
        Retries::Named(RetrySchedule::Stripe) => {
            let delay = |k: usize| (MIN << (k - 1).min(20)).min(12 * HOUR);
            let total: u64 = (1..=n).map(delay).sum();
            (total <= 72 * HOUR).then(|| Duration::from_secs(delay(n)))
        }
        // GitHub does not retry.
        Retries::Named(RetrySchedule::Github) => None,
        Retries::Delays(delays) => delays.get(n - 1).map(|d| d.to_std()),
    }
}

/// How long the provider waits for an answer to one attempt.
pub fn attempt_timeout(scenario: &Scenario) -> Duration {
    match scenario.webhooks.schedule {
        // GitHub: "terminate the connection if the response takes longer
        // than 10 seconds".
        Retries::Named(RetrySchedule::Github) => Duration::from_secs(10),
        _ => scenario.webhooks.attempt_timeout.to_std(),
    }
}
// ANCHOR_END: schedule

/// One subscriber, as the provider keeps it.
#[derive(Clone, Debug)]
struct Subscription {
    id: String,
    host: String,
    port: u16,
    path: String,
    key: Vec<u8>,
    events: Vec<String>,
    /// A `410 Gone` switched it off.
    disabled: bool,
}

impl Subscription {
    /// The receiver's client number, for the trace only: our receivers
    /// listen on port 8000 + their number (a provider knows only URLs).
    fn client(&self) -> Option<u32> {
        self.port
            .checked_sub(8000)
            .map(u32::from)
            .filter(|&c| c > 0)
    }
}

/// A delivery not done yet.
#[derive(Clone, Debug)]
struct Pending {
    failures: u32,
    /// When the next attempt may go, in microseconds of simulated time.
    due_us: u64,
    in_flight: bool,
}

/// The provider's database and queue: they survive its restart.
#[derive(Default)]
struct ProviderStore {
    subscriptions: RefCell<Vec<Subscription>>,
    /// Events already turned into deliveries.
    fanned_out: Cell<u64>,
    /// (subscription, event) -> its state.
    pending: RefCell<BTreeMap<(usize, u64), Pending>>,
    dead_letters: RefCell<Vec<(usize, u64)>>,
    /// The dead letters were sent again (`replay_dead_letters_at`).
    replayed: Cell<bool>,
    /// Wakes the dispatcher when an attempt ends or a receiver subscribes.
    changed: tokio::sync::Notify,
}

// ANCHOR: provider
pub async fn server(ctx: ServerCtx) -> turmoil::Result {
    let store = ctx.store.slot::<ProviderStore>("webhook provider");
    // Attempts in flight died with the previous process: due again now.
    for pending in store.pending.borrow_mut().values_mut() {
        pending.in_flight = false;
    }
    let ctx = Rc::new(ctx);
    spawn_local(dispatch(ctx.clone(), store.clone()));
    let listener = ctx
        .net
        .listen(SERVER_PORT, Some(&ctx.scenario.server))
        .await?;
    loop {
        let conn = ctx.net.accept(&listener).await?;
        spawn_local(serve_subscriptions(conn, ctx.clone(), store.clone()));
    }
}

/// Turns each new event into one delivery per subscriber that wants its
/// type, and starts every delivery that is due, as many at once per
/// receiver as `webhooks.concurrency` allows. Nothing promises the order
/// in which they arrive.
async fn dispatch(ctx: Rc<ServerCtx>, store: Rc<ProviderStore>) {
    let concurrency = ctx.scenario.webhooks.concurrency as usize;
    let replay_at = ctx
        .scenario
        .webhooks
        .replay_dead_letters_at
        .map(|t| t.as_micros());
    loop {
        let published = ctx.log.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        let changed = store.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = now_us();
        // Manual redelivery: the dead letters get a fresh schedule.
        if replay_at.is_some_and(|at| now >= at) && !store.replayed.get() {
            store.replayed.set(true);
            for key in store.dead_letters.borrow_mut().drain(..) {
                let fresh = Pending {
                    failures: 0,
                    due_us: now,
                    in_flight: false,
                };
                store.pending.borrow_mut().insert(key, fresh);
            }
        }
        let last = ctx.log.last_id();
        for event in store.fanned_out.get() + 1..=last {
            for (i, sub) in store.subscriptions.borrow().iter().enumerate() {
                if !sub.disabled && sub.events.iter().any(|t| t == event_type(event)) {
                    let due = Pending {
                        failures: 0,
                        due_us: now,
                        in_flight: false,
                    };
                    store.pending.borrow_mut().insert((i, event), due);
                }
            }
        }
        store.fanned_out.set(last);
        let mut busy: BTreeMap<usize, usize> = BTreeMap::new();
        for ((sub, _), p) in store.pending.borrow().iter() {
            if p.in_flight {
                *busy.entry(*sub).or_default() += 1;
            }
        }
        let mut next_due = u64::MAX;
        let mut start = Vec::new();
        for (&(sub, event), p) in store.pending.borrow_mut().iter_mut() {
            if p.in_flight {
                continue;
            }
            if p.due_us > now {
                next_due = next_due.min(p.due_us);
                continue;
            }
            let running = busy.entry(sub).or_default();
            if *running < concurrency {
                *running += 1;
                p.in_flight = true;
                start.push((sub, event, p.failures));
            }
        }
        for (sub, event, failures) in start {
            let run = deliver(ctx.clone(), store.clone(), sub, event, failures);
            spawn_local(run);
        }
        if let Some(at) = replay_at.filter(|_| !store.replayed.get()) {
            next_due = next_due.min(at);
        }
        let wait = Duration::from_micros(next_due.saturating_sub(now).min(u64::MAX / 4));
        tokio::select! {
            biased;
            _ = &mut published => {}
            _ = &mut changed => {}
            _ = sleep(wait) => {}
        }
    }
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// `410 Gone`: the receiver wants no more.
    Gone,
    /// Try again, not before `at_least` if the receiver said so
    /// (`Retry-After` on 429 and 503). Why it failed is in the trace, on
    /// the connection (an attempt abandoned at the timeout shows as a
    /// request with no answer).
    Failed {
        at_least: Option<Duration>,
    },
}

/// One attempt to deliver `event` to subscription `sub`, and what follows
/// from its outcome.
async fn deliver(
    ctx: Rc<ServerCtx>,
    store: Rc<ProviderStore>,
    sub: usize,
    event: u64,
    failures: u32,
) {
    let subscription = store.subscriptions.borrow()[sub].clone();
    let attempt = if failures == 0 {
        Attempt::First
    } else {
        Attempt::Retry
    };
    let outcome = timeout(
        attempt_timeout(&ctx.scenario),
        attempt_once(&ctx, &subscription, event, attempt),
    )
    .await
    .unwrap_or(Outcome::Failed { at_least: None });
    let key = (sub, event);
    match outcome {
        Outcome::Delivered => {
            store.pending.borrow_mut().remove(&key);
        }
        Outcome::Gone => {
            // The specification: 410 means disable the endpoint.
            store.subscriptions.borrow_mut()[sub].disabled = true;
            store.pending.borrow_mut().retain(|(s, _), _| *s != sub);
        }
        Outcome::Failed { at_least, .. } => {
            let failures = failures + 1;
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                ctx.scenario.seed,
                &format!("webhook retry/{sub}/{event}/{failures}"),
            ));
            match retry_delay(&ctx.scenario.webhooks.schedule, failures) {
                Some(delay) => {
                    let jitter = ctx.scenario.webhooks.jitter;
                    let factor = 1.0 + jitter * (rng.random::<f64>() * 2.0 - 1.0);
                    let delay = delay.mul_f64(factor).max(at_least.unwrap_or_default());
                    if let Some(p) = store.pending.borrow_mut().get_mut(&key) {
                        p.failures = failures;
                        p.due_us = now_us() + delay.as_micros() as u64;
                        p.in_flight = false;
                    }
                    if let Some(client) = subscription.client() {
                        ctx.net.trace.record(Event::RetryScheduled {
                            client,
                            event,
                            in_ms: delay.as_millis() as u64,
                        });
                    }
                }
                None => {
                    store.pending.borrow_mut().remove(&key);
                    store.dead_letters.borrow_mut().push(key);
                    ctx.net.trace.record(Event::DeadLetter {
                        subscription: subscription.id.clone(),
                        client: subscription.client(),
                        event,
                    });
                }
            }
        }
    }
    store.changed.notify_one();
}

/// The signed POST of `event` (whose payload note is `note`, which happened
/// at `happened` unix seconds) to `sub`, signed at `sent_at`.
fn delivery(sub: &Subscription, event: u64, note: String, happened: u64, sent_at: u64) -> Request {
    let (order, version) = order_of(event);
    let body = serde_json::to_vec(&Payload {
        kind: event_type(event).into(),
        timestamp: rfc3339(happened),
        data: OrderData {
            event,
            order,
            version,
            note,
        },
    })
    .expect("a payload always serializes");
    let id = format!("msg_{event}");
    let signature = webhook::sign(&sub.key, &id, sent_at as i64, &body);
    Request {
        method: "POST".into(),
        target: sub.path.clone(),
        minor_version: 1,
        headers: vec![
            ("Host".into(), format!("{}:{}", sub.host, sub.port)),
            ("Content-Type".into(), "application/json".into()),
            (webhook::ID_HEADER.into(), id),
            (webhook::TIMESTAMP_HEADER.into(), sent_at.to_string()),
            (webhook::SIGNATURE_HEADER.into(), signature),
            // One attempt, one connection: providers do not keep
            // connections to thousands of receivers open.
            ("Connection".into(), "close".into()),
        ],
        body,
    }
}

/// Connects, sends the signed POST, reads the answer.
async fn attempt_once(
    ctx: &ServerCtx,
    sub: &Subscription,
    event: u64,
    attempt: Attempt,
) -> Outcome {
    let failed = |_why: String| Outcome::Failed { at_least: None };
    let Some(data) = ctx.log.after(event - 1, 1).pop() else {
        return failed("the event is gone".into());
    };
    let sent_at = unix_now();
    // The payload's timestamp is when the event happened (the same in every
    // attempt); the header's is when this attempt was signed.
    let happened_us = ctx.log.publications().of(event).unwrap_or_default();
    let run_started = sent_at - now_us() / 1_000_000;
    let happened = run_started + happened_us / 1_000_000;
    let request = delivery(sub, event, data.data, happened, sent_at);
    let mut conn = match ctx.net.connect(&sub.host, sub.port, attempt).await {
        Ok(conn) => conn,
        Err(e) => return failed(format!("connect failed: {e}")),
    };
    if sub.id == "sub_1" {
        let tap = ctx.store.slot::<Wiretap>(WIRETAP);
        if tap.captured.borrow().is_none() {
            *tap.captured.borrow_mut() = Some(request.clone());
            tap.seen.notify_one();
        }
    }
    let mut label =
        Label::new(Kind::Request, request.summary()).carrying(Some(Carried::from(Some(event), 1)));
    label.attempt = attempt;
    if let Err(e) = conn.send(&request.to_bytes(), label).await {
        conn.fail(&format!("write failed: {e}"));
        return failed(format!("write failed: {e}"));
    }
    let response = match conn.read_response().await {
        Ok(response) => response,
        Err(e) => {
            conn.fail(&e.to_string());
            return failed(e.to_string());
        }
    };
    conn.close("answered").await;
    outcome_of(&response)
}

/// What an answer means to the provider: any 2xx delivers; `410 Gone`
/// disables the subscription (the specification says so); `429` and `503`
/// are retried, not before their `Retry-After` (in seconds); anything else
/// is retried on the schedule.
fn outcome_of(response: &Response) -> Outcome {
    match response.status {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Gone,
        429 | 503 => Outcome::Failed {
            at_least: response
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        _ => Outcome::Failed { at_least: None },
    }
}

/// `POST /subscriptions`: a receiver registers its URL and the event types
/// it wants, and gets its secret back.
async fn serve_subscriptions(mut conn: TcpConn, ctx: Rc<ServerCtx>, store: Rc<ProviderStore>) {
    loop {
        let request = match conn.read_request().await {
            Ok(Some(request)) => request,
            Ok(None) => return conn.close("client closed").await,
            Err(e) => return conn.reject(&e).await,
        };
        let response = subscribe(&ctx, &store, &request);
        if let Err(e) = conn.send_response(&response, None).await {
            return conn.fail(&format!("write failed: {e}"));
        }
        if !request.keep_alive() || response.status >= 400 {
            return conn.close("done").await;
        }
    }
}

fn subscribe(ctx: &ServerCtx, store: &ProviderStore, request: &Request) -> Response {
    if request.path() != "/subscriptions" {
        return Response::error(404, "try POST /subscriptions");
    }
    if request.method != "POST" {
        let mut refusal = Response::error(405, "POST a subscription here");
        refusal.headers.push(("Allow".into(), "POST".into()));
        return refusal;
    }
    let Ok(wanted) = serde_json::from_slice::<Subscribe>(&request.body) else {
        return Response::error(
            400,
            r#"a subscription is {"url":"http://host:port/path","events":[...]}"#,
        );
    };
    let Some((host, port, path)) = parse_url(&wanted.url) else {
        return Response::error(400, "the url must be http://host:port/path");
    };
    let mut subscriptions = store.subscriptions.borrow_mut();
    let number = subscriptions.len() + 1;
    // The secret: 24 random bytes, from the scenario's seed.
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
        ctx.scenario.seed,
        &format!("webhook secret/{number}"),
    ));
    let key: Vec<u8> = (0..24).map(|_| rng.random()).collect();
    let answer = Subscribed {
        id: format!("sub_{number}"),
        secret: webhook::encode_secret(&key),
    };
    subscriptions.push(Subscription {
        id: answer.id.clone(),
        host,
        port,
        path,
        key,
        events: wanted.events,
        disabled: false,
    });
    store.changed.notify_one();
    let body = serde_json::to_vec(&answer).expect("an answer serializes");
    Response::new(201, "application/json", body)
}

/// `http://host:port/path` in parts.
fn parse_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    let path = if path.is_empty() { "/" } else { path };
    (!host.is_empty()).then(|| (host.to_string(), port, path.to_string()))
}
// ANCHOR_END: provider

/// What the attacker overheard: the first delivery to receiver-1, as if
/// read off the wire (plain HTTP), from a proxy's log, or from a request
/// pasted into a bug report. (The model hands it over through the
/// provider's store; a real attacker needs only to see one request.)
#[derive(Default)]
struct Wiretap {
    captured: RefCell<Option<Request>>,
    seen: tokio::sync::Notify,
}

const WIRETAP: &str = "wiretap";

// ANCHOR: attacker
/// The attacker: waits to overhear one genuine delivery to receiver-1,
/// then tries four ways to make it act on something the provider did not
/// send. Every one must fail: the first two on the signature, the third on
/// the dedupe store, the last on the timestamp.
pub async fn attacker(ctx: ClientCtx) {
    let tap = ctx.store.slot::<Wiretap>(WIRETAP);
    let genuine = loop {
        let seen = tap.seen.notified();
        tokio::pin!(seen);
        seen.as_mut().enable();
        if let Some(request) = tap.captured.borrow().clone() {
            break request;
        }
        seen.await;
    };
    let tolerance = ctx.scenario.receiver.tolerance.to_std();
    let attacks = [
        (Duration::from_secs(1), Attack::Forged),
        (Duration::from_secs(2), Attack::Tampered),
        (Duration::from_secs(60), Attack::Replayed),
        (tolerance + Duration::from_secs(60), Attack::Replayed),
    ];
    let start = tokio::time::Instant::now();
    for (after, attack) in attacks {
        sleep_until(start + after).await;
        let mut request = genuine.clone();
        match attack {
            // A delivery of the attacker's making, signed with a key that
            // is not the receiver's.
            Attack::Forged => {
                let body = br#"{"type":"payment.succeeded","timestamp":"2026-01-01T00:00:00Z","data":{"event":999999,"order":"ord_999999","version":3,"note":"refund me"}}"#.to_vec();
                let id = "msg_999999";
                let stamp = unix_now();
                let signature = webhook::sign(b"a guessed key", id, stamp as i64, &body);
                set_header(&mut request, webhook::ID_HEADER, id.into());
                set_header(&mut request, webhook::TIMESTAMP_HEADER, stamp.to_string());
                set_header(&mut request, webhook::SIGNATURE_HEADER, signature);
                request.body = body;
            }
            // The genuine headers on a changed body.
            Attack::Tampered => {
                let text = String::from_utf8_lossy(&request.body).replacen("ord_", "ord_9", 1);
                request.body = text.into_bytes();
            }
            // The genuine request, byte for byte.
            Attack::Replayed => {}
        }
        let host = request
            .header("host")
            .and_then(|h| h.rsplit_once(':'))
            .map(|(h, p)| (h.to_string(), p.parse().unwrap_or(80)));
        let Some((host, port)) = host else { return };
        let Ok(mut conn) = ctx.net.connect(&host, port, Attempt::First).await else {
            continue;
        };
        if conn.send_request(&request, Attempt::First).await.is_ok() {
            let _ = conn.read_response().await;
        }
        conn.close("done").await;
    }
}

/// What the attacker does with what it overheard.
#[derive(Clone, Copy)]
enum Attack {
    Forged,
    Tampered,
    Replayed,
}

fn set_header(request: &mut Request, name: &str, value: String) {
    request
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    request.headers.push((name.to_string(), value));
}
// ANCHOR_END: attacker

// ANCHOR: receiver
/// What a receiver keeps across its restart (its database): its
/// subscription's key, and which messages it applied.
#[derive(Default)]
struct ReceiverStore {
    keys: RefCell<BTreeMap<u32, Rc<Vec<u8>>>>,
    applied: RefCell<HashSet<String>>,
    /// Per receiver and order, the version applied last.
    versions: RefCell<BTreeMap<(u32, String), u32>>,
}

/// Each receiver listens on its own port (several may share a host).
pub fn receiver_port(client: u32) -> u16 {
    8000 + client as u16
}

/// A receiver: registers, then serves deliveries on `/webhooks`.
pub async fn client(ctx: ClientCtx) {
    ctx.wait_to_join().await;
    let ctx = Rc::new(ctx);
    let port = receiver_port(ctx.id);
    let listener = match ctx.net.listen(port, None).await {
        Ok(listener) => listener,
        Err(e) => return ctx.report_error(format!("cannot listen on {port}: {e}")),
    };
    let store = ctx.store.slot::<ReceiverStore>(RECEIVER_STORE);
    // Subscribed once: after a restart the secret is read back, not asked
    // for again.
    let known = store.keys.borrow().get(&ctx.id).cloned();
    let key = match known {
        Some(key) => key,
        None => loop {
            match register(&ctx, port).await {
                Ok(key) => {
                    let key = Rc::new(key);
                    store.keys.borrow_mut().insert(ctx.id, key.clone());
                    break key;
                }
                Err(why) => {
                    ctx.report_error(why);
                    sleep(Duration::from_secs(5)).await;
                }
            }
        },
    };
    // Messages being processed now: memory of this process only.
    let working = Rc::new(RefCell::new(HashSet::new()));
    loop {
        let Ok(conn) = ctx.net.accept(&listener).await else {
            return;
        };
        let run = serve_delivery(
            conn,
            ctx.clone(),
            key.clone(),
            store.clone(),
            working.clone(),
        );
        spawn_local(run);
    }
}

/// The store's name (several receivers on one host share it, keyed by
/// client and message).
const RECEIVER_STORE: &str = "webhook receiver";

/// `POST /subscriptions`; returns the key inside the secret.
async fn register(ctx: &ClientCtx, port: u16) -> Result<Vec<u8>, String> {
    let host = ctx.net.trace.host().to_string();
    let subscription = Subscribe {
        url: format!("http://{host}:{port}/webhooks"),
        events: EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
    };
    let mut request = Request::get("/subscriptions", &ctx.upstream);
    request.method = "POST".into();
    request
        .headers
        .push(("Content-Type".into(), "application/json".into()));
    request.body = serde_json::to_vec(&subscription).expect("serializes");
    let mut conn = ctx
        .connect(Attempt::First)
        .await
        .map_err(|e| format!("cannot reach the provider: {e}"))?;
    conn.send_request(&request, Attempt::First)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    let response = conn.read_response().await.map_err(|e| e.to_string())?;
    conn.close("registered").await;
    let answer: Subscribed = serde_json::from_slice(&response.body)
        .map_err(|_| format!("registration answered {}", response.status))?;
    webhook::decode_secret(&answer.secret).map_err(|e| e.to_string())
}

/// One delivery: verify, deduplicate, apply, answer.
async fn serve_delivery(
    mut conn: TcpConn,
    ctx: Rc<ClientCtx>,
    key: Rc<Vec<u8>>,
    store: Rc<ReceiverStore>,
    working: Rc<RefCell<HashSet<String>>>,
) {
    let request = match conn.read_request().await {
        Ok(Some(request)) => request,
        Ok(None) => return conn.close("provider closed").await,
        Err(e) => return conn.reject(&e).await,
    };
    let receiver = &ctx.scenario.receiver;
    // The checks run on the raw body bytes, before any parsing.
    let headers = Headers::from_pairs(&request.headers);
    // The receiver's clock, as wrong as `receiver.clock_skew` makes it.
    let now = unix_now() as i64 + receiver.clock_skew.0.div_euclid(1_000_000);
    let verdict = webhook::verify(
        &key,
        &headers,
        &request.body,
        now,
        receiver.tolerance.as_micros() / 1_000_000,
    );
    let id = match verdict {
        Ok(id) => id.to_string(),
        Err(refusal) => {
            ctx.net.trace.record(Event::Refused {
                client: ctx.id,
                why: refusal.to_string(),
            });
            let _ = conn
                .send_response(&Response::error(400, &refusal.to_string()), None)
                .await;
            return conn.close("refused").await;
        }
    };
    let Ok(payload) = serde_json::from_slice::<Payload>(&request.body) else {
        let _ = conn
            .send_response(&Response::error(400, "not a delivery"), None)
            .await;
        return conn.close("refused").await;
    };
    // Load shedding: past `max_concurrent` deliveries in hand, come back
    // later (and say when).
    if receiver.max_concurrent > 0 && working.borrow().len() >= receiver.max_concurrent as usize {
        let mut busy = Response::error(503, "busy: try again later");
        busy.headers.push(("Retry-After".into(), "10".into()));
        let _ = conn.send_response(&busy, None).await;
        return conn.close("shed load").await;
    }
    let seen_key = format!("{}/{id}", ctx.id);
    let work = receiver.work.to_std();
    let ok = |status| Response::new(status, "text/plain", Vec::new());
    // Nothing promises the order of deliveries: an update can come before
    // its order's creation (whose first attempt failed). A receiver that
    // checks versions answers one that comes too early with 409, and the
    // provider's retry brings it back after the one it needs.
    if receiver.ordering == Ordering::VersionCheck {
        let order = (ctx.id, payload.data.order.clone());
        let current = store.versions.borrow().get(&order).copied().unwrap_or(0);
        if payload.data.version > current + 1 {
            let why = format!(
                "{} is at version {current}; this is version {}",
                order.1, payload.data.version
            );
            let _ = conn.send_response(&Response::error(409, &why), None).await;
            return conn.close("too early").await;
        }
    }
    if receiver.dedupe {
        // Applied before: acknowledge, do nothing.
        if store.applied.borrow().contains(&seen_key) {
            let _ = conn.send_response(&ok(200), None).await;
            return conn.close("answered").await;
        }
        // Being applied right now (the provider gave up waiting and sent
        // it again): not yet done, so not a 2xx; the provider retries
        // later, and finds it applied.
        if working.borrow().contains(&seen_key) {
            let busy = Response::error(409, "this message is being processed");
            let _ = conn.send_response(&busy, None).await;
            return conn.close("answered").await;
        }
    }
    match receiver.ack {
        Ack::AfterProcessing => {
            working.borrow_mut().insert(seen_key.clone());
            sleep(work).await;
            apply(&ctx, &store, &seen_key, payload.data.event);
            working.borrow_mut().remove(&seen_key);
            let _ = conn.send_response(&ok(200), None).await;
        }
        Ack::BeforeProcessing => {
            // Recorded first, so that a resend while the work is queued is
            // not queued again.
            if receiver.dedupe {
                store.applied.borrow_mut().insert(seen_key.clone());
            }
            working.borrow_mut().insert(seen_key.clone());
            let _ = conn.send_response(&ok(202), None).await;
            sleep(work).await;
            working.borrow_mut().remove(&seen_key);
            apply(&ctx, &store, &seen_key, payload.data.event);
        }
    }
    conn.close("answered").await
}

/// The event's effect, and the record that it happened.
fn apply(ctx: &ClientCtx, store: &ReceiverStore, seen_key: &str, event: u64) {
    if ctx.scenario.receiver.dedupe {
        store.applied.borrow_mut().insert(seen_key.to_string());
    }
    let (order, version) = order_of(event);
    let mut versions = store.versions.borrow_mut();
    let current = versions.entry((ctx.id, order)).or_default();
    *current = (*current).max(version);
    ctx.deliver(event);
}
// ANCHOR_END: receiver

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_answer_means_to_the_provider() {
        let answer = |status, retry_after: Option<&str>| {
            let mut r = Response::new(status, "text/plain", Vec::new());
            if let Some(v) = retry_after {
                r.headers.push(("Retry-After".into(), v.into()));
            }
            outcome_of(&r)
        };
        let at_least = |o| match o {
            Outcome::Failed { at_least } => at_least,
            _ => panic!("not a failure"),
        };
        assert!(matches!(answer(200, None), Outcome::Delivered));
        assert!(matches!(answer(204, None), Outcome::Delivered));
        assert!(matches!(answer(410, None), Outcome::Gone));
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(at_least(answer(429, Some("30"))), secs(30));
        assert_eq!(at_least(answer(503, Some(" 10 "))), secs(10));
        assert_eq!(at_least(answer(503, None)), None);
        // Retry-After is honoured on 429 and 503 only.
        assert_eq!(at_least(answer(500, Some("30"))), None);
        assert_eq!(at_least(answer(301, None)), None);
    }

    /// The bytes the module's doc shows: event 7 (order 3 created) to
    /// receiver-1, with the specification's example secret, happened at
    /// 00:03:30 and signed at once.
    #[test]
    fn a_delivery_byte_for_byte() {
        let sub = Subscription {
            id: "sub_1".into(),
            host: "receiver-1".into(),
            port: 8001,
            path: "/webhooks".into(),
            key: webhook::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            events: Vec::new(),
            disabled: false,
        };
        let at = 1_767_225_600 + 210;
        let request = delivery(&sub, 7, "event 7".into(), at, at);
        let text = String::from_utf8(request.to_bytes()).unwrap();
        let doc: String = include_str!("webhooks.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! POST /webhooks"))
            .take_while(|l| !l.starts_with("//!   "))
            .map(|l| l.trim_start_matches("//! ").replace("\\r\\n", "\r\n") + "\n")
            .collect::<String>()
            .replace("\r\n\n", "\r\n");
        assert_eq!(text, doc.trim_end_matches('\n'), "{text}");
    }
}
