//! Building the book from fresh runs, serving it, and measuring the simulator.
//!
//! The book shows only outputs of real runs. Each [`Figure`] names a lesson and
//! the overrides of one run; `pushpull book` runs them all and writes what they
//! produced under `book/src/generated/<name>/`:
//!
//! | file | what it holds |
//! |---|---|
//! | `command.txt` | the `pushpull run ...` command line that reproduces the figure |
//! | `report.txt` | the report, as `pushpull run` prints it |
//! | `report.json` | the report, as `--format json` prints it |
//! | `diagram.svg` | the space-time diagram of the figure's window |
//! | `trace.jsonl` | the first lines of the trace within the window |
//!
//! A [`Comparison`] does the same for `pushpull compare` (`command.txt` and
//! `compare.txt`). Chapters include these files (`{{#include ...}}`, `![](...)`);
//! nobody writes them by hand. The generated files are committed, and a test
//! (`tests/book.rs`) fails when a fresh run would write something else, so the
//! book cannot drift from the code.

use crate::diagram::{self, DiagramOptions};
use crate::report::comparison_table;
use crate::scenario::Span;
use crate::sim::{self, RunOptions};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One run shown in the book.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// Where its files go: `book/src/generated/<name>/`.
    pub name: &'static str,
    /// The lesson it runs (a name from [`crate::lessons::LESSONS`]).
    pub lesson: &'static str,
    /// `--set` overrides, exactly as on the command line.
    pub overrides: &'static [&'static str],
    /// The stretch of simulated time the diagram and the trace excerpt show,
    /// e.g. `("25s", "45s")`; the whole run if `None`.
    pub window: Option<(&'static str, &'static str)>,
}

impl Figure {
    /// A figure of the whole run; add `.window(from, to)` to show a stretch.
    pub const fn new(
        name: &'static str,
        lesson: &'static str,
        overrides: &'static [&'static str],
    ) -> Figure {
        Figure {
            name,
            lesson,
            overrides,
            window: None,
        }
    }

    /// The same figure, showing only `from..to` of simulated time.
    pub const fn window(mut self, from: &'static str, to: &'static str) -> Figure {
        self.window = Some((from, to));
        self
    }
}

