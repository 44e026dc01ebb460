//! The space-time diagram: what it draws from a trace, checked on the SVG text.
//!
//! Run: cargo test --test diagram

use proptest::prelude::*;
use pushpull::record::diagram::{DiagramOptions, render};
use pushpull::record::trace::{CutKind, Dir, Ending, Event, Kind, ProxyAction, Record, Role};
use pushpull::scenario::Span;

fn rec(t_ms: u64, host: &str, event: Event) -> Record {
    Record {
        t_us: t_ms * 1000,
        host: host.to_string(),
        event,
    }
}

/// Requests go up, answers come down (in these hand-made traces).
fn kind_of(dir: Dir) -> Kind {
    match dir {
        Dir::Up => Kind::Request,
        Dir::Down => Kind::Response,
    }
}

fn send(t_ms: u64, host: &str, conn: &str, dir: Dir, seq: u32, what: &str) -> Record {
    rec(
        t_ms,
        host,
        Event::Send {
            conn: conn.into(),
            dir,
            seq,
            kind: kind_of(dir),
            what: what.into(),
            bytes: 73,
            events: None,
            first_event: None,
            reply_to: None,
            retry: false,
            resent: false,
        },
    )
}

fn answer(t_ms: u64, conn: &str, seq: u32, events: u32) -> Record {
    rec(
        t_ms,
        "server",
        Event::Send {
            conn: conn.into(),
            dir: Dir::Down,
            seq,
            kind: Kind::Response,
            what: "200 OK".into(),
            bytes: 97,
            events: Some(events),
            first_event: (events > 0).then_some(1),
            reply_to: Some(seq),
            retry: false,
            resent: false,
        },
    )
}

fn recv(t_ms: u64, host: &str, conn: &str, dir: Dir, seq: u32, what: &str) -> Record {
    rec(
        t_ms,
        host,
        Event::Recv {
            conn: conn.into(),
            dir,
            seq,
            kind: kind_of(dir),
            what: what.into(),
            bytes: 73,
        },
    )
}

const C1: &str = "client-1:49152>server:80";

fn whole_run() -> DiagramOptions {
    DiagramOptions {
        window: None,
        title: "test".into(),
    }
}

fn window(from_ms: u64, to_ms: u64) -> DiagramOptions {
    DiagramOptions {
        window: Some((Span::from_millis(from_ms), Span::from_millis(to_ms))),
        title: "test".into(),
    }
}

/// Checks that `svg` is one well-formed XML element tree: every tag closed
/// in order, attribute values quoted, no stray `<` or `&` in text.
fn assert_well_formed(svg: &str) {
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>\n"));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find(['<', '&']) {
        let text = &rest[..open];
        assert!(!text.contains('>'), "stray '>' in text: {text:?}");
        rest = &rest[open..];
        if rest.starts_with('&') {
            let end = rest.find(';').expect("entity ends with ';'");
            let entity = &rest[..=end];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "unknown entity {entity}"
            );
            rest = &rest[end + 1..];
            continue;
        }
        let close = rest.find('>').expect("tag ends with '>'");
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
        // Quotes in a tag come in pairs (values are double-quoted).
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes: {tag:?}"
        );
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(top, name, "</{name}> closes <{top}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

/// The value of attribute `name` in the first tag of `tag_text`.
fn attr(tag_text: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let start = tag_text
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag_text}"))
        + key.len();
    let end = start + tag_text[start..].find('"').unwrap();
    tag_text[start..end].parse().unwrap()
}

/// The drawn message arrows of a kind (`req`, `empty`, `data`, `lost`, ...):
/// their (x1, y1, x2, y2).
fn arrows(svg: &str, kind: &str) -> Vec<(f64, f64, f64, f64)> {
    let marker = format!("class=\"msg {kind}\"");
    svg.match_indices(&marker)
        .map(|(i, _)| {
            let tag = &svg[i..i + svg[i..].find('>').unwrap()];
            (
                attr(tag, "x1"),
                attr(tag, "y1"),
                attr(tag, "x2"),
                attr(tag, "y2"),
            )
        })
        .collect()
}

#[test]
fn empty_trace_is_a_valid_picture() {
    for options in [whole_run(), window(1000, 2000), DiagramOptions::default()] {
        let svg = render(&[], &options);
        assert_well_formed(&svg);
        assert!(svg.contains("width=\""));
        assert!(svg.contains("height=\""));
        assert!(svg.contains("viewBox=\"0 0 "));
        assert!(arrows(&svg, "req").is_empty());
    }
}

