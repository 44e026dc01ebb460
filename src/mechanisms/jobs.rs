//! The async-job pattern, from the study notes' social-sharing backend: a
//! user's request starts a job that takes a while (resize the photo, post
//! it everywhere); the API answers at once, a worker does the job, and the
//! front end learns the outcome one of two ways (`jobs.notify`):
//!
//! ```text
//! api ──POST /enqueue?job=7──▶ queue ◀──GET /next── worker   (leased for visibility_timeout)
//!                                                     │ works for jobs.work
//! api ◀──POST /jobs/7/done───────────────────────────┘ then POST /ack?job=7 to the queue
//!
//! poll:      client ──GET /jobs?after=3──▶ api     every poll_interval, {"done":[7],"next":4}
//! callback:  api ──POST /callback (signed, like a webhook)──▶ client   retried until 2xx
//! ```
//!
//! Polling costs a request per interval per front end whether or not
//! anything finished, and learns the outcome up to an interval late; the
//! callback costs one request per outcome and arrives at once, but needs
//! the front end (or its backend) to be reachable, and a retry schedule
//! when it is not. A worker that crashes mid-job loses nothing: the queue
//! gives the job to a worker again once its lease runs out (SQS's
//! visibility timeout), and both ways learn the outcome that much later.
//!
//! Hosts: `server` (the API), `queue`, `worker`, and the front ends
//! `client-1` .. `client-N`. The API's job records, the queue's messages
//! and the front ends' records of outcomes live in stores that survive
//! their hosts' restarts; a job in a worker's hands dies with the worker.

use crate::mechanisms::webhooks::retry_delay;
use crate::record::trace::Kind;
use crate::scenario::plan::derive_seed;
use crate::scenario::{JobNotify, Retries, RetrySchedule};
use crate::wire::http::{Request, Response};
use crate::wire::webhook::{self, Headers};
use crate::world::clock::{Instant, sleep, sleep_until, spawn_local, timeout};
use crate::world::conn::{Attempt, Carried, Label};
use crate::world::context::{ClientCtx, ServerCtx, Store};
use crate::world::network::{HostNet, SERVER_PORT, TcpConn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

/// The queue's port (RabbitMQ's; the protocol here is plain HTTP).
pub const QUEUE_PORT: u16 = 5672;
/// How long the queue holds a worker's `GET /next` when it is empty.
const QUEUE_WAIT: Duration = Duration::from_secs(20);

fn unix_now() -> u64 {
    turmoil::since_epoch().unwrap_or_default().as_secs()
}

/// One HTTP exchange on a fresh connection: what every host here does.
async fn exchange(
    net: &HostNet,
    host: &str,
    port: u16,
    request: &Request,
    label: Option<Label>,
) -> Result<Response, String> {
    let mut conn = net
        .connect(host, port, Attempt::First)
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    let sent = match label {
        Some(label) => conn.send(&request.to_bytes(), label).await,
        None => conn.send_request(request, Attempt::First).await,
    };
    if let Err(e) = sent {
        conn.fail(&format!("write failed: {e}"));
        return Err(format!("write failed: {e}"));
    }
    match conn.read_response().await {
        Ok(response) => {
            conn.close("answered").await;
            Ok(response)
        }
        Err(e) => {
            conn.fail(&e.to_string());
            Err(e.to_string())
        }
    }
}

fn post(target: &str, host: &str, body: Vec<u8>) -> Request {
    let mut request = Request::get(target, host);
    request.method = "POST".into();
    request.headers.push(("Connection".into(), "close".into()));
    if !body.is_empty() {
        request
            .headers
            .push(("Content-Type".into(), "application/json".into()));
    }
    request.body = body;
    request
}

fn json(status: u16, value: &impl Serialize) -> Response {
    Response::new(
        status,
        "application/json",
        serde_json::to_vec(value).expect("serializes"),
    )
}

// ---------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------

/// The API's database: jobs handed to the queue, jobs done (in the order
/// they finished), the front ends' callbacks.
#[derive(Default)]
struct ApiStore {
    enqueued: Cell<u64>,
    done: RefCell<Vec<u64>>,
    done_set: RefCell<BTreeSet<u64>>,
    callbacks: RefCell<Vec<(String, u16, Vec<u8>)>>,
    changed: tokio::sync::Notify,
}

/// A status answer: jobs done from position `after` on, and where to ask
/// from next.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub done: Vec<u64>,
    pub next: usize,
}

/// A callback's body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(rename = "type")]
    pub kind: String,
    pub job: u64,
}

