//! A proxy between clients and server: a load balancer, a corporate proxy, the
//! ingress in front of a cluster. Mechanisms that look fine end to end meet it
//! in production.
//!
//! It speaks HTTP/1.1 on both sides: it reads a whole request from the client,
//! forwards it on its own connection to the server (adding a `Via` header, as
//! RFC 9110 asks of proxies), reads the whole answer, and passes it back:
//!
//! ```text
//! client-1 ──GET /updates?after=3──▶ proxy ──GET /updates?after=3──▶ server
//!                                          Via: 1.1 proxy
//! client-1 ◀──────200 OK────────── proxy ◀──────200 OK──────────── server
//! ```
//!
//! Its one timeout is `idle_timeout`, playing the parts nginx splits in three
//! (AWS's ALB has one, 60 s by default):
//! - waiting for the server's answer longer than that (nginx's
//!   `proxy_read_timeout`, 60 s), it gives up and answers the client
//!   `504 Gateway Timeout`: a long poll held longer than that never gets its
//!   answer;
//! - a client connection quiet that long between requests, or a stream with
//!   no byte that long, is closed at both ends.
//!
//! When the server cannot be reached it answers `502 Bad Gateway` at once.
//! The trace records each of these as a `proxy` event with the reason.
//!
//! Streamed answers (SSE) are passed on block by block. Modes (`proxy.mode`)
//! change that: `forward` passes each block on at once; `buffer` holds them
//! until `buffer_kib` have gathered or the stream ends, the way nginx buffers
//! responses unless told `proxy_buffering off` (or `X-Accel-Buffering: no`).
//!
//! A WebSocket handshake is passed on with its `Upgrade: websocket` and
//! `Connection: Upgrade`, as nginx does when configured for it
//! (`proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection
//! "upgrade"`); after the server's `101` the proxy becomes a tunnel, frames
//! both ways, and `idle_timeout` is the time the *server* may stay silent
//! (nginx: "the connection will be closed if the proxied server does not
//! transmit any data within 60 seconds"): pings every `websocket.heartbeat`
//! keep it open. `refuse_upgrade` mode is the proxy nobody configured:
//! `Upgrade` is hop-by-hop, so it drops it, and the server sees a plain GET.

use crate::record::trace::{Event, Kind, ProxyAction};
use crate::scenario::{Proxy, ProxyMode, Span};
use crate::wire::http::{Framing, Request, Response, strip_hop_by_hop};
use crate::wire::websocket;
use crate::world::clock::{sleep_until, spawn_local};
use crate::world::conn::{Attempt, Carried, Label};
use crate::world::http_conn::StreamBody;
use crate::world::network::{HostNet, SERVER_PORT, TcpConn, within};
use std::future::Future;
use std::time::Duration;

/// Far enough in the future to mean "never" for a timer.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What the proxy host runs with.
#[derive(Clone)]
pub struct ProxyCtx {
    pub net: HostNet,
    pub config: Proxy,
    /// How the mechanism behind it counts events, for the trace (handed in
    /// by the run: the proxy relays bytes it does not need to understand).
    pub count_events: EventCounters,
    /// The servers behind it (nginx's `upstream` block).
    pub upstreams: Vec<String>,
    /// Which one the next client connection goes to: round robin, nginx's
    /// default.
    pub next_upstream: std::rc::Rc<std::cell::Cell<usize>>,
}

/// A mechanism's way of counting the events in what the proxy relays.
#[derive(Clone, Copy)]
pub struct EventCounters {
    /// In a whole answer.
    pub answer: fn(&Response) -> Option<Carried>,
    /// In one block of a stream.
    pub block: fn(&[u8]) -> Option<Carried>,
    /// In one WebSocket frame from the server.
    pub frame: fn(&[u8]) -> Option<Carried>,
}

pub async fn proxy(ctx: ProxyCtx) -> turmoil::Result {
    let listener = ctx.net.listen(SERVER_PORT, None).await?;
    loop {
        let downstream = ctx.net.accept(&listener).await?;
        spawn_local(relay(ctx.clone(), downstream));
    }
}

/// Why waiting on one side ended.
enum Wait<T> {
    Done(T),
    /// Nothing moved for `idle_timeout`.
    Idle,
}

/// Runs `f` under the idle timeout (if there is one).
async fn within_idle<T>(idle: Option<Span>, f: impl Future<Output = T>) -> Wait<T> {
    match within(idle, f).await {
        Some(v) => Wait::Done(v),
        None => Wait::Idle,
    }
}

