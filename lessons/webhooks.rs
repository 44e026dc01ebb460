//! Lesson: webhooks. Checks the claims of the "Webhooks" chapter on real
//! runs of the study notes' shop: retries through outages, doubles and
//! dedupe, dead letters and replay, the attacker, clock skew, order, and a
//! burst (the async-job pattern has its own lesson, `jobs.rs`).
//!
//!     cargo test --test lessons webhooks

use crate::run;
use pushpull::mechanisms::webhooks::retry_delay;
use pushpull::record::trace::Event;
use pushpull::scenario::{Retries, RetrySchedule};
use std::time::Duration;

// ANCHOR: one_post
/// "The provider calls the receiver": in a fault-free run each event is
/// one signed POST per receiver, applied once, a few round trips after it
/// happened; nobody polls, nobody holds a connection.
#[test]
fn each_event_is_one_signed_post_per_receiver() {
    let outcome = run("webhooks", &[]);
    let r = &outcome.report;
    assert!(r.published > 0);
    assert_eq!(r.delivered, r.published * 3);
    assert_eq!((r.lost, r.duplicated, r.rejected, r.retries), (0, 0, 0, 0));
    // One POST per (event, receiver), plus each receiver's registration.
    assert_eq!(r.requests, r.published * 3 + 3);
    // Connect, send, 100 ms of work: well under a second.
    assert!(r.latency_ms.max.unwrap() < 400.0, "{:?}", r.latency_ms);
    assert_eq!(
        r.peak_connections, 1,
        "only registrations reach the provider"
    );
}
// ANCHOR_END: one_post

// ANCHOR: receiver_down
/// The receiver is down for 140 s. Every attempt in that time fails; the
/// provider keeps each message and tries again on its schedule (5 s, then
/// 5 min after the first failure), so nothing is lost: the late ones
/// arrive about five minutes late.
#[test]
fn nothing_is_lost_while_the_receiver_is_down() {
    let outcome = run(
        "webhooks",
        &[
            "duration=10m",
            r#"faults=[{crash="receiver-1",at="60s",restart="200s"}]"#,
        ],
    );
    let r = &outcome.report;
    assert_eq!((r.lost, r.duplicated), (0, 0));
    assert!(r.retries > 0);
    let late: Vec<u64> = outcome
        .records
        .iter()
        .filter_map(|rec| match rec.event {
            Event::Deliver {
                client: 1,
                latency_us,
                ..
            } if latency_us > 60_000_000 => Some(latency_us),
            _ => None,
        })
        .collect();
    assert!(!late.is_empty());
    // 5 s + 5 min after the first failure, within the 10% jitter.
    for us in late {
        let s = us as f64 / 1e6;
        assert!((150.0..=345.0).contains(&s), "{s} s late");
    }
}
// ANCHOR_END: receiver_down

// ANCHOR: two_hours_down
/// Two hours down: receiver-1 crashes at 30 min and is back at 2 h 30 min,
/// in an 8-hour run with an order event every 10 minutes (the hours with
/// nothing on the wire are skipped, so it takes a fraction of a second).
/// Each message waits for its next scheduled attempt after the recovery:
/// 30 min, 2 h or 5 h after its first failure, so the late ones arrive
/// between half an hour and three hours late, and not in the order they
/// happened.
#[test]
fn two_hours_down_and_nothing_lost() {
    let outcome = run(
        "webhooks",
        &[
            "duration=8h",
            r#"workload.events={every="10m",start="15s"}"#,
            r#"faults=[{crash="receiver-1",at="30m",restart="150m"}]"#,
        ],
    );
    let r = &outcome.report;
    assert_eq!((r.lost, r.duplicated, r.dead_lettered), (0, 0, 0));
    let late: Vec<f64> = outcome
        .records
        .iter()
        .filter_map(|rec| match rec.event {
            Event::Deliver {
                client: 1,
                latency_us,
                ..
            } if latency_us > 60_000_000 => Some(latency_us as f64 / 60e6),
            _ => None,
        })
        .collect();
    assert!(late.len() >= 10, "the events of two hours: {late:?}");
    assert!(late.iter().all(|m| (25.0..=200.0).contains(m)), "{late:?}");
    assert!(r.out_of_order > 0, "retries do not keep the order");
}
// ANCHOR_END: two_hours_down

