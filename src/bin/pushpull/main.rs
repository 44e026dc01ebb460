//! The `pushpull` command: run a lesson, compare mechanisms, build the book.
//!
//! ```text
//! pushpull run short_polling --set short_polling.interval=1s --diagram run.svg
//! pushpull lessons
//! pushpull book --serve
//! pushpull live --port 8000
//! ```

mod bench;
mod client;
mod decode;
mod live;
mod relay;
mod webhook;

/// mimalloc instead of the system's allocator: a run allocates and frees
/// small buffers for every message (turmoil's segments, HTTP heads, trace
/// records), and glibc's malloc was a fifth of a busy run's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand, ValueEnum};
use pushpull::record::diagram;
use pushpull::record::report::{Report, comparison_table};
use pushpull::run::{self, RunOptions};
use pushpull::scenario::lessons;
use std::net::TcpListener;
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
        /// Step every host through every tick instead of skipping stretches
        /// in which nothing can happen: slower, and the same trace.
        #[arg(long)]
        every_tick: bool,
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
        /// With `http`: the bytes are responses (a server's side), not requests.
        #[arg(long)]
        response: bool,
        /// With `ws`: which side sent the bytes (a client's frames must be
        /// masked, a server's must not).
        #[arg(long, value_enum)]
        from: Option<WsSender>,
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
    Bench {
        /// `json`: one array of `{"name","clients","simulated_s","wall_s","peak_rss_mib"}`.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Run only the cases whose name contains this, e.g. `--only 10000`.
        #[arg(long)]
        only: Option<String>,
    },
    /// Run a scenario for every combination of some parameters' values
    /// (and mechanisms), each a real run: a table, CSV, JSON or a chart.
    Sweep {
        /// A lesson name or a path to a .toml scenario.
        scenario: String,
        /// A parameter and its values: `--vary workload.clients=10,100,1000`
        /// (repeatable: every combination runs).
        #[arg(long = "vary", value_name = "KEY=V1,V2,...", required = true)]
        varies: Vec<String>,
        /// `all`, or mechanisms separated by commas (the scenario's own if
        /// omitted).
        #[arg(long, value_name = "all|m1,m2")]
        mechanisms: Option<String>,
        /// Override a parameter for every run (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, value_enum, default_value_t = SweepFormat::Table)]
        format: SweepFormat,
        /// Also draw the sweep as SVG line charts (x: the first --vary).
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
    },
    /// Run a mechanism's client against a real server and print what
    /// happens, one JSON object a line: `client sse URL`, `client ws URL`.
    Client {
        #[command(subcommand)]
        kind: client::Kind,
    },
    /// Standard Webhooks signatures: sign a payload, or verify a delivery.
    Webhook {
        #[command(subcommand)]
        action: webhook::Action,
    },
    /// Serve every mechanism on a real port for a real browser: the
    /// simulation's server code on real sockets, a page per mechanism (/),
    /// `curl -N http://127.0.0.1:8000/events`, the WebSocket chat (/chat)
    /// and echo (/echo), and the scenario's latency and cuts applied.
    Live {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Another origin whose pages may open /chat, e.g.
        /// `http://192.168.1.5:8000` when bound to 0.0.0.0 (repeatable; the
        /// server's own address is always allowed).
        #[arg(long = "origin", value_name = "URL")]
        origins: Vec<String>,
        /// Override a parameter of the live server's scenario (the `sse`
        /// lesson's): `--set network.latency=300ms`, `--set
        /// long_polling.hold=10s` (repeatable).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
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
    /// HTTP/1.1 messages, possibly several pipelined, as a server reads
    /// them (`--response`: as a client reads answers): one JSON object per
    /// message, `{"error":..,"status":..}` for bytes a server would refuse,
    /// `{"incomplete":true}` when the input ends mid-message.
    Http,
    /// WebSocket frames (RFC 6455) as one side sent them: one object per
    /// frame (`{"fin","rsv","opcode","masked","mask","length","payload"}`),
    /// one per whole message (`{"message":"text","data":..}`), one per close
    /// (`{"close_code":..,"reason":..}`), and `{"error":..,"close_code":..}`
    /// at the first violation.
    Ws,
}