#[test]
fn a_message_is_one_arrow_whose_ends_are_its_times() {
    // Two requests: 40 ms in flight at 1 s, 80 ms in flight at 2 s. On a
    // linear scale the second arrow drops twice as far, and starts 25 first
    // flights lower.
    let records = vec![
        send(1000, "client-1", C1, Dir::Up, 1, "GET /a"),
        recv(1040, "server", C1, Dir::Up, 1, "GET /a"),
        send(2000, "client-1", C1, Dir::Up, 2, "GET /b"),
        recv(2080, "server", C1, Dir::Up, 2, "GET /b"),
    ];
    let svg = render(&records, &whole_run());
    assert_well_formed(&svg);
    let a = arrows(&svg, "req");
    assert_eq!(a.len(), 2, "{svg}");
    let (first, second) = (a[0], a[1]);
    // From client-1 (left) to the server (right).
    assert!(first.0 < first.2);
    let drop1 = first.3 - first.1;
    let drop2 = second.3 - second.1;
    assert!(drop1 > 0.0);
    assert!((drop2 / drop1 - 2.0).abs() < 0.1, "{drop1} {drop2}");
    assert!(((second.1 - first.1) / drop1 - 25.0).abs() < 1.0);
    assert!(svg.contains("GET /a"));
    assert!(svg.contains("sent at 1000 ms, received at 1040 ms (40 ms in flight)"));
}

#[test]
fn responses_are_told_apart_by_what_they_carry() {
    let records = vec![
        send(1000, "client-1", C1, Dir::Up, 1, "GET /updates?after=0"),
        recv(1040, "server", C1, Dir::Up, 1, "GET /updates?after=0"),
        answer(1040, C1, 1, 0),
        recv(1080, "client-1", C1, Dir::Down, 1, "200 OK"),
        send(2000, "client-1", C1, Dir::Up, 2, "GET /updates?after=0"),
        recv(2040, "server", C1, Dir::Up, 2, "GET /updates?after=0"),
        answer(2040, C1, 2, 2),
        recv(2080, "client-1", C1, Dir::Down, 2, "200 OK"),
    ];
    let svg = render(&records, &whole_run());
    assert_eq!(arrows(&svg, "req").len(), 2);
    let empty = arrows(&svg, "empty");
    let data = arrows(&svg, "data");
    assert_eq!((empty.len(), data.len()), (1, 1));
    // Answers go right to left.
    assert!(empty[0].0 > empty[0].2);
    assert!(svg.contains("200 OK (empty)"));
    assert!(svg.contains("200 OK (2 events)"));
}

/// A transmission that did not get through is a stub that stops short, and
/// the message's arrow leaves at the retransmission that got through; a
/// message never received long before the end of the trace stops short too.
#[test]
fn retransmitted_and_unanswered_messages_stop_short() {
    let records = vec![
        send(1000, "client-1", C1, Dir::Up, 1, "GET /late"),
        rec(
            1240,
            "client-1",
            Event::Retransmit {
                conn: C1.into(),
                dir: Dir::Up,
                seq: 1,
                attempt: 1,
            },
        ),
        recv(1280, "server", C1, Dir::Up, 1, "GET /late"),
        // Sent, never received, long before the trace ends: cut off.
        send(
            2000,
            "client-1",
            "client-1:49153>server:80",
            Dir::Up,
            1,
            "GET /void",
        ),
        rec(
            9000,
            "server",
            Event::Publish {
                event: 1,
                from: None,
                message: None,
            },
        ),
    ];
    let svg = render(&records, &whole_run());
    assert_well_formed(&svg);
    let stubs = arrows(&svg, "lost");
    assert_eq!(stubs.len(), 2, "{svg}");
    let delivered = arrows(&svg, "req");
    assert_eq!(delivered.len(), 1);
    // Stubs head for the server but end well before it.
    for l in &stubs {
        assert!(
            l.2 > l.0 && l.2 < delivered[0].2 - 20.0,
            "{l:?} vs {:?}",
            delivered[0]
        );
    }
    // The delivered arrow leaves at the retransmission, 240 ms after the
    // first (stub) transmission.
    let px_per_ms = (delivered[0].3 - delivered[0].1) / 40.0;
    let first = stubs.iter().map(|l| l.1).fold(f64::MAX, f64::min);
    assert!(((delivered[0].1 - first) / px_per_ms - 240.0).abs() < 2.0);
    assert!(svg.contains("did not get through: TCP sent it again later"));
    assert!(svg.contains("never received"));
}