// ANCHOR: at_least_once
/// At least once, so sometimes twice: work that outlasts the provider's
/// 15 s attempt timeout looks like a failure, and the message comes again
/// while the first is still being applied. Without deduplication the
/// receiver applies it twice; with it (on `webhook-id`), once.
#[test]
fn slow_work_doubles_events_unless_the_receiver_dedupes() {
    let doubled = run("webhooks", &["receiver.work=20s", "receiver.dedupe=false"]).report;
    assert!(doubled.duplicated > 0);
    assert!(doubled.retries > 0);
    let once = run("webhooks", &["receiver.work=20s"]).report;
    assert_eq!((once.duplicated, once.lost), (0, 0));
    // Answering before the work removes the cause.
    let early = run(
        "webhooks",
        &[
            "receiver.work=20s",
            "receiver.dedupe=false",
            "receiver.ack=before_processing",
        ],
    )
    .report;
    assert_eq!((early.duplicated, early.retries), (0, 0));
}
// ANCHOR_END: at_least_once

// ANCHOR: dead_letters
/// After the last attempt of its schedule, a message goes to the dead
/// letters: with two retries a second apart and a receiver that never
/// comes back, every event after the crash ends there.
#[test]
fn the_schedule_runs_out_into_dead_letters() {
    let r = run(
        "webhooks",
        &[
            r#"webhooks.schedule=["1s","1s"]"#,
            r#"faults=[{crash="receiver-2",at="60s"}]"#,
        ],
    )
    .report;
    assert!(r.dead_lettered > 0);
    assert_eq!(r.lost, r.dead_lettered, "what is lost is what died");
}
// ANCHOR_END: dead_letters

// ANCHOR: replay
/// Manual redelivery: the messages that died while receiver-2 was down
/// are sent again when the operator replays the dead-letter list.
#[test]
fn replaying_the_dead_letters_delivers_them() {
    let crash = r#"faults=[{crash="receiver-2",at="60s",restart="150s"}]"#;
    let short = r#"webhooks.schedule=["1s"]"#;
    let dead = run("webhooks", &[short, crash]).report;
    assert!(dead.dead_lettered > 0);
    assert_eq!(dead.lost, dead.dead_lettered);
    let replayed = run(
        "webhooks",
        &[short, crash, "webhooks.replay_dead_letters_at=200s"],
    )
    .report;
    assert_eq!(replayed.dead_lettered, dead.dead_lettered);
    assert_eq!((replayed.lost, replayed.duplicated), (0, 0));
}
// ANCHOR_END: replay

