//! Lesson: long polling. Checks the claims of the "Long polling" chapter.
//!
//!     cargo test --test lessons long_polling

use crate::{delivery_delays_ms, run};
use pushpull::record::trace::{Dir, Event, ProxyAction, Record};

// ANCHOR: fewer_requests
/// "More efficient than short polling": the same events over the same network
/// take far fewer requests, and arrive sooner.
#[test]
fn long_polling_needs_far_fewer_requests_than_short_polling_at_better_latency() {
    let long = run("long_polling", &[]).report;
    let short = run("long_polling", &["mechanism=\"short_polling\""]).report;
    println!(
        "short: {} requests, p50 {:?} ms | long: {} requests, p50 {:?} ms",
        short.requests, short.latency_ms.p50, long.requests, long.latency_ms.p50
    );
    assert!(long.requests * 3 < short.requests);
    assert!(long.latency_ms.p50 <= short.latency_ms.p50);
    assert!(long.latency_ms.max <= short.latency_ms.max);
    assert_eq!((long.lost, short.lost), (0, 0));
}
// ANCHOR_END: fewer_requests

/// A lone event reaches a waiting client in one network transit: the held
/// request is already at the server, only the answer has to travel.
#[test]
fn long_polling_delivers_a_lone_event_in_about_one_way_latency() {
    let outcome = run("long_polling", &[]);
    let latency = 40.0;
    let jitter = 10.0;
    for delay in delivery_delays_ms(&outcome.records) {
        assert!(
            (latency..=latency + jitter + 2.0).contains(&delay),
            "delay {delay} ms, expected 40-52 ms"
        );
    }
}

// ANCHOR: burst
/// A burst: three events 10 ms apart. The first answer leaves at once; the
/// next two are published while it travels and the client's next request
/// comes back: they wait for that request (response + request + response,
/// three transits, the worst case) and arrive together, none lost.
#[test]
fn long_polling_burst_arrives_whole_with_worst_case_of_three_transits() {
    let outcome = run(
        "long_polling",
        &[
            "workload.events={at=[\"30s\",\"30.01s\",\"30.02s\"]}",
            "workload.clients=1",
            "network.jitter=0ms",
        ],
    );
    let delays = delivery_delays_ms(&outcome.records);
    println!("burst delays: {delays:?} ms");
    assert_eq!(delays.len(), 3, "all three delivered");
    assert_eq!(outcome.report.lost, 0);
    // First event: one transit (40 ms).
    assert!((40.0..=42.0).contains(&delays[0]), "{delays:?}");
    // Second event: published 10 ms later, delivered after three transits
    // from the first answer (120 ms after the first event).
    assert!((108.0..=112.0).contains(&delays[1]), "{delays:?}");
    // Third event rides in the same answer as the second.
    assert!((98.0..=102.0).contains(&delays[2]), "{delays:?}");
}
// ANCHOR_END: burst

/// How many requests the server is holding over time: requests it has read
/// and not yet answered. Returns (peak, time-weighted mean) after `from_us`.
fn held_requests(records: &[Record], from_us: u64) -> (i64, f64) {
    let mut held: i64 = 0;
    let mut peak = 0;
    let mut area = 0.0;
    let mut last_t = from_us;
    let end = records.last().map(|r| r.t_us).unwrap_or(0);
    for r in records.iter().filter(|r| r.host == "server") {
        if r.t_us >= from_us {
            area += held as f64 * (r.t_us - last_t) as f64;
            last_t = r.t_us;
            peak = peak.max(held);
        }
        match r.event {
            Event::Recv { dir: Dir::Up, .. } => held += 1,
            Event::Send { dir: Dir::Down, .. } => held -= 1,
            _ => {}
        }
    }
    area += held as f64 * (end.saturating_sub(last_t)) as f64;
    (peak, area / (end - from_us) as f64)
}

