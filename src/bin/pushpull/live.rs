//! `pushpull live`: every mechanism's server on a real port, for a real
//! browser. Nothing of the mechanisms is copied here: the simulation hands
//! their server code turmoil's TCP, this hands it a real socket (through
//! the [`relay`](super::relay) that applies the scenario's latency and
//! cuts). The seam is the stream type: `Conn<S>` for any `S` that reads and
//! writes.
//!
//! | path | mechanism | server code |
//! |---|---|---|
//! | `GET /poll?after=N` | short polling | `short_polling::answer_poll` |
//! | `GET /updates?after=N` | long polling | `long_polling::hold_poll` + `batch_answer` |
//! | `GET /events` | Server-Sent Events | `sse::serve_stream` |
//! | `GET /chat`, `GET /echo` | WebSocket | `websocket::serve_request` |
//! | `POST /messages` | the chat's posts (HTTP mechanisms) | `chat::Chat::answer` |
//! | `POST /webhooks/receive` | a webhook receiver | `wire::webhook::verify` |
//! | `GET /webhooks/events` | what the receiver got, as a stream | `sse::serve_stream` |
//! | `POST /api/cut?how=reset\|silent&for=10s` | a cut of every connection | the relay |
//!
//! and a page per mechanism (`/`, `/short_polling`, `/long_polling`,
//! `/sse`, `/websocket`, `/webhooks`) where the browser itself is the
//! client. The server publishes the scenario's events (the `sse` lesson's
//! ticker: one every 5 s unless `--set` says otherwise) into one event log
//! that every mechanism serves, as in the simulation.
//!
//! The live webhook provider is small: on each event it signs a delivery
//! (the Standard Webhooks scheme of `wire::webhook`) and POSTs it to this
//! server's own receiver, and every third event an attacker's forged copy
//! too; the simulation's retry schedules, dedupe and dead letters are not
//! run live (run `pushpull run webhooks` for them).
// Real sockets in real time: no simulated clock to tell (world::clock).
#![allow(clippy::disallowed_methods)]

use crate::relay::{CutKind, Network};
use pushpull::mechanisms::chat::Chat;
use pushpull::mechanisms::websocket::{self, Room, Settings};
use pushpull::mechanisms::{long_polling, short_polling, sse};
use pushpull::record::trace::{Dir, Tracer};
use pushpull::scenario::{Span, lessons};
use pushpull::wire::http::{Request, Response};
use pushpull::wire::webhook;
use pushpull::wire::websocket::DEFAULT_MAX_MESSAGE;
use pushpull::world::conn::Conn;
use pushpull::world::context::{ServerCtx, Store};
use pushpull::world::event_log::{EventLog, PostTimes, payload};
use pushpull::world::network::{HostNet, Switchboard};
use pushpull::world::tcp::Loss;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What every connection's handler shares.
#[derive(Clone)]
struct Live {
    ctx: ServerCtx,
    room: Room,
    chat: Chat,
    network: Network,
    /// What the webhook receiver got, served as a stream to its page.
    deliveries: ServerCtx,
    webhook_key: Rc<Vec<u8>>,
    hold: Duration,
}

/// Serves until the process is stopped. `origins`: pages on other sites
/// that may open `/chat`, besides the server's own; `sets`: overrides of the
/// live scenario.
pub fn live(bind: &str, port: u16, origins: Vec<String>, sets: &[String]) -> Result<(), String> {
    let plan = lessons::load("sse", sets)?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    // Everything is shared through `Rc`s, as in the simulation: one thread,
    // its tasks spawned locally.
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(bind, port, origins, plan))
}

/// The server's context, as the simulation builds one, for real sockets:
/// nothing in it is turmoil's but an unused switchboard.
fn context(scenario: Rc<pushpull::scenario::Scenario>, host: &str) -> ServerCtx {
    // Nothing kept, nothing written: each record is hashed and dropped, so
    // the trace costs no memory however long the server runs.
    let trace = Tracer::new(None, false).on(host);
    ServerCtx {
        net: HostNet {
            trace,
            loss: Loss::none(),
            switchboard: Switchboard::default(),
            keepalive: None,
        },
        log: EventLog::default(),
        scenario,
        post_times: PostTimes::default(),
        name: host.to_string(),
        feed: None,
        broker: false,
        store: Store::default(),
    }
}

