//! The lessons: each module checks the claims of one book chapter on real runs.
//!
//! Run one lesson:    cargo test --test lessons short_polling
//! Run them all:      cargo test --test lessons
//!
//! Every test runs the simulation (a few simulated minutes take about a second)
//! and asserts on what actually crossed the simulated network. Change a number
//! in a scenario file under lessons/ and run again to see which claims still hold.

mod jobs;
mod long_polling;
mod scale;
mod short_polling;
mod sse;
mod webhooks;
mod websocket;

use pushpull::run::{self, RunOptions, RunOutcome};

/// Runs a lesson's scenario with `--set`-style overrides, keeping the trace.
pub fn run(lesson: &str, overrides: &[&str]) -> RunOutcome {
    let plan = pushpull::scenario::lessons::lesson(lesson, overrides);
    run::run(&plan, RunOptions::default()).unwrap_or_else(|e| panic!("{lesson}: {e}"))
}

/// Every delivery's delay in ms, read straight from the trace (see
/// `pushpull::record::report::delivery_delays_ms`: publication to hand-over).
pub use pushpull::record::report::delivery_delays_ms;

pub fn mean(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "no values to average");
    values.iter().sum::<f64>() / values.len() as f64
}
