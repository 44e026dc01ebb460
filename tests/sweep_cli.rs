//! `pushpull sweep` and `pushpull bench --format json`, as a script drives
//! them: every combination a real run, in JSON, CSV, a table and a chart.

use std::process::Command;

fn pushpull(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pushpull"))
        .args(args)
        .output()
        .expect("pushpull runs");
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn a_sweep_runs_every_combination_under_every_mechanism() {
    let chart = std::env::temp_dir().join(format!("pushpull-sweep-{}.svg", std::process::id()));
    let (ok, stdout, stderr) = pushpull(&[
        "sweep",
        "short_polling",
        "--set",
        "duration=60s",
        "--vary",
        "short_polling.interval=1s,5s",
        "--vary",
        "workload.clients=2,4",
        "--mechanisms",
        "short_polling,sse",
        "--format",
        "json",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows.len(), 2 * 2 * 2);
    assert_eq!(rows[0]["params"]["short_polling.interval"], "1s");
    assert_eq!(rows[0]["params"]["workload.clients"], 2);
    assert_eq!(rows[0]["mechanism"], "short_polling");
    assert_eq!(rows[1]["mechanism"], "sse");
    assert_eq!(rows[0]["report"]["clients"], 2);
    // Each row is a real run: the same as `pushpull run` with those values.
    let (_, single, _) = pushpull(&[
        "run",
        "short_polling",
        "--set",
        "duration=60s",
        "--set",
        "short_polling.interval=5s",
        "--set",
        "workload.clients=4",
        "--format",
        "json",
    ]);
    let single: serde_json::Value = serde_json::from_str(&single).unwrap();
    assert_eq!(rows[6]["report"], single);
    // Short polling asks five times as often at 1 s as at 5 s; SSE holds
    // one stream per client whatever the interval.
    let requests = |i: usize| rows[i]["report"]["requests"].as_u64().unwrap();
    assert!(
        requests(0) > 3 * requests(4),
        "{} vs {}",
        requests(0),
        requests(4)
    );
    assert_eq!(requests(1), requests(5));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("requests per client per minute"));
    let _ = std::fs::remove_file(&chart);
}

#[test]
fn sweep_formats_and_refusals() {
    let args = [
        "sweep",
        "long_polling",
        "--set",
        "duration=40s",
        "--vary",
        "long_polling.hold=10s,20s",
    ];
    let (ok, csv, _) = pushpull(&[&args[..], &["--format", "csv"]].concat());
    assert!(ok);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("long_polling.hold,mechanism,requests,"));
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("10s,long_polling,"));
    let (ok, table, _) = pushpull(&args);
    assert!(ok);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .starts_with("long_polling.hold")
    );
    // A bad value is the CLI's one-line error, before any run.
    let (ok, _, stderr) = pushpull(&["sweep", "sse", "--vary", "network.loss=0.1,1.5"]);
    assert!(!ok);
    assert!(stderr.contains("network.loss: is 1.5"), "{stderr}");
    let (ok, _, stderr) = pushpull(&["sweep", "sse", "--vary", "x"]);
    assert!(!ok && stderr.contains("KEY=V1,V2"), "{stderr}");
}
