//! Running the catalogue: each figure, comparison, sweep and decode becomes
//! the files the chapters include.

use super::figures::*;
use crate::record::diagram;
use crate::record::report::comparison_table;
use crate::run::{self, RunOptions, sweep};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs one figure and returns its files, relative to the book's `src`.
pub fn render_figure(figure: &Figure) -> Result<Vec<(PathBuf, String)>, String> {
    let fail = |e: String| format!("figure {}: {e}", figure.name);
    let plan = crate::scenario::lessons::load(figure.lesson, &overrides_vec(figure.overrides))
        .map_err(fail)?;
    let outcome = run::run(
        &plan,
        RunOptions {
            trace_file: None,
            keep_records: true,
            wall_deadline: None,
            every_tick: false,
        },
    )
    .map_err(fail)?;
    // The same options as `pushpull run --diagram ... --window ...`, so the
    // command reproduces the picture byte for byte.
    let options = diagram::options_for(
        plan.scenario.mechanism.name(),
        plan.scenario.seed,
        figure.window,
        plan.end(),
    )
    .map_err(fail)?;
    let window = options.window;
    let svg = diagram::render(&outcome.records, &options);
    let mut excerpt = String::new();
    let in_window = |t: u64| window.is_none_or(|(from, to)| from.0 <= t && t <= to.0);
    for record in outcome
        .records
        .iter()
        .filter(|r| in_window(r.t_us))
        .take(TRACE_EXCERPT_LINES)
    {
        // The trace file's format: one compact JSON object a line.
        excerpt.push_str(&serde_json::to_string(record).expect("trace records serialize"));
        excerpt.push('\n');
    }

    let dir = Path::new(GENERATED_DIR).join(figure.name);
    Ok(vec![
        (dir.join("command.txt"), figure_command(figure) + "\n"),
        (dir.join("report.txt"), outcome.report.to_table()),
        (dir.join("report.json"), outcome.report.to_json() + "\n"),
        (dir.join("diagram.svg"), svg),
        (dir.join("trace.jsonl"), excerpt),
    ])
}

/// Every generated directory's name, figures first.
pub(super) fn all_names() -> impl Iterator<Item = &'static str> {
    FIGURES
        .iter()
        .map(|f| f.name)
        .chain(COMPARISONS.iter().map(|c| c.name))
        .chain(SWEEPS.iter().map(|s| s.name))
        .chain(DECODES.iter().map(|d| d.name))
}

/// Runs `sweep` once per value and tabulates what moved.
pub fn render_sweep(sweep: &Sweep) -> Result<Vec<(PathBuf, String)>, String> {
    let fail = |e: String| format!("sweep {}: {e}", sweep.name);
    let mut rows = vec![[
        sweep.param.to_string(),
        "requests".into(),
        "empty".into(),
        "mean delay ms".into(),
        "p50 ms".into(),
        "max ms".into(),
        "reconnects".into(),
        "lost".into(),
    ]];
    let mut chart_rows = Vec::new();
    for value in sweep.values {
        let mut overrides = overrides_vec(sweep.overrides);
        overrides.push(format!("{}={value}", sweep.param));
        let plan = crate::scenario::lessons::load(sweep.lesson, &overrides).map_err(fail)?;
        let outcome = run::run(&plan, RunOptions::default()).map_err(fail)?;
        chart_rows.push(sweep::Row {
            params: Default::default(),
            mechanism: plan.scenario.mechanism.name().to_string(),
            report: outcome.report.clone(),
            duration: plan.scenario.duration,
            raw: vec![value.to_string()],
        });
        let r = &outcome.report;
        let delays = crate::record::report::delivery_delays_ms(&outcome.records);
        let mean = if delays.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", delays.iter().sum::<f64>() / delays.len() as f64)
        };
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        rows.push([
            value.to_string(),
            r.requests.to_string(),
            r.empty_responses.to_string(),
            mean,
            ms(r.latency_ms.p50),
            ms(r.latency_ms.max),
            r.reconnects.to_string(),
            r.lost.to_string(),
        ]);
    }
    let table = sweep::aligned(&rows, 1);
    let dir = Path::new(GENERATED_DIR).join(sweep.name);
    let command = format!(
        "for v in {}; do pushpull run {}{} --set {}=$v; done\n",
        sweep.values.join(" "),
        shell_quote(sweep.lesson),
        set_args(sweep.overrides),
        sweep.param
    );
    // The same runs as `pushpull sweep` charts them (and the command that
    // draws this very chart).
    let vary = sweep::Vary {
        key: sweep.param.to_string(),
        values: sweep.values.iter().map(|v| v.to_string()).collect(),
    };
    let title = format!("pushpull sweep {}", sweep.lesson);
    let chart = sweep::chart(&title, std::slice::from_ref(&vary), &chart_rows);
    let chart_command = format!(
        "pushpull sweep {}{} --vary {} --chart chart.svg\n",
        shell_quote(sweep.lesson),
        set_args(sweep.overrides),
        shell_quote(&format!("{}={}", sweep.param, sweep.values.join(",")))
    );
    Ok(vec![
        (dir.join("command.txt"), command),
        (dir.join("sweep.txt"), table),
        (dir.join("chart.svg"), chart),
        (dir.join("chart_command.txt"), chart_command),
    ])
}

