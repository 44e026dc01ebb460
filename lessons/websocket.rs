//! Lesson: WebSocket. Checks the claims of the "WebSocket" chapter on real
//! runs of the study notes' chat.
//!
//!     cargo test --test lessons websocket

use crate::run;
use pushpull::record::trace::{Event, Kind, Record};
use std::collections::HashMap;

/// The room messages client `client` showed, in order.
fn shown(records: &[Record], client: u32) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| match r.event {
            Event::Deliver {
                client: c, event, ..
            } if c == client => Some(event),
            _ => None,
        })
        .collect()
}

/// Delivery delays in ms, split into the server's own messages (one
/// transit) and users' posts (up to the server and down again).
fn delays_by_origin(records: &[Record]) -> (Vec<f64>, Vec<f64>) {
    let mut posted_by_user = HashMap::new();
    for r in records {
        if let Event::Publish { event, from, .. } = r.event {
            posted_by_user.insert(event, from.is_some());
        }
    }
    let (mut server, mut users) = (Vec::new(), Vec::new());
    for r in records {
        if let Event::Deliver {
            event, latency_us, ..
        } = r.event
        {
            let ms = latency_us as f64 / 1000.0;
            match posted_by_user.get(&event) {
                Some(true) => users.push(ms),
                _ => server.push(ms),
            }
        }
    }
    (server, users)
}

