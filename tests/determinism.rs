//! Same scenario + same seed = the same trace, byte for byte: in this process,
//! in a new process, and (via the pinned hash in the lesson snapshot, which CI
//! checks in both debug and release builds) across build profiles.

use pushpull::run::{self, RunOptions};
use std::process::Command;

fn hash_of(lesson: &str, sets: &[&str]) -> String {
    let plan = pushpull::scenario::lessons::lesson(lesson, sets);
    run::run(&plan, RunOptions::default())
        .unwrap()
        .report
        .trace_hash
}

/// The build sets `--cfg tokio_unstable` (.cargo/config.toml); without it
/// turmoil cannot seed tokio's RNG and runs would only look deterministic.
#[test]
#[allow(clippy::assertions_on_constants)] // constant per build: that is the point
fn build_is_configured_for_determinism() {
    assert!(
        run::DETERMINISTIC,
        "built without --cfg tokio_unstable: RUSTFLAGS overrides .cargo/config.toml"
    );
}

#[test]
fn same_seed_same_trace_in_process() {
    let sets = ["network.loss=0.02", "network.jitter=30ms"];
    assert_eq!(
        hash_of("short_polling", &sets),
        hash_of("short_polling", &sets)
    );
}

#[test]
fn different_seed_changes_a_jittery_trace() {
    let a = hash_of("short_polling", &["network.jitter=30ms", "seed=1"]);
    let b = hash_of("short_polling", &["network.jitter=30ms", "seed=2"]);
    assert_ne!(a, b);
}