// ANCHOR: api
pub async fn server(ctx: ServerCtx) -> turmoil::Result {
    let store = ctx.store.slot::<ApiStore>("jobs api");
    let ctx = Rc::new(ctx);
    spawn_local(enqueue_jobs(ctx.clone(), store.clone()));
    if ctx.scenario.jobs.notify == JobNotify::Callback {
        spawn_local(send_callbacks(ctx.clone(), store.clone()));
    }
    let listener = ctx
        .net
        .listen(SERVER_PORT, Some(&ctx.scenario.server))
        .await?;
    loop {
        let mut conn = ctx.net.accept(&listener).await?;
        let (ctx, store) = (ctx.clone(), store.clone());
        spawn_local(async move {
            loop {
                let request = match conn.read_request().await {
                    Ok(Some(request)) => request,
                    Ok(None) => return conn.close("client closed").await,
                    Err(e) => return conn.reject(&e).await,
                };
                let (response, carried) = answer(&ctx, &store, &request);
                if let Err(e) = conn.send_response(&response, carried).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
                if !request.keep_alive() {
                    return conn.close("done").await;
                }
            }
        });
    }
}

/// Every job the users submitted (the run's events) goes to the queue,
/// once, in order.
async fn enqueue_jobs(ctx: Rc<ServerCtx>, store: Rc<ApiStore>) {
    loop {
        let published = ctx.log.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        let next = store.enqueued.get() + 1;
        if next > ctx.log.last_id() {
            published.await;
            continue;
        }
        let request = post(&format!("/enqueue?job={next}"), "queue", Vec::new());
        match exchange(&ctx.net, "queue", QUEUE_PORT, &request, None).await {
            Ok(r) if r.status / 100 == 2 => store.enqueued.set(next),
            _ => sleep(Duration::from_secs(1)).await,
        }
    }
}

fn answer(ctx: &ServerCtx, store: &ApiStore, request: &Request) -> (Response, Option<Carried>) {
    let path = request.path();
    // The worker reports a job done: POST /jobs/7/done.
    if let Some(job) = path
        .strip_prefix("/jobs/")
        .and_then(|rest| rest.strip_suffix("/done"))
        .and_then(|n| n.parse::<u64>().ok())
    {
        if store.done_set.borrow_mut().insert(job) {
            store.done.borrow_mut().push(job);
            store.changed.notify_waiters();
        }
        return (Response::new(204, "text/plain", Vec::new()), None);
    }
    match (request.method.as_str(), path) {
        // A front end polls: which jobs finished since position `after`?
        ("GET", "/jobs") => {
            let after: usize = request
                .query("after")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            let done = store.done.borrow();
            let from = after.min(done.len());
            let status = Status {
                done: done[from..].to_vec(),
                next: done.len(),
            };
            let carried = Carried::from(status.done.first().copied(), status.done.len() as u32);
            (json(200, &status), Some(carried))
        }
        // A front end asks to be called back: its URL, and a secret back.
        ("POST", "/callbacks") => {
            let Some((host, port)) = serde_json::from_slice::<serde_json::Value>(&request.body)
                .ok()
                .and_then(|v| v["url"].as_str().map(str::to_string))
                .and_then(|url| {
                    let rest = url.strip_prefix("http://")?.split('/').next()?.to_string();
                    let (h, p) = rest.rsplit_once(':')?;
                    Some((h.to_string(), p.parse().ok()?))
                })
            else {
                return (
                    Response::error(400, r#"{"url":"http://host:port/..."}"#),
                    None,
                );
            };
            let mut callbacks = store.callbacks.borrow_mut();
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
                ctx.scenario.seed,
                &format!("job callback secret/{}", callbacks.len() + 1),
            ));
            let key: Vec<u8> = (0..24).map(|_| rng.random()).collect();
            let secret = webhook::encode_secret(&key);
            callbacks.push((host, port, key));
            store.changed.notify_waiters();
            (json(201, &serde_json::json!({ "secret": secret })), None)
        }
        _ => (Response::error(404, "try GET /jobs?after=N"), None),
    }
}

/// Callback mode: each finished job, to every registered front end, signed
/// like a webhook and retried on the Standard Webhooks schedule.
async fn send_callbacks(ctx: Rc<ServerCtx>, store: Rc<ApiStore>) {
    // (callback, position in `done`) already started.
    let mut started: BTreeSet<(usize, usize)> = BTreeSet::new();
    loop {
        let changed = store.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let done = store.done.borrow().clone();
        let callbacks = store.callbacks.borrow().len();
        for c in 0..callbacks {
            for (i, &job) in done.iter().enumerate() {
                if started.insert((c, i)) {
                    spawn_local(call_back(ctx.clone(), store.clone(), c, job));
                }
            }
        }
        changed.await;
    }
}

