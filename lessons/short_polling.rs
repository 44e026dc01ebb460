//! Lesson: short polling. Checks the claims of the "Short polling" chapter.
//!
//!     cargo test --test lessons short_polling

use crate::{delivery_delays_ms, mean, run};
use pushpull::record::trace::Event;

// ANCHOR: mostly_empty
/// The study notes: "99% of requests may return empty data". With an event a
/// minute and a poll every 5 s, about 11 of every 12 answers carry nothing.
#[test]
fn short_polling_sparse_events_make_most_answers_empty() {
    let outcome = run("short_polling", &[]);
    let r = &outcome.report;
    let empty_share = r.empty_responses as f64 / r.requests as f64;
    println!(
        "{} requests, {} empty ({:.0}%)",
        r.requests,
        r.empty_responses,
        100.0 * empty_share
    );
    assert!(
        empty_share > 0.85,
        "expected most answers empty, got {empty_share:.2}"
    );
    assert_eq!(r.lost, 0);
}
// ANCHOR_END: mostly_empty

// ANCHOR: delay_grows_with_interval
/// Mean delay from publication to delivery is about half the interval (the
/// wait for the next poll) plus the one-way latency (the answer's trip back).
#[test]
fn short_polling_mean_delay_is_half_the_interval_plus_latency() {
    let latency_ms = 40.0;
    let mut previous = 0.0;
    for interval_s in [1.0, 2.0, 5.0, 10.0] {
        // Random (Poisson) event times, so the events fall anywhere between
        // two polls, and more clients, to have enough deliveries to average.
        let outcome = run(
            "short_polling",
            &[
                &format!("short_polling.interval={interval_s}s"),
                "workload.events={rate=0.2, start=\"10s\"}",
                "workload.clients=10",
                "network.jitter=0ms",
            ],
        );
        let measured = mean(&delivery_delays_ms(&outcome.records));
        let predicted = interval_s * 1000.0 / 2.0 + latency_ms;
        println!(
            "interval {interval_s:>4} s: mean delay {measured:>7.1} ms, interval/2 + latency = {predicted:>7.1} ms"
        );
        assert!(
            (measured - predicted).abs() < 0.2 * predicted,
            "interval {interval_s}s: measured {measured:.1} ms, expected about {predicted:.1} ms"
        );
        assert!(measured > previous, "delay must grow with the interval");
        previous = measured;
    }
}
// ANCHOR_END: delay_grows_with_interval

// ANCHOR: cut_off_loses_nothing
/// Cut client-1 off the server for 20 s: its polls time out and back off, and
/// when the network heals its cursor brings back every event it missed.
#[test]
fn short_polling_loses_nothing_across_a_20s_cut_off() {
    let outcome = run(
        "short_polling",
        &[
            "workload.events={every=\"10s\", start=\"5s\"}",
            r#"faults=[{cut="client-1", from="60s", to="80s"}]"#,
        ],
    );
    let r = &outcome.report;
    let client_1_errors = outcome
        .records
        .iter()
        .filter(|rec| matches!(rec.event, Event::Error { client: 1, .. }))
        .count();
    println!(
        "client-1 failed {client_1_errors} polls; lost {}, duplicated {}",
        r.lost, r.duplicated
    );
    assert!(
        client_1_errors > 0,
        "the cut-off should make client-1's polls fail"
    );
    assert!(r.retries > 0);
    assert_eq!(r.lost, 0, "every event must arrive once the network heals");
    assert_eq!(r.duplicated, 0);
    assert_eq!(r.out_of_order, 0);
}
// ANCHOR_END: cut_off_loses_nothing

/// A server crash and restart: connections die, the event log (a database
/// in real life) survives, and clients reconnect and catch up.
#[test]
fn short_polling_loses_nothing_across_a_server_crash() {
    let outcome = run(
        "short_polling",
        &[
            "workload.events={every=\"10s\", start=\"5s\"}",
            r#"faults=[{crash="server", at="60s", restart="75s"}]"#,
        ],
    );
    let r = &outcome.report;
    assert!(
        r.reconnects >= 3,
        "every client must reconnect, got {}",
        r.reconnects
    );
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
}

/// Lossy network: 5% of transmissions vanish, TCP sends them again after
/// its retransmission timeout (at least 200 ms), and the polls carry on:
/// loss costs delay, not connections.
#[test]
fn short_polling_on_a_lossy_network_pays_in_delay_not_connections() {
    let lossy = ["workload.events={every=\"10s\", start=\"5s\"}"];
    let clean = run("short_polling", &lossy).report;
    let lossy = run(
        "short_polling",
        &[&lossy[..], &["network.loss=0.05"]].concat(),
    )
    .report;
    println!(
        "5% loss: {} retransmissions, reconnects {}, worst delay {:?} ms (clean: {:?} ms)",
        lossy.retransmissions, lossy.reconnects, lossy.latency_ms.max, clean.latency_ms.max
    );
    assert!(lossy.retransmissions > 0);
    assert_eq!((lossy.reconnects, lossy.retries), (0, 0));
    assert_eq!((lossy.lost, lossy.duplicated), (0, 0));
    assert!(lossy.latency_ms.max > clean.latency_ms.max);
}

