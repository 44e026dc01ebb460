//! The proxy as a piece of the sandbox: what it forwards, when it cuts, and
//! what it does when the server behind it closes idle connections.

use pushpull::record::trace::{Dir, Event};
use pushpull::run::{self, RunOptions};

fn run(lesson: &str, sets: &[&str]) -> run::RunOutcome {
    let plan = pushpull::scenario::lessons::lesson(lesson, sets);
    run::run(&plan, RunOptions::default()).unwrap()
}

/// A server that closes idle keep-alive connections sooner than clients poll
/// leaves the proxy holding dead upstream connections; the proxy retries the
/// GET once on a fresh one, so clients never see a 502 for it.
#[test]
fn proxy_retries_a_get_on_a_fresh_connection_when_the_kept_one_died() {
    let outcome = run(
        "short_polling",
        &["proxy.enabled=true", "short_polling.server_idle_timeout=3s"],
    );
    let bad_gateways = outcome
        .records
        .iter()
        .filter(|r| r.host.starts_with("client-"))
        .filter(|r| matches!(&r.event, Event::Recv { dir: Dir::Down, what, .. } if what.starts_with("502")))
        .count();
    assert_eq!(bad_gateways, 0);
    assert_eq!(outcome.report.lost, 0);
    assert_eq!(outcome.report.retries, 0);
}

/// The proxy forwards with a `Via` header and hop-by-hop headers removed; the
/// trace has both hops, so the server sees the proxy, not the client.
#[test]
fn proxy_sits_between_clients_and_server_in_the_trace() {
    let outcome = run("long_polling", &["proxy.enabled=true"]);
    let server_peers: Vec<&str> = outcome
        .records
        .iter()
        .filter(|r| r.host == "server")
        .filter_map(|r| match &r.event {
            Event::Accept { conn } => Some(conn.as_str()),
            _ => None,
        })
        .collect();
    assert!(!server_peers.is_empty());
    assert!(
        server_peers.iter().all(|c| c.starts_with("proxy:")),
        "{server_peers:?}"
    );
    assert_eq!(outcome.report.lost, 0);
}

/// Idle cuts are recorded with their reason.
#[test]
fn proxy_records_why_it_cut() {
    let outcome = run(
        "long_polling",
        &["proxy.enabled=true", "proxy.idle_timeout=20s"],
    );
    let reason = outcome
        .records
        .iter()
        .find_map(|r| match &r.event {
            Event::Proxy { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("a cut");
    assert!(reason.contains("idle_timeout = 20s"), "{reason}");
}

/// A server host that goes silent (cut off, no RST): the proxy's SYNs go
/// unanswered and are retransmitted, and after its timeout (60 s, as
/// nginx's `proxy_connect_timeout`) it answers the client `504`. A server
/// whose process is down but whose host is up refuses at once: `502`.
#[test]
fn proxy_answers_504_when_the_server_is_silent_and_502_when_it_refuses() {
    let silent = run(
        "long_polling",
        &[
            "proxy.enabled=true",
            "long_polling.client_timeout=120s",
            r#"faults=[{cut="server", from="100s"}]"#,
        ],
    );
    let proxy_syns = silent
        .records
        .iter()
        .filter(|r| r.host == "proxy" && matches!(r.event, Event::SynRetransmit { .. }))
        .count();
    let client_got = |outcome: &run::RunOutcome, status: &str| {
        outcome.records.iter().any(|r| {
            r.host.starts_with("client")
                && matches!(&r.event, Event::Recv { what, dir: Dir::Down, .. } if what.starts_with(status))
        })
    };
    assert!(
        proxy_syns > 0,
        "the proxy retransmits its SYN to the silent host"
    );
    assert!(client_got(&silent, "504"));

    let refused = run(
        "long_polling",
        &[
            "proxy.enabled=true",
            r#"faults=[{crash="server", at="100s"}]"#,
        ],
    );
    assert!(client_got(&refused, "502"));
}
