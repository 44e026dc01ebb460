//! The space-time diagram: a run's trace drawn as a picture, to scale.
//!
//! What it teaches: where the time goes. Each host is a vertical lifeline
//! (clients on the left, the server on the right) and simulated time flows
//! down at a constant number of pixels per millisecond, so every distance in
//! the picture is a duration you can measure:
//!
//! - a message is a slanted arrow from the moment it was written to the moment
//!   it was read; the slant is the network latency;
//! - a blue arrow is a request, a grey dashed one an answer with nothing in it
//!   (the cost of polling), a bold orange one an answer carrying events;
//! - a red arrow that stops short with an X never arrived (a dotted one that
//!   stops short was still in flight when the trace ended);
//! - a pale blue bar on a lifeline is a request that host holds, received and
//!   not yet answered: invisible for short polling, the whole story of long
//!   polling;
//! - a star on the server is an event being published, an orange dot on a
//!   client that event reaching the client's application, and the thin orange
//!   bar beside the client the time it waited in between (the delivery latency
//!   the report sums up);
//! - red bands are faults: a client cut off from the server, a server crashed;
//! - small circles and crosses on a lifeline are connections opening and
//!   closing, red diamonds errors, red squares a proxy acting on its own.
//!
//! Labels are dropped where they would overlap, the routine ones (requests,
//! empty answers) first; zoom in with a window to see them all. Messages that
//! cross the window's edges are drawn, clipped at the edge; their labels are
//! drawn only if they leave inside the window.
//!
//! Hovering over anything (in a browser, with the SVG opened directly or
//! inlined) shows its exact times in milliseconds.
//!
//! The picture is a pure function of the records: the same trace gives the
//! same bytes (ordered maps only, fixed float precision), so the book can
//! commit diagrams and check they do not drift.

mod glyphs;
mod labels;
mod model;
mod svg;
mod view;

use crate::record::trace::{Dir, Record};
use crate::scenario::Span;
use glyphs::*;
use labels::*;
use model::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use svg::*;
use view::*;

/// What part of a run to draw, and how.
#[derive(Clone, Debug, Default)]
pub struct DiagramOptions {
    /// Draw only `[from, to]` of simulated time; the whole run if `None`.
    pub window: Option<(Span, Span)>,
    /// A caption drawn at the top.
    pub title: String,
}

// Layout, in pixels. The picture is wide enough for a label between two
// neighbouring lifelines, and never taller than about 4000 px, beyond which
// browsers and books stop being pleasant.
const FONT: f64 = 11.0;
const MARGIN_LEFT: f64 = 150.0;
const MARGIN_RIGHT: f64 = 150.0;
const LANE_MAX: f64 = 260.0;
const LANE_MIN: f64 = 120.0;
const MIN_PLOT_HEIGHT: f64 = 480.0;
const MAX_PLOT_HEIGHT: f64 = 3800.0;
/// Pixels the slant of a typical message should span, so that latency is
/// visible as a slope rather than guessed.
const LATENCY_PX: f64 = 14.0;
/// Blank room above and below the window, so that markers on its edges are
/// drawn whole.
const PAD: f64 = 14.0;
/// Labels whose boxes come closer than this (vertically, when they overlap
/// horizontally) are dropped, the less important one first.
const LABEL_GAP: f64 = 1.5;
/// Beyond this many messages the picture would be unreadable and huge; it
/// stops there and says so.
const MAX_MESSAGES: usize = 5000;
/// Two messages leaving one lifeline closer than this (vertically) are too
/// close for both to carry a routine label.
const CROWDED_PX: f64 = 12.0;
/// Width of a fault band across a lifeline.
const BAND_W: f64 = 34.0;

const C_REQUEST: &str = "#3b5bdb";
const C_EMPTY: &str = "#868e96";
const C_DATA: &str = "#e8590c";
const C_OTHER: &str = "#495057";
const C_LOST: &str = "#c92a2a";
const C_FAULT: &str = "#e03131";
const C_CONN: &str = "#2b8a3e";
const C_LIFELINE: &str = "#adb5bd";
const C_GRID: &str = "#f1f3f5";
const C_TEXT: &str = "#212529";
const C_MUTED: &str = "#6c757d";

/// Renders `records` as an SVG document.
///
/// Never panics: unmatched sends are drawn as lost, receipts without a send
/// and records naming unknown hosts are tolerated, an empty trace gives an
/// empty (but valid) picture.
pub fn render(records: &[Record], options: &DiagramOptions) -> String {
    let model = Model::build(records);
    let view = View::new(&model, options);
    let mut svg = Svg::new(&view, options);
    svg.draw(&model, &view);
    svg.finish()
}