#[test]
fn a_message_sent_just_before_the_end_is_in_flight_not_lost() {
    let records = vec![
        send(1000, "client-1", C1, Dir::Up, 1, "GET /a"),
        recv(1040, "server", C1, Dir::Up, 1, "GET /a"),
        send(5000, "client-1", C1, Dir::Up, 2, "GET /b"),
    ];
    let svg = render(&records, &whole_run());
    assert_eq!(arrows(&svg, "in-flight").len(), 1);
    assert!(arrows(&svg, "lost").is_empty());
}

#[test]
fn a_window_shows_only_its_stretch_of_time() {
    let poll = |t: u64, seq: u32, what: &str| {
        vec![
            send(t, "client-1", C1, Dir::Up, seq, what),
            recv(t + 40, "server", C1, Dir::Up, seq, what),
            answer(t + 40, C1, seq, 0),
            recv(t + 80, "client-1", C1, Dir::Down, seq, "200 OK"),
        ]
    };
    let mut records = poll(1000, 1, "GET /early");
    records.extend(poll(10_000, 2, "GET /inside"));
    records.push(rec(
        10_500,
        "server",
        Event::Publish {
            event: 7,
            from: None,
            message: None,
        },
    ));
    records.extend(poll(20_000, 3, "GET /late"));
    records.push(rec(
        25_000,
        "server",
        Event::Publish {
            event: 8,
            from: None,
            message: None,
        },
    ));
    let svg = render(&records, &window(9000, 11_000));
    assert_well_formed(&svg);
    assert_eq!(arrows(&svg, "req").len(), 1);
    assert!(svg.contains("GET /inside"));
    assert!(!svg.contains("GET /early"));
    assert!(!svg.contains("GET /late"));
    assert!(svg.contains("event 7 published"));
    assert!(!svg.contains("event 8"));
    // The whole run has all three.
    assert_eq!(arrows(&render(&records, &whole_run()), "req").len(), 3);
}

#[test]
fn the_window_scale_is_linear_from_its_start() {
    let records = vec![
        send(10_000, "client-1", C1, Dir::Up, 1, "GET /a"),
        recv(10_040, "server", C1, Dir::Up, 1, "GET /a"),
        send(10_500, "client-1", C1, Dir::Up, 2, "GET /b"),
        recv(10_540, "server", C1, Dir::Up, 2, "GET /b"),
    ];
    let svg = render(&records, &window(9000, 11_000));
    let a = arrows(&svg, "req");
    assert_eq!(a.len(), 2);
    let px_per_ms = (a[1].1 - a[0].1) / 500.0;
    assert!(((a[0].3 - a[0].1) / px_per_ms - 40.0).abs() < 1.0);
}

#[test]
fn hosts_are_ordered_clients_middle_server() {
    let host = |h: &str, role: Role| {
        rec(
            0,
            h,
            Event::Host {
                role,
                clients: Vec::new(),
            },
        )
    };
    let records = vec![
        host("server", Role::Server),
        host("client-10", Role::Client),
        host("proxy", Role::Proxy),
        host("client-2", Role::Client),
        rec(
            5,
            "network",
            Event::Publish {
                event: 1,
                from: None,
                message: None,
            },
        ),
    ];
    let svg = render(&records, &whole_run());
    // Each host's name box is drawn twice, top and bottom; take the first.
    let pos = |name: &str| {
        svg.find(&format!(">{name}</text>"))
            .unwrap_or_else(|| panic!("no lifeline for {name}"))
    };
    assert!(pos("client-2") < pos("client-10"));
    assert!(pos("client-10") < pos("proxy"));
    assert!(pos("proxy") < pos("server"));
    assert!(!svg.contains(">network</text>"));
}

