//! The live pages in a real browser: headless Chromium opens the SSE page,
//! the WebSocket chat and the webhooks page of `pushpull live`, and each
//! shows what the live server sent it; a reset cut makes the EventSource
//! reconnect with `Last-Event-ID` and the browser's WebSocket close for good.

mod support;

use std::time::{Duration, Instant};
use support::browser::{Devtools, browser_or_skip};
use support::live::Live;

/// Evaluates `expression` until `done` holds of its value (or 20 s pass).
fn wait_for(
    devtools: &Devtools,
    tab: &str,
    expression: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let started = Instant::now();
    loop {
        let value = devtools.evaluate(tab, expression);
        if done(&value) || started.elapsed() > Duration::from_secs(20) {
            return value;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

const EVENTS: &str = "document.getElementById('events').innerText";
const LOG: &str = "document.getElementById('log').innerText";

#[test]
fn the_live_pages_receive_events_and_a_cut_shows_each_mechanisms_recovery() {
    let Some(browser) = browser_or_skip("the_live_pages_receive_events") else {
        return;
    };
    let live = Live::start_with(&[r#"workload.events={every="300ms",start="300ms"}"#]);
    let devtools = Devtools::start(browser);
    let base = format!("http://127.0.0.1:{}", live.port);

    let sse = devtools.open(&format!("{base}/sse"));
    let chat = devtools.open(&format!("{base}/websocket"));
    let hooks = devtools.open(&format!("{base}/webhooks"));

    let events = wait_for(&devtools, &sse, EVENTS, |v| v.contains("#3 event 3"));
    assert!(
        events.contains("#3 event 3"),
        "the EventSource got events: {events:?}"
    );
    let room = wait_for(&devtools, &chat, EVENTS, |v| v.contains("event 2"));
    assert!(
        room.contains("event 2"),
        "the chat got the room's messages: {room:?}"
    );
    let deliveries = wait_for(&devtools, &hooks, EVENTS, |v| v.contains("REFUSED"));
    assert!(deliveries.contains("VALID   msg_live_1"), "{deliveries:?}");
    assert!(
        deliveries.contains("REFUSED msg_forged_3"),
        "{deliveries:?}"
    );

    // A reset cut of a second, pressed on the SSE page.
    devtools.evaluate(
        &sse,
        "document.getElementById('cutfor').innerHTML = '<option>1s</option>'; \
         document.querySelector('[data-how=reset]').click(); 'ok'",
    );
    let log = wait_for(&devtools, &sse, LOG, |v| v.matches("open:").count() >= 2);
    assert!(log.contains("readyState CONNECTING"), "{log:?}");
    assert!(
        log.matches("open:").count() >= 2,
        "the EventSource reconnected: {log:?}"
    );
    let last = devtools.evaluate(&sse, "document.getElementById('lastid').innerText");
    let before: u64 = last.parse().unwrap_or(0);
    let events = wait_for(&devtools, &sse, EVENTS, |v| {
        v.contains(&format!("#{} ", before + 2))
    });
    // Nothing missed across the reconnection: every id from 1 on, once.
    let ids: Vec<u64> = events
        .lines()
        .filter_map(|l| l.split('#').nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "{events:?}"
    );

    // The same cut closed the browser's WebSocket, for good.
    let chat_log = wait_for(&devtools, &chat, LOG, |v| v.contains("close"));
    assert!(chat_log.contains("will not reconnect"), "{chat_log:?}");
}
