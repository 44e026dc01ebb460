//! Bad scenarios fail with one message that names the field and what is allowed.

use pushpull::scenario::{Plan, Span};

fn error_of(toml: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    match Plan::from_toml(toml, &sets) {
        Ok(_) => panic!("expected an error for {toml:?} {sets:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_one_line_naming(message: &str, field: &str, hint: &str) {
    assert!(!message.contains('\n'), "one line please: {message:?}");
    assert!(message.contains(field), "{message:?} should name {field:?}");
    assert!(message.contains(hint), "{message:?} should say {hint:?}");
}

/// A typo is an error, not a silently ignored parameter.
#[test]
fn unknown_field_is_named() {
    let m = error_of("[network]\nlatncy = \"5ms\"\n", &[]);
    assert_one_line_naming(&m, "latncy", "latency");
}

/// `latency = "fast"` says what a duration looks like.
#[test]
fn bad_duration_names_field_and_format() {
    let m = error_of("[network]\nlatency = \"fast\"\n", &[]);
    assert_one_line_naming(&m, "network.latency", "250ms");
    let m = error_of("[network]\nlatency = 40\n", &[]);
    assert_one_line_naming(&m, "network.latency", "40ms");
}

#[test]
fn loss_outside_zero_to_one_is_refused() {
    let m = error_of("[network]\nloss = 1.5\n", &[]);
    assert_one_line_naming(&m, "network.loss", "between 0 and 1");
    let m = error_of("", &["network.loss=-0.1"]);
    assert_one_line_naming(&m, "network.loss", "between 0 and 1");
}

/// tokio's timers count whole milliseconds, so a host's clock would round
/// each 1.5ms step up to 2ms and run ahead of the network's.
#[test]
fn tick_is_whole_milliseconds() {
    let m = error_of("", &["network.tick=1500us"]);
    assert_one_line_naming(&m, "network.tick", "whole number of milliseconds");
    assert!(Plan::from_toml("", &["network.tick=7ms".to_string()]).is_ok());
}

#[test]
fn fault_after_the_end_is_refused() {
    let m = error_of(
        "duration = \"1m\"\n[[faults]]\ncut = \"client-1\"\nfrom = \"50s\"\nto = \"90s\"\n",
        &[],
    );
    assert_one_line_naming(&m, "faults.0.to", "after the end of the run");
}

#[test]
fn fault_on_unknown_host_lists_the_hosts() {
    let m = error_of(
        "[[faults]]\ncut = \"client-9\"\nfrom = \"5s\"\nto = \"9s\"\n",
        &[],
    );
    assert_one_line_naming(&m, "faults.0.cut", "client-1");
}

#[test]
fn set_path_that_does_not_exist_is_refused() {
    let m = error_of("", &["network.latncy=80ms"]);
    assert_one_line_naming(&m, "network.latncy", "latency");
    let m = error_of("", &["nonsense"]);
    assert_one_line_naming(&m, "nonsense", "path=value");
}

#[test]
fn events_take_one_kind_only() {
    let m = error_of("[workload]\nevents = { every = \"5s\", rate = 2.0 }\n", &[]);
    assert_one_line_naming(&m, "workload.events", "exactly one");
}

#[test]
fn not_toml_is_reported_with_its_line() {
    let m = error_of("seed = \n", &[]);
    assert_one_line_naming(&m, "not valid TOML", "line 1");
}

/// `--set` reaches every kind of value: durations, numbers, booleans, tables.
#[test]
fn set_overrides_apply_in_order() {
    let s = Plan::from_toml(
        "",
        &[
            "network.latency=80ms".into(),
            "short_polling.interval=2s".into(),
            "short_polling.keep_alive=false".into(),
            "workload.events={rate=0.5}".into(),
            "seed=9".into(),
            "seed=10".into(),
        ],
    )
    .unwrap()
    .scenario;
    assert_eq!(s.network.latency, Span::from_millis(80));
    assert_eq!(s.short_polling.interval, Span::from_secs(2));
    assert!(!s.short_polling.keep_alive);
    assert_eq!(s.workload.events.rate, Some(0.5));
    assert_eq!(s.seed, 10);
}

#[test]
fn durations_parse_and_print() {
    assert_eq!(Span::parse("250ms"), Ok(Span::from_millis(250)));
    assert_eq!(Span::parse("1.5s"), Ok(Span::from_millis(1500)));
    assert_eq!(Span::parse("2m"), Ok(Span::from_secs(120)));
    assert_eq!(Span::parse("0"), Ok(Span::ZERO));
    assert!(Span::parse("5").is_err());
    assert!(Span::parse("-5s").is_err());
    assert!(Span::parse("5 parsecs").is_err());
    assert_eq!(Span::from_millis(250).to_string(), "250ms");
    assert_eq!(Span::from_secs(90).to_string(), "90s");
}

/// `--set workload.events.rate=...` switches a lesson from `every` to `rate`.
#[test]
fn setting_one_kind_of_event_schedule_replaces_the_other() {
    let s = Plan::from_toml(
        "[workload]\nevents = { every = \"60s\", start = \"5s\" }\n",
        &["workload.events.rate=2.0".into()],
    )
    .unwrap()
    .scenario;
    assert_eq!(s.workload.events.rate, Some(2.0));
    assert_eq!(s.workload.events.every, None);
    assert_eq!(s.workload.events.start, Span::from_secs(5));
}

/// Every lesson file loads.
#[test]
fn every_lesson_loads() {
    for (name, text) in pushpull::scenario::lessons::LESSONS {
        Plan::from_toml(text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Overlapping windows would heal a link another cut holds, or restart a
/// running server: refused.
#[test]
fn overlapping_faults_are_refused() {
    let m = error_of(
        "[[faults]]\ncut = \"client-1\"\nfrom = \"10s\"\nto = \"30s\"\n[[faults]]\ncut = \"all-clients\"\nfrom = \"20s\"\nto = \"40s\"\n",
        &[],
    );
    assert_one_line_naming(&m, "faults.1", "overlaps faults.0");
    let m = error_of(
        "[[faults]]\ncrash = \"server\"\nat = \"10s\"\nrestart = \"30s\"\n[[faults]]\ncrash = \"server\"\nat = \"20s\"\nrestart = \"40s\"\n",
        &[],
    );
    assert_one_line_naming(&m, "faults.1", "overlaps");
}

/// A cut holds packets or resets connections, not both.
#[test]
fn a_cut_is_one_kind_of_cut() {
    for kinds in [
        "hold=true,reset=true",
        "reset=true,forget=true",
        "hold=true,forget=true",
    ] {
        let m = error_of(
            "",
            &[&format!(
                r#"faults=[{{cut="client-1",from="5s",to="9s",{kinds}}}]"#
            )],
        );
        assert_one_line_naming(&m, "faults.0.hold", "at most one");
    }
}

/// A misconfiguration a real deployment could have runs, with a warning.
#[test]
fn misconfigurations_a_deployment_could_have_run_with_a_warning() {
    let warnings = |sets: &[&str]| -> Vec<String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Plan::from_toml("", &sets)
            .unwrap_or_else(|e| panic!("{sets:?} should run: {e}"))
            .warnings
    };
    assert!(warnings(&[]).is_empty(), "the defaults are sound");
    for (sets, names) in [
        (
            &["sse.client_default_retry=0"][..],
            "sse.client_default_retry",
        ),
        (&["sse.retry=0"][..], "sse.retry"),
        (&["network.loss=1"][..], "network.loss"),
        (
            &["long_polling.hold=60s", "long_polling.client_timeout=30s"][..],
            "long_polling.client_timeout",
        ),
        (
            &[
                "network.latency=100ms",
                "short_polling.request_timeout=150ms",
            ][..],
            "short_polling.request_timeout",
        ),
        (
            &[
                "mechanism=\"long_polling\"",
                "proxy.enabled=true",
                "proxy.idle_timeout=20s",
            ][..],
            "proxy.idle_timeout",
        ),
    ] {
        let w = warnings(sets);
        assert_eq!(w.len(), 1, "{sets:?}: {w:?}");
        assert!(w[0].contains(names) && !w[0].contains('\n'), "{w:?}");
        assert!(
            w[0].contains(": "),
            "a warning names the consequence: {w:?}"
        );
    }
}

#[test]
fn each_network_field_is_named_on_its_own() {
    let m = error_of("", &["network.jitter=90s"]);
    assert_one_line_naming(&m, "network.jitter", "60s");
}

/// More connections than a host has ports is an error, not a panic inside turmoil.
#[test]
fn more_clients_than_a_proxy_has_ports_run_with_a_warning_more_than_a_client_host_has_are_refused()
{
    // Through one proxy: a deployment can have it; the proxy's connects
    // beyond its ports fail as a kernel's do.
    let sets: Vec<String> = ["workload.clients=30000", "proxy.enabled=true"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let plan = Plan::from_toml("", &sets).unwrap();
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("through one proxy")),
        "{:?}",
        plan.warnings
    );
    // On one simulated client host: a limit of the sandbox's layout.
    let m = error_of("", &["workload.clients=30000", "workload.client_hosts=1"]);
    assert_one_line_naming(&m, "workload.clients", "connections at once");
}

/// All `--set`s are applied before anything is checked, so their order does
/// not matter: the book's `hold=55s` then `client_timeout=60s` works, and so
/// does the reverse.
#[test]
fn set_order_does_not_matter() {
    let text = pushpull::scenario::lessons::LESSONS
        .iter()
        .find(|(name, _)| *name == "long_polling")
        .unwrap()
        .1;
    for sets in [
        ["long_polling.hold=55s", "long_polling.client_timeout=60s"],
        ["long_polling.client_timeout=60s", "long_polling.hold=55s"],
    ] {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let plan = Plan::from_toml(text, &sets).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
        assert_eq!(plan.scenario.long_polling.hold, Span::from_secs(55));
    }
}

/// Faults name any host of the run; a crash without `restart` and a cut
/// without `to` last to the end; a host the run does not have is named in
/// the error with the ones it has.
#[test]
fn faults_name_any_host_and_may_outlast_the_run() {
    let plan = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Plan::from_toml("", &sets)
    };
    plan(&[r#"faults=[{crash="server", at="10s"}]"#]).unwrap();
    plan(&[r#"faults=[{cut="server", from="10s"}]"#]).unwrap();
    plan(&[
        "proxy.enabled=true",
        r#"faults=[{crash="proxy", at="10s", restart="20s"}, {cut="proxy", from="30s", to="40s"}]"#,
    ])
    .unwrap();
    let m = plan(&[r#"faults=[{crash="proxy", at="10s"}]"#])
        .unwrap_err()
        .to_string();
    assert_one_line_naming(&m, "faults.0.crash", "server");
    let m = plan(&[r#"faults=[{cut="server", from="10s"}, {cut="server", from="50s", to="60s"}]"#])
        .unwrap_err()
        .to_string();
    assert_one_line_naming(&m, "faults.1", "overlaps");
}

/// Servers, the broker and the slow reader: bounds named, and the hosts
/// they add can be faulted by name.
#[test]
fn servers_and_broker_are_checked_and_their_hosts_can_fail() {
    let m = error_of("mechanism = \"websocket\"\nservers = 0\n", &[]);
    assert_one_line_naming(&m, "servers", "between 1 and 16");
    let m = error_of("", &["servers=17"]);
    assert_one_line_naming(&m, "servers", "between 1 and 16");
    let m = error_of("", &["websocket.max_queued=0"]);
    assert_one_line_naming(&m, "websocket.max_queued", "at least 1");
    let m = error_of("", &["network.socket_buffer_kib=2000000"]);
    assert_one_line_naming(&m, "network.socket_buffer_kib", "0 means no limit");
    // With one server, `server-2` is not a host; with two it is, and so is
    // the broker.
    let crash = r#"faults=[{crash="server-2",at="10s"}]"#;
    let m = error_of("mechanism = \"websocket\"\n", &[crash]);
    assert_one_line_naming(&m, "faults.0.crash", "server");
    let both = r#"faults=[{crash="server-2",at="10s"},{crash="broker",at="20s"}]"#;
    let sets: Vec<String> = ["servers=2", "broker=true", both]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let plan = Plan::from_toml("mechanism = \"websocket\"\n", &sets).unwrap();
    assert_eq!(plan.server_hosts, ["server-1", "server-2"]);
    assert_eq!(plan.faults.len(), 2);
    // A broker with one server runs, with a warning.
    let plan = Plan::from_toml("mechanism = \"websocket\"\nbroker = true\n", &[]).unwrap();
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("broker = true with one server"))
    );
}
