//! The lessons' scenario files, by name.
//!
//! The files live in `lessons/` and are also compiled into the binary, so
//! `pushpull run short_polling` works from any directory. A path to a `.toml`
//! file works too: copy a lesson, change it, run your copy.

use super::{Plan, ScenarioError};
use std::path::Path;

/// Every lesson: its name and the text of its scenario file.
pub const LESSONS: &[(&str, &str)] = &[
    (
        "short_polling",
        include_str!("../../lessons/short_polling.toml"),
    ),
    (
        "long_polling",
        include_str!("../../lessons/long_polling.toml"),
    ),
    ("sse", include_str!("../../lessons/sse.toml")),
    ("websocket", include_str!("../../lessons/websocket.toml")),
    ("webhooks", include_str!("../../lessons/webhooks.toml")),
    ("jobs", include_str!("../../lessons/jobs.toml")),
    ("scale", include_str!("../../lessons/scale.toml")),
];

/// Finds a scenario by lesson name or file path, applies the overrides and
/// resolves it into a plan.
pub fn load(name_or_path: &str, overrides: &[String]) -> Result<Plan, String> {
    let text = if let Some((_, text)) = LESSONS.iter().find(|(n, _)| *n == name_or_path) {
        text.to_string()
    } else if Path::new(name_or_path).is_file() {
        std::fs::read_to_string(name_or_path)
            .map_err(|e| format!("cannot read {name_or_path}: {e}"))?
    } else {
        let names: Vec<&str> = LESSONS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "{name_or_path:?} is neither a lesson ({}) nor a .toml file",
            names.join(", ")
        ));
    };
    Plan::from_toml(&text, overrides).map_err(|e: ScenarioError| format!("{name_or_path}: {e}"))
}

/// A lesson's plan with overrides; panics on error, for lesson tests.
pub fn lesson(name: &str, overrides: &[&str]) -> Plan {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load(name, &overrides).unwrap_or_else(|e| panic!("{e}"))
}