/// The options of a `--diagram` picture: the title says which mechanism and
/// seed, `window` is `--window`'s `FROM..TO`, which must start before the
/// run's `end`. The CLI and the book both call this, so a figure's command
/// line reproduces it byte for byte.
pub fn options_for(
    mechanism: &str,
    seed: u64,
    window: Option<&str>,
    end: Span,
) -> Result<DiagramOptions, String> {
    let window = window.map(parse_window).transpose()?;
    if let Some((from, _)) = window
        && from >= end
    {
        return Err(format!(
            "--window starts at {from}, after the run ends (at {end}): nothing to draw"
        ));
    }
    Ok(DiagramOptions {
        window,
        title: format!("{mechanism} (seed {seed})"),
    })
}

/// Parses `--window FROM..TO`, like `25s..45s`.
pub fn parse_window(text: &str) -> Result<(Span, Span), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers() {
        assert_eq!(nice_step(0.0), 1);
        assert_eq!(nice_step(1.0), 1);
        assert_eq!(nice_step(1.5), 2);
        assert_eq!(nice_step(3.0), 5);
        assert_eq!(nice_step(7.0), 10);
        assert_eq!(nice_step(1234.0), 2000);
        assert_eq!(nice_step(1e30), u64::MAX);
        // 100 px is a round number of milliseconds.
        let px = round_scale(0.0963, 20_000.0);
        assert_eq!(100.0 / px, 1000.0);
        assert!(20_000.0 * px <= MAX_PLOT_HEIGHT);
    }

    #[test]
    fn exact_times() {
        assert_eq!(ms(3_991_000), "3991");
        assert_eq!(ms(3_991_250), "3991.25");
        assert_eq!(ms(1), "0.001");
        assert_eq!(seconds(25_000_000), "25 s");
        assert_eq!(seconds(25_500_000), "25.5 s");
        assert_eq!(tick_label(25_500_000, 500_000, false), "25.5 s");
        assert_eq!(tick_label(25_000_000, 5_000_000, false), "25 s");
        assert_eq!(tick_label(4_050_000, 50_000, true), "4050 ms");
        assert_eq!(short_duration(4_312_000), "4312 ms");
        assert_eq!(short_duration(12_340_000), "12.3 s");
    }

    #[test]
    fn connection_names() {
        assert_eq!(
            conn_ends("client-1:49152>server:80"),
            Some(("client-1", "server"))
        );
        assert_eq!(conn_peer("client-1:49152>proxy:80", Dir::Up), Some("proxy"));
        assert_eq!(
            conn_peer("client-1:49152>proxy:80", Dir::Down),
            Some("client-1")
        );
        assert_eq!(conn_ends("nonsense"), None);
        assert_eq!(conn_ends(":1>server:80"), None);
    }

    #[test]
    fn host_lifeline_order() {
        use crate::record::trace::Role;
        let role = |h: &str| match h {
            "server" => Some(Role::Server),
            "proxy" => Some(Role::Proxy),
            "client-10" | "client-2" => Some(Role::Client),
            _ => None,
        };
        let mut hosts = vec!["server", "client-10", "proxy", "client-2", "client-x"];
        hosts.sort_by_key(|h| host_order(role(h), h));
        assert_eq!(
            hosts,
            ["client-2", "client-10", "client-x", "proxy", "server"]
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<a & "b" 'c'>"#),
            "&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;"
        );
        assert_eq!(esc("bell\u{7}"), "bell\u{fffd}");
    }

    fn label(x: f64, y: f64, priority: u8) -> Label {
        Label {
            spots: Label::at(x, y, Anchor::Start),
            text: "GET /updates?after=1".into(),
            color: C_REQUEST,
            bold: false,
            priority,
            tooltip: String::new(),
        }
    }

    #[test]
    fn labels_closer_than_a_line_drop_the_less_important() {
        // 5 px apart: only one fits, and the important one wins.
        let labels = [label(100.0, 100.0, 3), label(100.0, 105.0, 0)];
        assert_eq!(place_labels(&labels), [(1, 0)]);
        // A line and more apart: both.
        let labels = [label(100.0, 100.0, 3), label(100.0, 114.0, 3)];
        assert_eq!(place_labels(&labels), [(0, 0), (1, 0)]);
        // Side by side at the same height: both.
        let labels = [label(100.0, 100.0, 3), label(400.0, 100.0, 3)];
        assert_eq!(place_labels(&labels).len(), 2);
        // A second spot is used when the first is taken.
        let mut second = label(100.0, 102.0, 3);
        second.spots.push((400.0, 102.0, Anchor::Start));
        let labels = [label(100.0, 100.0, 0), second];
        assert_eq!(place_labels(&labels), [(0, 0), (1, 1)]);
    }
}