async fn serve(
    bind: &str,
    port: u16,
    extra_origins: Vec<String>,
    plan: pushpull::scenario::Plan,
) -> Result<(), String> {
    let listener = TcpListener::bind((bind, port))
        .await
        .map_err(|e| format!("cannot listen on {bind}:{port}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let scenario = plan.scenario.clone();
    let ctx = context(scenario.clone(), "server");
    let mut settings = Settings::of(&scenario.websocket);
    // Autobahn's limits cases (9.x) send messages of up to 16 MiB.
    settings.max_message = DEFAULT_MAX_MESSAGE;
    settings.chat_origins = own_origins(addr);
    settings.chat_origins.extend(extra_origins);
    let room = Room::new(
        ctx.log.clone(),
        ctx.post_times.clone(),
        ctx.net.trace.clone(),
        settings,
    );
    let network = Network::new(
        scenario.network.latency,
        scenario.network.jitter,
        scenario.seed,
    );
    let live = Live {
        chat: Chat::of(&ctx),
        room,
        network,
        deliveries: context(scenario.clone(), "receiver"),
        webhook_key: Rc::new(
            (0..24)
                .map(|i| (scenario.seed as u8).wrapping_mul(31).wrapping_add(i))
                .collect(),
        ),
        hold: scenario.long_polling.hold.to_std(),
        ctx,
    };
    let every = publication_interval(&plan.publications);
    tokio::task::spawn_local(publish(live.clone(), every, addr));

    // One line, flushed: a test (or a script) reads the port from it.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "pushpull live: http://{addr}/ (WebSocket: ws://{addr}/echo and /chat; \
         SSE: curl -N http://{addr}/events; an event every {} ms; latency {})",
        every.as_millis(),
        scenario.network.latency
    );
    let _ = stdout.flush();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                eprintln!("pushpull live: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(relayed) = live.network.relay(stream) else {
            continue; // a reset cut refuses it
        };
        let name = format!("{peer}>{addr}");
        let conn = Conn::new(
            relayed,
            name,
            Dir::Down,
            live.ctx.net.trace.clone(),
            Loss::none(),
        );
        tokio::task::spawn_local(handle(conn, live.clone()));
    }
}

/// The gap between the scenario's first two publications (5 s without).
fn publication_interval(publications: &[Span]) -> Duration {
    match publications {
        [a, b, ..] if b > a => Duration::from_micros(b.0 - a.0).max(Duration::from_millis(100)),
        _ => Duration::from_secs(5),
    }
}

