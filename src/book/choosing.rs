//! The closing chapter's runs: the study notes' comparison table rebuilt
//! from measurements. One feed (the `scale` lesson) carried by every
//! mechanism at 10 to 10,000 clients, the same feed behind a server with a
//! connection limit, and small runs through a cut, a proxy and a server
//! restart. Everything in `generated/choosing/` comes from here.
//!
//! These are the book's heaviest runs (four mechanisms at 10,000 clients),
//! so a debug build's drift check leaves them to the release one.

use super::figures::GENERATED_DIR;
use super::figures::shell_quote;
use crate::record::report::{Report, human_bytes};
use crate::run::{self, RunOptions, sweep};
use crate::scenario::Span;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the chapter's files go, under `generated/`.
pub const DIR: &str = "choosing";

/// The lesson every run here starts from.
const LESSON: &str = "scale";

/// Client counts of the scale sweep; the table shows `TABLE_SIZES`.
const SIZES: &[u32] = &[10, 100, 1000, 10_000];
const TABLE_SIZES: &[u32] = &[10, 1000, 10_000];

/// The mechanisms a browser-like client uses, and webhooks, whose
/// receivers are servers of their own: each is a simulated host, and the
/// simulator runs every host in every tick in which anything happens, so
/// 10,000 of them are left out.
const CLIENT_MECHANISMS: &[&str] = &["short_polling", "long_polling", "sse", "websocket"];
const WEBHOOK_SIZES: &[u32] = &[10, 100, 1000];

/// The server limit of the "burden" table: Linux's default `ulimit -n`.
const LIMIT: u32 = 1024;
const LIMIT_CLIENTS: u32 = 10_000;