// ANCHOR: attacker
/// An attacker who overheard one genuine delivery to receiver-1 sends a
/// forged one (its own key), the genuine headers on a changed body, and
/// the genuine request again a minute later and past the tolerance. The
/// two without a valid signature and the stale one are refused (400); the
/// fresh replay passes the signature and the clock, and the dedupe store
/// stops it. Nothing takes effect.
#[test]
fn forged_tampered_and_replayed_deliveries_take_no_effect() {
    let outcome = run("webhooks", &["attacker=true", "duration=10m"]);
    let r = &outcome.report;
    assert_eq!(r.rejected, 3);
    assert_eq!((r.delivered, r.duplicated, r.lost), (r.published * 3, 0, 0));
    let why: Vec<&str> = outcome
        .records
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::Refused { why, .. } => Some(why.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(why[..2], ["no matching signature", "no matching signature"]);
    assert!(why[2].starts_with("timestamp too old"), "{why:?}");
    // The fourth, the genuine delivery replayed inside the tolerance, did
    // reach receiver-1: its signature and timestamp pass, and the dedupe
    // store answers it as the duplicate it is (200, no effect).
    let answers: Vec<&str> = outcome
        .records
        .iter()
        .filter(|rec| rec.host == "attacker")
        .filter_map(|rec| match &rec.event {
            Event::Recv { kind, what, .. } if *kind == pushpull::record::trace::Kind::Response => {
                Some(what.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.starts_with("400")).count(), 3);
    assert!(answers.iter().any(|a| a.starts_with("200")), "{answers:?}");
    // No event beyond the published ones was ever applied.
    assert!(outcome.records.iter().all(|rec| !matches!(
        rec.event,
        Event::Deliver { event, .. } if event > r.published
    )));
}
// ANCHOR_END: attacker

// ANCHOR: clock_skew
/// Why the tolerance exists, and what a wrong clock costs: a receiver
/// whose clock is 4 minutes ahead still accepts (within 5); 6 minutes
/// ahead or behind, it refuses every genuine delivery.
#[test]
fn a_clock_skewed_past_the_tolerance_refuses_genuine_deliveries() {
    let near = run("webhooks", &["receiver.clock_skew=4m"]).report;
    assert_eq!((near.rejected, near.lost), (0, 0));
    for skew in ["6m", "-6m"] {
        let skew = format!("receiver.clock_skew={skew}");
        let far = run("webhooks", &[&skew]).report;
        assert_eq!(far.delivered, 0, "{skew}");
        assert!(far.rejected >= far.published * 3, "{skew}");
    }
}
// ANCHOR_END: clock_skew

// ANCHOR: burst
/// A burst of 1,000 events against a receiver that works on 20 at a time
/// (1 s each) and sheds the rest with `503` and `Retry-After: 10`. The
/// provider, sending 100 at a time, gets most of them refused at first;
/// retries on the schedule spread them out over half an hour, and the
/// receiver gets through all of them.
#[test]
fn a_burst_against_a_busy_receiver_spreads_out_on_retries() {
    let r = run(
        "webhooks",
        &[
            "workload.clients=1",
            r#"workload.events={rate=1000,start="15s",count=1000}"#,
            "receiver.max_concurrent=20",
            "receiver.work=1s",
            "webhooks.concurrency=100",
            "duration=1h",
        ],
    )
    .report;
    assert_eq!(r.published, 1000);
    assert_eq!((r.lost, r.duplicated), (0, 0));
    assert!(
        r.retries > 1000,
        "most were refused at first: {}",
        r.retries
    );
    // The last ones waited for the 30-minute retry.
    assert!(
        r.latency_ms.max.unwrap() > 30.0 * 60_000.0,
        "{:?}",
        r.latency_ms
    );
    assert!(r.latency_ms.p50.unwrap() < r.latency_ms.max.unwrap() / 2.0);
}
// ANCHOR_END: burst

// ANCHOR: ordering
/// "Nothing promises their order": order 1 is created, updated and paid
/// half a second apart, while receiver-1 is cut off for the first 300 ms.
/// The creation's connection waits for TCP's SYN retransmission, so the
/// update arrives first. Applied as it arrives, that is an update to an
/// order that does not exist yet; a receiver that checks the order's
/// version answers the early one 409, and the retry brings it back in
/// order.
#[test]
fn an_update_can_overtake_its_creation_and_a_version_check_puts_it_back() {
    let burst = [
        "network.jitter=0ms",
        r#"workload.events={at=["15s","15.5s","16s"]}"#,
        r#"faults=[{cut="receiver-1",from="14.9s",to="15.2s",reset=true}]"#,
    ];
    let mut sets = burst.to_vec();
    sets.push("receiver.ordering=as_arrived");
    let arrived = run("webhooks", &sets).report;
    assert!(arrived.out_of_order > 0);
    sets.push("receiver.ordering=version_check");
    let checked = run("webhooks", &sets).report;
    assert_eq!((checked.out_of_order, checked.lost), (0, 0));
    assert!(checked.retries > 0, "the early update came back on a retry");
}
// ANCHOR_END: ordering

// ANCHOR: schedules
/// The named schedules, as their providers publish them.
#[test]
fn the_named_schedules() {
    let delays = |schedule| {
        (1..=20)
            .map_while(|n| retry_delay(&Retries::Named(schedule), n))
            .map(|d| d.as_secs())
            .collect::<Vec<_>>()
    };
    let (m, h) = (60, 3600);
    assert_eq!(
        delays(RetrySchedule::Standard),
        [
            5,
            5 * m,
            30 * m,
            2 * h,
            5 * h,
            10 * h,
            14 * h,
            20 * h,
            24 * h
        ]
    );
    assert_eq!(
        delays(RetrySchedule::Svix),
        [5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
    );
    assert!(delays(RetrySchedule::Github).is_empty());
    let stripe = delays(RetrySchedule::Stripe);
    assert_eq!(stripe[..3], [m, 2 * m, 4 * m]);
    assert!(stripe.iter().sum::<u64>() <= 72 * h);
    assert!(stripe.iter().sum::<u64>() > 60 * h, "close to three days");
    let custom = Retries::Delays(vec![pushpull::scenario::Span::from_secs(1)]);
    assert_eq!(retry_delay(&custom, 1), Some(Duration::from_secs(1)));
    assert_eq!(retry_delay(&custom, 2), None);
}
// ANCHOR_END: schedules

/// The default run, as a snapshot: any change to it is a change to see.
#[test]
fn webhooks_default_report() {
    let outcome = run("webhooks", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}