/// Every run the book shows. Adding a figure is adding a line here, then
/// `cargo run --release -- book`.
#[rustfmt::skip]
pub const FIGURES: &[Figure] = &[
    Figure::new("short_polling/default", "short_polling", &[]).window("25s", "40s"),
    Figure::new("short_polling/interval_1s", "short_polling", &["short_polling.interval=1s"]).window("27s", "33s"),
    Figure::new("short_polling/cut_off", "short_polling", &[r#"faults=[{cut="client-1",from="85s",to="105s"}]"#]).window("82s", "112s"),
    Figure::new("short_polling/crash", "short_polling", &[r#"faults=[{crash="server",at="86s",restart="96s"}]"#]).window("82s", "108s"),
    Figure::new("long_polling/default", "long_polling", &[]).window("0s", "100s"),
    Figure::new("long_polling/burst", "long_polling", &[r#"workload.events={at=["30s","30.01s","30.02s"]}"#, "workload.clients=1", "network.jitter=0ms"]).window("29.95s", "30.2s"),
    Figure::new("long_polling/proxy_cut", "long_polling", &["proxy.enabled=true", "proxy.idle_timeout=20s"]).window("0s", "70s"),
    Figure::new("sse/default", "sse", &[]).window("3s", "22s"),
    Figure::new("sse/resume", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s",reset=true}]"#]).window("58s", "80s"),
    Figure::new("sse/held_cut", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s",hold=true}]"#]).window("58s", "80s"),
    Figure::new("sse/silent_partition", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s"}]"#]).window("55s", "100s"),
    Figure::new("sse/heartbeat_timeout", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s"}]"#, "sse.client_heartbeat_timeout=20s"]).window("55s", "100s"),
    Figure::new("sse/retry_10s", "sse", &["sse.retry=10s", r#"faults=[{cut="client-1",from="60s",to="62s",reset=true}]"#]).window("58s", "75s"),
    Figure::new("sse/fail_500", "sse", &["sse.refuse_after=50s", r#"faults=[{cut="client-1",from="60s",to="61s",reset=true}]"#]).window("58s", "70s"),
    Figure::new("sse/buffering_proxy", "sse", &["proxy.enabled=true", "proxy.mode=\"buffer\"", "proxy.buffer_kib=1"]).window("0s", "60s"),
    Figure::new("sse/buffering_fixed", "sse", &["proxy.enabled=true", "proxy.mode=\"buffer\"", "proxy.buffer_kib=1", "sse.no_proxy_buffering=true"]).window("0s", "60s"),
    Figure::new("sse/streamed_answer", "sse", &[r#"workload.events={every="50ms",start="30s",count=40}"#, "workload.payload_bytes=16", "network.jitter=0ms", "workload.clients=1"]).window("29.9s", "32.2s"),
];

/// One `pushpull compare` shown in the book: the same scenario under every
/// mechanism, side by side.
#[derive(Clone, Copy, Debug)]
pub struct Comparison {
    /// Where its files go: `book/src/generated/<name>/`.
    pub name: &'static str,
    pub lesson: &'static str,
    pub overrides: &'static [&'static str],
}

/// Every comparison the book shows (one line each, like [`FIGURES`]).
#[rustfmt::skip]
pub const COMPARISONS: &[Comparison] = &[
    Comparison { name: "compare/notifications", lesson: "long_polling", overrides: &[] },
    Comparison { name: "compare/ticker", lesson: "sse", overrides: &[] },
    Comparison { name: "compare/streamed_answer", lesson: "sse", overrides: &[r#"workload.events={every="50ms",start="30s",count=40}"#, "workload.payload_bytes=16", "network.jitter=0ms", "short_polling.interval=1s"] },
    Comparison { name: "compare/dashboard_100", lesson: "short_polling", overrides: &["workload.clients=100", "workload.client_hosts=5", "duration=5m", "short_polling.interval=60s", "workload.events={every=\"10s\", start=\"10s\"}"] },
];

/// One parameter swept over several values on the same lesson, one row per
/// value (`sweep.txt`): how a number moves when a knob turns.
#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    pub name: &'static str,
    pub lesson: &'static str,
    pub overrides: &'static [&'static str],
    /// The parameter's path, as for `--set`.
    pub param: &'static str,
    pub values: &'static [&'static str],
}

/// Every sweep the book shows.
#[rustfmt::skip]
pub const SWEEPS: &[Sweep] = &[
    Sweep { name: "short_polling/interval_sweep", lesson: "short_polling", overrides: &["workload.events={rate=0.2, start=\"10s\"}", "workload.clients=10", "network.jitter=0ms"], param: "short_polling.interval", values: &["1s", "2s", "5s", "10s", "30s"] },
    Sweep { name: "long_polling/hold_vs_proxy", lesson: "long_polling", overrides: &["proxy.enabled=true", "proxy.idle_timeout=20s", "long_polling.client_timeout=65s"], param: "long_polling.hold", values: &["10s", "15s", "19s", "25s", "60s"] },
];

/// A raw `text/event-stream` file (under `book/src/`) decoded as EventSource
/// would: `raw.txt` shows its bytes with line ends visible, `decoded.jsonl`
/// what `pushpull decode sse` prints for it.
#[derive(Clone, Copy, Debug)]
pub struct Decode {
    pub name: &'static str,
    pub input: &'static str,
}

#[rustfmt::skip]
pub const DECODES: &[Decode] = &[
    Decode { name: "sse/decode_ticker", input: "examples/ticker.stream" },
];

/// How many trace lines `trace.jsonl` keeps.
pub const TRACE_EXCERPT_LINES: usize = 12;

/// The directory generated files go to, relative to the book's `src`.
pub const GENERATED_DIR: &str = "generated";

/// The book's root (holding `book.toml`), in the source tree this binary was
/// built from.
pub fn book_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book")
}

/// Quotes `word` for a POSIX shell: bare if it is made of safe characters,
/// in single quotes otherwise.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn set_args(overrides: &[&str]) -> String {
    overrides
        .iter()
        .map(|o| format!(" --set {}", shell_quote(o)))
        .collect()
}

/// The command line that reproduces `figure`: its report on standard output,
/// its diagram in `diagram.svg`.
pub fn figure_command(figure: &Figure) -> String {
    let mut cmd = format!(
        "pushpull run {}{} --diagram diagram.svg",
        shell_quote(figure.lesson),
        set_args(figure.overrides)
    );
    if let Some((from, to)) = figure.window {
        cmd.push_str(&format!(
            " --window {}",
            shell_quote(&format!("{from}..{to}"))
        ));
    }
    cmd
}

/// The command line that reproduces `comparison`.
pub fn comparison_command(comparison: &Comparison) -> String {
    format!(
        "pushpull compare {}{}",
        shell_quote(comparison.lesson),
        set_args(comparison.overrides)
    )
}

fn overrides_vec(overrides: &[&str]) -> Vec<String> {
    overrides.iter().map(|s| s.to_string()).collect()
}

fn parse_window(window: (&str, &str)) -> Result<(Span, Span), String> {
    let from = Span::parse(window.0)?;
    let to = Span::parse(window.1)?;
    if to <= from {
        return Err(format!(
            "window {}..{}: the end must be after the start",
            window.0, window.1
        ));
    }
    Ok((from, to))
}

/// Runs one figure and returns its files, relative to the book's `src`.
pub fn render_figure(figure: &Figure) -> Result<Vec<(PathBuf, String)>, String> {
    let fail = |e: String| format!("figure {}: {e}", figure.name);
    let window = figure.window.map(parse_window).transpose().map_err(fail)?;
    let scenario =
        crate::lessons::load(figure.lesson, &overrides_vec(figure.overrides)).map_err(fail)?;
    let outcome = sim::run(
        &scenario,
        RunOptions {
            trace_file: None,
            keep_records: true,
        },
    )
    .map_err(fail)?;

    // The same title as `pushpull run --diagram`, so the command reproduces
    // the picture byte for byte.
    let svg = diagram::render(
        &outcome.records,
        &DiagramOptions {
            window,
            title: format!("{} (seed {})", scenario.mechanism.name(), scenario.seed),
        },
    );
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

/// Runs one comparison and returns its files, relative to the book's `src`.
/// Every generated directory's name, figures first.
fn all_names() -> impl Iterator<Item = &'static str> {
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
    for value in sweep.values {
        let mut overrides = overrides_vec(sweep.overrides);
        overrides.push(format!("{}={value}", sweep.param));
        let scenario = crate::lessons::load(sweep.lesson, &overrides).map_err(fail)?;
        let outcome = sim::run(&scenario, RunOptions::default()).map_err(fail)?;
        let r = &outcome.report;
        let delays = crate::report::delivery_delays_ms(&outcome.records);
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
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut table = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    let dir = Path::new(GENERATED_DIR).join(sweep.name);
    let command = format!(
        "for v in {}; do pushpull run {}{} --set {}=$v; done\n",
        sweep.values.join(" "),
        shell_quote(sweep.lesson),
        set_args(sweep.overrides),
        sweep.param
    );
    Ok(vec![
        (dir.join("command.txt"), command),
        (dir.join("sweep.txt"), table),
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
    let mut decoded = String::new();
    for output in crate::event_stream::decode_all(&bytes) {
        decoded.push_str(&serde_json::to_string(&output).expect("outputs serialize"));
        decoded.push('\n');
    }
    let dir = Path::new(GENERATED_DIR).join(decode.name);
    Ok(vec![
        (
            dir.join("command.txt"),
            format!("pushpull decode sse book/src/{}\n", decode.input),
        ),
        (dir.join("raw.txt"), raw),
        (dir.join("decoded.jsonl"), decoded),
    ])
}

pub fn render_comparison(comparison: &Comparison) -> Result<Vec<(PathBuf, String)>, String> {
    let fail = |e: String| format!("comparison {}: {e}", comparison.name);
    let base = crate::lessons::load(comparison.lesson, &overrides_vec(comparison.overrides))
        .map_err(fail)?;
    let reports = sim::compare(&base).map_err(fail)?;
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
fn parallel_map<I: Sync, O: Send>(items: &[I], f: impl Fn(&I) -> O + Sync) -> Vec<O> {
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
    Ok(files)
}

/// Every file under `dir`, as paths relative to `base`, sorted.
fn list_files(dir: &Path, base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            out.extend(list_files(&path, base)?);
        } else {
            out.push(path.strip_prefix(base).expect("under base").to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the empty directories under `dir` (not `dir` itself).
fn remove_empty_dirs(dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_empty_dirs(&path)?;
            if std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
                std::fs::remove_dir(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn source_dir(book_dir: &Path) -> PathBuf {
    book_dir.join("src")
}

/// Writes the generated files under `book_dir/src/generated` (leaving those
/// already up to date untouched) and deletes the ones no figure produces.
pub fn write_generated(book_dir: &Path) -> Result<(), String> {
    let src = source_dir(book_dir);
    let files = render_figures()?;
    let wanted: BTreeSet<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    for old in list_files(&src.join(GENERATED_DIR), &src)? {
        if !wanted.contains(old.as_path()) {
            let path = src.join(&old);
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    remove_empty_dirs(&src.join(GENERATED_DIR))?;
    for (rel, content) in &files {
        let path = src.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// What is out of date under `book_dir/src/generated`, one line per file:
/// `differs: path`, `missing: path` or `extra: path` (paths relative to the
/// book's `src`). Empty when the committed files are what fresh runs produce.
pub fn stale_generated(book_dir: &Path) -> Result<Vec<String>, String> {
    if !sim::DETERMINISTIC {
        return Err(
            "built without --cfg tokio_unstable: runs are not reproducible, so the \
                    generated files cannot be checked"
                .into(),
        );
    }
    let src = source_dir(book_dir);
    let files = render_figures()?;
    let mut stale = Vec::new();
    let mut wanted = BTreeSet::new();
    for (rel, content) in &files {
        wanted.insert(rel.clone());
        match std::fs::read(src.join(rel)) {
            Ok(old) if old == content.as_bytes() => {}
            Ok(_) => stale.push(format!("differs: {}", rel.display())),
            Err(_) => stale.push(format!("missing: {}", rel.display())),
        }
    }
    for old in list_files(&src.join(GENERATED_DIR), &src)? {
        if !wanted.contains(&old) {
            stale.push(format!("extra: {}", old.display()));
        }
    }
    Ok(stale)
}

/// Builds the book at `book_dir` with mdBook, into `build_dir` if given (the
/// `build-dir` of `book.toml` otherwise), and returns the output directory.
pub fn build_book(book_dir: &Path, build_dir: Option<&Path>) -> Result<PathBuf, String> {
    let mut book = mdbook_driver::MDBook::load(book_dir)
        .map_err(|e| format!("cannot load the book at {}: {e:#}", book_dir.display()))?;
    if let Some(dir) = build_dir {
        book.config.build.build_dir = dir.to_path_buf();
    }
    book.build()
        .map_err(|e| format!("cannot build the book: {e:#}"))?;
    Ok(book.build_dir_for("html"))
}

/// Figures that no chapter mentions (by their `generated/<name>/` directory).
fn unused_figures(book_dir: &Path) -> Vec<&'static str> {
    let src = source_dir(book_dir);
    let mut text = String::new();
    for rel in list_files(&src, &src).unwrap_or_default() {
        if rel.extension().is_some_and(|e| e == "md") && !rel.starts_with(GENERATED_DIR) {
            text.push_str(&std::fs::read_to_string(src.join(rel)).unwrap_or_default());
        }
    }
    all_names()
        .filter(|name| !text.contains(&format!("{GENERATED_DIR}/{name}/")))
        .collect()
}

/// `pushpull book [--serve] [--port N]`.
pub fn command(serve: bool, port: u16) -> Result<(), String> {
    let book = book_dir();
    if !book.join("book.toml").is_file() {
        return Err(format!(
            "no book at {}: run `pushpull book` from the source tree it was built from",
            book.display()
        ));
    }
    if !sim::DETERMINISTIC {
        eprintln!(
            "warning: built without --cfg tokio_unstable: the figures may differ from run to run"
        );
    }
    let started = Instant::now();
    eprintln!(
        "running {} figures, {} comparisons and {} sweeps...",
        FIGURES.len(),
        COMPARISONS.len(),
        SWEEPS.len()
    );
    write_generated(&book)?;
    for name in unused_figures(&book) {
        eprintln!("note: no chapter uses the figure {name} ({GENERATED_DIR}/{name}/)");
    }
    let out = build_book(&book, None)?;
    println!(
        "built the book in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        out.join("index.html").display()
    );
    if serve {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?
            .port();
        println!("serving the book at http://127.0.0.1:{port}/ (Ctrl-C to stop)");
        serve_dir(&out, listener);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A tiny static file server: enough to read the book in a browser.

/// Serves the files under `root` on `listener`, forever: one thread and one
/// request per connection.
pub fn serve_dir(root: &Path, listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let _ = handle_connection(&root, stream);
        });
    }
}

fn handle_connection(root: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(16 * 1024));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers: nothing in them changes the answer.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let response = respond(root, &request_line);
    let location = response
        .location
        .as_deref()
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// An HTTP response of the static file server.
#[derive(Debug)]
pub struct Response {
    /// Status code and reason, e.g. `200 OK`.
    pub status: &'static str,
    pub content_type: &'static str,
    /// Where a redirect points.
    pub location: Option<String>,
    pub body: Vec<u8>,
}

fn text_response(status: &'static str, text: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        location: None,
        body: format!("{text}\n").into_bytes(),
    }
}

/// The content type of a file, from its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "json" => "application/json",
        "txt" | "md" | "jsonl" | "toml" => "text/plain; charset=utf-8",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The answer to one request line (`GET /path HTTP/1.1`) for the files
/// under `root`.
pub fn respond(root: &Path, request_line: &str) -> Response {
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return text_response("400 Bad Request", "bad request");
    };
    if method != "GET" {
        return text_response("405 Method Not Allowed", "only GET is supported");
    }
    let raw_path = target.split(['?', '#']).next().unwrap_or("");
    let Some(path) = percent_decode(raw_path) else {
        return text_response("400 Bad Request", "bad path");
    };
    if !path.starts_with('/') {
        return text_response("400 Bad Request", "bad path");
    }
    let mut file = root.to_path_buf();
    for segment in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." || segment.contains(['\\', '\0']) || segment.contains(':') {
            return text_response("403 Forbidden", "forbidden");
        }
        file.push(segment);
    }
    if file.is_dir() {
        if !path.ends_with('/') {
            // Relative links in the index must resolve inside the directory.
            let mut moved = text_response("301 Moved Permanently", "moved");
            moved.location = Some(format!("{raw_path}/"));
            return moved;
        }
        file.push("index.html");
    }
    match std::fs::read(&file) {
        Ok(body) => Response {
            status: "200 OK",
            content_type: content_type(&file),
            location: None,
            body,
        },
        Err(_) => match std::fs::read(root.join("404.html")) {
            Ok(body) => Response {
                status: "404 Not Found",
                content_type: "text/html; charset=utf-8",
                location: None,
                body,
            },
            Err(_) => text_response("404 Not Found", "not found"),
        },
    }
}

// ---------------------------------------------------------------------------
// `pushpull bench`: how fast the simulator runs.

/// One benchmark run: a lesson and overrides.
struct BenchCase {
    label: &'static str,
    lesson: &'static str,
    overrides: &'static [&'static str],
}

const BENCH_CASES: &[BenchCase] = &[
    BenchCase {
        label: "short_polling lesson, default",
        lesson: "short_polling",
        overrides: &[],
    },
    BenchCase {
        label: "1000 clients polling every 1s, 10m",
        lesson: "short_polling",
        overrides: &[
            "workload.clients=1000",
            "short_polling.interval=1s",
            "duration=10m",
            "drain=0s",
        ],
    },
    // The same clients on 10 hosts instead of the default 4: turmoil visits
    // every host every tick, so hosts cost time even when idle.
    BenchCase {
        label: "  same, on 10 client hosts",
        lesson: "short_polling",
        overrides: &[
            "workload.clients=1000",
            "short_polling.interval=1s",
            "duration=10m",
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

fn format_mib(kb: Option<u64>) -> String {
    kb.map(|kb| format!("{:.1} MiB", kb as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".to_string())
}

/// `pushpull bench`: runs each case once and prints wall time, speed-up over
/// real time and peak memory, with the machine it ran on.
pub fn bench() -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("machine: {cores} cores, {}", cpu_model());
    println!(
        "build:   {build}{}",
        if sim::DETERMINISTIC {
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
    for case in BENCH_CASES {
        let scenario = crate::lessons::load(case.lesson, &overrides_vec(case.overrides))?;
        let simulated = Span(scenario.duration.0 + scenario.drain.0);
        eprintln!("running: {} ({simulated} simulated)...", case.label);
        peak_was_reset &= reset_peak_rss();
        let started = Instant::now();
        let outcome = sim::run(
            &scenario,
            RunOptions {
                trace_file: None,
                keep_records: false,
            },
        )?;
        let wall = started.elapsed().as_secs_f64();
        let peak = proc_status_kb("VmHWM");
        rows.push(vec![
            case.label.to_string(),
            scenario.workload.clients.to_string(),
            format!("{:.0} s", simulated.as_millis_f64() / 1000.0),
            format!("{wall:.2} s"),
            format!(
                "{:.0}x",
                simulated.as_millis_f64() / 1000.0 / wall.max(1e-9)
            ),
            outcome.report.requests.to_string(),
            format_mib(peak),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_quote("short_polling.interval=1s"),
            "short_polling.interval=1s"
        );
        assert_eq!(
            shell_quote(r#"faults=[{cut="client-1",from="60s",to="80s"}]"#),
            r#"'faults=[{cut="client-1",from="60s",to="80s"}]'"#
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn figure_commands() {
        let f = Figure::new("x", "short_polling", &["a=1", "b=[2]"]).window("25s", "45s");
        assert_eq!(
            figure_command(&f),
            "pushpull run short_polling --set a=1 --set 'b=[2]' --diagram diagram.svg --window 25s..45s"
        );
    }

    fn temp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pushpull-book-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.join("sub/a b.svg"), "<svg/>").unwrap();
        std::fs::write(dir.join("sub/index.html"), "sub").unwrap();
        dir
    }

    #[test]
    fn static_files() {
        let root = temp_root("respond");
        let r = respond(&root, "GET / HTTP/1.1\r\n");
        assert_eq!(
            (r.status, r.content_type),
            ("200 OK", "text/html; charset=utf-8")
        );
        assert_eq!(r.body, b"<h1>hi</h1>");
        let r = respond(&root, "GET /sub/a%20b.svg?x=1 HTTP/1.1");
        assert_eq!((r.status, r.content_type), ("200 OK", "image/svg+xml"));
        let r = respond(&root, "GET /sub HTTP/1.1");
        assert_eq!(r.status, "301 Moved Permanently");
        assert_eq!(r.location.as_deref(), Some("/sub/"));
        assert_eq!(respond(&root, "GET /sub/ HTTP/1.1").body, b"sub");
        assert_eq!(
            respond(&root, "GET /nope.html HTTP/1.1").status,
            "404 Not Found"
        );
        assert_eq!(
            respond(&root, "GET /../etc/passwd HTTP/1.1").status,
            "403 Forbidden"
        );
        assert_eq!(
            respond(&root, "GET /sub/%2e%2e/%2e%2e/x HTTP/1.1").status,
            "403 Forbidden"
        );
        assert_eq!(
            respond(&root, "POST / HTTP/1.1").status,
            "405 Method Not Allowed"
        );
        assert_eq!(respond(&root, "GET").status, "400 Bad Request");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn serves_over_tcp() {
        let root = temp_root("serve");
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = root.clone();
        std::thread::spawn(move || serve_dir(&served, listener));
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Content-Length: 11\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n<h1>hi</h1>"), "{answer}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
