//! Sweeps: one scenario run over every combination of some parameters'
//! values, and under several mechanisms, each combination a real run
//! (`pushpull sweep`). What moves as a parameter moves is then a table, a
//! CSV, JSON, or a chart ([`crate::record::chart`]).
//!
//! ```text
//! pushpull sweep short_polling --vary workload.clients=10,100,1000 --mechanisms all --chart scale.svg
//! ```

use crate::record::chart::{Chart, Panel, Series};
use crate::record::report::Report;
use crate::run::{self, RunOptions};
use crate::scenario::{Mechanism, Span, lessons};
use serde::Serialize;

/// One `--vary KEY=V1,V2,...`.
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    pub key: String,
    pub values: Vec<String>,
}

impl Vary {
    /// Parses `KEY=V1,V2,...`. Commas inside brackets, braces or quotes
    /// belong to a value (`workload.events={every="1s",start="5s"},...`).
    pub fn parse(text: &str) -> Result<Vary, String> {
        let (key, values) = text
            .split_once('=')
            .ok_or_else(|| format!("--vary {text:?}: write it as KEY=V1,V2,..."))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("--vary {text:?}: no parameter before '='"));
        }
        let mut out = Vec::new();
        let (mut depth, mut quote, mut current) = (0i32, None, String::new());
        for c in values.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[' | '{') => depth += 1,
                (None, ']' | '}') => depth -= 1,
                (None, ',') if depth == 0 => {
                    out.push(std::mem::take(&mut current));
                    continue;
                }
                _ => {}
            }
            current.push(c);
        }
        out.push(current);
        let values: Vec<String> = out.into_iter().map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("--vary {text:?}: an empty value"));
        }
        Ok(Vary {
            key: key.to_string(),
            values,
        })
    }
}

/// Which mechanisms a sweep runs: `all`, or names separated by commas.
pub fn parse_mechanisms(text: &str) -> Result<Vec<Mechanism>, String> {
    if text.trim() == "all" {
        return Ok(Mechanism::ALL.to_vec());
    }
    text.split(',')
        .map(|name| {
            let name = name.trim();
            Mechanism::ALL
                .iter()
                .chain([Mechanism::Webhooks, Mechanism::Jobs].iter())
                .copied()
                .find(|m| m.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
                    format!(
                        "--mechanisms: {name:?} is not a mechanism (all, or some of {})",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// One run of a sweep.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The varied parameters' values, in `--vary` order (numbers and
    /// booleans as such, anything else as written).
    pub params: serde_json::Map<String, serde_json::Value>,
    pub mechanism: String,
    pub report: Report,
    /// The run's simulated duration, for rates.
    #[serde(skip)]
    pub duration: Span,
    /// The values as written, for the table and the chart.
    #[serde(skip)]
    pub raw: Vec<String>,
}

impl Row {
    /// Requests per client per simulated minute.
    pub fn requests_per_client_minute(&self) -> f64 {
        let minutes = self.duration.as_micros() as f64 / 60e6;
        self.report.requests as f64 / self.report.clients.max(1) as f64 / minutes.max(1e-9)
    }

    /// Bytes both ways per delivered event (`None` when none was).
    pub fn bytes_per_event(&self) -> Option<f64> {
        let r = &self.report;
        (r.delivered > 0).then(|| (r.bytes_up + r.bytes_down) as f64 / r.delivered as f64)
    }
}

/// Every combination of `varies`' values, first key slowest.
pub fn combinations(varies: &[Vary]) -> Vec<Vec<String>> {
    let mut combos = vec![Vec::new()];
    for vary in varies {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                vary.values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.push(v.clone());
                    next
                })
            })
            .collect();
    }
    combos
}

fn json_value(text: &str) -> serde_json::Value {
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    if let Ok(x) = text.parse::<f64>()
        && x.is_finite()
    {
        return x.into();
    }
    match text {
        "true" => true.into(),
        "false" => false.into(),
        _ => text.into(),
    }
}