/// The small runs' faults, at 10 clients: (label, overrides).
const FAULTS: &[(&str, &[&str])] = &[
    (
        "a 15 s cut (reset) of client-1",
        &[r#"faults=[{cut="client-1",from="60s",to="75s",reset=true}]"#],
    ),
    (
        "a proxy closing connections idle for 60 s, events every 90 s",
        &[
            "proxy.enabled=true",
            "proxy.idle_timeout=60s",
            r#"workload.events={every="90s",start="15s"}"#,
            "duration=5m",
        ],
    ),
    (
        "a server crash, restarted 10 s later",
        &[r#"faults=[{crash="server",at="60s",restart="70s"}]"#],
    ),
];

/// One run of the feed: its mechanism, clients, overrides and report.
struct Run {
    mechanism: &'static str,
    clients: u32,
    report: Report,
    duration: Span,
}

impl Run {
    fn row(&self) -> sweep::Row {
        sweep::Row {
            params: Default::default(),
            mechanism: self.mechanism.to_string(),
            report: self.report.clone(),
            duration: self.duration,
            raw: vec![self.clients.to_string()],
        }
    }
}

fn run_feed(mechanism: &'static str, clients: u32, extra: &[String]) -> Result<Run, String> {
    let mut overrides = vec![
        format!("mechanism=\"{mechanism}\""),
        format!("workload.clients={clients}"),
    ];
    overrides.extend(extra.iter().cloned());
    let plan = crate::scenario::lessons::load(LESSON, &overrides)?;
    let options = RunOptions {
        trace_file: None,
        keep_records: false,
        wall_deadline: None,
        every_tick: false,
    };
    let outcome = run::run(&plan, options)
        .map_err(|e| format!("choosing: {mechanism} at {clients} clients: {e}"))?;
    Ok(Run {
        mechanism,
        clients,
        report: outcome.report,
        duration: plan.scenario.duration,
    })
}

fn name(mechanism: &str) -> &'static str {
    match mechanism {
        "short_polling" => "Short polling",
        "long_polling" => "Long polling",
        "sse" => "SSE",
        "websocket" => "WebSocket",
        "webhooks" => "Webhooks",
        _ => "?",
    }
}

/// Who sends what, in this sandbox's implementation of each.
fn direction(mechanism: &str) -> &'static str {
    match mechanism {
        "short_polling" | "long_polling" => "client asks, server answers",
        "sse" => "server → client, one stream",
        "websocket" => "both ways, one connection",
        "webhooks" => "server → server, a POST per event",
        _ => "?",
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) => format!("{v:.0} ms"),
        None => "-".into(),
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One run to make: mechanism, clients, overrides.
type Job = (&'static str, u32, Vec<String>);

/// The chapter's runs: by size, against the limit, and with each fault
/// (by its index in `FAULTS`).
struct Runs {
    by_size: Vec<Run>,
    by_limit: Vec<Run>,
    by_fault: Vec<(usize, Run)>,
}

/// Every run of the chapter, in a fixed order, two at a time.
fn all_runs() -> Result<Runs, String> {
    let mut sizes: Vec<Job> = Vec::new();
    for &clients in SIZES {
        for &m in CLIENT_MECHANISMS {
            sizes.push((m, clients, Vec::new()));
        }
        if WEBHOOK_SIZES.contains(&clients) {
            sizes.push(("webhooks", clients, Vec::new()));
        }
    }
    let limit = format!("server.max_connections={LIMIT}");
    let limited: Vec<Job> = CLIENT_MECHANISMS
        .iter()
        .map(|&m| (m, LIMIT_CLIENTS, vec![limit.clone()]))
        .collect();
    let mut faulted: Vec<(usize, Job)> = Vec::new();
    for (i, (_, overrides)) in FAULTS.iter().enumerate() {
        for &m in CLIENT_MECHANISMS {
            let overrides = overrides.iter().map(|o| o.to_string()).collect();
            faulted.push((i, (m, 10u32, overrides)));
        }
    }
    let jobs: Vec<Job> = sizes
        .iter()
        .cloned()
        .chain(limited.iter().cloned())
        .chain(faulted.iter().map(|(_, job)| job.clone()))
        .collect();
    let mut results = super::render::parallel_map(&jobs, |(m, n, extra)| run_feed(m, *n, extra))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let by_size: Vec<Run> = results.by_ref().take(sizes.len()).collect();
    let by_limit: Vec<Run> = results.by_ref().take(limited.len()).collect();
    let by_fault: Vec<(usize, Run)> = faulted.iter().map(|(i, _)| *i).zip(results).collect();
    Ok(Runs {
        by_size,
        by_limit,
        by_fault,
    })
}

/// Renders every file of the chapter.
pub fn render() -> Result<Vec<(PathBuf, String)>, String> {
    let Runs {
        by_size,
        by_limit,
        by_fault,
    } = all_runs()?;
    let dir = Path::new(GENERATED_DIR).join(DIR);
    let find = |m: &str, n: u32| by_size.iter().find(|r| r.mechanism == m && r.clients == n);

    // The sweep, as `pushpull sweep` charts it.
    let vary = sweep::Vary {
        key: "workload.clients".into(),
        values: SIZES.iter().map(|n| n.to_string()).collect(),
    };
    let chart_rows: Vec<sweep::Row> = by_size
        .iter()
        .filter(|r| CLIENT_MECHANISMS.contains(&r.mechanism))
        .map(Run::row)
        .collect();
    let chart = sweep::chart(
        &format!("pushpull sweep {LESSON}"),
        std::slice::from_ref(&vary),
        &chart_rows,
    );
    let chart_command = format!(
        "pushpull sweep {LESSON} --vary workload.clients={} --mechanisms {} --chart chart.svg\n",
        SIZES
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
        CLIENT_MECHANISMS.join(",")
    );

    // Who talks to whom, then the comparison table.
    let mut table = String::from("| Mechanism | Direction |\n|:--|:--|\n");
    for m in CLIENT_MECHANISMS.iter().chain(&["webhooks"]) {
        let _ = writeln!(table, "| {} | {} |", name(m), direction(m));
    }
    table.push_str(
        "\n| Mechanism | Clients | Latency p50 / p99 | Requests / client / min | Bytes / event | Peak conns | Held requests | Memory (model) |\n\
         |:--|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for m in CLIENT_MECHANISMS.iter().chain(&["webhooks"]) {
        for (i, &n) in TABLE_SIZES.iter().enumerate() {
            let Some(run) = find(m, n) else { continue };
            let r = &run.report;
            let row = run.row();
            let _ = writeln!(
                table,
                "| {} | {} | {} / {} | {:.1} | {} | {} | {} | {} |",
                if i == 0 { name(m) } else { "" },
                thousands(n as u64),
                ms(r.latency_ms.p50),
                ms(r.latency_ms.p99),
                row.requests_per_client_minute(),
                row.bytes_per_event()
                    .map_or("-".into(), |b| format!("{b:.0}")),
                thousands(r.peak_connections),
                thousands(r.peak_held_requests),
                human_bytes(r.peak_server_memory_bytes),
            );
        }
    }

    // The measured ranking, at 1,000 clients.
    let mut ranked: Vec<&Run> = by_size.iter().filter(|r| r.clients == 1000).collect();
    ranked.sort_by(|a, b| {
        let p = |r: &Run| r.report.latency_ms.p50.unwrap_or(f64::MAX);
        p(a).total_cmp(&p(b))
    });
    let mut ranking = String::from("Measured at 1,000 clients, fastest first (median latency): ");
    let mut groups: Vec<(f64, Vec<&str>)> = Vec::new();
    for r in &ranked {
        let p50 = r.report.latency_ms.p50.unwrap_or(f64::MAX);
        match groups.last_mut() {
            // Within 5 ms of each other: a tie (jitter is 10 ms).
            Some((first, names)) if p50 - *first <= 5.0 => names.push(name(r.mechanism)),
            _ => groups.push((p50, vec![name(r.mechanism)])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(p50, names)| format!("{} ({})", names.join(" = "), ms(Some(*p50))))
        .collect();
    ranking.push_str(&parts.join(" < "));
    ranking.push_str(".\n");

    // The server limit.
    let mut limit = String::from(
        "| Mechanism | Clients served | Clients unserved | Peak connections | Latency p50 / p99 | Events lost |\n\
         |:--|--:|--:|--:|--:|--:|\n",
    );
    for run in &by_limit {
        let r = &run.report;
        let _ = writeln!(
            limit,
            "| {} | {} | {} | {} | {} / {} | {} |",
            name(run.mechanism),
            thousands(r.clients as u64 - r.clients_unserved),
            thousands(r.clients_unserved),
            thousands(r.peak_connections),
            ms(r.latency_ms.p50),
            ms(r.latency_ms.p99),
            thousands(r.lost),
        );
    }

    // Faults, at 10 clients.
    let mut faults = String::from("| Mechanism |");
    for (label, _) in FAULTS {
        let _ = write!(faults, " {label} |");
    }
    faults.push_str("\n|:--|");
    faults.push_str(&":--|".repeat(FAULTS.len()));
    faults.push('\n');
    for &m in CLIENT_MECHANISMS {
        let _ = write!(faults, "| {} |", name(m));
        for i in 0..FAULTS.len() {
            let Some((_, run)) = by_fault.iter().find(|(f, r)| *f == i && r.mechanism == m) else {
                continue;
            };
            let r = &run.report;
            let _ = write!(
                faults,
                " {} lost, {} duplicated, {} reconnects, slowest {} |",
                r.lost,
                r.duplicated,
                r.reconnects,
                ms(r.latency_ms.max)
            );
        }
        faults.push('\n');
    }

    let mut commands = String::new();
    let _ = writeln!(
        commands,
        "pushpull compare {LESSON} --set workload.clients=1000          # a row of the table, every mechanism"
    );
    let _ = writeln!(
        commands,
        "pushpull compare {LESSON} --set workload.clients={LIMIT_CLIENTS} --set server.max_connections={LIMIT}"
    );
    for (label, overrides) in FAULTS {
        let sets: String = overrides
            .iter()
            .map(|o| format!(" --set {}", shell_quote(o)))
            .collect();
        let _ = writeln!(
            commands,
            "pushpull compare {LESSON} --set workload.clients=10{sets}   # {label}"
        );
    }

    let takeaways = takeaways(&by_size, &by_limit)?;
    Ok(vec![
        (dir.join("chart.svg"), chart),
        (dir.join("chart_command.txt"), chart_command),
        (dir.join("table.md"), table),
        (dir.join("ranking.md"), ranking),
        (dir.join("limit.md"), limit),
        (dir.join("faults.md"), faults),
        (dir.join("commands.txt"), commands),
        (dir.join("takeaways.md"), takeaways),
    ])
}

/// The study notes' "interview-ready takeaways", each with the measurement
/// that backs or corrects it.
fn takeaways(by_size: &[Run], by_limit: &[Run]) -> Result<String, String> {
    let get = |m: &str, n: u32| {
        by_size
            .iter()
            .find(|r| r.mechanism == m && r.clients == n)
            .ok_or_else(|| format!("choosing: no run of {m} at {n} clients"))
    };
    let limited = |m: &str| {
        by_limit
            .iter()
            .find(|r| r.mechanism == m)
            .ok_or_else(|| format!("choosing: no limited run of {m}"))
    };
    let big = 10_000;
    let (short, long, sse, ws) = (
        get("short_polling", big)?,
        get("long_polling", big)?,
        get("sse", big)?,
        get("websocket", big)?,
    );
    let hooks = get("webhooks", 1000)?;
    let sse_1k = get("sse", 1000)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "1. **\"Start with requirements: directionality, latency, scale, operational simplicity, \
         third-party integration.\"** The runs agree that these pull apart: at {} clients short \
         polling made {:.1} requests per client per minute and held at most {} connections, SSE \
         made {:.1} and held {}. Which cost matters depends on the requirement.\n",
        thousands(big as u64),
        short.row().requests_per_client_minute(),
        thousands(short.report.peak_connections),
        sse.row().requests_per_client_minute(),
        thousands(sse.report.peak_connections),
    );
    let _ = writeln!(
        out,
        "2. **\"Two-way, low-latency: WebSocket; server push only: SSE.\"** Backed: for push, SSE \
         delivered at {} median ({} at p99) against WebSocket's {} ({}), for {:.0} bytes per event \
         against {:.0}. WebSocket's advantage is the way up, which this feed does not use (the \
         WebSocket chapter's chat does).\n",
        ms(sse.report.latency_ms.p50),
        ms(sse.report.latency_ms.p99),
        ms(ws.report.latency_ms.p50),
        ms(ws.report.latency_ms.p99),
        sse.row().bytes_per_event().unwrap_or(0.0),
        ws.row().bytes_per_event().unwrap_or(0.0),
    );
    let _ = writeln!(
        out,
        "3. **\"For simple or low-volume needs, long polling is a pragmatic bridge.\"** Backed for \
         latency (median {}, the same one transit as a stream), corrected for cost: it held {} \
         requests at once at {} clients, as many connections as SSE ({}), and made {:.1} requests \
         per client per minute on top. It is plain HTTP, not a lighter load.\n",
        ms(long.report.latency_ms.p50),
        thousands(long.report.peak_held_requests),
        thousands(big as u64),
        thousands(sse.report.peak_connections),
        long.row().requests_per_client_minute(),
    );
    let _ = writeln!(
        out,
        "4. **\"For cross-system events, webhooks provide real-time without persistent \
         connections.\"** Backed: to 1,000 receivers the provider never had more than {} \
         connections open (SSE's server held {}), at a median of {}: a new connection, a signed \
         POST and its answer for every event.\n",
        thousands(hooks.report.peak_connections),
        thousands(sse_1k.report.peak_connections),
        ms(hooks.report.latency_ms.p50),
    );
    let (l_long, l_sse, l_ws, l_short) = (
        limited("long_polling")?,
        limited("sse")?,
        limited("websocket")?,
        limited("short_polling")?,
    );
    let _ = writeln!(
        out,
        "5. **\"Always plan capacity (connection limits, backpressure).\"** Measured: with {} \
         clients and a limit of {} connections, long polling left {} clients unserved, SSE {} and \
         WebSocket {}; short polling without keep-alive served {} of them through the same limit \
         (median {}).",
        thousands(LIMIT_CLIENTS as u64),
        thousands(LIMIT as u64),
        thousands(l_long.report.clients_unserved),
        thousands(l_sse.report.clients_unserved),
        thousands(l_ws.report.clients_unserved),
        thousands(l_short.report.clients as u64 - l_short.report.clients_unserved),
        ms(l_short.report.latency_ms.p50),
    );
    Ok(out)
}
