//! Lesson: the async-job pattern. Polling a status endpoint against a
//! callback, on the same jobs.
//!
//!     cargo test --test lessons jobs

use crate::run;

// ANCHOR: poll_vs_callback
/// The same nine jobs, 5 s of work each. Polling every 2 s, the front ends
/// learn each outcome up to an interval after it exists, and pay a request
/// every interval, nearly all of them answered "nothing yet". With a
/// callback they learn it one transit after the worker reports it, for one
/// request per outcome.
#[test]
fn a_callback_learns_sooner_for_far_fewer_requests_than_polling() {
    let polled = run("jobs", &["jobs.notify=poll"]).report;
    let called = run("jobs", &["jobs.notify=callback"]).report;
    for r in [&polled, &called] {
        assert_eq!((r.lost, r.duplicated), (0, 0));
        assert_eq!(r.delivered, r.published * 3);
        // Never before the work is done.
        assert!(r.latency_ms.p50.unwrap() >= 5000.0);
    }
    // One callback per outcome, plus the three registrations.
    assert_eq!(called.requests, called.delivered + 3);
    assert!(polled.requests > 10 * called.requests);
    assert!(
        polled.empty_responses * 10 > polled.requests * 8,
        "mostly 'nothing yet'"
    );
    // Work + about a transit, against work + up to a 2 s interval.
    assert!(called.latency_ms.max.unwrap() < 5600.0);
    assert!(polled.latency_ms.p50.unwrap() > called.latency_ms.p50.unwrap() + 300.0);
}
// ANCHOR_END: poll_vs_callback

// ANCHOR: worker_crash
/// The worker crashes at 62 s and is back at 70 s. Its request for the next
/// job died with it, but the queue does not know: the job submitted at
/// 70 s is leased to the dead request, and comes back only when the lease
/// runs out (the visibility timeout, 30 s). Nothing is lost either way;
/// the callback still costs nothing while the front ends wait, polling
/// pays for every second of it.
#[test]
fn a_worker_crash_delays_a_job_by_the_visibility_timeout_and_loses_nothing() {
    let crash = r#"faults=[{crash="worker",at="62s",restart="70s"}]"#;
    for notify in ["jobs.notify=poll", "jobs.notify=callback"] {
        let r = run("jobs", &[notify, crash]).report;
        assert_eq!((r.lost, r.duplicated), (0, 0), "{notify}");
        let max = r.latency_ms.max.unwrap();
        assert!(
            (30_000.0..=40_000.0).contains(&max),
            "{notify}: the lease's 30 s plus the work: {max} ms"
        );
    }
}
// ANCHOR_END: worker_crash

/// The default run, as a snapshot: any change to it is a change to see.
#[test]
fn jobs_default_report() {
    let outcome = run("jobs", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}
