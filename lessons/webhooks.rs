//! Lesson: webhooks. Checks the claims of the "Webhooks" chapter on real
//! runs of the study notes' shop (work in progress: the attacker, clock
//! skew and the async-job pattern are still to come).
//!
//!     cargo test --test lessons webhooks

use crate::run;
use pushpull::mechanisms::webhooks::retry_delay;
use pushpull::record::trace::Event;
use pushpull::scenario::{Retries, RetrySchedule};
use std::time::Duration;

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

/// The default run, as a snapshot: any change to it is a change to see.
#[test]
fn webhooks_default_report() {
    let outcome = run("webhooks", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}