/// The scenario's events, for as long as the server runs; each one also
/// goes to the webhook receiver as a signed delivery.
async fn publish(live: Live, every: Duration, addr: SocketAddr) {
    loop {
        tokio::time::sleep(every).await;
        let id = live.ctx.log.last_id() + 1;
        let data = payload(id, live.ctx.scenario.workload.payload_bytes);
        live.ctx.log.append(data.clone(), now_us());
        tokio::task::spawn_local(deliver_webhook(live.clone(), addr, id, data));
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// One request on one connection, then the next: the HTTP mechanisms answer
/// request by request; a stream or a WebSocket takes the connection over.
async fn handle<S: AsyncRead + AsyncWrite + Unpin + 'static>(mut conn: Conn<S>, live: Live) {
    loop {
        let read =
            tokio::time::timeout(live.hold * 2 + Duration::from_secs(10), conn.read_request())
                .await;
        let mut request = match read {
            Err(_) => return conn.close("idle timeout").await,
            Ok(Ok(None)) => return conn.close("client closed").await,
            Ok(Ok(Some(request))) => request,
            Ok(Err(e)) => return conn.reject(&e).await,
        };
        let path = request.path().to_string();
        let response = match path.as_str() {
            "/chat" | "/echo" => {
                return websocket::serve_request(conn, request, live.room.clone()).await;
            }
            "/events" | "/webhooks/events" => {
                // The SSE server's own path is `/stream`.
                request.target = request.target.replacen(&path, "/stream", 1);
                let ctx = if path == "/events" {
                    live.ctx.clone()
                } else {
                    live.deliveries.clone()
                };
                return sse::serve_stream(conn, ctx, Some(request)).await;
            }
            "/poll" => {
                // Short polling's own path is `/updates`, which live mode
                // gives to long polling.
                request.target = request.target.replacen("/poll", "/updates", 1);
                let (response, carried) = short_polling::answer_poll(&request, &live.ctx.log);
                if let Err(e) = conn.send_response(&response, carried).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
                if !request.keep_alive() {
                    return conn.close("done").await;
                }
                continue;
            }
            "/updates" => {
                let after = match short_polling::cursor_of(&request) {
                    Ok(after) => after,
                    Err(refusal) => {
                        let _ = conn.send_response(&refusal, None).await;
                        return conn.close("done").await;
                    }
                };
                let held =
                    long_polling::hold_poll(&mut conn, &live.ctx.log, after, live.hold).await;
                let Some(events) = held else {
                    return conn.close("client closed while held").await;
                };
                let (response, carried) = short_polling::batch_answer(events);
                if let Err(e) = conn.send_response(&response, Some(carried)).await {
                    return conn.fail(&format!("write failed: {e}"));
                }
                if !request.keep_alive() {
                    return conn.close("done").await;
                }
                continue;
            }
            "/messages" => live
                .chat
                .answer(&request)
                .unwrap_or_else(|| Response::error(404, "not found")),
            "/webhooks/receive" => receive_webhook(&request, &live),
            "/api/cut" => {
                // Answered first, then cut: a reset would end this very
                // connection before its answer left.
                let (response, cut) = cut(&request);
                let _ = conn.send_response(&response, None).await;
                conn.close("done").await;
                if let Some((how, length)) = cut {
                    // The answer crosses the relay's latency first.
                    let network = live.network.clone();
                    let after = network.longest_delay() + Duration::from_millis(50);
                    tokio::time::sleep(after).await;
                    network.cut(how, length);
                }
                return;
            }
            _ => page(&request, &live),
        };
        let closing = response.header("connection") == Some("close") || !request.keep_alive();
        if let Err(e) = conn.send_response(&response, None).await {
            return conn.fail(&format!("write failed: {e}"));
        }
        if closing {
            return conn.close("done").await;
        }
    }
}

/// `POST /api/cut?how=reset|silent&for=10s`: the answer, and the cut to
/// make once it has left.
fn cut(request: &Request) -> (Response, Option<(CutKind, Duration)>) {
    if request.method != "POST" {
        return (Response::method_not_allowed("POST"), None);
    }
    let how = match request.query("how").unwrap_or("reset") {
        "reset" => CutKind::Reset,
        "silent" => CutKind::Silent,
        other => {
            return (
                Response::error(400, &format!("how={other}: reset or silent")),
                None,
            );
        }
    };
    let length = match Span::parse(request.query("for").unwrap_or("10s")) {
        Ok(span) if span <= Span::from_secs(600) => span,
        Ok(_) => return (Response::error(400, "for: at most 600s"), None),
        Err(e) => return (Response::error(400, &format!("for: {e}")), None),
    };
    let body = format!(
        "{{\"cut\":\"{}\",\"for_ms\":{}}}",
        if how == CutKind::Reset {
            "reset"
        } else {
            "silent"
        },
        length.as_micros() / 1000
    );
    let mut response = Response::new(200, "application/json", body.into_bytes());
    response.headers.push(("Connection".into(), "close".into()));
    (response, Some((how, length.to_std())))
}

/// The live provider's delivery of event `id`: signed, POSTed to this
/// server's own receiver over a real connection; every third event, an
/// attacker's forged copy follows (signed with another key).
async fn deliver_webhook(live: Live, addr: SocketAddr, id: u64, data: String) {
    let body = format!(
        "{{\"type\":\"ticker.updated\",\"timestamp\":{},\"data\":{{\"event\":{id},\"text\":{}}}}}",
        now_us() / 1_000_000,
        serde_json::to_string(&data).expect("strings serialize")
    );
    let msg_id = format!("msg_live_{id}");
    let _ = post_delivery(addr, &live.webhook_key, &msg_id, &body).await;
    if id.is_multiple_of(3) {
        let forged_key = b"not the shared secret".to_vec();
        let forged = body.replace("ticker.updated", "ticker.forged");
        let _ = post_delivery(addr, &forged_key, &format!("msg_forged_{id}"), &forged).await;
    }
}

async fn post_delivery(addr: SocketAddr, key: &[u8], id: &str, body: &str) -> std::io::Result<()> {
    let timestamp = (now_us() / 1_000_000) as i64;
    let signature = webhook::sign(key, id, timestamp, body.as_bytes());
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /webhooks/receive HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nwebhook-id: {id}\r\nwebhook-timestamp: {timestamp}\r\n\
         webhook-signature: {signature}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    Ok(())
}

/// The receiver: verifies the delivery as the simulation's receiver does
/// (`wire::webhook::verify`, 5 minutes of tolerance), answers `204` or
/// `400`, and shows its verdict on the webhooks page's stream.
fn receive_webhook(request: &Request, live: &Live) -> Response {
    if request.method != "POST" {
        return Response::method_not_allowed("POST");
    }
    let headers = webhook::Headers::from_pairs(&request.headers);
    let now = (now_us() / 1_000_000) as i64;
    let verdict = webhook::verify(
        &live.webhook_key,
        &headers,
        &request.body,
        now,
        webhook::DEFAULT_TOLERANCE_SECS,
    );
    let shown = serde_json::json!({
        "webhook_id": headers.id,
        "webhook_timestamp": headers.timestamp,
        "webhook_signature": headers.signature,
        "body": String::from_utf8_lossy(&request.body),
        "verdict": match &verdict { Ok(_) => "valid".to_string(), Err(why) => why.to_string() },
    });
    live.deliveries.log.append(shown.to_string(), now_us());
    match verdict {
        Ok(_) => Response::new(204, "text/plain", Vec::new()),
        Err(why) => Response::error(400, &why.to_string()),
    }
}

/// The origins of this server's own pages: the address it listens on and,
/// on loopback, the names a browser may use for it. (Bound to every
/// address, it cannot know which one a page came from: `--origin` adds
/// them.)
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut origins = Vec::new();
    if !addr.ip().is_unspecified() {
        origins.push(format!("http://{addr}"));
    }
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let origin = format!("http://{host}:{port}");
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }
    origins
}

