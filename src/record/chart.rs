//! Line charts of a sweep, as SVG, in the space-time diagram's visual style:
//! a grid of panels (one per measure), x the varied parameter (on a log
//! scale when its values span two decades or more), one labelled line per
//! mechanism, axes with units, and each point's value in its tooltip.
//! Pure: series in, SVG text out.

use crate::scenario::Span;
use std::fmt::Write;

/// A chart: panels side by side, sharing x.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    /// The x values in order, as written (`10`, `1000`, `5s`).
    pub x_values: Vec<String>,
    pub panels: Vec<Panel>,
}

/// One measure.
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub series: Vec<Series>,
    /// Drawn dashed, in the same colours as `series` (a second measure of
    /// the same lines, such as p99 beside p50).
    pub dashed: Vec<Series>,
}

/// One line: its label and a value (or none) at each x.
pub struct Series {
    pub label: String,
    pub points: Vec<(String, Option<f64>)>,
}

/// The diagram's colours, in order, one per line.
const PALETTE: &[&str] = &[
    "#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00", "#495057",
];
const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 260.0;
const MARGIN_L: f64 = 64.0;
const MARGIN_B: f64 = 44.0;
const MARGIN_T: f64 = 28.0;
const MARGIN_R: f64 = 16.0;
const COLUMNS: usize = 2;

/// A number from an x value: a plain number, or a duration in seconds.
fn x_number(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .or_else(|| Span::parse(text).ok().map(|s| s.as_micros() as f64 / 1e6))
}

/// A scale from data to pixels.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    fn of(values: impl Iterator<Item = f64>) -> Option<Scale> {
        let values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if values.is_empty() {
            return None;
        }
        let log = lo > 0.0 && hi / lo >= 100.0;
        let (lo, hi) = if log {
            (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.log10().ceil()),
            )
        } else if hi == lo {
            (lo.min(0.0), if hi == 0.0 { 1.0 } else { hi.max(0.0) * 1.1 })
        } else {
            (lo.min(0.0), hi * 1.05)
        };
        Some(Scale { lo, hi, log })
    }

    /// Where `v` falls, from 0 (lo) to 1 (hi).
    fn at(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (self.lo.log10() as i32, self.hi.log10() as i32);
            return (a..=b).map(|e| 10f64.powi(e)).collect();
        }
        let span = self.hi - self.lo;
        let raw = span / 4.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(raw);
        let mut ticks = Vec::new();
        let mut t = (self.lo / step).ceil() * step;
        while t <= self.hi + step * 1e-9 {
            ticks.push(t);
            t += step;
        }
        ticks
    }
}

/// `1234` as `1.2k`, `0.5` as `0.5`.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    pub fn render(&self) -> String {
        let numeric: Option<Vec<f64>> = self.x_values.iter().map(|x| x_number(x)).collect();
        let x_scale = numeric
            .as_ref()
            .and_then(|xs| Scale::of(xs.iter().copied()))
            .map(|s| {
                // x spans exactly the data: no padding below the first value.
                let xs = numeric.as_ref().unwrap();
                let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                Scale {
                    lo,
                    hi: if hi > lo { hi } else { lo + 1.0 },
                    log: s.log,
                }
            });
        // Where x value i goes, from 0 to 1.
        let x_at = |i: usize| -> f64 {
            match (&numeric, &x_scale) {
                (Some(xs), Some(scale)) => scale.at(xs[i]),
                _ if self.x_values.len() > 1 => i as f64 / (self.x_values.len() - 1) as f64,
                _ => 0.5,
            }
        };
        let labels: Vec<&String> = self
            .panels
            .first()
            .map(|p| p.series.iter().map(|s| &s.label).collect())
            .unwrap_or_default();
        let legend_rows = labels.len().div_ceil(4).max(1);
        let top = 40.0 + legend_rows as f64 * 16.0;
        let rows = self.panels.len().div_ceil(COLUMNS);
        let width = COLUMNS as f64 * PANEL_W + 20.0;
        let height = top + rows as f64 * PANEL_H + 10.0;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14" font-weight="bold">{}</text>
