//! Text for the picture: escaping, times, estimated widths, and the labels
//! placed so that none overlaps another.

use super::*;

/// Escapes text for XML content and attribute values.
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Exact milliseconds from microseconds: `3991`, `3991.25`.
pub(super) fn ms(us: u64) -> String {
    let (whole, frac) = (us / 1000, us % 1000);
    if frac == 0 {
        format!("{whole}")
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// Exact seconds from microseconds: `25 s`, `25.5 s`.
pub(super) fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        format!("{whole} s")
    } else {
        let f = format!("{frac:06}");
        format!("{whole}.{} s", f.trim_end_matches('0'))
    }
}

/// A duration for a label: `43 ms`, `4312 ms`, `12.3 s`.
pub(super) fn short_duration(us: u64) -> String {
    if us < 10_000_000 {
        format!("{} ms", ms(us - us % 1000))
    } else {
        format!("{:.1} s", us as f64 / 1e6)
    }
}

/// About how wide `text` is at the label size, in pixels. There are no font
/// metrics in a pure function, so this uses Helvetica/Arial-like widths per
/// character class, a little generous because "sans-serif" may be wider.
pub(super) fn text_width(text: &str, bold: bool) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '\'' | '|' | '!' | '.' | ',' | ':' | ';' => 0.24,
            'f' | 't' | 'r' | ' ' | '/' | '(' | ')' | '[' | ']' | '-' | 'I' => 0.31,
            'm' | 'w' | 'M' | 'W' | '@' | '…' | '—' => 0.86,
            'A'..='Z' | '&' | '%' => 0.70,
            _ => 0.56,
        })
        .sum();
    em * FONT * if bold { 1.1 } else { 1.04 }
}

/// Shortens a label to `max` characters, with an ellipsis.
pub(super) fn clip_text(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A tick label. Seconds for long windows, milliseconds for short ones, with
/// as many decimals as the step needs, so labels are exact.
pub(super) fn tick_label(t: u64, step: u64, in_ms: bool) -> String {
    if in_ms {
        return format!("{} ms", ms(t));
    }
    let decimals = match step {
        s if s % 1_000_000 == 0 => 0,
        s if s % 100_000 == 0 => 1,
        s if s % 10_000 == 0 => 2,
        s if s % 1000 == 0 => 3,
        _ => 6,
    };
    let secs = t / 1_000_000;
    if decimals == 0 {
        return format!("{secs} s");
    }
    let frac = format!("{:06}", t % 1_000_000);
    format!("{secs}.{} s", &frac[..decimals])
}

// ---------------------------------------------------------------------------
// Labels, placed so they do not overlap.

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    Start,
    End,
}

pub(super) struct Label {
    /// Where the label may go, best first: x, baseline y, anchor.
    pub(super) spots: Vec<(f64, f64, Anchor)>,
    pub(super) text: String,
    pub(super) color: &'static str,
    pub(super) bold: bool,
    /// Lower is placed first and so wins a collision.
    pub(super) priority: u8,
    pub(super) tooltip: String,
}

impl Label {
    pub(super) fn at(x: f64, y: f64, anchor: Anchor) -> Vec<(f64, f64, Anchor)> {
        vec![(x, y, anchor)]
    }

    /// The box the label covers at spot `k`: x0, y0, x1, y1.
    pub(super) fn rect(&self, k: usize) -> [f64; 4] {
        let Some(&(x, y, anchor)) = self.spots.get(k) else {
            return [0.0; 4];
        };
        let w = text_width(&self.text, self.bold);
        let x0 = match anchor {
            Anchor::Start => x,
            Anchor::End => x - w,
        };
        [x0 - 1.0, y - FONT + 1.5, x0 + w + 1.0, y + 2.5]
    }
}

/// Messages sent less than `CROWDED_PX` below or above another message from
/// the same host, at this view's scale.
pub(super) fn crowded_messages(model: &Model, view: &View) -> BTreeSet<usize> {
    let mut by_host: BTreeMap<&str, Vec<(u64, usize)>> = BTreeMap::new();
    for (i, m) in model.messages.iter().enumerate() {
        if view.contains(m.t_send) {
            by_host.entry(m.from).or_default().push((m.t_send, i));
        }
    }
    let mut crowded = BTreeSet::new();
    for sends in by_host.values() {
        // Already in time order: the model sorted the records.
        for pair in sends.windows(2) {
            let gap_px = (pair[1].0 - pair[0].0) as f64 / 1000.0 * view.px_per_ms;
            if gap_px < CROWDED_PX {
                crowded.insert(pair[0].1);
                crowded.insert(pair[1].1);
            }
        }
    }
    crowded
}

/// Chooses which labels to draw and where: most important first, each at
/// its first spot that overlaps no label already placed, or not at all.
/// Deterministic (ties keep input order). Returns (label, spot) pairs.
pub(super) fn place_labels(labels: &[Label]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&i| labels[i].priority);
    // Placed boxes bucketed by the integer pixel row of their top, so each
    // check only looks at its neighbours.
    let mut placed: BTreeMap<i64, Vec<[f64; 4]>> = BTreeMap::new();
    let mut chosen = Vec::new();
    let reach = (FONT + LABEL_GAP) as i64 + 4;
    for i in order {
        for k in 0..labels[i].spots.len() {
            let r = labels[i].rect(k);
            let row = r[1].floor() as i64;
            let clash = placed
                .range(row.saturating_sub(reach)..=row.saturating_add(reach))
                .flat_map(|(_, v)| v)
                .any(|p| {
                    r[0] < p[2] + 2.0
                        && p[0] < r[2] + 2.0
                        && r[1] < p[3] + LABEL_GAP
                        && p[1] < r[3] + LABEL_GAP
                });
            if !clash {
                placed.entry(row).or_default().push(r);
                chosen.push((i, k));
                break;
            }
        }
    }
    chosen.sort_unstable();
    chosen
}
