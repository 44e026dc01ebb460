//! Lesson: Server-Sent Events. Checks the claims of the "Server-Sent Events"
//! chapter on real runs.
//!
//!     cargo test --test lessons sse

use crate::{delivery_delays_ms, run};
use pushpull::record::trace::{Dir, Event, Record};

/// The ids client `client` delivered, in delivery order.
fn delivered_ids(records: &[Record], client: u32) -> Vec<u64> {
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

/// Requests the server received, as the trace names them.
fn requests_at_server(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.host == "server")
        .filter_map(|r| match &r.event {
            Event::Recv {
                dir: Dir::Up, what, ..
            } => Some(what.clone()),
            _ => None,
        })
        .collect()
}

// ANCHOR: one_connection
/// "One persistent connection": a fault-free run uses exactly one connection
/// and one request per client, and every event arrives one transit after it
/// is published (40 ms latency + up to 10 ms jitter).
#[test]
fn sse_uses_one_connection_per_client_and_delivers_in_one_transit() {
    let outcome = run("sse", &[]);
    let r = &outcome.report;
    assert_eq!(r.connections_opened, 3);
    assert_eq!(r.requests, 3);
    assert_eq!((r.reconnects, r.lost, r.duplicated), (0, 0, 0));
    for delay in delivery_delays_ms(&outcome.records) {
        assert!((40.0..=52.0).contains(&delay), "delay {delay} ms");
    }
}
// ANCHOR_END: one_connection

