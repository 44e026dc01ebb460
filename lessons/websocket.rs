//! Lesson: WebSocket. Checks the claims of the "WebSocket" chapter on real
//! runs of the study notes' chat.
//!
//!     cargo test --test lessons websocket

use crate::run;
use pushpull::record::trace::{Event, Kind, ProxyAction, Record};
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
    // Not one message published after the reset reaches client-1.
    let after_reset: Vec<u64> = outcome
        .records
        .iter()
        .filter_map(|r| match r.event {
            Event::Publish { event, .. } if r.t_us >= 60_000_000 => Some(event),
            _ => None,
        })
        .collect();
    assert!(!after_reset.is_empty());
    let seen = shown(&outcome.records, 1);
    assert!(after_reset.iter().all(|e| !seen.contains(e)));
}
// ANCHOR_END: browser

/// The reconnect policies, as their libraries define them: socket.io's
/// 1 s doubling to 5 s with 50% jitter either way, SignalR's 0, 2, 10, 30 s
/// then giving up, RFC 6455's random 0-5 s then a doubling window, and a
/// list of our own that gives up after its last entry.
#[test]
fn the_named_reconnect_schedules() {
    use pushpull::mechanisms::websocket::reconnect_delay;
    use pushpull::scenario::{Reconnect, ReconnectSchedule, Span};
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut delays = |schedule: &Reconnect, attempts: u32| {
        (1..=attempts)
            .map(|n| reconnect_delay(schedule, n, &mut rng).map(|d| d.as_millis() as u64))
            .collect::<Vec<_>>()
    };
    let named = |n| Reconnect::Named(n);
    assert_eq!(
        delays(&named(ReconnectSchedule::Signalr), 5),
        [Some(0), Some(2000), Some(10000), Some(30000), None]
    );
    assert_eq!(delays(&named(ReconnectSchedule::Off), 1), [None]);
    for _ in 0..200 {
        let socketio = delays(&named(ReconnectSchedule::Socketio), 6);
        let bases = [1000, 2000, 4000, 8000, 16000, 32000];
        for (delay, base) in socketio.iter().zip(bases) {
            let delay = delay.expect("socket.io never gives up");
            assert!(
                delay >= (base / 2).min(5000) && delay <= (base * 3 / 2).min(5000),
                "{delay}"
            );
        }
        let rfc = delays(&named(ReconnectSchedule::Rfc6455), 9);
        for (n, delay) in rfc.iter().enumerate() {
            let window = 5000u64 << n.min(6);
            assert!(delay.expect("the RFC never gives up") <= window);
        }
    }
    let own = Reconnect::Delays(vec![Span::from_secs(1), Span::from_secs(3)]);
    assert_eq!(delays(&own, 3), [Some(1000), Some(3000), None]);
}