// ANCHOR: one_per_client
/// The cost: the server holds about one open request per client, all the time.
#[test]
fn long_polling_server_holds_about_one_request_per_client() {
    let outcome = run("long_polling", &["workload.clients=5"]);
    // After every client has joined (join_spread is 5 s).
    let (peak, mean) = held_requests(&outcome.records, 6_000_000);
    println!("held requests: peak {peak}, mean {mean:.2} for 5 clients");
    assert_eq!(peak, 5);
    assert!(mean > 4.9, "mean held {mean}");
    assert_eq!(outcome.report.peak_connections, 5);
}
// ANCHOR_END: one_per_client

// ANCHOR: proxy_trap
/// The production trap: a proxy that waits 20 s for an answer (nginx's
/// `proxy_read_timeout`, an ALB's idle timeout), in front of a server that
/// holds requests for 30 s. Every quiet hold ends with the proxy answering
/// `504 Gateway Timeout`; the client counts a failed request, backs off,
/// reconnects, and loses nothing. With a 15 s hold, under the proxy's limit,
/// no request times out.
#[test]
fn long_polling_hold_longer_than_proxy_idle_timeout_gets_cut_and_recovers() {
    let proxy = ["proxy.enabled=true", "proxy.idle_timeout=20s"];
    let cut = run(
        "long_polling",
        &[&proxy[..], &["long_polling.hold=30s"]].concat(),
    );
    let cuts = |records: &[Record]| {
        records
            .iter()
            .filter(|r| {
                matches!(
                    r.event,
                    Event::Proxy {
                        action: ProxyAction::GatewayTimeout,
                        ..
                    }
                )
            })
            .count()
    };
    let client_504s = cut
        .records
        .iter()
        .filter(|r| r.host.starts_with("client"))
        .filter(|r| matches!(&r.event, Event::Recv { what, .. } if what.starts_with("504")))
        .count();
    println!(
        "hold 30s: {} gateway timeouts, {} answered 504 at a client, {} reconnects, lost {}",
        cuts(&cut.records),
        client_504s,
        cut.report.reconnects,
        cut.report.lost
    );
    assert!(
        cuts(&cut.records) > 0,
        "the proxy should give up on held requests"
    );
    assert_eq!(
        client_504s,
        cuts(&cut.records),
        "each one reaches its client as a 504"
    );
    assert!(cut.report.reconnects > 0);
    assert_eq!((cut.report.lost, cut.report.duplicated), (0, 0));

    let fine = run(
        "long_polling",
        &[
            &proxy[..],
            &["long_polling.hold=15s", "long_polling.client_timeout=18s"],
        ]
        .concat(),
    );
    println!("hold 15s: {} cuts", cuts(&fine.records));
    assert_eq!(cuts(&fine.records), 0);
    assert_eq!(fine.report.reconnects, 0);
    assert_eq!(fine.report.lost, 0);
}
// ANCHOR_END: proxy_trap

/// Cut-off and crash: the cursor makes both harmless.
#[test]
fn long_polling_loses_nothing_across_a_cut_off_and_a_server_restart() {
    let outcome = run(
        "long_polling",
        &[
            "workload.events={every=\"7s\", start=\"5s\"}",
            r#"faults=[{cut="client-2", from="40s", to="60s"}, {crash="server", at="100s", restart="110s"}]"#,
        ],
    );
    let r = &outcome.report;
    println!(
        "retries {}, reconnects {}, lost {}, dup {}",
        r.retries, r.reconnects, r.lost, r.duplicated
    );
    assert!(r.retries > 0 && r.reconnects >= 3);
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
}

/// The same through the proxy, where the server's crash shows up as 502s.
#[test]
fn long_polling_through_a_proxy_survives_a_server_restart() {
    let outcome = run(
        "long_polling",
        &[
            "proxy.enabled=true",
            "workload.events={every=\"7s\", start=\"5s\"}",
            r#"faults=[{crash="server", at="100s", restart="110s"}]"#,
        ],
    );
    let got_502 = outcome.records.iter().any(|r| {
        matches!(&r.event, Event::Recv { what, dir: Dir::Down, .. } if what.starts_with("502"))
            && r.host.starts_with("client")
    });
    assert!(
        got_502,
        "clients should see the proxy's 502 while the server is down"
    );
    assert_eq!((outcome.report.lost, outcome.report.duplicated), (0, 0));
}

#[test]
fn long_polling_default_report() {
    let outcome = run("long_polling", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}