async fn call_back(ctx: Rc<ServerCtx>, store: Rc<ApiStore>, callback: usize, job: u64) {
    let (host, port, key) = store.callbacks.borrow()[callback].clone();
    let schedule = Retries::Named(RetrySchedule::Standard);
    let mut failures = 0;
    loop {
        let body = serde_json::to_vec(&Outcome {
            kind: "job.completed".into(),
            job,
        })
        .expect("serializes");
        let id = format!("msg_job_{job}");
        let stamp = unix_now();
        let mut request = post("/callback", &host, Vec::new());
        request.body = body;
        request
            .headers
            .push(("Content-Type".into(), "application/json".into()));
        for (name, value) in [
            (webhook::ID_HEADER, id.clone()),
            (webhook::TIMESTAMP_HEADER, stamp.to_string()),
            (
                webhook::SIGNATURE_HEADER,
                webhook::sign(&key, &id, stamp as i64, &request.body),
            ),
        ] {
            request.headers.push((name.into(), value));
        }
        let attempt = if failures == 0 {
            Attempt::First
        } else {
            Attempt::Retry
        };
        let mut label = Label::new(Kind::Request, request.summary())
            .carrying(Some(Carried::from(Some(job), 1)));
        label.attempt = attempt;
        let outcome = timeout(
            Duration::from_secs(15),
            exchange(&ctx.net, &host, port, &request, Some(label)),
        )
        .await;
        if matches!(outcome, Ok(Ok(ref r)) if r.status / 100 == 2) {
            return;
        }
        failures += 1;
        match retry_delay(&schedule, failures) {
            Some(delay) => sleep(delay).await,
            None => return,
        }
    }
}
// ANCHOR_END: api

// ---------------------------------------------------------------------------
// The queue and the worker
// ---------------------------------------------------------------------------

/// The queue's messages: ready ones, and leased ones with when their lease
/// runs out (microseconds of simulated time). It survives a restart.
#[derive(Default)]
struct QueueStore {
    ready: RefCell<VecDeque<u64>>,
    leased: RefCell<BTreeMap<u64, u64>>,
    changed: tokio::sync::Notify,
}

fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

// ANCHOR: queue
/// The queue host: `POST /enqueue?job=N`, `GET /next` (held up to 20 s
/// when empty; the job is leased to the asker for the visibility timeout),
/// `POST /ack?job=N`. A lease that runs out puts the job back in front.
pub async fn queue(net: HostNet, store: Store, visibility: Duration) -> turmoil::Result {
    let store = store.slot::<QueueStore>("queue");
    let listener = net.listen(QUEUE_PORT, None).await?;
    loop {
        let mut conn = net.accept(&listener).await?;
        let store = store.clone();
        spawn_local(async move {
            let request = match conn.read_request().await {
                Ok(Some(request)) => request,
                Ok(None) => return conn.close("client closed").await,
                Err(e) => return conn.reject(&e).await,
            };
            let job = request.query("job").and_then(|j| j.parse::<u64>().ok());
            let response = match (request.method.as_str(), request.path(), job) {
                ("POST", "/enqueue", Some(job)) => {
                    store.ready.borrow_mut().push_back(job);
                    store.changed.notify_waiters();
                    Response::new(204, "text/plain", Vec::new())
                }
                ("POST", "/ack", Some(job)) => {
                    store.leased.borrow_mut().remove(&job);
                    Response::new(204, "text/plain", Vec::new())
                }
                ("GET", "/next", _) => match next_job(&store, visibility).await {
                    Some(job) => json(200, &serde_json::json!({ "job": job })),
                    None => Response::new(204, "text/plain", Vec::new()),
                },
                _ => Response::error(404, "enqueue, next or ack"),
            };
            let _ = conn.send_response(&response, None).await;
            conn.close("done").await
        });
    }
}

/// The next ready job, leased; waits up to [`QUEUE_WAIT`] for one.
async fn next_job(store: &QueueStore, visibility: Duration) -> Option<u64> {
    let give_up = Instant::now() + QUEUE_WAIT;
    loop {
        let changed = store.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = now_us();
        // Leases that ran out: the job goes back, first in line.
        let expired: Vec<u64> = store
            .leased
            .borrow()
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(job, _)| *job)
            .collect();
        for job in expired.into_iter().rev() {
            store.leased.borrow_mut().remove(&job);
            store.ready.borrow_mut().push_front(job);
        }
        if let Some(job) = store.ready.borrow_mut().pop_front() {
            let until = now + visibility.as_micros() as u64;
            store.leased.borrow_mut().insert(job, until);
            return Some(job);
        }
        let next_expiry = store.leased.borrow().values().min().copied();
        let wake = next_expiry
            .map(|us| Instant::now() + Duration::from_micros(us.saturating_sub(now)))
            .map_or(give_up, |at| at.min(give_up));
        tokio::select! {
            biased;
            _ = &mut changed => {}
            _ = sleep_until(wake) => if Instant::now() >= give_up { return None },
        }
    }
}