/// A member's device crashes at 60 s and comes back at 70 s: its page
/// reconnects and its user goes on posting. Post numbers are kept with
/// the page (as in localStorage), so the room takes the new posts as new,
/// not as resends of the old ones.
#[test]
fn a_client_that_restarts_keeps_posting_without_its_posts_taken_for_resends() {
    let r = run(
        "websocket",
        &[r#"faults=[{crash="client-1",at="60s",restart="70s"}]"#],
    )
    .report;
    assert_eq!(r.posts_doubled, 0);
    assert!(r.posted > 0);
    assert_eq!(
        r.messages_up, r.posted,
        "every post made while the device was up enters the room"
    );
}

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

/// Where each member's chat connection went, through the proxy: client
/// number to server host (from the proxy's relay records).
fn server_of_each_client(records: &[Record]) -> HashMap<u32, String> {
    // A connection is named `client-1:49152>proxy:80`: its ends' hosts.
    let host = |end: &str| end.rsplit_once(':').map_or(end, |(h, _)| h).to_string();
    let mut servers = HashMap::new();
    for r in records {
        if let Event::Relay {
            downstream,
            upstream,
        } = &r.event
            && let (Some((client, _)), Some((_, server))) =
                (downstream.split_once('>'), upstream.split_once('>'))
            && let Some(n) = host(client).strip_prefix("client-")
        {
            servers.insert(n.parse().unwrap(), host(server));
        }
    }
    servers
}

// ANCHOR: idle_proxy
/// A proxy closes a WebSocket on which the server has said nothing for its
/// idle timeout (nginx's `proxy_read_timeout`, 60 s; a cloud load
/// balancer's idle timeout, 60 s). A quiet room (one message every 90 s,
/// nobody posting) shows it: without heartbeats every member is cut off
/// again and again; pings every 25 s keep every connection open; pings
/// every 75 s come too late.
#[test]
fn the_proxys_idle_timeout_closes_a_quiet_websocket_unless_pings_come_sooner() {
    let closed_idle = |heartbeat: &str| {
        let heartbeat = format!("websocket.heartbeat={heartbeat}");
        let outcome = run(
            "websocket",
            &[
                "proxy.enabled=true",
                "workload.sends=0",
                r#"workload.events={every="90s",start="15s"}"#,
                "websocket.heartbeat_timeout=200s",
                &heartbeat,
            ],
        );
        let closes = outcome
            .records
            .iter()
            .filter(|r| {
                matches!(
                    r.event,
                    Event::Proxy {
                        action: ProxyAction::CloseIdle,
                        ..
                    }
                )
            })
            .count();
        (closes, outcome.report)
    };
    let (closes, report) = closed_idle("0");
    assert!(closes >= 3, "every member cut at least once: {closes}");
    // The resilient client reconnects and resumes: the damage is churn.
    assert!(report.reconnects >= 3);
    assert_eq!((report.lost, report.duplicated), (0, 0));
    let (closes, report) = closed_idle("25s");
    assert_eq!(closes, 0, "pings every 25 s keep the proxy from closing");
    assert_eq!(report.connections_opened, 3);
    let (closes, _) = closed_idle("75s");
    assert!(
        closes >= 3,
        "pings every 75 s come after the 60 s: {closes}"
    );
}
// ANCHOR_END: idle_proxy

// ANCHOR: refuse_upgrade
/// A proxy that treats `Upgrade` as the hop-by-hop header it is and drops
/// it (an nginx without `proxy_set_header Upgrade`): the server sees a
/// plain GET and answers 400, so no handshake gets through. The browser's
/// `WebSocket` just fails; the resilient client falls back to long polling
/// as Socket.IO and SignalR do, and the room reaches every member anyway,
/// at HTTP's price in bytes and latency.
#[test]
fn a_proxy_that_drops_upgrade_sends_the_resilient_client_to_long_polling() {
    let refusing = ["proxy.enabled=true", "proxy.mode=refuse_upgrade"];
    let outcome = run("websocket", &refusing);
    let r = &outcome.report;
    assert_eq!(
        r.transports.get("long_polling"),
        Some(&3),
        "{:?}",
        r.transports
    );
    assert_eq!(r.transports.get("websocket"), None);
    assert_eq!((r.lost, r.duplicated), (0, 0));
    assert_eq!((r.messages_up, r.posts_doubled), (r.posted, 0));
    let dropped = outcome.records.iter().any(|r| {
        matches!(
            r.event,
            Event::Proxy {
                action: ProxyAction::DropUpgrade,
                ..
            }
        )
    });
    assert!(dropped);
    // The same room through a proxy that passes the upgrade, for the price.
    let passing = run("websocket", &["proxy.enabled=true"]);
    let p = &passing.report;
    assert_eq!(p.transports.get("websocket"), Some(&3));
    assert!(r.bytes_up + r.bytes_down > 2 * (p.bytes_up + p.bytes_down));
    // The browser's WebSocket has nothing to fall back to.
    let mut browser = refusing.to_vec();
    browser.push("websocket.client=browser");
    let b = run("websocket", &browser).report;
    assert_eq!((b.delivered, b.messages_up), (0, 0));
    assert_eq!(b.transports.get("websocket"), Some(&3));
}
// ANCHOR_END: refuse_upgrade

// ANCHOR: scale_out
/// "Hard to scale horizontally": two servers behind the proxy (round
/// robin). Without a broker each server sends its members only what it
/// heard itself, so members on different servers never see each other's
/// posts. With a broker between the servers (as Redis is used) everyone
/// sees everything, one hop later: the scenario's messages, which reach a
/// member in one transit from one server, take two through the broker.
#[test]
fn two_servers_split_the_room_until_a_broker_joins_them() {
    let split = run("websocket", &["servers=2", "proxy.enabled=true"]);
    let server_of = server_of_each_client(&split.records);
    let mut used: Vec<&String> = server_of.values().collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 2, "members on both servers: {server_of:?}");
    assert!(split.report.lost > 0);
    // Every post published after all members joined (5 s) reached only the
    // members on its author's server.
    let mut author = HashMap::new();
    for r in &split.records {
        if let Event::Publish {
            event,
            from: Some(from),
            ..
        } = r.event
            && r.t_us > 5_000_000
        {
            author.insert(event, from);
        }
    }
    let mut crossed = 0;
    for r in &split.records {
        if let Event::Deliver { client, event, .. } = r.event
            && let Some(from) = author.get(&event)
            && server_of[from] != server_of[&client]
        {
            crossed += 1;
        }
    }
    assert!(!author.is_empty());
    assert_eq!(
        crossed, 0,
        "no post crossed from one server's members to the other's"
    );

    let joined = run(
        "websocket",
        &["servers=2", "proxy.enabled=true", "broker=true"],
    );
    let r = &joined.report;
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    // One hop later: the server's own messages, one transit without a
    // broker (to the members of the server that published them), two with.
    let (alone, _) = delays_by_origin(&split.records);
    let (brokered, _) = delays_by_origin(&joined.records);
    let extra = crate::mean(&brokered) - crate::mean(&alone);
    assert!(
        (35.0..=65.0).contains(&extra),
        "the broker adds one transit (40-50 ms): {extra:.1} ms"
    );
}
// ANCHOR_END: scale_out

