//! The book's playground: what `POST /api/run` does for the "Try it" panel
//! under each figure, and what a script may ask for the same way.
//!
//! ```text
//! POST /api/run HTTP/1.1
//! Content-Type: application/json
//!
//! {"scenario":"short_polling","set":["short_polling.interval=1s"],"seed":3,"window":"25s..45s"}
//! ```
//! answers `200` with the run's report (the object `pushpull run --format
//! json` prints), its space-time diagram and the command line that
//! reproduces both in a terminal:
//! ```text
//! {"report":{"mechanism":"short_polling",...},"svg":"<svg ...","command":"pushpull run short_polling --set short_polling.interval=1s --seed 3 --diagram run.svg --window 25s..45s","table":"...","warnings":[]}
//! ```
//! or `400` with `{"error":"<the CLI's one-line message>"}`. The run is the
//! CLI's own ([`crate::run::run`] on [`lessons::load`]'s plan), so its
//! `trace_hash` is the CLI's for the same parameters.
//!
//! Runs are bounded so that no page can hang the server: a lesson by name
//! only (no file paths from a browser), at most [`Limits::max_clients`]
//! clients and [`Limits::max_duration`] of simulated time, and a wall-time
//! limit past which the run stops with a message.

use super::figures::{FIGURES, shell_quote};
use crate::record::diagram;
use crate::record::report::Report;
use crate::run::{self, RunOptions};
use crate::scenario::{Span, lessons};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// One request of the playground, as `POST /api/run` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// A lesson's name (`pushpull lessons`).
    pub scenario: String,
    /// `--set` overrides, `key=value` each, as on the command line.
    #[serde(default)]
    pub set: Vec<String>,
    /// The seed (`--seed`); the lesson's own if absent.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The diagram's window (`--window`), e.g. `25s..45s`.
    #[serde(default)]
    pub window: Option<String>,
}

/// What a run may cost the serving process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_clients: u32,
    pub max_duration: Span,
    pub wall_time: Duration,
}

impl Default for Limits {
    /// Enough for every figure in the book (the longest simulates eight
    /// hours of webhook retries), small enough to answer within seconds.
    fn default() -> Self {
        Limits {
            max_clients: 2_000,
            max_duration: Span::from_secs(24 * 3600),
            wall_time: Duration::from_secs(30),
        }
    }
}

/// The answer to a successful run.
#[derive(Debug, Serialize)]
pub struct RunAnswer {
    /// The report, as `pushpull run --format json` prints it (the same
    /// fields in the same order).
    pub report: Report,
    /// The space-time diagram of `window` (the whole run without one).
    pub svg: String,
    /// The command line that reproduces this run and its diagram.
    pub command: String,
    /// The report as `pushpull run` prints it in a terminal.
    pub table: String,
    /// What the CLI would print as `warning:` lines.
    pub warnings: Vec<String>,
    /// How long the run took on this machine, in real milliseconds.
    pub wall_ms: u64,
}

/// The command line that reproduces `request`.
pub fn command_for(request: &RunRequest) -> String {
    let mut cmd = format!("pushpull run {}", shell_quote(&request.scenario));
    for set in &request.set {
        cmd.push_str(&format!(" --set {}", shell_quote(set)));
    }
    if let Some(seed) = request.seed {
        cmd.push_str(&format!(" --seed {seed}"));
    }
    cmd.push_str(" --diagram run.svg");
    if let Some(window) = &request.window {
        cmd.push_str(&format!(" --window {}", shell_quote(window)));
    }
    cmd
}