// ANCHOR: relay
/// Serves one client connection, with one server connection behind it.
async fn relay(ctx: ProxyCtx, mut downstream: TcpConn) {
    let idle = ctx.config.idle_timeout;
    let mut upstream: Option<TcpConn> = None;
    loop {
        let mut request = match within_idle(idle, downstream.read_request()).await {
            Wait::Idle => return close_idle(&ctx, downstream, upstream, "between requests").await,
            Wait::Done(Ok(Some(request))) => request,
            Wait::Done(Ok(None)) => {
                if let Some(up) = upstream {
                    up.close("client closed").await;
                }
                return downstream.close("client closed").await;
            }
            Wait::Done(Err(e)) => {
                if let Some(up) = upstream {
                    up.close("client sent a bad request").await;
                }
                return downstream.reject(&e).await;
            }
        };
        // What the client asked of *its* connection; `Connection` is
        // hop-by-hop and is not forwarded.
        let client_keeps_alive = request.keep_alive();
        let upgrade = asks_for_websocket(&request);
        strip_hop_by_hop(&mut request.headers);
        let upgrading = upgrade && pass_upgrade(&ctx, &downstream.name, &mut request.headers);
        request.headers.push(("Via".into(), "1.1 proxy".into()));
        let (mut answer, framing) = match forward(
            &ctx,
            &downstream.name,
            &mut upstream,
            &request,
            idle,
        )
        .await
        {
            Wait::Idle => {
                // nginx's proxy_read_timeout: the server said nothing for
                // that long. The client gets an answer, not a dead socket.
                let idle = ctx.config.idle_timeout.unwrap_or_default();
                ctx.net.trace.record(Event::Proxy {
                        conn: downstream.name.clone(),
                        action: ProxyAction::GatewayTimeout,
                        reason: format!(
                            "could not connect to the server or get its answer within {idle}; proxy.idle_timeout = {idle}"
                        ),
                    });
                if let Some(up) = upstream.take() {
                    up.close("proxy read timeout").await;
                }
                (
                    Response::error(504, "the server did not answer in time"),
                    Framing::Length(0),
                )
            }
            Wait::Done(Ok(answer)) => answer,
            Wait::Done(Err(why)) => {
                // The server is unreachable or hung up: say so, as a gateway does.
                if let Some(up) = upstream.take() {
                    up.fail(&why);
                }
                (Response::error(502, &why), Framing::Length(0))
            }
        };
        if upgrading && answer.status == 101 {
            // The server switched protocols: from here on, frames.
            let up = upstream.take().expect("the 101 came from upstream");
            return tunnel(&ctx, answer, up, downstream).await;
        }
        if matches!(framing, Framing::Chunked | Framing::UntilClose) {
            // A stream (SSE): passed on as it comes, until it ends.
            let up = upstream.take().expect("a stream came from upstream");
            return relay_stream(&ctx, answer, framing, up, downstream).await;
        }
        if answer
            .header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
            && let Some(up) = upstream.take()
        {
            // The server is closing its side: open a fresh one next time.
            up.close("server closed").await;
        }
        strip_hop_by_hop(&mut answer.headers);
        let count = (ctx.count_events.answer)(&answer);
        if let Err(e) = downstream.send_response(&answer, count).await {
            if let Some(up) = upstream {
                up.fail("client gone");
            }
            return downstream.fail(&format!("write failed: {e}"));
        }
        if matches!(answer.status, 502 | 504) || !client_keeps_alive {
            if let Some(up) = upstream {
                up.close("done").await;
            }
            return downstream.close("done").await;
        }
    }
}