// ANCHOR: resume
/// "Reconnects automatically": client-1's phone loses its network for 15 s
/// (its connection is reset). EventSource waits its reconnection time, tries
/// again until the network is back, sends `Last-Event-ID`, and the server
/// replays exactly what was missed: every event once, in order.
#[test]
fn sse_client_resumes_from_last_event_id_after_cut_off() {
    let outcome = run(
        "sse",
        &[r#"faults=[{cut="client-1", from="60s", to="75s", reset=true}]"#],
    );
    let r = &outcome.report;
    let resumed: Vec<String> = requests_at_server(&outcome.records)
        .into_iter()
        .filter(|w| w.contains("Last-Event-ID"))
        .collect();
    println!("resumed with: {resumed:?}");
    assert_eq!(resumed.len(), 1, "one successful reconnection");
    let ids = delivered_ids(&outcome.records, 1);
    let expected: Vec<u64> = (1..=r.published).collect();
    assert_eq!(
        ids, expected,
        "client-1 gets every event exactly once, in order"
    );
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    assert!(r.reconnects >= 1);
}
// ANCHOR_END: resume

// ANCHOR: held_cut
/// Not every outage breaks the stream. If the path survives (packets wait
/// and TCP delivers them when the network is back), the one connection lives
/// on: no reconnect, nothing lost, the events of the outage simply late.
#[test]
fn sse_stream_survives_a_short_cut_that_tcp_rides_out() {
    let outcome = run(
        "sse",
        &[r#"faults=[{cut="client-1", from="60s", to="75s", hold=true}]"#],
    );
    let r = &outcome.report;
    let worst = r.latency_ms.max.unwrap();
    println!(
        "held cut: reconnects {}, lost {}, worst delay {worst} ms",
        r.reconnects, r.lost
    );
    assert_eq!((r.reconnects, r.connections_opened, r.requests), (0, 3, 3));
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    assert!((14_000.0..=15_100.0).contains(&worst), "{worst}");
}
// ANCHOR_END: held_cut

// ANCHOR: retry_field
/// `retry: 10000` sets the reconnection time: the same 2-second outage keeps
/// the client away for about 10 s instead of 3 s.
#[test]
fn sse_retry_field_makes_the_outage_longer() {
    let cut = r#"faults=[{cut="client-1", from="60s", to="62s", reset=true}]"#;
    let default = run("sse", &[cut]).report;
    let slow = run("sse", &[cut, "sse.retry=10s"]).report;
    let (fast_max, slow_max) = (
        default.latency_ms.max.unwrap(),
        slow.latency_ms.max.unwrap(),
    );
    println!("worst delay: {fast_max} ms with the 3 s default, {slow_max} ms with retry: 10000");
    assert!((3000.0..5000.0).contains(&fast_max), "{fast_max}");
    assert!((10000.0..12000.0).contains(&slow_max), "{slow_max}");
    assert_eq!((default.lost, slow.lost), (0, 0));
}
// ANCHOR_END: retry_field

// ANCHOR: silent_cut
/// A 15 s silent cut (packets vanish, nobody is told): the server's TCP
/// retransmits what it wrote during the cut, with a doubling timeout, and
/// the stream carries on after the heal: nothing lost, no reconnect. The
/// delay runs past the heal, to the server's next retransmission.
#[test]
fn sse_stream_rides_out_a_silent_cut_by_retransmission() {
    let outcome = run(
        "sse",
        &[r#"faults=[{cut="client-1", from="60s", to="75s"}]"#],
    );
    let r = &outcome.report;
    let worst = r.latency_ms.max.unwrap();
    println!(
        "silent cut: reconnects {}, lost {}, retransmissions {}, worst delay {worst} ms",
        r.reconnects, r.lost, r.retransmissions
    );
    assert_eq!((r.reconnects, r.connections_opened, r.requests), (0, 3, 3));
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    assert!(r.retransmissions > 0);
    // The event published at the start of the cut waited for the heal
    // (15 s) and then for the next retransmission after it.
    assert!(worst > 15_100.0, "{worst}");
}
// ANCHOR_END: silent_cut

// ANCHOR: silent_partition
/// A middlebox that forgets the connection (a NAT or load balancer that
/// lost its table; `forget = true`): after the heal, the old connection's
/// packets vanish for good, and no reset ever comes. A browser's
/// EventSource waits forever on the dead stream. A heartbeat timeout on the
/// client (the server sends a comment every 15 s, so 20 s of silence means
/// the stream is dead) turns it into a reconnect, and nothing is lost.
#[test]
fn sse_heartbeat_timeout_detects_a_forgotten_connection() {
    let cut = r#"faults=[{cut="client-1", from="60s", to="75s", forget=true}]"#;
    let stuck = run("sse", &[cut]);
    let lost_by_client_1 = stuck.report.published - delivered_ids(&stuck.records, 1).len() as u64;
    println!("without a heartbeat timeout client-1 misses {lost_by_client_1} events");
    assert!(
        lost_by_client_1 > 10,
        "the stream should stay dead to the end"
    );
    assert_eq!(stuck.report.reconnects, 0, "nothing ever tells the client");

    let healed = run("sse", &[cut, "sse.client_heartbeat_timeout=20s"]).report;
    println!(
        "with a 20 s heartbeat timeout: reconnects {}, lost {}",
        healed.reconnects, healed.lost
    );
    assert_eq!(healed.reconnects, 1);
    assert_eq!((healed.lost, healed.duplicated), (0, 0));
}
// ANCHOR_END: silent_partition

// ANCHOR: fail_for_good
/// Some answers make EventSource give up for good: a status other than 200
/// (500, and 204, the documented "stop"), or a Content-Type other than
/// text/event-stream. After the server starts refusing at 50 s, client-1's
/// reconnection at 60 s is refused and it never connects again.
#[test]
fn sse_500_204_or_wrong_content_type_stop_the_client_for_good() {
    for refusal in ["status_500", "status_204", "wrong_content_type"] {
        let outcome = run(
            "sse",
            &[
                "sse.refuse_after=50s",
                &format!("sse.refuse_with=\"{refusal}\""),
                r#"faults=[{cut="client-1", from="60s", to="61s", reset=true}]"#,
            ],
        );
        let gave_up_at = outcome
            .records
            .iter()
            .find(|r| matches!(&r.event, Event::Error { client: 1, what } if what.contains("for good")))
            .map(|r| r.t_us)
            .unwrap_or_else(|| panic!("{refusal}: client-1 should fail for good"));
        let connects_after = outcome
            .records
            .iter()
            .filter(|r| r.host == "client-1" && r.t_us > gave_up_at)
            .filter(|r| matches!(r.event, Event::Connect { .. }))
            .count();
        println!("{refusal}: client-1 gave up at {} ms", gave_up_at / 1000);
        assert_eq!(connects_after, 0, "{refusal}: no reconnect after failing");
        assert!(
            outcome.report.lost > 0,
            "{refusal}: later events never reach client-1"
        );
    }
}
// ANCHOR_END: fail_for_good

// ANCHOR: buffering_proxy
/// A proxy that buffers responses (nginx's default) holds the stream's small
/// events until 1 KiB has gathered: delivery goes from one transit to many
/// seconds. The fix is one response header, `X-Accel-Buffering: no`.
#[test]
fn sse_buffering_proxy_delays_delivery_until_the_header_fixes_it() {
    let proxy = [
        "proxy.enabled=true",
        "proxy.mode=\"buffer\"",
        "proxy.buffer_kib=1",
    ];
    let buffered = run("sse", &proxy).report;
    let fixed = run(
        "sse",
        &[&proxy[..], &["sse.no_proxy_buffering=true"]].concat(),
    )
    .report;
    let (slow, fast) = (
        buffered.latency_ms.p50.unwrap(),
        fixed.latency_ms.p50.unwrap(),
    );
    println!(
        "p50 delay through a buffering proxy: {slow} ms; with X-Accel-Buffering: no: {fast} ms"
    );
    assert!(slow > 10_000.0, "{slow}");
    // Two hops now: client-proxy and proxy-server, 40 ms each.
    assert!((80.0..=110.0).contains(&fast), "{fast}");
}
// ANCHOR_END: buffering_proxy

// ANCHOR: streamed_response
/// The study notes' streamed response: an answer written piece by piece, 40
/// pieces 50 ms apart. SSE hands each piece over one transit after it is
/// written; long polling bunches them (a piece written while an answer
/// travels waits for the next request), and short polling waits for polls.
#[test]
fn sse_streams_a_long_response_piece_by_piece() {
    let pieces = [
        "workload.events={every=\"50ms\", start=\"30s\", count=40}",
        "workload.payload_bytes=16",
        "network.jitter=0ms",
    ];
    let sse = run("sse", &pieces);
    let long = run(
        "sse",
        &[&pieces[..], &["mechanism=\"long_polling\""]].concat(),
    );
    let short = run(
        "sse",
        &[
            &pieces[..],
            &["mechanism=\"short_polling\"", "short_polling.interval=1s"],
        ]
        .concat(),
    );
    let worst = |o: &pushpull::run::RunOutcome| o.report.latency_ms.max.unwrap();
    println!(
        "worst piece delay: sse {} ms, long polling {} ms, short polling {} ms",
        worst(&sse),
        worst(&long),
        worst(&short)
    );
    assert_eq!(
        delivered_ids(&sse.records, 1),
        (1..=40).collect::<Vec<u64>>()
    );
    assert!(worst(&sse) <= 41.0);
    assert!(worst(&long) > 80.0);
    assert!(worst(&short) > 500.0);
}
// ANCHOR_END: streamed_response

/// A client further behind than the server's history is told so with a
/// `gap` event instead of being skipped silently.
#[test]
fn sse_server_reports_a_gap_when_history_is_too_short() {
    let outcome = run(
        "sse",
        &[
            "sse.history=3",
            r#"faults=[{cut="client-1", from="60s", to="90s", reset=true}]"#,
            "sse.client_default_retry=1s",
        ],
    );
    let gap_told = outcome.records.iter().any(
        |r| matches!(&r.event, Event::Error { client: 1, what } if what.contains("missed_from")),
    );
    assert!(gap_told, "client-1 should be told which events are gone");
    assert!(outcome.report.lost > 0);
    assert_eq!(outcome.report.duplicated, 0);
}

#[test]
fn sse_default_report() {
    let outcome = run("sse", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}

/// `retries` counts every failed attempt: with `retry: 100` and a server
/// process that crashed for 15 s (its host's kernel refuses every connect at
/// once), EventSource tries about five times a second, and every attempt
/// after the first failure is a retry, whether its connect failed or its
/// request went out.
#[test]
fn sse_retries_count_every_failed_attempt() {
    let outcome = run(
        "sse",
        &[
            "sse.retry=100ms",
            r#"faults=[{crash="server", at="60s", restart="75s"}]"#,
        ],
    );
    let failed_connects = outcome
        .records
        .iter()
        .filter(|r| r.host == "client-1" && matches!(r.event, Event::ConnectFailed { .. }))
        .count() as u64;
    let r = &outcome.report;
    println!("{failed_connects} failed connects, retries {}", r.retries);
    assert!(failed_connects > 50, "about 5 a second for 15 s");
    assert!(
        r.retries >= failed_connects,
        "each failed attempt is counted"
    );
    assert_eq!((r.lost, r.duplicated), (0, 0));
}

/// The kernel can find a forgotten connection too: with TCP keep-alive (as
/// Chromium asks for, there 45 s), an idle stream is probed, and 9
/// unanswered probes abort it; EventSource then reconnects. Here 5 s, so it
/// takes 5 + 9 x 5 = 50 s of silence; with Chromium's 45 s, 450 s.
/// (Checked: the abort comes 50 s after the last byte heard.)
#[test]
fn sse_tcp_keepalive_finds_a_forgotten_connection_eventually() {
    let outcome = run(
        "sse",
        &[
            r#"faults=[{cut="client-1", from="60s", to="75s", forget=true}]"#,
            "network.tcp_keepalive=5s",
            // Quiet streams: only heartbeats would cross, and none are sent,
            // so the keep-alive timer runs.
            "sse.heartbeat=0",
            r#"workload.events={every="200s", start="10s"}"#,
        ],
    );
    let aborted_at = outcome
        .records
        .iter()
        .find(|r| {
            r.host == "client-1"
                && matches!(&r.event, Event::Close { reason, .. } if reason.contains("keep-alive"))
        })
        .map(|r| r.t_us)
        .expect("the probes go unanswered and the kernel gives up");
    // The last time client-1's kernel heard anything: a byte, or an
    // answered probe.
    let last_heard = outcome
        .records
        .iter()
        .filter(|r| r.host == "client-1" && r.t_us < aborted_at)
        .filter(|r| {
            matches!(
                r.event,
                Event::Recv { .. } | Event::KeepaliveProbe { answered: true, .. }
            )
        })
        .map(|r| r.t_us)
        .max()
        .unwrap();
    let r = &outcome.report;
    println!(
        "keep-alive: aborted {} s after the last answer; reconnects {}, lost {}",
        (aborted_at - last_heard) as f64 / 1e6,
        r.reconnects,
        r.lost
    );
    assert_eq!(aborted_at - last_heard, 50_000_000, "5 s + 9 probes x 5 s");
    assert_eq!(r.reconnects, 1);
    assert_eq!((r.lost, r.duplicated), (0, 0));
}

/// A NAT that forgets connections idle for 10 s kills a stream whose
/// heartbeat comes every 15 s (between two events a minute apart); a 5 s
/// heartbeat keeps it alive.
#[test]
fn sse_nat_idle_timeout_kills_a_quiet_stream_unless_heartbeats_come_more_often() {
    let quiet = [
        "network.nat_idle_timeout=10s",
        r#"workload.events={every="60s", start="30s"}"#,
    ];
    let killed = run("sse", &[&quiet[..], &["sse.heartbeat=15s"]].concat());
    let kept = run("sse", &[&quiet[..], &["sse.heartbeat=5s"]].concat());
    println!(
        "heartbeat 15 s: lost {}; heartbeat 5 s: lost {}",
        killed.report.lost, kept.report.lost
    );
    assert!(killed.report.lost > 0, "the NAT forgot the quiet streams");
    assert_eq!(kept.report.lost, 0);
}

/// A cut longer than the retransmission timeout: the server's TCP keeps
/// resending its first unacknowledged block, doubling the wait up to 120 s,
/// and 924.6 s after that block was written (Linux's `tcp_retries2 = 15`)
/// aborts the connection: "connection timed out". Nothing tells the client;
/// its heartbeat timeout (20 s) is what makes it reconnect, after the heal,
/// resuming from its last event id.
#[test]
fn sse_a_cut_longer_than_the_retransmission_timeout_times_the_connection_out() {
    let outcome = run(
        "sse",
        &[
            "duration=20m",
            "sse.client_heartbeat_timeout=20s",
            r#"faults=[{cut="client-1", from="60s", to="1100s"}]"#,
        ],
    );
    let on_client_1 = |conn: &str| conn.starts_with("client-1:");
    // The first block the server could not get through, and when it gave up.
    let first_unacked = outcome.records.iter().find_map(|r| match &r.event {
        Event::Retransmit { conn, seq, .. } if r.host == "server" && on_client_1(conn) => {
            Some((conn.clone(), *seq))
        }
        _ => None,
    });
    let (conn, seq) = first_unacked.expect("the server retransmits during the cut");
    let written_at = outcome
        .records
        .iter()
        .find(
            |r| matches!(&r.event, Event::Send { conn: c, seq: s, .. } if *c == conn && *s == seq),
        )
        .map(|r| r.t_us)
        .unwrap();
    let timed_out_at = outcome
        .records
        .iter()
        .find(|r| {
            r.host == "server"
                && matches!(&r.event, Event::Close { conn: c, reason, .. }
                    if *c == conn && reason.contains("timed out"))
        })
        .map(|r| r.t_us)
        .expect("the server's TCP gives up");
    let r = &outcome.report;
    println!(
        "timed out {} s after the block was written; reconnects {}, lost {}",
        (timed_out_at - written_at) as f64 / 1e6,
        r.reconnects,
        r.lost
    );
    assert_eq!(timed_out_at - written_at, 924_600_000);
    assert!(r.reconnects >= 1);
    assert_eq!((r.lost, r.duplicated), (0, 0));
}

// ANCHOR: proxy_restart
/// A deploy behind a proxy: the server restarts (down from 60 s to 75 s).
/// Every stream breaks, every EventSource reconnects after 3 s, and the
/// proxy, whose server refuses connections, answers `502 Bad Gateway`:
/// a status other than 200, so every EventSource fails for good and the
/// screens freeze, as they do behind nginx. The fix is the page's: an
/// `onerror` handler that opens a new EventSource after a backoff, with the
/// last event id in its URL. Then nothing is lost.
#[test]
fn sse_behind_a_proxy_fails_for_good_on_a_502_during_a_restart() {
    let deploy = [
        "proxy.enabled=true",
        r#"faults=[{crash="server", at="60s", restart="75s"}]"#,
    ];
    let failed_for_good = |records: &[Record]| {
        records
            .iter()
            .filter(|r| {
                matches!(&r.event, Event::Error { what, .. }
                    if what.contains("failed for good") && what.contains("502"))
            })
            .count()
    };
    let frozen = run("sse", &deploy);
    println!(
        "bare EventSource: {} failed for good on a 502, lost {}",
        failed_for_good(&frozen.records),
        frozen.report.lost
    );
    assert_eq!(failed_for_good(&frozen.records), 3, "every client");
    assert!(frozen.report.lost > 0);

    let reopened = run(
        "sse",
        &[&deploy[..], &["sse.reopen_after_failure=5s"]].concat(),
    );
    println!(
        "with the page reopening: {} failures for good, lost {}",
        failed_for_good(&reopened.records),
        reopened.report.lost
    );
    assert!(failed_for_good(&reopened.records) >= 3);
    assert_eq!((reopened.report.lost, reopened.report.duplicated), (0, 0));
}
// ANCHOR_END: proxy_restart

/// A link's bandwidth: a 1 MiB event on a 10 Mbps link takes its
/// serialization time (8.4 Mbit / 10 Mbps, about 0.84 s, more with the
/// `data:` lines' overhead) before it even leaves; with the default
/// unlimited links it is one transit.
#[test]
fn sse_a_big_event_takes_its_serialization_time_on_a_slow_link() {
    let big = ["workload.payload_bytes=1048576", "workload.clients=1"];
    let fast = run("sse", &big).report;
    let slow = run(
        "sse",
        &[&big[..], &["network.bandwidth=\"10Mbps\""]].concat(),
    )
    .report;
    let (fast_p50, slow_p50) = (fast.latency_ms.p50.unwrap(), slow.latency_ms.p50.unwrap());
    println!("1 MiB events: p50 {fast_p50} ms unlimited, {slow_p50} ms on 10 Mbps");
    assert!(fast_p50 < 100.0);
    assert!((840.0..1_300.0).contains(&slow_p50), "{slow_p50}");
}

/// An event a buffering proxy still holds when the run ends is not lost: it
/// is on its way, and the report says where (the lesson file's own "add a
/// proxy" line: 16 KiB of buffer never fills in a 5-minute ticker).
#[test]
fn events_held_by_a_buffering_proxy_at_the_end_are_not_counted_lost() {
    let r = run("sse", &["proxy.enabled=true", "proxy.mode=buffer"]).report;
    println!(
        "delivered {}, held by the proxy {}, in flight {}, lost {}",
        r.delivered, r.held_by_proxy_at_end, r.in_flight_at_end, r.lost
    );
    assert_eq!(r.delivered, 0, "nothing got through the buffer");
    assert_eq!(r.held_by_proxy_at_end, r.published * 3);
    assert_eq!(r.lost, 0);
}
