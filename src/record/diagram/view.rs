//! The view: which stretch of time, at what scale, and where things go.

use super::*;

pub(super) struct View {
    pub(super) from: u64,
    pub(super) to: u64,
    /// Set when the picture stops early because of `MAX_MESSAGES`: how many
    /// messages the full window held.
    pub(super) truncated: Option<usize>,
    pub(super) px_per_ms: f64,
    pub(super) lane_x: Vec<f64>,
    pub(super) width: f64,
    pub(super) plot_top: f64,
    pub(super) plot_bottom: f64,
    pub(super) height: f64,
    /// Legend rows: items and their x offsets.
    pub(super) legend: Vec<Vec<(f64, usize)>>,
    pub(super) legend_top: f64,
    pub(super) header_y: f64,
    /// Makes element ids unique, so two diagrams inlined in one page do not
    /// borrow each other's clip paths.
    pub(super) id: String,
    pub(super) messages_shown: usize,
}

/// What a legend entry shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Glyph {
    Request,
    Empty,
    Data,
    Lost,
    Held,
    Publish,
    Deliver,
    Conn,
    Error,
    Fault,
    Proxy,
}

/// Legend entries, drawn in this order.
pub(super) const LEGEND: &[(Glyph, &str)] = &[
    (Glyph::Request, "request"),
    (Glyph::Empty, "empty response"),
    (Glyph::Data, "response or frame with events"),
    (Glyph::Lost, "not through (TCP resends) / never arrived"),
    (Glyph::Held, "request held, not yet answered"),
    (Glyph::Publish, "event published"),
    (Glyph::Deliver, "event delivered (bar: time it waited)"),
    (Glyph::Conn, "connect / close"),
    (Glyph::Error, "error"),
    (Glyph::Fault, "cut off / crashed"),
    (Glyph::Proxy, "proxy action"),
];
pub(super) const LEGEND_GLYPH: f64 = 34.0;
pub(super) const LEGEND_ROW: f64 = 18.0;

/// A round step of 1, 2 or 5 times a power of ten, at least `raw`.
pub(super) fn nice_step(raw: f64) -> u64 {
    let mut step: u64 = 1;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if s as f64 >= raw || s == u64::MAX {
                return s;
            }
        }
        if step > u64::MAX / 10 {
            return u64::MAX;
        }
        step *= 10;
    }
}

/// Rounds a scale so that 100 px is a round duration (1, 2, 2.5 or 5 times a
/// power of ten milliseconds), which makes the picture measurable by eye. Picks
/// the round scale nearest to `px_per_ms` that keeps the plot within bounds.
pub(super) fn round_scale(px_per_ms: f64, span_ms: f64) -> f64 {
    let wanted = 100.0 / px_per_ms;
    let mut best: Option<(f64, f64)> = None;
    for k in -4..=13 {
        for m in [1.0, 2.0, 2.5, 5.0] {
            let ms_per_100 = m * 10f64.powi(k);
            let height = span_ms * 100.0 / ms_per_100;
            if !(MIN_PLOT_HEIGHT * 0.6..=MAX_PLOT_HEIGHT).contains(&height) {
                continue;
            }
            let distance = (ms_per_100 / wanted).ln().abs();
            if best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, ms_per_100));
            }
        }
    }
    match best {
        Some((_, ms_per_100)) => 100.0 / ms_per_100,
        None => px_per_ms,
    }
}

/// FNV-1a: a small, stable hash for the element ids.
pub(super) fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