/// Passes a streamed response on, block by block (`forward`), or in batches
/// of `buffer_kib` (`buffer`). The idle timeout still applies: a stream with
/// no byte for `idle_timeout` is cut, which is why SSE servers send heartbeats.
async fn relay_stream(
    ctx: &ProxyCtx,
    head: Response,
    framing: Framing,
    mut upstream: TcpConn,
    mut downstream: TcpConn,
) {
    let idle = ctx.config.idle_timeout;
    if let Err(e) = downstream.send_stream_head(&head).await {
        upstream.fail("client gone");
        return downstream.fail(&format!("write failed: {e}"));
    }
    let limit = ctx.config.buffer_kib as usize * 1024;
    let unbuffered = head
        .header("x-accel-buffering")
        .is_some_and(|v| v.eq_ignore_ascii_case("no"));
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut held_bytes = 0;
    let mut body = StreamBody::new(framing);
    loop {
        let blocks = match within_idle(idle, body.next(&mut upstream)).await {
            Wait::Idle => return close_idle(ctx, downstream, Some(upstream), "in a stream").await,
            Wait::Done(Ok(Some((_, blocks)))) => blocks,
            Wait::Done(Ok(None)) => {
                // The server finished the stream: what is held goes out
                // now, then the end.
                flush_all(ctx, &mut downstream, &mut held).await;
                let _ = downstream.send_stream_end().await;
                upstream.close("stream ended").await;
                return downstream.close("stream ended").await;
            }
            Wait::Done(Err(e)) => {
                // The server's side broke: the client's side must not look
                // finished, so it is closed without the last chunk (nginx:
                // "upstream prematurely closed connection").
                flush_all(ctx, &mut downstream, &mut held).await;
                upstream.fail(&e.to_string());
                return downstream.close("upstream stream broke").await;
            }
        };
        for block in blocks {
            held_bytes += block.len();
            held.push(block);
        }
        let flush = match ctx.config.mode {
            ProxyMode::Forward | ProxyMode::RefuseUpgrade => true,
            // nginx's convention: the response can ask not to be buffered.
            ProxyMode::Buffer if unbuffered => true,
            // The buffering trap: small events sit here until enough of
            // them gather, which for a quiet stream can be minutes.
            ProxyMode::Buffer => held_bytes >= limit,
        };
        if flush && !held.is_empty() {
            if ctx.config.mode == ProxyMode::Buffer && !unbuffered {
                ctx.net.trace.record(Event::Proxy {
                    conn: downstream.name.clone(),
                    action: ProxyAction::FlushBuffer,
                    reason: format!(
                        "{held_bytes} bytes held >= proxy.buffer_kib = {}",
                        ctx.config.buffer_kib
                    ),
                });
            }
            for block in held.drain(..) {
                let events = (ctx.count_events.block)(&block);
                if let Err(e) = downstream.send_block(&block, events).await {
                    upstream.fail("client gone");
                    return downstream.fail(&format!("write failed: {e}"));
                }
            }
            held_bytes = 0;
        }
    }
}
// ANCHOR_END: relay

