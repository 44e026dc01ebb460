//! The `pushpull` command: run a lesson, compare mechanisms, build the book.
//!
//! ```text
//! pushpull run short_polling --set short_polling.interval=1s --diagram run.svg
//! pushpull lessons
//! pushpull book --serve
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use pushpull::diagram::{self, DiagramOptions};
use pushpull::report::{Report, comparison_table};
use pushpull::scenario::Span;
use pushpull::sim::{self, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pushpull",
    version,
    about = "See short polling, long polling, SSE, WebSocket and webhooks happen on a simulated network",
    long_about = "pushpull runs a server and its clients on a deterministic simulated network and \
reports what crossed it: requests, empty answers, delivery latency, bytes, connections. \
The same scenario and seed always give the same run.\n\n\
Start with:  pushpull lessons   then   pushpull run short_polling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a lesson (by name) or a scenario file and print its report.
    Run {
        /// A lesson name (see `pushpull lessons`) or a path to a .toml scenario.
        scenario: String,
        #[command(flatten)]
        params: Params,
        /// Write the full trace as JSON lines to this file.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Draw the space-time diagram of the run to this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        diagram: Option<PathBuf>,
        /// Draw only this window of simulated time, e.g. `25s..45s`.
        #[arg(long, value_name = "FROM..TO", requires = "diagram")]
        window: Option<String>,
    },
    /// Run one scenario under every mechanism and print them side by side.
    Compare {
        /// A lesson name or a path to a .toml scenario.
        scenario: String,
        #[command(flatten)]
        params: Params,
    },
    /// List the lessons, one line each.
    Lessons,
    /// Decode raw wire bytes the way a browser would (e.g. a stream copied
    /// from the network tab), one JSON object per line.
    Decode {
        #[arg(value_enum)]
        format: DecodeFormat,
        /// The bytes to decode; standard input if omitted.
        file: Option<PathBuf>,
    },
    /// Build the book (from fresh runs) into book/build; --serve to read it.
    Book {
        /// Serve the built book on 127.0.0.1 and print the address.
        #[arg(long)]
        serve: bool,
        /// Port for --serve (0 picks a free one).
        #[arg(long, default_value_t = 3000)]
        port: u16,
    },
    /// Measure how fast the simulator runs (wall time vs simulated time).
    Bench,
}

#[derive(clap::Args)]
struct Params {
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override a parameter: `--set network.latency=80ms` (repeatable).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum DecodeFormat {
    /// A `text/event-stream` body, as EventSource interprets it: prints
    /// `{"type":..,"data":..,"last_event_id":..}` per dispatched event and
    /// `{"retry":N}` when a `retry` field sets the reconnection time.
    Sse,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

impl Params {
    fn overrides(&self) -> Vec<String> {
        let mut all = self.set.clone();
        if let Some(seed) = self.seed {
            all.push(format!("seed={seed}"));
        }
        all
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn warn_if_not_deterministic() {
    if !sim::DETERMINISTIC {
        eprintln!(
            "warning: built without --cfg tokio_unstable: runs with the same seed may differ \
             (build from the repository, whose .cargo/config.toml sets it)"
        );
    }
}

fn parse_window(text: &str) -> Result<(Span, Span), String> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| format!("--window {text:?}: write it as FROM..TO, like 25s..45s"))?;
    let from = Span::parse(from).map_err(|e| format!("--window: {e}"))?;
    let to = Span::parse(to).map_err(|e| format!("--window: {e}"))?;
    if to <= from {
        return Err(format!("--window {text:?}: TO must be after FROM"));
    }
    Ok((from, to))
}

fn execute(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run {
            scenario,
            params,
            trace,
            diagram: diagram_path,
            window,
        } => {
            warn_if_not_deterministic();
            let window = window.as_deref().map(parse_window).transpose()?;
            let scenario = pushpull::lessons::load(&scenario, &params.overrides())?;
            let trace_file: Option<Box<dyn std::io::Write>> = match &trace {
                Some(path) => Some(Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
                ))),
                None => None,
            };
            let outcome = sim::run(
                &scenario,
                RunOptions {
                    trace_file,
                    keep_records: diagram_path.is_some(),
                },
            )?;
            if let Some(path) = diagram_path {
                let svg = diagram::render(
                    &outcome.records,
                    &DiagramOptions {
                        window,
                        title: format!("{} (seed {})", scenario.mechanism.name(), scenario.seed),
                    },
                );
                std::fs::write(&path, svg)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            print_report(&outcome.report, params.format);
            Ok(())
        }
        Command::Compare { scenario, params } => {
            warn_if_not_deterministic();
            let base = pushpull::lessons::load(&scenario, &params.overrides())?;
            let reports = sim::compare(&base)?;
            match params.format {
                Format::Table => print!("{}", comparison_table(&reports)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&reports).expect("reports serialize")
                ),
            }
            Ok(())
        }
        Command::Lessons => {
            for (name, text) in pushpull::lessons::LESSONS {
                let s = pushpull::scenario::Scenario::from_toml(text, &[])
                    .map_err(|e| format!("lesson {name}: {e}"))?;
                println!("{name:<16} {}", s.description);
            }
            Ok(())
        }
        Command::Decode { format, file } => match format {
            DecodeFormat::Sse => decode_sse(file),
        },
        Command::Book { serve, port } => pushpull::book::command(serve, port),
        Command::Bench => pushpull::book::bench(),
    }
}

/// Reads the stream in chunks and prints events as they complete, so a live
/// stream piped in shows its events as they arrive.
fn decode_sse(file: Option<PathBuf>) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut input: Box<dyn Read> = match &file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut parser = pushpull::event_stream::Parser::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = input
            .read(&mut chunk)
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            break;
        }
        for output in parser.feed(&chunk[..n]) {
            let line = serde_json::to_string(&output).expect("outputs serialize");
            writeln!(out, "{line}").map_err(|e| format!("write failed: {e}"))?;
        }
        out.flush().map_err(|e| format!("write failed: {e}"))?;
    }
    // A last event without its blank line is dropped, as EventSource does.
    parser.end_of_stream();
    Ok(())
}

fn print_report(report: &Report, format: Format) {
    match format {
        Format::Table => print!("{}", report.to_table()),
        Format::Json => println!("{}", report.to_json()),
    }
}