/// Decodes an example stream with the EventSource parser.
pub fn render_decode(decode: &Decode) -> Result<Vec<(PathBuf, String)>, String> {
    let path = book_dir().join("src").join(decode.input);
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "decode {}: cannot read {}: {e}",
            decode.name,
            path.display()
        )
    })?;
    let dir = Path::new(GENERATED_DIR).join(decode.name);
    let (command, raw, decoded) = match decode.format {
        DecodeAs::Sse => {
            // The raw bytes with every line end shown, one wire line per text line.
            let mut raw = String::new();
            for c in String::from_utf8_lossy(&bytes).chars() {
                match c {
                    '\r' => raw.push_str("\\r"),
                    '\n' => raw.push_str("\\n\n"),
                    '\u{FEFF}' => raw.push_str("<BOM>"),
                    c => raw.push(c),
                }
            }
            let decoded: Vec<String> = crate::wire::event_stream::decode_all(&bytes)
                .iter()
                .map(|o| serde_json::to_string(o).expect("outputs serialize"))
                .collect();
            ("pushpull decode sse".to_string(), raw, decoded)
        }
        DecodeAs::Ws { from_client } => {
            // A hex dump, 16 bytes a line, with the printable ones beside.
            let mut raw = String::new();
            for (i, line) in bytes.chunks(16).enumerate() {
                let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
                let text: String = line
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            b as char
                        } else {
                            '.'
                        }
                    })
                    .collect();
                raw.push_str(&format!("{:04x}  {:<47}  {text}\n", i * 16, hex.join(" ")));
            }
            let from = if from_client {
                crate::wire::websocket::Sender::Client
            } else {
                crate::wire::websocket::Sender::Server
            };
            let decoded: Vec<String> = crate::wire::websocket::decode_all(&bytes, from)
                .iter()
                .map(|o| serde_json::to_string(o).expect("outputs serialize"))
                .collect();
            let side = if from_client { "client" } else { "server" };
            (format!("pushpull decode ws --from {side}"), raw, decoded)
        }
    };
    let mut decoded_text = decoded.join("\n");
    decoded_text.push('\n');
    Ok(vec![
        (
            dir.join("command.txt"),
            format!("{command} book/src/{}\n", decode.input),
        ),
        (dir.join("raw.txt"), raw),
        (dir.join("decoded.jsonl"), decoded_text),
    ])
}

/// Runs one comparison and returns its files, relative to the book's `src`.
pub fn render_comparison(comparison: &Comparison) -> Result<Vec<(PathBuf, String)>, String> {
    let fail = |e: String| format!("comparison {}: {e}", comparison.name);
    let base =
        crate::scenario::lessons::load(comparison.lesson, &overrides_vec(comparison.overrides))
            .map_err(fail)?;
    let reports = run::compare(&base).map_err(fail)?;
    let dir = Path::new(GENERATED_DIR).join(comparison.name);
    Ok(vec![
        (
            dir.join("command.txt"),
            comparison_command(comparison) + "\n",
        ),
        (dir.join("compare.txt"), comparison_table(&reports)),
    ])
}

/// Runs `f` on every item, on as many threads as there are cores, and returns
/// the results in the items' order.
pub(super) fn parallel_map<I: Sync, O: Send>(items: &[I], f: impl Fn(&I) -> O + Sync) -> Vec<O> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<O>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            std::thread::Builder::new()
                // The simulated hosts' futures are deep; give them the main
                // thread's room.
                .stack_size(8 << 20)
                .spawn_scoped(scope, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= items.len() {
                            break;
                        }
                        let out = f(&items[i]);
                        results.lock().expect("no job panicked")[i] = Some(out);
                    }
                })
                .expect("a thread can be spawned");
        }
    });
    results
        .into_inner()
        .expect("no job panicked")
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect()
}

/// Runs every figure and comparison and returns every generated file (path
/// relative to the book's `src`, content), in a fixed order.
pub fn render_figures() -> Result<Vec<(PathBuf, String)>, String> {
    render_figures_with(true)
}

/// `render_figures`, leaving out the closing chapter's heavy runs (10,000
/// clients a mechanism) when `heavy` is false.
pub fn render_figures_with(heavy: bool) -> Result<Vec<(PathBuf, String)>, String> {
    let mut names = BTreeSet::new();
    for name in all_names() {
        let valid = !name.is_empty()
            && Path::new(name)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !valid {
            return Err(format!(
                "figure name {name:?}: use a relative path like \"lesson/what\""
            ));
        }
        if !names.insert(name) {
            return Err(format!("two figures are named {name:?}"));
        }
    }
    enum Job<'a> {
        Figure(&'a Figure),
        Comparison(&'a Comparison),
        Sweep(&'a Sweep),
        Decode(&'a Decode),
    }
    let jobs: Vec<Job> = FIGURES
        .iter()
        .map(Job::Figure)
        .chain(COMPARISONS.iter().map(Job::Comparison))
        .chain(SWEEPS.iter().map(Job::Sweep))
        .chain(DECODES.iter().map(Job::Decode))
        .collect();
    let results = parallel_map(&jobs, |job| match job {
        Job::Figure(f) => render_figure(f),
        Job::Comparison(c) => render_comparison(c),
        Job::Sweep(s) => render_sweep(s),
        Job::Decode(d) => render_decode(d),
    });
    let mut files = Vec::new();
    for r in results {
        files.extend(r?);
    }
    if heavy {
        files.extend(super::choosing::render()?);
    }
    // The playground's panels read each figure's parameters from here.
    files.push((
        Path::new(GENERATED_DIR).join("figures.js"),
        super::playground::figures_script()?,
    ));
    Ok(files)
}