/// Whether `request` is a WebSocket handshake (`Upgrade: websocket`).
fn asks_for_websocket(request: &Request) -> bool {
    request
        .header("upgrade")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Puts back the two hop-by-hop headers a WebSocket handshake needs, as a
/// proxy configured for WebSocket does; `refuse_upgrade` leaves them
/// dropped. Returns whether the upgrade goes on.
fn pass_upgrade(ctx: &ProxyCtx, conn: &str, headers: &mut Vec<(String, String)>) -> bool {
    if ctx.config.mode == ProxyMode::RefuseUpgrade {
        ctx.net.trace.record(Event::Proxy {
            conn: conn.to_string(),
            action: ProxyAction::DropUpgrade,
            reason:
                "Upgrade is a hop-by-hop header; proxy.mode = refuse_upgrade does not pass it on"
                    .into(),
        });
        return false;
    }
    headers.push(("Upgrade".into(), "websocket".into()));
    headers.push(("Connection".into(), "Upgrade".into()));
    true
}

/// A WebSocket after the server's `101`: the answer goes to the client
/// as it came, then whole frames both ways until one side closes, or the
/// server has been silent for `idle_timeout`.
async fn tunnel(
    ctx: &ProxyCtx,
    switching: Response,
    mut upstream: TcpConn,
    mut downstream: TcpConn,
) {
    if let Err(e) = downstream.send_response(&switching, None).await {
        upstream.fail("client gone");
        return downstream.fail(&format!("write failed: {e}"));
    }
    let mut server_heard = tokio::time::Instant::now();
    let server_silent_for = ctx.config.idle_timeout;
    loop {
        // Whole frames only: a frame is passed on once all of it is here.
        if let Err(e) = pass_frames(&mut downstream, &mut upstream, |_| None).await {
            downstream.fail("server gone");
            return upstream.fail(&e);
        }
        if let Err(e) = pass_frames(&mut upstream, &mut downstream, ctx.count_events.frame).await {
            upstream.fail("client gone");
            return downstream.fail(&e);
        }
        let idle_at = server_heard + server_silent_for.map_or(NEVER, Span::to_std);
        tokio::select! {
            biased;
            read = upstream.read_more() => match read {
                Ok(true) => server_heard = tokio::time::Instant::now(),
                // The server closed (after a closing handshake, it closes
                // first): what is left goes on, then the client's side.
                Ok(false) => {
                    let _ = pass_frames(&mut upstream, &mut downstream, ctx.count_events.frame).await;
                    upstream.close("server closed").await;
                    return downstream.close("server closed").await;
                }
                Err(e) => {
                    upstream.fail(&e.to_string());
                    return downstream.close("upstream broke").await;
                }
            },
            read = downstream.read_more() => match read {
                Ok(true) => {}
                Ok(false) => {
                    let _ = pass_frames(&mut downstream, &mut upstream, |_| None).await;
                    downstream.close("client closed").await;
                    return upstream.close("client closed").await;
                }
                Err(e) => {
                    downstream.fail(&e.to_string());
                    return upstream.close("client broke").await;
                }
            },
            _ = sleep_until(idle_at) => {
                return close_idle(ctx, downstream, Some(upstream), "in a WebSocket").await;
            }
        }
    }
}

/// Sends on `to` every whole frame buffered on `from`.
async fn pass_frames(
    from: &mut TcpConn,
    to: &mut TcpConn,
    count: fn(&[u8]) -> Option<Carried>,
) -> Result<(), String> {
    while let Some(len) = websocket::frame_len(from.buffered()) {
        let frame = from.take(len);
        from.record_received(Kind::Frame, "frame".into(), len);
        let label = Label::new(Kind::Frame, "frame".into()).carrying(count(&frame));
        to.send(&frame, label)
            .await
            .map_err(|e| format!("write failed: {e}"))?;
    }
    Ok(())
}

/// Passes on every held block, as far as the client takes them.
async fn flush_all(ctx: &ProxyCtx, downstream: &mut TcpConn, held: &mut Vec<Vec<u8>>) {
    for block in held.drain(..) {
        if downstream
            .send_block(&block, (ctx.count_events.block)(&block))
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Sends `request` to the server (connecting first if needed) and waits for
/// its answer, under the idle timeout.
async fn forward(
    ctx: &ProxyCtx,
    downstream: &str,
    upstream: &mut Option<TcpConn>,
    request: &Request,
    idle: Option<Span>,
) -> Wait<Result<(Response, Framing), String>> {
    // A kept-alive server connection may have died while idle (the server
    // timed it out, or restarted): a GET that fails on one is safe to send
    // once more on a fresh connection, as proxies do.
    let mut second_chance = upstream.is_some();
    loop {
        if upstream.is_none() {
            match within_idle(idle, connect_upstream(ctx)).await {
                Wait::Idle => return Wait::Idle,
                Wait::Done(Ok(c)) => {
                    ctx.net.trace.record(Event::Relay {
                        downstream: downstream.to_string(),
                        upstream: c.name.clone(),
                    });
                    *upstream = Some(c);
                }
                Wait::Done(Err(e)) => return Wait::Done(Err(e)),
            }
        }
        let up = upstream.as_mut().expect("just set");
        // Sending (which TCP may be retransmitting) and waiting for the
        // answer both count against the timeout.
        let exchange = async {
            up.send_request(request, Attempt::First)
                .await
                .map_err(|e| e.to_string())?;
            up.read_response_start().await.map_err(|e| e.to_string())
        };
        let failure = match within_idle(idle, exchange).await {
            Wait::Idle => return Wait::Idle,
            Wait::Done(Ok(r)) => return Wait::Done(Ok(r)),
            Wait::Done(Err(e)) => format!("server connection failed: {e}"),
        };
        if !(second_chance && request.method == "GET") {
            return Wait::Done(Err(failure));
        }
        second_chance = false;
        if let Some(dead) = upstream.take() {
            dead.fail(&failure);
        }
    }
}

/// Connects to the next server, round robin; one that refuses is skipped
/// for the next (nginx's `proxy_next_upstream error`). Connecting counts
/// against the idle timeout (nginx's `proxy_connect_timeout`): a silent
/// server host means a 504.
async fn connect_upstream(ctx: &ProxyCtx) -> Result<TcpConn, String> {
    let mut last_error = String::new();
    for _ in 0..ctx.upstreams.len() {
        let i = ctx.next_upstream.get();
        ctx.next_upstream.set((i + 1) % ctx.upstreams.len());
        let host = &ctx.upstreams[i];
        match ctx.net.connect(host, SERVER_PORT, Attempt::First).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last_error = format!("cannot reach {host}: {e}"),
        }
    }
    Err(last_error)
}

/// The idle timeout fired: close both connections, and say why in the trace.
async fn close_idle(ctx: &ProxyCtx, downstream: TcpConn, upstream: Option<TcpConn>, while_: &str) {
    let idle = ctx.config.idle_timeout.unwrap_or_default();
    ctx.net.trace.record(Event::Proxy {
        conn: downstream.name.clone(),
        action: ProxyAction::CloseIdle,
        reason: format!("no message for {idle} ({while_}); proxy.idle_timeout = {idle}"),
    });
    if let Some(up) = upstream {
        up.close("proxy idle timeout").await;
    }
    downstream.close("proxy idle timeout").await;
}
