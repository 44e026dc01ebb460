//! Long polling: the client asks "anything after event 3?", and the server
//! does not answer until there is something to say, or `hold` has passed.
//!
//! The request is the short-polling one; only the server's timing differs:
//!
//! ```text
//! GET /updates?after=3 HTTP/1.1\r\n
//! Host: server\r\n
//! Accept: application/json\r\n
//! \r\n
//! ```
//! ... seconds of silence on the connection, then, the moment event 4 exists
//! (with `workload.payload_bytes = 7`, so that its payload is just `event 4`;
//! a wire test pins these bytes):
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Content-Type: application/json\r\n
//! Content-Length: 51\r\n
//! \r\n
//! {"events":[{"id":4,"data":"event 4"}],"more":false}
//! ```
//!
//! The trade-off: an event reaches a waiting client one network transit after
//! it is published, and quiet periods cost one request per `hold` instead of
//! one per poll. In exchange the server keeps one request open per client, and
//! anything between them that dislikes silent connections (a proxy with an idle
//! timeout) can cut it. An event published just after an answer left has to
//! wait for the client's next request: response, request, response, three
//! transits, the worst case.

use crate::mechanisms::chat::{self, Chat, Served};
use crate::mechanisms::short_polling::{
    MAX_EVENTS_PER_ANSWER, Poll, PollError, batch_answer, cursor_of, deliver_new, poll_once,
};
use crate::wire::http::Request;
use crate::world::clock::{Instant, sleep, sleep_until, spawn_local, timeout};
use crate::world::conn::Attempt;
use crate::world::conn::Conn;
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::event_log::{AppEvent, EventLog};
use crate::world::network::{SERVER_PORT, TcpConn};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

// ANCHOR: server
/// The server: accept connections; on each, hold every poll until there is
/// an event after its cursor or `hold` has passed.
pub async fn server(ctx: ServerCtx) -> turmoil::Result {
    let listener = ctx
        .net
        .listen(SERVER_PORT, Some(&ctx.scenario.server))
        .await?;
    loop {
        let conn = ctx.net.accept(&listener).await?;
        let hold = ctx.scenario.long_polling.hold.to_std();
        spawn_local(serve_connection(
            conn,
            ctx.log.clone(),
            Chat::of(&ctx),
            hold,
            None,
        ));
    }
}

/// Serves one connection's requests, starting with `first` when it has
/// already been read (by a WebSocket server whose client fell back to
/// long polling).
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    mut conn: Conn<S>,
    log: EventLog,
    chat: Chat,
    hold: Duration,
    mut first: Option<Request>,
) {
    loop {
        // Between requests a long-polling client is never idle for long (it
        // re-requests at once), so a quiet connection is a vanished client.
        let next = async {
            match first.take() {
                Some(request) => Ok(Ok(Some(request))),
                None => timeout(hold * 2 + Duration::from_secs(10), conn.read_request()).await,
            }
        };
        let request = match next.await {
            Err(_) => return conn.close("idle timeout").await,
            Ok(Ok(None)) => return conn.close("client closed").await,
            Ok(Ok(Some(request))) => request,
            Ok(Err(e)) => return conn.reject(&e).await,
        };
        // A post to the chat (chat.rs) is answered at once, never held.
        match chat.serve(&mut conn, &request).await {
            None => {}
            Some(Served::Open) => continue,
            Some(Served::Close) => return conn.close("done").await,
            Some(Served::Broken(why)) => return conn.fail(&why),
        }
        let after = match cursor_of(&request) {
            Ok(after) => after,
            Err(response) => {
                let _ = conn.send_response(&response, None).await;
                return conn.close("done").await;
            }
        };
        let Some(events) = hold_poll(&mut conn, &log, after, hold).await else {
            return conn.close("client closed while held").await;
        };
        let (response, carried) = batch_answer(events);
        if let Err(e) = conn.send_response(&response, Some(carried)).await {
            return conn.fail(&format!("write failed: {e}"));
        }
        if !request.keep_alive() {
            return conn.close("done").await;
        }
    }
}

/// The heart of long polling: wait for an event after the cursor, or the
/// end of the hold, or the client going away, whichever is first. `None`:
/// the client hung up while we held its request.
pub async fn hold_poll<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    conn: &mut Conn<S>,
    log: &EventLog,
    after: u64,
    hold: Duration,
) -> Option<Vec<AppEvent>> {
    let deadline = Instant::now() + hold;
    loop {
        // Ask to be woken *before* looking at the log: an event appended
        // between the look and the wait would otherwise sleep unnoticed
        // until the hold ends.
        let published = log.notified();
        tokio::pin!(published);
        published.as_mut().enable();
        let events = log.after(after, MAX_EVENTS_PER_ANSWER + 1);
        if !events.is_empty() {
            return Some(events);
        }
        // `biased`: branches are tried in this order, so the run does not
        // depend on tokio's branch-picking RNG.
        tokio::select! {
            biased;
            // A new event: look again (it may not be after our cursor).
            _ = &mut published => continue,
            // Nothing happened for `hold`: answer empty, the client will
            // ask again at once. Proxies and browsers see a live request.
            _ = sleep_until(deadline) => return Some(Vec::new()),
            // The client hung up while we held its request: stop holding.
            _ = conn.until_peer_closes() => return None,
        }
    }
}
// ANCHOR_END: server

// ANCHOR: client
/// One client: ask, wait as long as the server holds the request, hand new
/// events to the application, ask again at once.
pub async fn client(ctx: ClientCtx) {
    // The user's chat posts, if any, go up beside the polls (chat.rs).
    let ctx = chat::start_posting(ctx);
    ctx.wait_to_join().await;
    poll_from(&ctx, 0).await
}

/// Polls for ever, from event `cursor` on.
pub async fn poll_from(ctx: &ClientCtx, mut cursor: u64) {
    let params = &ctx.scenario.long_polling;
    // As in short polling, the cursor is what makes the client safe: events
    // published while it was between two requests are simply "after" it, and
    // the next request collects them.
    let mut conn: Option<TcpConn> = None;
    let mut failures = 0u32;
    loop {
        // The same request as short polling, on a kept-alive connection.
        let poll = Poll {
            after: cursor,
            attempt: Attempt::after_failures(failures),
            keep_alive: true,
        };
        let outcome = timeout(
            params.client_timeout.to_std(),
            poll_once(ctx, &mut conn, poll),
        )
        .await
        .unwrap_or(Err(PollError::Timeout));
        match outcome {
            Ok(batch) => {
                failures = 0;
                deliver_new(ctx, &mut cursor, &batch.events);
                // No sleep: ask again at once, so that the server always
                // holds a request of ours to answer the next event with.
            }
            Err(error) => {
                ctx.report_error(error.to_string());
                if let Some(c) = conn.take() {
                    c.fail(&error.to_string());
                }
                failures += 1;
                // Back off: re-requesting at once against a server that is
                // down would be a tight loop of failures.
                sleep(ctx.backoff(failures, params.backoff_initial, params.backoff_max)).await;
            }
        }
    }
}

// ANCHOR_END: client
