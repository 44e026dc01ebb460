//! `pushpull bench`: how fast the simulator runs, on this machine.

use pushpull::run::{self, RunOptions};
use pushpull::scenario::{Span, lessons};
use std::io::Write;
use std::time::Instant;

fn overrides(sets: &[&str]) -> Vec<String> {
    sets.iter().map(|s| s.to_string()).collect()
}

/// One benchmark run: a lesson and overrides.
struct BenchCase {
    label: &'static str,
    lesson: &'static str,
    overrides: &'static [&'static str],
}

/// The cases: every default lesson, then the `scale` lesson's feed at the
/// sizes issue 12 set targets for (1,000 and 10,000 clients for 10 minutes,
/// every mechanism; 100,000 long-polling clients for a minute).
const BENCH_CASES: &[BenchCase] = &[
    BenchCase {
        label: "short_polling lesson, default",
        lesson: "short_polling",
        overrides: &[],
    },
    BenchCase {
        label: "long_polling lesson, default",
        lesson: "long_polling",
        overrides: &[],
    },
    BenchCase {
        label: "sse lesson, default",
        lesson: "sse",
        overrides: &[],
    },
    BenchCase {
        label: "websocket lesson, default",
        lesson: "websocket",
        overrides: &[],
    },
    BenchCase {
        label: "webhooks lesson, default",
        lesson: "webhooks",
        overrides: &[],
    },
    BenchCase {
        label: "jobs lesson, default",
        lesson: "jobs",
        overrides: &[],
    },
    BenchCase {
        label: "scale lesson, default",
        lesson: "scale",
        overrides: &[],
    },
    BenchCase {
        label: "1000 clients polling every 1s, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"short_polling\"",
            "workload.clients=1000",
            "short_polling.interval=1s",
            "duration=10m",
            "drain=0s",
        ],
    },
    // The same clients on 10 hosts instead of the default 4: in every tick
    // in which anything happens turmoil runs every host, so hosts cost time.
    BenchCase {
        label: "  same, on 10 client hosts",
        lesson: "scale",
        overrides: &[
            "mechanism=\"short_polling\"",
            "workload.clients=1000",
            "short_polling.interval=1s",
            "duration=10m",
            "drain=0s",
            "workload.client_hosts=10",
        ],
    },
    BenchCase {
        label: "1000 clients long polling, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"long_polling\"",
            "workload.clients=1000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "1000 clients on SSE, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"sse\"",
            "workload.clients=1000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "1000 clients on WebSocket, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"websocket\"",
            "workload.clients=1000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "10000 clients polling every 5s, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"short_polling\"",
            "workload.clients=10000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "10000 clients long polling, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"long_polling\"",
            "workload.clients=10000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "10000 clients on SSE, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"sse\"",
            "workload.clients=10000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "10000 clients on WebSocket, 10m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"websocket\"",
            "workload.clients=10000",
            "duration=10m",
            "drain=0s",
        ],
    },
    BenchCase {
        label: "100000 clients long polling, 1m",
        lesson: "scale",
        overrides: &[
            "mechanism=\"long_polling\"",
            "workload.clients=100000",
            "duration=1m",
            "drain=0s",
            "workload.client_hosts=10",
        ],
    },
];