/// Why each of client-1's connections ended, as client-1 saw it.
fn closes(records: &[Record], host: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.host == host)
        .filter_map(|r| match &r.event {
            Event::Close { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

// ANCHOR: one_connection
/// "Full-duplex over a single TCP connection": in a fault-free run each
/// member opens one connection and sends one HTTP request (the handshake);
/// posts go up and room messages come down the same connection. A server
/// message arrives one transit after it is published (40 ms + up to 10 ms
/// of jitter), a post two transits after its user pressed Send.
#[test]
fn websocket_is_one_handshake_then_both_directions_on_one_connection() {
    let outcome = run("websocket", &[]);
    let r = &outcome.report;
    assert_eq!((r.connections_opened, r.requests), (3, 3));
    assert_eq!((r.lost, r.duplicated, r.reconnects), (0, 0, 0));
    assert!(r.posted > 0);
    assert_eq!(r.messages_up, r.posted);
    // Every client frame, posts included, went up a connection that the
    // handshake opened: one connection per client carried everything.
    let conns: std::collections::BTreeSet<&str> = outcome
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Send {
                conn,
                kind: Kind::Frame,
                ..
            } => Some(conn.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(conns.len(), 3);
    let (server, users) = delays_by_origin(&outcome.records);
    for ms in server {
        assert!((40.0..=52.0).contains(&ms), "server message after {ms} ms");
    }
    for ms in users {
        assert!((80.0..=104.0).contains(&ms), "post after {ms} ms");
    }
}
// ANCHOR_END: one_connection

// ANCHOR: framing
/// "Lower overhead": after the handshake a message costs its payload, the
/// chat's JSON envelope and 2-4 bytes of frame header, against a full HTTP
/// request and response for long polling (counted both ways: its requests
/// are part of what each answer costs). Same events, same network.
#[test]
fn websocket_frames_cost_a_few_bytes_where_http_costs_hundreds() {
    let sets = ["workload.sends=0", "workload.payload_bytes=64"];
    let per_message = |mechanism: &str| {
        let set = format!("mechanism={mechanism}");
        let mut all = sets.to_vec();
        all.push(&set);
        let outcome = run("websocket", &all);
        let r = &outcome.report;
        // Bytes clients sent and received, both ways, leaving out the
        // WebSocket handshake (paid once per connection): long polling pays
        // its request and response headers for every answer.
        let per_message_bytes: u64 = outcome
            .records
            .iter()
            .filter(|rec| rec.host.starts_with("client"))
            .filter_map(|rec| match &rec.event {
                Event::Send { kind, bytes, .. } | Event::Recv { kind, bytes, .. }
                    if mechanism != "websocket" || *kind == Kind::Frame =>
                {
                    Some(*bytes)
                }
                _ => None,
            })
            .sum();
        assert_eq!(r.lost, 0, "{mechanism}");
        per_message_bytes as f64 / r.delivered as f64 - 64.0
    };
    let websocket = per_message("websocket");
    let long_polling = per_message("long_polling");
    assert!(
        websocket < 80.0,
        "websocket: {websocket} B beyond the payload"
    );
    assert!(
        long_polling > 150.0,
        "long polling: {long_polling} B beyond the payload"
    );
}
// ANCHOR_END: framing

// ANCHOR: browser
/// "WebSockets don't automatically recover when connections are
/// terminated": client-1's network resets its connection at 60 s. The
/// browser's `WebSocket` reports the close and stays closed: client-1 sees
/// nothing of the room from then on, and its user's posts go nowhere.
#[test]
fn the_browsers_websocket_stays_closed_after_a_reset() {
    let outcome = run(
        "websocket",
        &[
            "websocket.client=browser",
            r#"faults=[{cut="client-1",from="60s",to="90s",reset=true}]"#,
        ],
    );
    let r = &outcome.report;
    assert_eq!(r.reconnects, 0);
    let last_shown = *shown(&outcome.records, 1).last().unwrap();
    let published = r.published;
    assert!(
        last_shown < published,
        "client-1 stopped at {last_shown} of {published}"
    );
    assert_eq!(r.lost, published - shown(&outcome.records, 1).len() as u64);
    assert!(r.messages_up < r.posted);
}
// ANCHOR_END: browser

// ANCHOR: resilient
/// The resilient client (heartbeats, backoff, resume) across every way a
/// connection dies: a reset, a silent cut, a server restart, and a
/// middlebox that forgets the connection (which nothing but the heartbeat
/// finds: no packet ever says it is gone). Nothing lost, nothing doubled,
/// up or down.
#[test]
fn the_resilient_client_loses_and_doubles_nothing_across_faults() {
    for fault in [
        r#"faults=[{cut="client-1",from="60s",to="90s",reset=true}]"#,
        r#"faults=[{cut="client-1",from="60s",to="90s"}]"#,
        r#"faults=[{crash="server",at="60s",restart="70s"}]"#,
        r#"faults=[{cut="client-1",from="60s",to="62s",forget=true}]"#,
    ] {
        let outcome = run("websocket", &[fault]);
        let r = &outcome.report;
        assert!(r.reconnects >= 1, "{fault}");
        assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{fault}");
        assert_eq!(
            (r.messages_up, r.posts_doubled),
            (r.posted, 0),
            "{fault}: every post in the room once"
        );
    }
    // The forgotten connection: client-1 learns of it from the silence.
    let outcome = run(
        "websocket",
        &[r#"faults=[{cut="client-1",from="60s",to="62s",forget=true}]"#],
    );
    assert!(closes(&outcome.records, "client-1").contains(&"heartbeat timeout".to_string()));
}
// ANCHOR_END: resilient

// ANCHOR: no_resume
/// Reconnecting is not resuming: the same silent cut with `resume = false`.
/// The client reconnects, but the room messages of the gap are gone for
/// client-1, and a post written into the dead connection never arrives.
#[test]
fn reconnecting_without_resume_loses_what_the_gap_held() {
    let outcome = run(
        "websocket",
        &[
            "websocket.resume=false",
            r#"faults=[{cut="client-1",from="60s",to="90s"}]"#,
        ],
    );
    let r = &outcome.report;
    assert!(r.reconnects >= 1);
    assert!(r.lost > 0, "nothing lost?");
    assert!(r.messages_up < r.posted, "every post arrived?");
}
// ANCHOR_END: no_resume

// ANCHOR: one_order
/// "Every member sees one order": with jitter of up to 2 s on every message
/// (fifty times the latency), posts reach the server in a scrambled order,
/// but the room numbers them as they arrive and every member shows them in
/// that one order.
#[test]
fn every_member_sees_the_rooms_one_order_even_with_heavy_jitter() {
    let outcome = run("websocket", &["network.jitter=2s", "workload.sends=3s"]);
    let r = &outcome.report;
    assert_eq!((r.lost, r.out_of_order), (0, 0));
    let first = shown(&outcome.records, 1);
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    for client in 2..=3 {
        assert_eq!(shown(&outcome.records, client), first, "client-{client}");
    }
}
// ANCHOR_END: one_order

/// The default run, as a snapshot: any change to it is a change to see.
#[test]
fn websocket_default_report() {
    let outcome = run("websocket", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}
