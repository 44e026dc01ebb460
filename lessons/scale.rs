//! Lesson: scale. Checks the claims of the "Choosing" chapter about what
//! each mechanism costs a server as clients grow, on real runs of one feed
//! (`lessons/scale.toml`) followed by every client.
//!
//!     cargo test --test lessons scale

use crate::run;
use pushpull::record::report::Report;

const HELD: [&str; 3] = ["long_polling", "sse", "websocket"];

/// The scale lesson's feed, carried by `mechanism`, with `overrides`.
fn feed(mechanism: &str, overrides: &[&str]) -> Report {
    let mechanism = format!("mechanism=\"{mechanism}\"");
    let mut all = vec![mechanism.as_str()];
    all.extend_from_slice(overrides);
    run("scale", &all).report
}

// ANCHOR: requests
/// "Inefficient at scale": a polling client asks every interval whether or
/// not there is news, so short polling's requests grow with clients x time
/// / interval. A streaming client asks once, and a long-polling client once
/// per event (or per hold), however many clients there are.
#[test]
fn short_polling_requests_grow_with_clients_and_time_streams_ask_once() {
    let polls_per_client = (120.0 + 10.0) / 5.0; // (duration + drain) / interval
    for clients in [20u32, 80] {
        let set = format!("workload.clients={clients}");
        let short = feed("short_polling", &[&set]);
        let expected = clients as f64 * polls_per_client;
        let ratio = short.requests as f64 / expected;
        println!(
            "{clients} clients: short polling {} requests ({ratio:.2} of clients x time / interval)",
            short.requests
        );
        // Clients join over the first 10 s, so a little under.
        assert!((0.85..=1.02).contains(&ratio), "ratio {ratio}");
        for mechanism in ["sse", "websocket"] {
            let r = feed(mechanism, &[&set]);
            assert_eq!(r.requests, clients as u64, "{mechanism}: one request each");
        }
        let long = feed("long_polling", &[&set]);
        let per_client = long.requests as f64 / clients as f64;
        // 11 events in the run: one answer each, plus the first request and
        // a few holds that ran out.
        assert!((11.0..=14.0).contains(&per_client), "{per_client}");
    }
    let longer = feed("short_polling", &["workload.clients=20", "duration=4m"]);
    let shorter = feed("short_polling", &["workload.clients=20"]);
    let ratio = longer.requests as f64 / shorter.requests as f64;
    assert!((1.8..=2.0).contains(&ratio), "twice the time: x{ratio:.2}");
}
// ANCHOR_END: requests

// ANCHOR: connections
/// "Long-held connections burden servers": every long-polling, SSE and
/// WebSocket client holds a connection at the server all the time, so the
/// server's peak connections are its clients. Polling without keep-alive
/// holds one only while a poll is answered; with keep-alive (what browsers
/// do) each client holds its idle connection between polls too.
#[test]
fn held_mechanisms_hold_a_connection_per_client_polling_shares_them() {
    let clients = 80;
    let set = format!("workload.clients={clients}");
    for mechanism in HELD {
        let r = feed(mechanism, &[&set]);
        assert_eq!(r.peak_connections, clients, "{mechanism}");
    }
    let long = feed("long_polling", &[&set]);
    assert_eq!(long.peak_held_requests, clients, "every poll held at once");
    let short = feed("short_polling", &[&set]);
    println!(
        "short polling, no keep-alive: peak {} connections, {} held requests",
        short.peak_connections, short.peak_held_requests
    );
    assert!(short.peak_connections * 4 < clients);
    let kept = feed("short_polling", &[&set, "short_polling.keep_alive=true"]);
    assert_eq!(kept.peak_connections, clients, "keep-alive holds them");
    // The memory model charges what is held.
    assert!(long.peak_server_memory_bytes > 5 * short.peak_server_memory_bytes);
}
// ANCHOR_END: connections