/// A field of `/proc/self/status` in kB, e.g. `VmHWM`.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Resets the process's peak resident set size to its current size (Linux:
/// writing 5 to `/proc/self/clear_refs`). Returns whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// `pushpull bench`: runs each case once and prints wall time, speed-up over
/// real time and peak memory, with the machine it ran on; with `json`, one
/// array of `{"name","clients","simulated_s","wall_s","peak_rss_mib"}` (and
/// the machine) on standard output, so that the figures can be tracked.
pub fn bench(json: bool, only: Option<&str>) -> Result<(), String> {
    let cases: Vec<&BenchCase> = BENCH_CASES
        .iter()
        .filter(|c| only.is_none_or(|o| c.label.contains(o)))
        .collect();
    if cases.is_empty() {
        return Err(format!(
            "no benchmark case's name contains {:?}",
            only.unwrap_or_default()
        ));
    }
    if json {
        return bench_json(&cases);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = build_name();
    println!("machine: {cores} cores, {}", cpu_model());
    println!(
        "build:   {build}{}",
        if run::DETERMINISTIC {
            ""
        } else {
            ", without --cfg tokio_unstable (not deterministic)"
        }
    );
    if cfg!(debug_assertions) {
        println!(
            "warning: a debug build; the figures only mean something in release \
             (cargo run --release -- bench)"
        );
    }
    println!();

    let header = [
        "run",
        "clients",
        "simulated",
        "wall",
        "speed-up",
        "requests",
        "peak RSS",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut peak_was_reset = true;
    for case in &cases {
        let (figures, reset) = measure(case, String::new(), build_name())?;
        peak_was_reset &= reset;
        rows.push(vec![
            case.label.to_string(),
            figures.clients.to_string(),
            format!("{:.0} s", figures.simulated_s),
            format!("{:.2} s", figures.wall_s),
            format!("{:.0}x", figures.simulated_s / figures.wall_s.max(1e-9)),
            figures.requests.to_string(),
            figures
                .peak_rss_mib
                .map_or("n/a".to_string(), |m| format!("{m:.1} MiB")),
        ]);
    }

    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                s.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                s.push_str(&format!("  {cell:>w$}", w = widths[i]));
            }
        }
        s
    };
    println!("{}", line(&header.map(String::from)));
    for row in &rows {
        println!("{}", line(row));
    }
    println!();
    println!("speed-up: simulated seconds per wall-clock second, one thread.");
    if peak_was_reset {
        println!(
            "peak RSS: the process's high-water mark (VmHWM) during each run, reset before it."
        );
    } else if proc_status_kb("VmHWM").is_some() {
        println!(
            "peak RSS: the process's high-water mark (VmHWM) so far: it could not be reset, \
             so each row includes the runs above it."
        );
    } else {
        println!("peak RSS: unavailable (no /proc/self/status on this system).");
    }
    Ok(())
}

/// One case's figures, as `bench --format json` prints them.
#[derive(serde::Serialize)]
struct Figures {
    name: String,
    clients: u32,
    simulated_s: f64,
    wall_s: f64,
    peak_rss_mib: Option<f64>,
    requests: u64,
    machine: String,
    build: &'static str,
}

fn build_name() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Runs one case and measures it; `bool`: whether the peak RSS could be
/// reset before the run (so that it is this run's own).
fn measure(
    case: &BenchCase,
    machine: String,
    build: &'static str,
) -> Result<(Figures, bool), String> {
    let plan = lessons::load(case.lesson, &overrides(case.overrides))?;
    let simulated: Span = plan.end();
    eprintln!("running: {} ({simulated} simulated)...", case.label.trim());
    let reset = reset_peak_rss();
    let started = Instant::now();
    let outcome = run::run(
        &plan,
        RunOptions {
            trace_file: None,
            keep_records: false,
            ..RunOptions::default()
        },
    )?;
    let wall = started.elapsed().as_secs_f64();
    let figures = Figures {
        name: case.label.trim().to_string(),
        clients: plan.scenario.workload.clients,
        simulated_s: simulated.as_micros() as f64 / 1e6,
        wall_s: (wall * 1000.0).round() / 1000.0,
        peak_rss_mib: proc_status_kb("VmHWM").map(|kb| (kb as f64 / 102.4).round() / 10.0),
        requests: outcome.report.requests,
        machine,
        build,
    };
    Ok((figures, reset))
}

fn bench_json(cases: &[&BenchCase]) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let machine = format!("{cores} cores, {}", cpu_model());
    let mut all = Vec::new();
    for case in cases {
        all.push(measure(case, machine.clone(), build_name())?.0);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&all).expect("figures serialize")
    );
    Ok(())
}