/// Runs `request` within `limits`. An error is the CLI's message for the
/// same parameters, or the limit that was passed.
pub fn run_request(request: &RunRequest, limits: &Limits) -> Result<RunAnswer, String> {
    if !lessons::LESSONS
        .iter()
        .any(|(name, _)| *name == request.scenario)
    {
        let names: Vec<&str> = lessons::LESSONS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown lesson {:?}: the playground runs {}",
            request.scenario,
            names.join(", ")
        ));
    }
    // The CLI's order: every --set, then the seed (`Params::overrides`).
    let mut overrides = request.set.clone();
    if let Some(seed) = request.seed {
        overrides.push(format!("seed={seed}"));
    }
    let plan = lessons::load(&request.scenario, &overrides)?;
    let clients = plan.scenario.workload.clients;
    if clients > limits.max_clients {
        return Err(format!(
            "workload.clients: is {clients}, but the playground runs at most {} \
             (run it in a terminal: {})",
            limits.max_clients,
            command_for(request)
        ));
    }
    if plan.end() > limits.max_duration {
        return Err(format!(
            "duration: is {}, but the playground simulates at most {} \
             (run it in a terminal: {})",
            plan.end(),
            limits.max_duration,
            command_for(request)
        ));
    }
    let options = diagram::options_for(
        plan.scenario.mechanism.name(),
        plan.scenario.seed,
        request.window.as_deref(),
        plan.end(),
    )?;
    let started = Instant::now();
    let outcome = run::run(
        &plan,
        RunOptions {
            trace_file: None,
            keep_records: true,
            wall_deadline: Some(started + limits.wall_time),
            every_tick: false,
        },
    )
    .map_err(|e| format!("{e} (the limit is {} s)", limits.wall_time.as_secs()))?;
    Ok(RunAnswer {
        svg: diagram::render(&outcome.records, &options),
        command: command_for(request),
        table: outcome.report.to_table(),
        warnings: plan.warnings.clone(),
        wall_ms: started.elapsed().as_millis() as u64,
        report: outcome.report,
    })
}

/// What the page script needs to know of each figure, to fill its panel:
/// `window.PUSHPULL_FIGURES = {"short_polling/default": {"scenario": ...,
/// "set": [...], "seed": 1, "window": "25s..40s", "command": "..."}, ...}`.
/// Written to `generated/figures.js` with the other generated files, so a
/// static build (read from files, where a page cannot fetch JSON) has it too.
pub fn figures_script() -> Result<String, String> {
    let mut figures = serde_json::Map::new();
    for figure in FIGURES {
        let overrides: Vec<String> = figure.overrides.iter().map(|s| s.to_string()).collect();
        let plan = lessons::load(figure.lesson, &overrides)
            .map_err(|e| format!("figure {}: {e}", figure.name))?;
        let request = RunRequest {
            scenario: figure.lesson.to_string(),
            set: overrides,
            seed: None,
            window: figure.window.map(str::to_string),
        };
        figures.insert(
            figure.name.to_string(),
            serde_json::json!({
                "scenario": request.scenario,
                "set": request.set,
                "seed": plan.scenario.seed,
                "window": request.window,
                "command": command_for(&request),
            }),
        );
    }
    let json = serde_json::to_string_pretty(&figures).expect("figures serialize");
    Ok(format!(
        "// Generated by `pushpull book` from src/book/figures.rs: each figure's \
         parameters, for the \"Try it\" panels.\nwindow.PUSHPULL_FIGURES = {json};\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(set: &[&str]) -> RunRequest {
        RunRequest {
            scenario: "short_polling".into(),
            set: set.iter().map(|s| s.to_string()).collect(),
            seed: Some(3),
            window: Some("25s..45s".into()),
        }
    }

    #[test]
    fn the_command_reproduces_the_request() {
        assert_eq!(
            command_for(&request(&[
                r#"faults=[{cut="client-1",from="85s",to="105s"}]"#
            ])),
            "pushpull run short_polling --set 'faults=[{cut=\"client-1\",from=\"85s\",to=\"105s\"}]' \
             --seed 3 --diagram run.svg --window 25s..45s"
        );
    }

    #[test]
    fn refusals_are_the_clis_messages_or_a_limit() {
        let limits = Limits::default();
        let err = |r: &RunRequest| run_request(r, &limits).err().unwrap();
        assert!(err(&request(&["network.loss=1.5"])).contains("network.loss: is 1.5"));
        let mut path = request(&[]);
        path.scenario = "/etc/passwd".into();
        assert!(err(&path).starts_with("unknown lesson"));
        assert!(err(&request(&["workload.clients=100000"])).contains("at most 2000"));
        let long = err(&request(&["duration=100h"]));
        assert!(
            long.contains("duration") && long.contains("at most"),
            "{long}"
        );
    }
}