impl View {
    pub(super) fn new(model: &Model, options: &DiagramOptions) -> View {
        let (from, mut to) = match options.window {
            Some((a, b)) => (a.0.min(b.0), a.0.max(b.0)),
            None => (0, model.last_t),
        };
        if to <= from {
            // A zero-length window (or an empty trace): show one second
            // rather than divide by zero.
            to = from.saturating_add(1_000_000);
        }

        // Messages that overlap the window (both ends count: an arrow that
        // starts before the window and lands in it is drawn, clipped).
        let mut in_window = 0;
        let mut truncated = None;
        let mut cut_at = None;
        for m in &model.messages {
            let end = m.t_recv.unwrap_or(m.t_send).max(m.t_send);
            if end >= from && m.t_send <= to {
                in_window += 1;
                if in_window == MAX_MESSAGES {
                    cut_at = Some(m.t_send);
                }
            }
        }
        if in_window > MAX_MESSAGES
            && let Some(t) = cut_at
            && t > from
        {
            truncated = Some(in_window);
            to = t;
        }
        let messages_shown = in_window.min(MAX_MESSAGES);

        // The scale: enough pixels per millisecond that a typical message's
        // latency shows as a slant, but no taller than the message count
        // needs (a quiet window is not stretched) and never beyond the
        // maximum height (a long run is squeezed, and `--window` zooms in).
        let span_ms = (to - from) as f64 / 1000.0;
        let wanted = match model.typical_latency {
            Some(l) => span_ms * LATENCY_PX / (l as f64 / 1000.0).max(0.5),
            None => MIN_PLOT_HEIGHT,
        };
        let by_count = (messages_shown as f64 * 60.0).max(900.0);
        let plot_height = wanted.min(by_count).clamp(MIN_PLOT_HEIGHT, MAX_PLOT_HEIGHT);
        let px_per_ms = round_scale(plot_height / span_ms, span_ms);
        let plot_height = span_ms * px_per_ms;

        let n = model.hosts.len();
        let lane = if n > 1 {
            (900.0 / (n - 1) as f64).clamp(LANE_MIN, LANE_MAX)
        } else {
            LANE_MAX
        };
        let lane_x: Vec<f64> = (0..n).map(|i| MARGIN_LEFT + lane * i as f64).collect();
        let width = (MARGIN_LEFT + lane * n.saturating_sub(1) as f64 + MARGIN_RIGHT).max(880.0);

        // The legend wraps to the picture's width.
        let mut legend = vec![Vec::new()];
        let mut x = 16.0;
        // Proxy actions only mean something when there is a proxy.
        let has_proxy = model
            .marks
            .iter()
            .any(|(_, _, m)| matches!(m, Mark::Proxy { .. }));
        for (i, (glyph, label)) in LEGEND.iter().enumerate() {
            if *glyph == Glyph::Proxy && !has_proxy {
                continue;
            }
            let w = LEGEND_GLYPH + text_width(label, false) + 18.0;
            if x + w > width - 16.0 && x > 16.0 {
                legend.push(Vec::new());
                x = 16.0;
            }
            if let Some(row) = legend.last_mut() {
                row.push((x, i));
            }
            x += w;
        }
        let legend_top = if options.title.is_empty() { 40.0 } else { 62.0 };
        let header_y = legend_top + legend.len() as f64 * LEGEND_ROW + 22.0;
        let plot_top = header_y + 24.0 + PAD;
        let plot_bottom = plot_top + plot_height;
        let height = plot_bottom + PAD + 40.0;

        let mut h = 0xcbf2_9ce4_8422_2325;
        fnv(&mut h, options.title.as_bytes());
        fnv(&mut h, &from.to_le_bytes());
        fnv(&mut h, &to.to_le_bytes());
        fnv(&mut h, &model.messages.len().to_le_bytes());
        for m in &model.messages {
            fnv(&mut h, &m.t_send.to_le_bytes());
            fnv(&mut h, m.conn.as_bytes());
        }
        View {
            from,
            to,
            truncated,
            px_per_ms,
            lane_x,
            width,
            plot_top,
            plot_bottom,
            height,
            legend,
            legend_top,
            header_y,
            id: format!("{:08x}", h as u32),
            messages_shown,
        }
    }

    pub(super) fn y(&self, t: u64) -> f64 {
        self.plot_top + (t as f64 - self.from as f64) / 1000.0 * self.px_per_ms
    }

    pub(super) fn contains(&self, t: u64) -> bool {
        self.from <= t && t <= self.to
    }

    pub(super) fn lane(&self, model: &Model, host: &str) -> Option<f64> {
        let i = model.hosts.iter().position(|h| *h == host)?;
        self.lane_x.get(i).copied()
    }
}