// ANCHOR: limit
/// Past `server.max_connections` the held mechanisms leave the clients who
/// came last unserved: the first ones never let go of their connections,
/// and the rest wait in the accept queue for ever. Short polling without
/// keep-alive serves everyone through the same limit, at the same latency.
#[test]
fn past_the_server_limit_held_mechanisms_leave_clients_unserved_polling_shares_it() {
    let (clients, limit) = (400, 100);
    let sets = [
        format!("workload.clients={clients}"),
        format!("server.max_connections={limit}"),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    for mechanism in HELD {
        let r = feed(mechanism, &sets);
        println!(
            "{mechanism}: {} of {clients} clients unserved, peak {} connections",
            r.clients_unserved, r.peak_connections
        );
        assert_eq!(r.peak_connections, limit);
        assert_eq!(r.clients_unserved, clients - limit);
    }
    let short = feed("short_polling", &sets);
    let unlimited = feed("short_polling", &sets[..1]);
    assert_eq!((short.clients_unserved, short.lost), (0, 0));
    assert!(short.peak_connections <= limit);
    assert_eq!(short.latency_ms, unlimited.latency_ms);
}

/// Short polling degrades in latency, not in clients served, once its polls
/// need more connections at once than the limit and the accept queue
/// hold: SYNs are dropped, clients retransmit them a second later, then
/// three (Linux's schedule), and polls time out and back off.
#[test]
fn short_polling_past_its_limit_degrades_in_latency() {
    let clients = "workload.clients=400";
    let free = feed("short_polling", &[clients]);
    let tight = feed(
        "short_polling",
        &[clients, "server.max_connections=2", "server.backlog=2"],
    );
    println!(
        "p99 {:?} ms -> {:?} ms, {} SYNs and segments retransmitted",
        free.latency_ms.p99, tight.latency_ms.p99, tight.retransmissions
    );
    assert_eq!(tight.clients_unserved, 0);
    assert!(tight.retransmissions > 1000);
    assert!(tight.latency_ms.p99.unwrap() > 5.0 * free.latency_ms.p99.unwrap());
}
// ANCHOR_END: limit

// ANCHOR: ranking
/// The comparison table's latency ranking (short polling "high", long
/// polling "medium", WebSocket "minimal"), measured: short polling waits
/// half an interval on average; for a lone event long polling, SSE and
/// WebSocket all take one transit. Long polling falls behind only when
/// events come faster than a round trip (its next request is not there
/// yet).
#[test]
fn latency_ranking_short_polling_last_the_rest_tie_until_events_crowd() {
    let p50 = |r: &Report| r.latency_ms.p50.unwrap();
    let short = feed("short_polling", &[]);
    let long = feed("long_polling", &[]);
    let sse = feed("sse", &[]);
    let ws = feed("websocket", &[]);
    assert!(p50(&short) > 20.0 * p50(&long));
    for r in [&sse, &ws] {
        assert!((p50(r) - p50(&long)).abs() <= 5.0, "{}", r.mechanism);
    }
    let crowded = "workload.events={every=\"20ms\",start=\"15s\",count=50}";
    let long = feed("long_polling", &[crowded]);
    let ws = feed("websocket", &[crowded]);
    println!(
        "events 20 ms apart: p99 long polling {:?} ms, WebSocket {:?} ms",
        long.latency_ms.p99, ws.latency_ms.p99
    );
    assert!(long.latency_ms.p99.unwrap() > 1.5 * ws.latency_ms.p99.unwrap());
}
// ANCHOR_END: ranking

/// What the kernel does with a SYN that finds the accept queue full: Linux
/// drops it, and the client retransmits it on its schedule (1, 3, 7 ... s)
/// until it gives up at 127 s; with `tcp_abort_on_overflow` it answers RST
/// at once, and the client's connect fails with "connection refused".
#[test]
fn a_full_accept_queue_drops_syns_unless_told_to_refuse_them() {
    let sets = [
        "workload.clients=200",
        "server.max_connections=50",
        "server.backlog=10",
    ];
    let dropped = feed("sse", &sets);
    let mut refusing = sets.to_vec();
    refusing.push("server.abort_on_overflow=true");
    let refused = feed("sse", &refusing);
    println!(
        "dropped: {} retransmissions, {} connects failed | refused: {} retransmissions, {} connects failed",
        dropped.retransmissions,
        dropped.connects_failed,
        refused.retransmissions,
        refused.connects_failed
    );
    // 50 served, 11 waiting in the queue (backlog + 1), the rest outside.
    assert_eq!(dropped.requests_at_server, 50);
    assert!(
        dropped.retransmissions > 139 * 5,
        "each waits through SYN retries"
    );
    assert!(refused.connects_failed > 139 * 5, "refused again and again");
    assert!(refused.retransmissions < dropped.retransmissions / 10);
    for r in [&dropped, &refused] {
        assert_eq!(r.peak_connections, 50);
        assert_eq!(r.clients_unserved, 150);
    }
}