/// A poll during a cut: the kernel retransmits the request, then, once the
/// poll's own 2 s timeout has given up on the connection, retransmits the
/// new connection's SYN (after 1 s, then 3 s, ...); the client's timeout
/// decides before the kernel's 127 s would, and it backs off and tries again.
#[test]
fn short_polling_connect_during_a_cut_waits_and_the_client_timeout_decides() {
    let outcome = run(
        "short_polling",
        &[r#"faults=[{cut="client-1", from="60s", to="90s"}]"#],
    );
    let count = |f: fn(&Event) -> bool| {
        outcome
            .records
            .iter()
            .filter(|r| r.host == "client-1" && f(&r.event))
            .count()
    };
    let syns = count(|e| matches!(e, Event::SynRetransmit { .. }));
    let refused = count(|e| matches!(e, Event::ConnectFailed { .. }));
    let timeouts = count(|e| matches!(e, Event::Error { what, .. } if what == "request timeout"));
    println!("{syns} SYN retransmissions, {refused} failed connects, {timeouts} poll timeouts");
    assert!(syns > 0 && timeouts > 0);
    assert_eq!(refused, 0, "the poll's timeout ends each connect first");
    assert_eq!(outcome.report.lost, 0);
}

/// Without keep-alive every poll pays for a new TCP connection.
#[test]
fn short_polling_without_keep_alive_opens_a_connection_per_poll() {
    let outcome = run("short_polling", &["short_polling.keep_alive=false"]);
    let r = &outcome.report;
    assert_eq!(r.connections_opened, r.requests);
    let with = run("short_polling", &[]).report;
    assert_eq!(with.connections_opened, 3);
}

// ANCHOR: snapshot
/// The default run's report, pinned: any change to what crosses the network
/// (a byte, a millisecond) changes `trace_hash` and fails this snapshot.
#[test]
fn short_polling_default_report() {
    let outcome = run("short_polling", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
    insta::assert_json_snapshot!(outcome.report);
}
// ANCHOR_END: snapshot

// ANCHOR: keep_alive_race
/// The keep-alive race: the server closes a connection idle for 60 s, and a
/// client polling every 60 s sends its next request just as the server's
/// FIN leaves. Nothing was answered, so the client re-sends the GET at once
/// on a new connection (RFC 9112 section 9.3.1), as browsers do: the race
/// costs a connection and a round trip, never a failed poll.
#[test]
fn short_polling_keep_alive_race_costs_no_failed_poll() {
    let outcome = run(
        "short_polling",
        &[
            "workload.clients=10",
            "short_polling.interval=60s",
            "short_polling.server_idle_timeout=60s",
        ],
    );
    let r = &outcome.report;
    let errors = outcome
        .records
        .iter()
        .filter(|rec| matches!(rec.event, Event::Error { .. }))
        .count();
    println!(
        "{} requests, {} re-sent on a new connection, {} failed polls",
        r.requests, r.resent, errors
    );
    assert!(r.resent > 0, "the server's idle timeout races the interval");
    assert_eq!((errors, r.retries, r.lost), (0, 0, 0));
}
// ANCHOR_END: keep_alive_race

/// Latency is measured from publication or from the moment the client
/// joined, whichever is later: a page opened after an event was published
/// shows it on its first answer, and has not waited for it.
#[test]
fn a_late_joiner_does_not_count_the_time_before_it_joined_as_latency() {
    let outcome = run(
        "short_polling",
        &[
            r#"workload.events={at=["1s"]}"#,
            "workload.join_spread=5s",
            "workload.clients=10",
        ],
    );
    let joined_at = |client: u32| {
        outcome
            .records
            .iter()
            .find(|r| {
                r.host == format!("client-{client}") && matches!(r.event, Event::Connect { .. })
            })
            .map(|r| r.t_us)
            .expect("every client connects")
    };
    let mut late = 0;
    for r in &outcome.records {
        if let Event::Deliver {
            client, latency_us, ..
        } = r.event
            && joined_at(client) > 1_000_000
        {
            late += 1;
            // The first answer: two round trips after joining, one to
            // connect (SYN, SYN-ACK) and one for the poll, 40 ms each way
            // plus up to 10 ms of jitter.
            assert!(latency_us <= 200_000, "client {client}: {latency_us} us");
        }
    }
    assert!(late > 0, "some clients join after the event");
}