#[derive(Clone, Copy, ValueEnum)]
enum WsSender {
    Client,
    Server,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum SweepFormat {
    Table,
    Json,
    Csv,
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
    let outcome = match cli.command {
        // A refused delivery is an answer, not a failure: exit 1, not 2.
        Command::Webhook { action } => webhook::run(action),
        command => execute(command).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn warn_if_not_deterministic() {
    if !run::DETERMINISTIC {
        eprintln!(
            "warning: built without --cfg tokio_unstable: runs with the same seed may differ \
             (build from the repository, whose .cargo/config.toml sets it)"
        );
    }
}

fn execute(command: Command) -> Result<(), String> {
    match command {
        Command::Run {
            scenario,
            params,
            trace,
            diagram: diagram_path,
            window,
            every_tick,
        } => {
            warn_if_not_deterministic();
            let plan = lessons::load(&scenario, &params.overrides())?;
            print_warnings(&plan);
            let diagram_options = diagram::options_for(
                plan.scenario.mechanism.name(),
                plan.scenario.seed,
                window.as_deref(),
                plan.end(),
            )?;
            let trace_file: Option<Box<dyn std::io::Write>> = match &trace {
                Some(path) => Some(Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
                ))),
                None => None,
            };
            let outcome = run::run(
                &plan,
                RunOptions {
                    trace_file,
                    keep_records: diagram_path.is_some(),
                    wall_deadline: None,
                    every_tick,
                },
            )?;
            if let Some(path) = diagram_path {
                let svg = diagram::render(&outcome.records, &diagram_options);
                std::fs::write(&path, svg)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            print_report(&outcome.report, params.format);
            Ok(())
        }
        Command::Compare { scenario, params } => {
            warn_if_not_deterministic();
            let plan = lessons::load(&scenario, &params.overrides())?;
            print_warnings(&plan);
            let reports = run::compare(&plan)?;
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
            for (name, _) in lessons::LESSONS {
                let plan = lessons::load(name, &[])?;
                println!("{name:<16} {}", plan.scenario.description);
            }
            Ok(())
        }
        Command::Decode {
            format,
            response,
            from,
            file,
        } => match format {
            _ if response && !matches!(format, DecodeFormat::Http) => {
                Err("--response goes with `decode http`".into())
            }
            _ if from.is_some() && !matches!(format, DecodeFormat::Ws) => {
                Err("--from goes with `decode ws`".into())
            }
            DecodeFormat::Sse => decode::sse(file),
            DecodeFormat::Http => decode::http(file, response),
            DecodeFormat::Ws => decode::ws(
                file,
                match from {
                    Some(WsSender::Server) => pushpull::wire::websocket::Sender::Server,
                    _ => pushpull::wire::websocket::Sender::Client,
                },
            ),
        },
        Command::Book { serve, port } => {
            let built = pushpull::book::build()?;
            if serve {
                let listener = TcpListener::bind(("127.0.0.1", port))
                    .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
                let port = listener
                    .local_addr()
                    .map_err(|e| format!("cannot read the listening address: {e}"))?
                    .port();
                println!("serving the book at http://127.0.0.1:{port}/ (Ctrl-C to stop)");
                pushpull::book::serve::serve_dir(&built, listener);
            }
            Ok(())
        }
        Command::Bench { format, only } => {
            bench::bench(matches!(format, Format::Json), only.as_deref())
        }
        Command::Sweep {
            scenario,
            varies,
            mechanisms,
            mut set,
            seed,
            format,
            chart,
        } => {
            warn_if_not_deterministic();
            use pushpull::run::sweep;
            let varies = varies
                .iter()
                .map(|v| sweep::Vary::parse(v))
                .collect::<Result<Vec<_>, _>>()?;
            let mechanisms = match mechanisms {
                Some(m) => sweep::parse_mechanisms(&m)?,
                None => Vec::new(),
            };
            if let Some(seed) = seed {
                set.push(format!("seed={seed}"));
            }
            let progress = progress_bar();
            let rows = sweep::sweep(&scenario, &set, &varies, &mechanisms, |done, total| {
                if let Some(bar) = &progress {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                }
            })?;
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
            if let Some(path) = chart {
                let title = format!("pushpull sweep {scenario}");
                std::fs::write(&path, sweep::chart(&title, &varies, &rows))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            match format {
                SweepFormat::Table => print!("{}", sweep::table(&varies, &rows)),
                SweepFormat::Csv => print!("{}", sweep::csv(&varies, &rows)),
                SweepFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("rows serialize")
                ),
            }
            Ok(())
        }
        Command::Client { kind } => client::run(kind),
        Command::Webhook { .. } => unreachable!("handled in main"),
        Command::Live {
            port,
            bind,
            origins,
            set,
        } => live::live(&bind, port, origins, &set),
    }
}

/// A progress bar on standard error, when it is a terminal.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} (eta {eta})")
            .expect("a valid template"),
    );
    Some(bar)
}

/// A misconfiguration a real deployment could have is run, not refused:
/// one line each on standard error says what it will do.
fn print_warnings(plan: &pushpull::scenario::Plan) {
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
}

fn print_report(report: &Report, format: Format) {
    match format {
        Format::Table => print!("{}", report.to_table()),
        Format::Json => println!("{}", report.to_json()),
    }
}