/// Runs `scenario` (a lesson or a file, with `sets`) for every combination
/// of `varies` under each of `mechanisms` (the scenario's own if empty),
/// calling `progress(done, total)` after each run. Every combination is
/// checked before the first run, so a bad value fails at once.
pub fn sweep(
    scenario: &str,
    sets: &[String],
    varies: &[Vary],
    mechanisms: &[Mechanism],
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Row>, String> {
    if varies.is_empty() {
        return Err("give at least one --vary KEY=V1,V2,...".into());
    }
    let mut plans = Vec::new();
    for combo in combinations(varies) {
        let mut overrides = sets.to_vec();
        for (vary, value) in varies.iter().zip(&combo) {
            overrides.push(format!("{}={value}", vary.key));
        }
        let plan = lessons::load(scenario, &overrides)?;
        let chosen = if mechanisms.is_empty() {
            vec![plan.scenario.mechanism]
        } else {
            mechanisms.to_vec()
        };
        for mechanism in chosen {
            let plan = if mechanism == plan.scenario.mechanism {
                plan.clone()
            } else {
                plan.with_mechanism(mechanism)
            };
            plans.push((combo.clone(), plan));
        }
    }
    let total = plans.len();
    let mut rows = Vec::with_capacity(total);
    for (i, (combo, plan)) in plans.into_iter().enumerate() {
        let options = RunOptions {
            trace_file: None,
            keep_records: false,
            wall_deadline: None,
            every_tick: false,
        };
        let report = run::run(&plan, options)?.report;
        let params = varies
            .iter()
            .zip(&combo)
            .map(|(vary, value)| (vary.key.clone(), json_value(value)))
            .collect();
        rows.push(Row {
            params,
            mechanism: plan.scenario.mechanism.name().to_string(),
            report,
            duration: plan.scenario.duration,
            raw: combo,
        });
        progress(i + 1, total);
    }
    Ok(rows)
}

/// The columns of the table and the CSV, after the varied parameters.
const COLUMNS: &[&str] = &[
    "mechanism",
    "requests",
    "req/client/min",
    "bytes/event",
    "p50 ms",
    "p99 ms",
    "peak conns",
    "delivered",
    "lost",
];

fn cells(row: &Row) -> Vec<String> {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let r = &row.report;
    let mut cells = row.raw.clone();
    cells.extend([
        row.mechanism.clone(),
        r.requests.to_string(),
        format!("{:.2}", row.requests_per_client_minute()),
        row.bytes_per_event()
            .map_or("-".into(), |b| format!("{b:.0}")),
        ms(r.latency_ms.p50),
        ms(r.latency_ms.p99),
        r.peak_connections.to_string(),
        r.delivered.to_string(),
        r.lost.to_string(),
    ]);
    cells
}

/// The sweep as an aligned text table, one row per run.
pub fn table(varies: &[Vary], rows: &[Row]) -> String {
    let mut all = vec![
        varies
            .iter()
            .map(|v| v.key.clone())
            .chain(COLUMNS.iter().map(|c| c.to_string()))
            .collect::<Vec<_>>(),
    ];
    all.extend(rows.iter().map(cells));
    aligned(&all, varies.len() + 1)
}

/// Rows of cells as an aligned text table: the first `text_columns`
/// columns left-aligned, the numbers after them right-aligned.
pub fn aligned<R: AsRef<[String]>>(rows: &[R], text_columns: usize) -> String {
    let columns = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r.as_ref()[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .as_ref()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < text_columns {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The sweep as CSV (RFC 4180: fields with commas or quotes quoted).
pub fn csv(varies: &[Vary], rows: &[Row]) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let header: Vec<String> = varies
        .iter()
        .map(|v| field(&v.key))
        .chain(COLUMNS.iter().map(|c| field(c)))
        .collect();
    let mut out = header.join(",") + "\n";
    for row in rows {
        let line: Vec<String> = cells(row).iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The chart of a sweep: x is the first varied parameter; one line per
/// mechanism (and per value of the other varied parameters).
pub fn chart(title: &str, varies: &[Vary], rows: &[Row]) -> String {
    let x_key = &varies[0].key;
    let mut lines: Vec<(String, Vec<&Row>)> = Vec::new();
    for row in rows {
        let mut label = row.mechanism.clone();
        for (vary, value) in varies.iter().zip(&row.raw).skip(1) {
            label.push_str(&format!(", {}={value}", vary.key));
        }
        match lines.iter_mut().find(|(l, _)| *l == label) {
            Some((_, rows)) => rows.push(row),
            None => lines.push((label, vec![row])),
        }
    }
    let series = |metric: &dyn Fn(&Row) -> Option<f64>| -> Vec<Series> {
        lines
            .iter()
            .map(|(label, rows)| Series {
                label: label.clone(),
                points: rows.iter().map(|r| (r.raw[0].clone(), metric(r))).collect(),
            })
            .collect()
    };
    let p99 = |r: &Row| r.report.latency_ms.p99;
    let p50 = |r: &Row| r.report.latency_ms.p50;
    Chart {
        title: title.to_string(),
        x_label: x_key.clone(),
        x_values: varies[0].values.clone(),
        panels: vec![
            Panel {
                title: "requests per client per minute".into(),
                unit: "req/min".into(),
                series: series(&|r| Some(r.requests_per_client_minute())),
                dashed: Vec::new(),
            },
            Panel {
                title: "bytes per delivered event (both ways)".into(),
                unit: "bytes".into(),
                series: series(&|r| r.bytes_per_event()),
                dashed: Vec::new(),
            },
            Panel {
                title: "delivery latency: p50 (solid), p99 (dashed)".into(),
                unit: "ms".into(),
                series: series(&p50),
                dashed: series(&p99),
            },
            Panel {
                title: "peak connections at the server".into(),
                unit: "connections".into(),
                series: series(&|r| Some(r.report.peak_connections as f64)),
                dashed: Vec::new(),
            },
        ],
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_values_keep_their_commas_inside_brackets() {
        let v = Vary::parse(r#"workload.events={every="1s",start="5s"},{rate=2}"#).unwrap();
        assert_eq!(v.key, "workload.events");
        assert_eq!(v.values, [r#"{every="1s",start="5s"}"#, "{rate=2}"]);
        let v = Vary::parse("workload.clients=10, 100,1000").unwrap();
        assert_eq!(v.values, ["10", "100", "1000"]);
        assert!(Vary::parse("workload.clients").is_err());
        assert!(Vary::parse("x=1,,2").is_err());
    }

    #[test]
    fn combinations_first_key_slowest() {
        let a = Vary::parse("a=1,2").unwrap();
        let b = Vary::parse("b=x,y,z").unwrap();
        let c = combinations(&[a, b]);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], ["1", "x"]);
        assert_eq!(c[3], ["2", "x"]);
    }

    #[test]
    fn mechanisms_by_name() {
        assert_eq!(parse_mechanisms("all").unwrap(), Mechanism::ALL);
        assert_eq!(
            parse_mechanisms("sse,websocket").unwrap(),
            [Mechanism::Sse, Mechanism::Websocket]
        );
        assert!(parse_mechanisms("smoke_signals").is_err());
    }
}