/// The pages, one per mechanism, each with the shared script and style.
fn page(request: &Request, live: &Live) -> Response {
    if request.method != "GET" {
        return Response::error(404, "not found");
    }
    let body = match request.path() {
        "/" | "/index.html" => INDEX,
        "/short_polling" => SHORT_POLLING,
        "/long_polling" => LONG_POLLING,
        "/sse" => SSE,
        "/websocket" => WEBSOCKET,
        "/webhooks" => WEBHOOKS,
        "/live.js" => {
            let mut r = Response::new(200, "text/javascript; charset=utf-8", LIVE_JS.into());
            r.headers.push(("Cache-Control".into(), "no-store".into()));
            return r;
        }
        _ => return Response::error(404, "not found: try /"),
    };
    let poll_every = live.ctx.scenario.short_polling.interval.as_micros() / 1000;
    let html = PAGE
        .replace("{{body}}", body)
        .replace("{{poll_ms}}", &poll_every.to_string())
        .replace("{{hold}}", &live.ctx.scenario.long_polling.hold.to_string())
        .replace(
            "{{latency}}",
            &live.ctx.scenario.network.latency.to_string(),
        );
    let mut response = Response::new(200, "text/html; charset=utf-8", html.into_bytes());
    response
        .headers
        .push(("Cache-Control".into(), "no-store".into()));
    response
}

const PAGE: &str = include_str!("pages/page.html");
const LIVE_JS: &str = include_str!("pages/live.js");
const INDEX: &str = include_str!("pages/index.html");
const SHORT_POLLING: &str = include_str!("pages/short_polling.html");
const LONG_POLLING: &str = include_str!("pages/long_polling.html");
const SSE: &str = include_str!("pages/sse.html");
const WEBSOCKET: &str = include_str!("pages/websocket.html");
const WEBHOOKS: &str = include_str!("pages/webhooks.html");