/// The worker: takes a job, works on it, reports it done to the API, then
/// acknowledges it to the queue (in that order: a crash between the two
/// repeats the job, never loses it).
pub async fn worker(net: HostNet, work: Duration) -> turmoil::Result {
    loop {
        let next = Request::get("/next", "queue");
        let job = match exchange(&net, "queue", QUEUE_PORT, &next, None).await {
            Ok(r) if r.status == 200 => serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["job"].as_u64()),
            Ok(_) => continue,
            Err(_) => {
                sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(job) = job else { continue };
        sleep(work).await;
        let done = post(&format!("/jobs/{job}/done"), "server", Vec::new());
        while exchange(&net, "server", SERVER_PORT, &done, None)
            .await
            .is_err()
        {
            sleep(Duration::from_secs(1)).await;
        }
        let ack = post(&format!("/ack?job={job}"), "queue", Vec::new());
        let _ = exchange(&net, "queue", QUEUE_PORT, &ack, None).await;
    }
}
// ANCHOR_END: queue

// ---------------------------------------------------------------------------
// The front end
// ---------------------------------------------------------------------------

/// What a front end keeps: the outcomes it has shown.
#[derive(Default)]
struct FrontStore {
    shown: RefCell<BTreeSet<(u32, u64)>>,
}

// ANCHOR: front_end
pub async fn client(ctx: ClientCtx) {
    ctx.wait_to_join().await;
    match ctx.scenario.jobs.notify {
        JobNotify::Poll => poll(ctx).await,
        JobNotify::Callback => wait_for_calls(ctx).await,
    }
}

/// Shows an outcome once.
fn show(ctx: &ClientCtx, job: u64) {
    let store = ctx.store.slot::<FrontStore>("front end");
    if store.shown.borrow_mut().insert((ctx.id, job)) {
        ctx.deliver(job);
    }
}

/// Polling the status endpoint every `poll_interval`, from the position
/// it last reached.
async fn poll(ctx: ClientCtx) {
    let every = ctx.scenario.jobs.poll_interval.to_std();
    let mut next = 0usize;
    let mut conn: Option<TcpConn> = None;
    let mut tick = Instant::now();
    loop {
        let request = Request::get(&format!("/jobs?after={next}"), "server");
        let answer = async {
            if conn.is_none() {
                conn = Some(
                    ctx.connect(Attempt::First)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let c = conn.as_mut().expect("just set");
            c.send_request(&request, Attempt::First)
                .await
                .map_err(|e| e.to_string())?;
            c.read_response().await.map_err(|e| e.to_string())
        };
        match timeout(Duration::from_secs(5), answer).await {
            Ok(Ok(response)) => {
                if let Ok(status) = serde_json::from_slice::<Status>(&response.body) {
                    for job in status.done {
                        show(&ctx, job);
                    }
                    next = status.next;
                }
            }
            _ => {
                if let Some(c) = conn.take() {
                    c.fail("poll failed");
                }
            }
        }
        tick += every;
        sleep_until(tick).await;
    }
}

/// Callback mode: register a URL, then verify and show each call.
async fn wait_for_calls(ctx: ClientCtx) {
    let port = 8000 + ctx.id as u16;
    let Ok(listener) = ctx.net.listen(port, None).await else {
        return;
    };
    let host = ctx.net.trace.host().to_string();
    let body = serde_json::to_vec(&serde_json::json!({
        "url": format!("http://{host}:{port}/callback")
    }))
    .expect("serializes");
    let key = loop {
        let request = post("/callbacks", "server", body.clone());
        if let Ok(r) = exchange(&ctx.net, "server", SERVER_PORT, &request, None).await
            && let Some(key) = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["secret"].as_str().map(str::to_string))
                .and_then(|s| webhook::decode_secret(&s).ok())
        {
            break key;
        }
        sleep(Duration::from_secs(5)).await;
    };
    loop {
        let Ok(mut conn) = ctx.net.accept(&listener).await else {
            return;
        };
        let request = match conn.read_request().await {
            Ok(Some(request)) => request,
            _ => {
                conn.close("no request").await;
                continue;
            }
        };
        let verdict = webhook::verify(
            &key,
            &Headers::from_pairs(&request.headers),
            &request.body,
            unix_now() as i64,
            webhook::DEFAULT_TOLERANCE_SECS,
        );
        let response = match (verdict, serde_json::from_slice::<Outcome>(&request.body)) {
            (Ok(_), Ok(outcome)) => {
                show(&ctx, outcome.job);
                Response::new(204, "text/plain", Vec::new())
            }
            (Err(why), _) => Response::error(400, &why.to_string()),
            (_, Err(_)) => Response::error(400, "not an outcome"),
        };
        let _ = conn.send_response(&response, None).await;
        conn.close("answered").await;
    }
}
// ANCHOR_END: front_end