"##,
            escape(&self.title)
        );
        for (i, label) in labels.iter().enumerate() {
            let (col, row) = (i % 4, i / 4);
            let x = 10.0 + col as f64 * 220.0;
            let y = 38.0 + row as f64 * 16.0;
            let color = PALETTE[i % PALETTE.len()];
            let _ = writeln!(
                svg,
                r#"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="2.5"/><text x="{}" y="{y}">{}</text>"#,
                y - 4.0,
                x + 18.0,
                y - 4.0,
                x + 24.0,
                escape(label)
            );
        }
        for (p, panel) in self.panels.iter().enumerate() {
            let ox = 10.0 + (p % COLUMNS) as f64 * PANEL_W;
            let oy = top + (p / COLUMNS) as f64 * PANEL_H;
            self.render_panel(&mut svg, panel, ox, oy, &x_at, x_scale.as_ref());
        }
        svg.push_str("</svg>\n");
        svg
    }

    fn render_panel(
        &self,
        svg: &mut String,
        panel: &Panel,
        ox: f64,
        oy: f64,
        x_at: &dyn Fn(usize) -> f64,
        x_scale: Option<&Scale>,
    ) {
        let (left, top) = (ox + MARGIN_L, oy + MARGIN_T);
        let (w, h) = (PANEL_W - MARGIN_L - MARGIN_R, PANEL_H - MARGIN_T - MARGIN_B);
        let _ = writeln!(
            svg,
            r##"<text x="{left}" y="{}" font-weight="bold" fill="#212529">{}</text>"##,
            oy + 16.0,
            escape(&panel.title)
        );
        let values = panel
            .series
            .iter()
            .chain(&panel.dashed)
            .flat_map(|s| s.points.iter().filter_map(|(_, v)| *v));
        let Some(y) = Scale::of(values) else {
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" fill="#868e96">no values</text>"##,
                left + 10.0,
                top + h / 2.0
            );
            return;
        };
        let py = |v: f64| top + h - y.at(v) * h;
        let px = |i: usize| left + x_at(i) * w;
        // Grid and y ticks.
        for t in y.ticks() {
            let yy = py(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#e9ecef"/><text x="{}" y="{:.1}" text-anchor="end" fill="#495057">{}</text>"##,
                left + w,
                left - 6.0,
                yy + 4.0,
                short(t)
            );
        }
        // x ticks: the sweep's own values (a label too close to the one
        // before it is left out; its tick and points stay).
        let mut last_label: Option<f64> = None;
        for (i, x) in self.x_values.iter().enumerate() {
            let xx = px(i);
            let _ = writeln!(
                svg,
                r##"<line x1="{xx:.1}" y1="{}" x2="{xx:.1}" y2="{}" stroke="#adb5bd"/>"##,
                top + h,
                top + h + 4.0,
            );
            let room = 7.0 * x.chars().count() as f64 + 6.0;
            if last_label.is_none_or(|last| xx - last >= room) {
                last_label = Some(xx);
                let _ = writeln!(
                    svg,
                    r##"<text x="{xx:.1}" y="{}" text-anchor="middle" fill="#495057">{}</text>"##,
                    top + h + 16.0,
                    escape(x)
                );
            }
        }
        // Axes and their labels.
        let log_note = |log: bool| if log { " (log scale)" } else { "" };
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#495057"/><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#495057"/>
<text x="{}" y="{}" text-anchor="middle" fill="#212529">{}{}</text>
<text transform="translate({},{}) rotate(-90)" text-anchor="middle" fill="#212529">{}{}</text>"##,
            top + h,
            top + h,
            left + w,
            top + h,
            left + w / 2.0,
            top + h + 32.0,
            escape(&self.x_label),
            log_note(x_scale.is_some_and(|s| s.log)),
            ox + 14.0,
            top + h / 2.0,
            escape(&panel.unit),
            log_note(y.log)
        );
        for (dashed, lines) in [(false, &panel.series), (true, &panel.dashed)] {
            for (k, series) in lines.iter().enumerate() {
                let color = PALETTE[k % PALETTE.len()];
                let points: Vec<(usize, f64)> = series
                    .points
                    .iter()
                    .filter_map(|(x, v)| {
                        let i = self.x_values.iter().position(|xv| xv == x)?;
                        v.map(|v| (i, v))
                    })
                    .collect();
                let path: Vec<String> = points
                    .iter()
                    .map(|(i, v)| format!("{:.1},{:.1}", px(*i), py(*v)))
                    .collect();
                if path.len() > 1 {
                    let dash = if dashed {
                        r#" stroke-dasharray="5 4""#
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        svg,
                        r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                        path.join(" ")
                    );
                }
                for (i, v) in &points {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}" stroke="{color}" stroke-width="1.5"><title>{}: {} = {} → {} {}</title></circle>"#,
                        px(*i),
                        py(*v),
                        if dashed { "white" } else { color },
                        escape(&series.label),
                        escape(&self.x_label),
                        escape(&self.x_values[*i]),
                        trim(*v),
                        escape(&panel.unit)
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(xs: &[&str], ys: &[Option<f64>]) -> String {
        Chart {
            title: "t".into(),
            x_label: "workload.clients".into(),
            x_values: xs.iter().map(|s| s.to_string()).collect(),
            panels: vec![Panel {
                title: "requests".into(),
                unit: "req/min".into(),
                series: vec![Series {
                    label: "short_polling".into(),
                    points: xs
                        .iter()
                        .map(|s| s.to_string())
                        .zip(ys.iter().copied())
                        .collect(),
                }],
                dashed: Vec::new(),
            }],
        }
        .render()
    }

    #[test]
    fn decades_go_on_a_log_scale() {
        let svg = chart(
            &["10", "100", "1000"],
            &[Some(1.0), Some(10.0), Some(100.0)],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("workload.clients (log scale)"));
        assert!(svg.contains("req/min (log scale)"));
        assert!(svg.contains("short_polling: workload.clients = 1000 → 100 req/min"));
        let linear = chart(&["1s", "2s", "5s"], &[Some(3.0), Some(2.0), Some(1.0)]);
        assert!(!linear.contains("log scale"));
    }

    #[test]
    fn missing_values_and_words_still_draw() {
        let svg = chart(&["a", "b"], &[None, Some(2.0)]);
        assert!(svg.contains("<circle"));
        let none = chart(&["a"], &[None]);
        assert!(none.contains("no values"));
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2_000_000.0), "2M");
    }
}