// ANCHOR: crash_any
/// Any host can crash: one of the two servers, and the broker. The members
/// of the crashed server reconnect through the proxy to the other one and
/// resume; the servers subscribe to the restarted broker again from the
/// last message they heard. Nothing lost, nothing doubled.
#[test]
fn a_server_or_the_broker_crashing_loses_nothing() {
    let outcome = run(
        "websocket",
        &[
            "servers=2",
            "proxy.enabled=true",
            "broker=true",
            r#"faults=[{crash="server-2",at="60s",restart="70s"},{crash="broker",at="100s",restart="110s"}]"#,
        ],
    );
    let r = &outcome.report;
    assert!(r.reconnects >= 1, "server-2's members reconnected");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0));
    assert_eq!((r.messages_up, r.posts_doubled), (r.posted, 0));
}
// ANCHOR_END: crash_any

// ANCHOR: slow_reader
/// Backpressure. Client-1's application takes 100 ms over each message
/// while the room gets 50 messages a second of 512 bytes. TCP lets the
/// server send no more than client-1 reads (the socket buffers fill), so
/// the room's messages queue at the server for client-1; past
/// `websocket.max_queued` (1000) the server drops it with close code 1008
/// rather than let one slow member grow its memory without bound. The two
/// other members see every message within one transit all along.
#[test]
fn a_slow_reader_is_dropped_with_1008_and_the_others_do_not_notice() {
    let outcome = run(
        "websocket",
        &[
            "duration=90s",
            "workload.sends=0",
            r#"workload.events={rate=50,start="5s"}"#,
            "workload.payload_bytes=512",
            "websocket.slow_readers=1",
            "websocket.slow_read_pause=100ms",
        ],
    );
    let dropped = outcome.records.iter().any(
        |r| matches!(&r.event, Event::Error { client: 1, what } if what.contains("(1008 too slow")),
    );
    assert!(dropped, "client-1 was closed with 1008");
    let published = outcome.report.published as usize;
    for client in [2, 3] {
        assert_eq!(shown(&outcome.records, client).len(), published);
    }
    let worst_other = outcome
        .records
        .iter()
        .filter_map(|r| match r.event {
            Event::Deliver {
                client, latency_us, ..
            } if client != 1 => Some(latency_us),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(
        worst_other <= 50_000,
        "one transit at most: {worst_other} us"
    );
    assert!(shown(&outcome.records, 1).len() < published / 2);
}
// ANCHOR_END: slow_reader

/// The default run, as a snapshot: any change to it is a change to see.
#[test]
fn websocket_default_report() {
    let outcome = run("websocket", &[]);
    insta::assert_snapshot!(outcome.report.to_table());
}

// ANCHOR: chat_everywhere
/// The same chat on every mechanism (`pushpull compare websocket`): the
/// HTTP ones send each post as a `POST /messages` on a second connection
/// (`src/mechanisms/chat.rs`) and bring it down as any event. Every post
/// gets into the room once and reaches every member, on all four. What
/// differs is the cost and the wait: a post costs a request and a response
/// head where WebSocket pays a frame; it goes up as fast (one transit, once
/// its connection is open), but short polling brings it down only at the
/// next poll.
#[test]
fn the_same_chat_runs_on_every_mechanism_at_different_costs() {
    let plan = pushpull::scenario::lessons::lesson("websocket", &[]);
    let reports = pushpull::run::compare(&plan).unwrap_or_else(|e| panic!("{e}"));
    let of = |mechanism: &str| {
        reports
            .iter()
            .find(|r| r.mechanism == mechanism)
            .unwrap_or_else(|| panic!("no {mechanism} run"))
    };
    for r in &reports {
        let m = &r.mechanism;
        assert!(r.posted > 0, "{m}: nobody posted");
        assert_eq!((r.messages_up, r.posts_doubled), (r.posted, 0), "{m}");
        assert_eq!((r.lost, r.duplicated), (0, 0), "{m}");
        // Up, one transit (40 ms + up to 10 ms of jitter) for most posts.
        let up = r.latency_up_ms.p50.unwrap();
        assert!(
            (40.0..=50.0).contains(&up),
            "{m}: a post went up in {up} ms"
        );
    }
    // Bytes up per post in the room (polls, pings and handshakes included).
    let up_per_post = |m: &str| of(m).bytes_up as f64 / of(m).messages_up as f64;
    for http in ["short_polling", "long_polling", "sse"] {
        assert!(
            up_per_post("websocket") < up_per_post(http),
            "websocket {} B a post, {http} {} B",
            up_per_post("websocket"),
            up_per_post(http)
        );
    }
    // Down: a post is up and down again in two transits over WebSocket, but
    // waits for the next poll (every 5 s) under short polling.
    let websocket = of("websocket").latency_ms.p50.unwrap();
    let short_polling = of("short_polling").latency_ms.p50.unwrap();
    assert!(websocket < 2.0 * 50.0, "websocket: {websocket} ms");
    assert!(
        short_polling > 10.0 * websocket,
        "short polling {short_polling} ms, websocket {websocket} ms"
    );
}
// ANCHOR_END: chat_everywhere

// ANCHOR: post_once
/// A post's number is an idempotency key. Client-1's first post reaches the
/// server, then the network cuts client-1 off before the `204` gets back.
/// Its poster gives up on the request, and sends the post again once the
/// network is back; the server has it already, answers `204` all the same,
/// and the room holds it once.
#[test]
fn a_post_sent_again_after_its_answer_was_lost_enters_the_room_once() {
    for mechanism in ["short_polling", "long_polling", "sse"] {
        let set = format!("mechanism={mechanism}");
        let outcome = run(
            "websocket",
            &[&set, r#"faults=[{cut="client-1",from="9.43s",to="25s"}]"#],
        );
        let r = &outcome.report;
        assert_eq!(
            (r.messages_up, r.posts_doubled),
            (r.posted, 0),
            "{mechanism}"
        );
        assert_eq!(r.lost, 0, "{mechanism}");
        // The server read more posts from client-1 than its user made.
        let made = outcome
            .records
            .iter()
            .filter(|rec| matches!(rec.event, Event::Post { client: 1, .. }))
            .count();
        let read = outcome
            .records
            .iter()
            .filter(|rec| rec.host == "server")
            .filter(|rec| match &rec.event {
                Event::Recv {
                    kind: Kind::Request,
                    what,
                    ..
                } => what == "POST /messages?user=client-1",
                _ => false,
            })
            .count();
        assert!(read > made, "{mechanism}: {read} posts read, {made} made");
    }
}
// ANCHOR_END: post_once