/// Two fresh processes write identical trace files, and the report's hash is
/// the SHA-256 of exactly those bytes.
#[test]
fn same_seed_same_trace_bytes_in_new_processes() {
    let dir = std::env::temp_dir().join(format!("pushpull-det-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut traces = Vec::new();
    let mut hashes = Vec::new();
    for i in 0..2 {
        let path = dir.join(format!("trace-{i}.jsonl"));
        let out = Command::new(env!("CARGO_BIN_EXE_pushpull"))
            .args([
                "run",
                "short_polling",
                "--format",
                "json",
                "--set",
                "network.jitter=20ms",
            ])
            .args(["--set", r#"faults=[{cut="client-2",from="40s",to="70s"}]"#])
            .arg("--trace")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        hashes.push(report["trace_hash"].as_str().unwrap().to_string());
        traces.push(std::fs::read(&path).unwrap());
    }
    assert!(!traces[0].is_empty());
    assert_eq!(traces[0], traces[1], "trace files differ between processes");
    assert_eq!(hashes[0], hashes[1]);
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&traces[0]);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, hashes[0],
        "trace_hash must be the hash of the trace file"
    );
    assert_eq!(
        hashes[0],
        hash_of(
            "short_polling",
            &[
                "network.jitter=20ms",
                r#"faults=[{cut="client-2",from="40s",to="70s"}]"#
            ]
        ),
        "the binary and the library must produce the same run"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The WebSocket chat with everything that adds tasks and timers at once:
/// two servers and a broker behind the proxy, a slow reader, a crash of
/// each, jitter and loss. Same seed, same trace; another seed, another.
#[test]
fn scaled_out_chat_with_faults_is_deterministic() {
    let sets = [
        "servers=2",
        "broker=true",
        "proxy.enabled=true",
        "network.jitter=30ms",
        "network.loss=0.01",
        "websocket.slow_readers=1",
        r#"faults=[{crash="server-1",at="50s",restart="55s"},{crash="broker",at="80s",restart="90s"}]"#,
    ];
    let a = hash_of("websocket", &sets);
    assert_eq!(a, hash_of("websocket", &sets));
    let mut other = sets.to_vec();
    other.push("seed=8");
    assert_ne!(a, hash_of("websocket", &other));
}

/// Webhooks with the attacker, retries and jitter, and the job queue with
/// a worker crash: same seed, same trace.
#[test]
fn webhooks_and_jobs_are_deterministic() {
    let webhooks = [
        "attacker=true",
        "network.jitter=30ms",
        "network.loss=0.02",
        "receiver.work=20s",
        r#"faults=[{crash="receiver-2",at="40s",restart="50s"}]"#,
    ];
    assert_eq!(
        hash_of("webhooks", &webhooks),
        hash_of("webhooks", &webhooks)
    );
    let jobs = [
        "jobs.notify=callback",
        "network.jitter=30ms",
        r#"faults=[{crash="worker",at="62s",restart="70s"}]"#,
    ];
    assert_eq!(hash_of("jobs", &jobs), hash_of("jobs", &jobs));
}

/// The run loop crosses stretches in which nothing can happen in one step
/// (`world::clock`). That must change nothing: each mechanism, with each kind
/// of fault, a narrow link and a network with no latency, gives the same
/// trace, byte for byte, as stepping every host through every tick, in
/// fewer steps.
#[test]
fn skipping_idle_time_changes_no_trace() {
    let cases: &[(&str, &[&str])] = &[
        (
            "short_polling",
            &[
                "network.jitter=20ms",
                "network.loss=0.05",
                r#"faults=[{cut="client-2",from="20s",to="50s"}]"#,
            ],
        ),
        (
            "short_polling",
            &["short_polling.keep_alive=false", "network.tick=10ms"],
        ),
        (
            "long_polling",
            &[
                "proxy.enabled=true",
                r#"faults=[{crash="server",at="20s",restart="35s"}]"#,
            ],
        ),
        (
            "sse",
            &[
                "network.tcp_keepalive=5s",
                "network.nat_idle_timeout=10s",
                r#"faults=[{cut="client-1",from="20s",to="40s",forget=true}]"#,
            ],
        ),
        ("sse", &["proxy.enabled=true", "proxy.mode=buffer"]),
        (
            "websocket",
            &[
                "servers=2",
                "broker=true",
                r#"faults=[{crash="server-1",at="20s",restart="25s"}]"#,
            ],
        ),
        (
            "webhooks",
            &[r#"faults=[{crash="receiver-1",at="20s",restart="30s"}]"#],
        ),
        ("jobs", &["jobs.notify=callback"]),
        (
            "websocket",
            &[
                r#"network.bandwidth="100kbps""#,
                "workload.payload_bytes=5000",
            ],
        ),
        (
            "long_polling",
            &["network.latency=0ms", "network.jitter=0ms"],
        ),
        (
            "scale",
            &[
                "workload.clients=60",
                "server.max_connections=20",
                "server.backlog=10",
            ],
        ),
    ];
    for (lesson, sets) in cases {
        let mut sets = sets.to_vec();
        sets.push("duration=60s");
        let plan = pushpull::scenario::lessons::lesson(lesson, &sets);
        let run_with = |every_tick| {
            let options = RunOptions {
                every_tick,
                ..RunOptions::default()
            };
            run::run(&plan, options).unwrap()
        };
        let (skipping, ticking) = (run_with(false), run_with(true));
        assert_eq!(
            skipping.report.trace_hash, ticking.report.trace_hash,
            "{lesson} {sets:?}: skipping idle time changed the trace"
        );
        assert!(
            skipping.steps < ticking.steps,
            "{lesson} {sets:?}: {} steps skipping, {} ticking",
            skipping.steps,
            ticking.steps
        );
    }
}

/// A quiet lesson is mostly idle: skipping takes a small fraction of the
/// ticks (the cost follows what happens, not simulated time).
#[test]
fn an_idle_run_takes_few_steps() {
    let plan = pushpull::scenario::lessons::lesson("long_polling", &[]);
    let ticks = plan.end().as_micros() / 1000;
    let steps = run::run(&plan, RunOptions::default()).unwrap().steps;
    assert!(
        steps * 20 < ticks,
        "{steps} steps for {ticks} ticks of simulated time"
    );
}