#[test]
fn faults_shade_lifelines_up_to_the_window_edge() {
    let hosts = vec!["client-1".to_string()];
    let records = vec![
        send(1000, "client-1", C1, Dir::Up, 1, "GET /a"),
        recv(1040, "server", C1, Dir::Up, 1, "GET /a"),
        rec(
            2000,
            "network",
            Event::Cut {
                hosts: hosts.clone(),
                how: CutKind::Silent,
            },
        ),
        rec(4000, "network", Event::Heal { hosts }),
        rec(5000, "server", Event::Crash),
        // No restart: shaded to the end.
    ];
    let svg = render(&records, &window(0, 8000));
    assert_well_formed(&svg);
    assert!(svg.contains(">cut off</text>"));
    assert!(svg.contains(">healed</text>"));
    assert!(svg.contains(">crashed</text>"));
    assert!(svg.contains("client-1 cut off (packets dropped) from 2000 ms to 4000 ms (2000 ms)"));
    assert!(svg.contains("server crashed from 5000 ms, not restarted by the end of the trace"));
    // A window that starts inside the cut still shades it.
    let inside = render(&records, &window(3000, 3500));
    assert!(inside.contains(">cut off</text>"));
}

#[test]
fn events_connections_and_errors_are_marked_with_tooltips() {
    let records = vec![
        rec(
            900,
            "client-1",
            Event::Connect {
                conn: C1.into(),
                reconnect: false,
                client: Some(1),
            },
        ),
        rec(900, "server", Event::Accept { conn: C1.into() }),
        rec(
            1000,
            "server",
            Event::Publish {
                event: 3,
                from: None,
                message: None,
            },
        ),
        rec(
            1500,
            "client-1",
            Event::Deliver {
                client: 1,
                event: 3,
                latency_us: 500_000,
            },
        ),
        rec(
            1600,
            "client-1",
            Event::Close {
                conn: C1.into(),
                ending: Ending::Closed,
                reason: "done".into(),
            },
        ),
        rec(
            1700,
            "client-1",
            Event::Error {
                client: 1,
                what: "request timeout".into(),
            },
        ),
    ];
    let svg = render(&records, &whole_run());
    assert_well_formed(&svg);
    assert!(svg.contains("event 3 published"));
    assert!(svg.contains("got 3 (+500 ms)"));
    assert!(svg.contains("client 1 waited 500 ms for event 3"));
    assert!(svg.contains("<title>connected client-1:49152&gt;server:80 at 900 ms</title>"));
    assert!(svg.contains("<title>closed client-1:49152&gt;server:80 at 1600 ms: done</title>"));
    assert!(svg.contains("request timeout"));
}

#[test]
fn text_from_the_trace_is_escaped() {
    let conn = "a<b&c\"d'e:1>server:80";
    let records = vec![
        send(
            1000,
            "a<b&c\"d'e",
            conn,
            Dir::Up,
            1,
            "GET /?x=<script>&y='1'",
        ),
        recv(1040, "server", conn, Dir::Up, 1, "GET /?x=<script>&y='1'"),
    ];
    let svg = render(
        &records,
        &DiagramOptions {
            window: None,
            title: "<b>&".into(),
        },
    );
    assert_well_formed(&svg);
    assert!(!svg.contains("<script>"));
    assert!(svg.contains("&lt;script&gt;&amp;y=&apos;1&apos;"));
    assert!(svg.contains("a&lt;b&amp;c&quot;d&apos;e"));
    assert!(svg.contains("&lt;b&gt;&amp;"));
}

