//! Loading a scenario: TOML text, then `--set path=value` overrides, all
//! applied to one tree before anything is checked, so that the order of
//! `--set`s never matters (`--set long_polling.hold=55s --set
//! long_polling.client_timeout=60s` works either way round).

use super::{Scenario, ScenarioError, err};

impl Scenario {
    /// Reads a scenario from TOML text and applies the `--set` overrides, in
    /// order. Nothing is range-checked here: [`super::Plan::new`] does that,
    /// once, on the result.
    pub fn parse(text: &str, overrides: &[String]) -> Result<Scenario, ScenarioError> {
        let file: toml::Value = toml::from_str(text).map_err(|e| {
            // toml's message carries a source snippet over several lines; keep
            // the first line and the position, which name the problem.
            let position = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            err("", format!("not valid TOML{position}: {}", e.message()))
        })?;
        // Every parameter, defaults filled in, so that `--set` can name any
        // of them, and the file's values over them.
        let mut root =
            toml::Value::try_from(Scenario::default()).expect("a Scenario always serializes");
        merge(&mut root, file);
        for assignment in overrides {
            apply_override(&mut root, assignment)?;
        }
        serde_path_to_error::deserialize(root).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            // toml adds "\nin `table`" to its messages; the path says that already.
            let message = e.into_inner().to_string();
            let first_line = message.lines().next().unwrap_or_default().trim();
            err(field, first_line.to_string())
        })
    }
}

/// Puts `over`'s values into `base`: tables merge key by key, anything else
/// (a value, a list) replaces what was there.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(base), toml::Value::Table(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Applies one `path=value` override to the tree. The path must name an
/// existing parameter; the value is read as TOML (`5`, `true`, `0.1`, `[..]`),
/// and anything else as a string (`80ms`).
fn apply_override(root: &mut toml::Value, assignment: &str) -> Result<(), ScenarioError> {
    let (path, raw) = assignment.split_once('=').ok_or_else(|| {
        err(
            "",
            format!("--set {assignment:?}: write it as path=value, like network.latency=80ms"),
        )
    })?;
    let path = path.trim();
    let raw = raw.trim();
    let new_value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut node = &mut *root;
    let parts: Vec<&str> = path.split('.').collect();
    for (depth, part) in parts.iter().enumerate() {
        let so_far = parts[..=depth].join(".");
        node = match node {
            toml::Value::Table(table) => {
                let known: Vec<String> = table.keys().cloned().collect();
                // Optional fields are left out when unset; they are still
                // settable, so look them up in the schema's list.
                let settable = optional_fields(&parts[..depth]);
                if !table.contains_key(*part) && !settable.contains(part) {
                    let mut all: Vec<String> = known;
                    all.extend(settable.iter().map(|s| s.to_string()));
                    all.sort();
                    all.dedup();
                    return Err(err(
                        so_far,
                        format!(
                            "--set names a parameter that does not exist; known here: {}",
                            all.join(", ")
                        ),
                    ));
                }
                table
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
            }
            toml::Value::Array(items) => {
                let index: usize = part.parse().map_err(|_| {
                    err(
                        &so_far,
                        "this is a list: index it with a number, like faults.0.from",
                    )
                })?;
                let len = items.len();
                items
                    .get_mut(index)
                    .ok_or_else(|| err(&so_far, format!("the list has {len} entries (0..{len})")))?
            }
            _ => {
                return Err(err(
                    parts[..depth].join("."),
                    "is a single value; it has no fields to set",
                ));
            }
        };
    }
    *node = new_value;
    // `every`, `rate` and `at` are three ways to say one thing: setting
    // one on the command line replaces whichever the file used.
    if let ["workload", "events", kind @ ("every" | "rate" | "at")] = parts.as_slice()
        && let Some(events) = root
            .get_mut("workload")
            .and_then(|w| w.get_mut("events"))
            .and_then(|e| e.as_table_mut())
    {
        events.retain(|k, _| k == *kind || !matches!(k, "every" | "rate" | "at"));
    }
    Ok(())
}

/// Fields that are left out of the serialized scenario when unset, by table
/// path, so that `--set` can still name them.
fn optional_fields(table_path: &[&str]) -> &'static [&'static str] {
    match table_path {
        ["workload", "events"] => &["every", "rate", "at", "count"],
        ["sse"] => &["retry"],
        ["faults", _] => &[
            "cut", "from", "to", "reset", "hold", "forget", "crash", "at", "restart",
        ],
        _ => &[],
    }
}
