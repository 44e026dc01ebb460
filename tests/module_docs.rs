//! Module docs show real bytes: what a file's opening comment quotes from a
//! run is what the run writes today.

use pushpull::run::{self, RunOptions};

/// The trace lines quoted at the top of `src/record/trace.rs` are lines of
/// `pushpull run short_polling --trace run.jsonl`, byte for byte.
#[test]
fn trace_doc_lines_come_from_the_short_polling_run() {
    let doc = include_str!("../src/record/trace.rs");
    let quoted: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter(|l| l.starts_with("{\"t_us\""))
        .collect();
    assert!(quoted.len() >= 5, "the doc quotes trace lines");
    let plan = pushpull::scenario::lessons::lesson("short_polling", &[]);
    let outcome = run::run(&plan, RunOptions::default()).unwrap();
    let written: Vec<String> = outcome
        .records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    for line in quoted {
        assert!(
            written.iter().any(|w| w == line),
            "src/record/trace.rs quotes a line the run does not write:\n{line}"
        );
    }
}