#[test]
fn rendering_is_deterministic() {
    let plan = pushpull::scenario::lessons::lesson(
        "short_polling",
        &[r#"faults=[{cut="client-1",from="60s",to="80s"}]"#],
    );
    let run = || {
        pushpull::run::run(&plan, pushpull::run::RunOptions::default())
            .expect("the lesson runs")
            .records
    };
    let records = run();
    let options = window(55_000, 100_000);
    let svg = render(&records, &options);
    assert_well_formed(&svg);
    assert_eq!(svg, render(&records, &options));
    // A second run of the same scenario draws the same bytes.
    assert_eq!(svg, render(&run(), &options));
    assert!(svg.contains(">cut off</text>"));
    assert!(!arrows(&svg, "lost").is_empty(), "the request into the cut");
    // The whole run stays within the height budget.
    let whole = render(&records, &whole_run());
    assert_well_formed(&whole);
    let height = attr(&whole[..whole.find('>').unwrap()], "height");
    assert!(height <= 4200.0, "{height}");
}

fn arb_event() -> impl Strategy<Value = Event> {
    let conn = prop_oneof![
        Just("client-1:1>server:80".to_string()),
        Just("client-2:1>proxy:80".to_string()),
        Just("proxy:5>server:80".to_string()),
        Just("garbage".to_string()),
        Just(">".to_string()),
        Just(String::new()),
    ];
    let dir = prop_oneof![Just(Dir::Up), Just(Dir::Down)];
    let host_list = prop::collection::vec("[a-z<&-]{0,8}", 0..3);
    prop_oneof![
        (
            conn.clone(),
            dir.clone(),
            0u32..3,
            any::<bool>(),
            prop::option::of(0u32..3)
        )
            .prop_map(|(conn, dir, seq, lost, events)| Event::Send {
                conn,
                dir,
                seq,
                kind: kind_of(dir),
                what: "GET /x".into(),
                bytes: 10,
                events,
                first_event: events.map(|_| 1),
                reply_to: (dir == Dir::Down).then_some(seq),
                retry: lost,
                resent: false,
            }),
        (conn.clone(), dir, 0u32..3).prop_map(|(conn, dir, seq)| Event::Recv {
            conn,
            dir,
            seq,
            kind: kind_of(dir),
            what: "200 OK".into(),
            bytes: 10,
        }),
        (0u64..4).prop_map(|event| Event::Publish {
            event,
            from: None,
            message: None
        }),
        (0u32..4, 0u64..4, 0u64..2_000_000).prop_map(|(client, event, latency_us)| {
            Event::Deliver {
                client,
                event,
                latency_us,
            }
        }),
        conn.clone().prop_map(|conn| Event::Connect {
            conn,
            reconnect: true,
            client: Some(1)
        }),
        conn.clone().prop_map(|conn| Event::Accept { conn }),
        conn.clone().prop_map(|conn| Event::Close {
            conn,
            ending: Ending::Failed,
            reason: "x".into()
        }),
        Just(Event::ConnectFailed {
            target: "server:80".into(),
            reason: "refused".into(),
            retry: true
        }),
        Just(Event::Error {
            client: 1,
            what: "timeout".into()
        }),
        conn.prop_map(|conn| Event::Proxy {
            conn,
            action: ProxyAction::CloseIdle,
            reason: "idle".into()
        }),
        (
            host_list.clone(),
            prop_oneof![
                Just(CutKind::Silent),
                Just(CutKind::Hold),
                Just(CutKind::Reset)
            ]
        )
            .prop_map(|(hosts, how)| Event::Cut { hosts, how }),
        host_list.prop_map(|hosts| Event::Heal { hosts }),
        Just(Event::Crash),
        Just(Event::Restart),
        (0u32..3, 1u32..4).prop_map(|(seq, attempt)| Event::Retransmit {
            conn: "client-1:1>server:80".into(),
            dir: Dir::Up,
            seq,
            attempt,
        }),
        (1u32..7).prop_map(|attempt| Event::SynRetransmit {
            target: "server:80".into(),
            attempt,
        }),
        any::<bool>().prop_map(|answered| Event::KeepaliveProbe {
            conn: "client-1:1>server:80".into(),
            answered,
        }),
        prop_oneof![Just(Role::Client), Just(Role::Proxy), Just(Role::Server)].prop_map(|role| {
            Event::Host {
                role,
                clients: vec![1],
            }
        }),
    ]
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        prop_oneof![
            0u64..10_000_000,
            Just(0),
            Just(u64::MAX / 2),
            Just(u64::MAX)
        ],
        prop_oneof![
            Just("client-1"),
            Just("client-2"),
            Just("proxy"),
            Just("server"),
            Just("network"),
            Just("")
        ],
        arb_event(),
    )
        .prop_map(|(t_us, host, event)| Record {
            t_us,
            host: host.into(),
            event,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the trace, the picture is well-formed and the same twice.
    #[test]
    fn any_trace_renders(
        records in prop::collection::vec(arb_record(), 0..40),
        from in prop_oneof![Just(None), (0u64..10_000_000, 0u64..10_000_000).prop_map(Some)],
    ) {
        let options = DiagramOptions {
            window: from.map(|(a, b)| (Span(a), Span(b))),
            title: "t".into(),
        };
        let svg = render(&records, &options);
        assert_well_formed(&svg);
        prop_assert_eq!(svg, render(&records, &options));
    }
}
