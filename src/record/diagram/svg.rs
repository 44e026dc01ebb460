//! Drawing: the model, laid out by the view, as SVG elements.

use super::*;
use crate::record::trace::{CutKind, Ending};

pub(super) struct Svg {
    pub(super) out: String,
    pub(super) title: String,
    pub(super) labels: Vec<Label>,
}

pub(super) fn f(v: f64) -> String {
    // One decimal is a tenth of a pixel: plenty, and stable across platforms.
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    if s == "-0.0" { "0.0".into() } else { s }
}

impl Svg {
    pub(super) fn new(view: &View, options: &DiagramOptions) -> Svg {
        let mut out = String::new();
        let (w, h) = (f(view.width), f(view.height));
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="{FONT}">"#
        );
        let title = if options.title.is_empty() {
            "space-time diagram".to_string()
        } else {
            options.title.clone()
        };
        let _ = writeln!(out, "<title>{}</title>", esc(&title));
        Svg {
            out,
            title: options.title.clone(),
            labels: Vec::new(),
        }
    }

    pub(super) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }

    pub(super) fn draw(&mut self, model: &Model, view: &View) {
        self.defs(view);
        let _ = writeln!(
            self.out,
            r#"<rect width="100%" height="100%" fill="white"/>"#
        );
        self.heading(model, view);
        self.legend(view);
        self.axis(view);
        self.hosts(model, view);
        let _ = writeln!(self.out, r#"<g clip-path="url(#plot-{})">"#, view.id);
        self.bands(model, view);
        self.holds(model, view);
        self.waits(model, view);
        self.messages(model, view);
        self.marks(model, view);
        self.out.push_str("</g>\n");
        self.draw_labels();
    }

    pub(super) fn defs(&mut self, view: &View) {
        let id = &view.id;
        let _ = writeln!(self.out, "<defs>");
        // One arrowhead per colour: markers cannot inherit the line's colour
        // everywhere yet (`context-stroke` is recent).
        for (name, color) in [
            ("req", C_REQUEST),
            ("empty", C_EMPTY),
            ("data", C_DATA),
            ("other", C_OTHER),
            ("lost", C_LOST),
        ] {
            let _ = writeln!(
                self.out,
                r#"<marker id="head-{name}-{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>"#
            );
        }
        let _ = writeln!(
            self.out,
            r#"<clipPath id="plot-{id}"><rect x="0" y="{}" width="{}" height="{}"/></clipPath>"#,
            f(view.plot_top - PAD),
            f(view.width),
            f(view.plot_bottom - view.plot_top + 2.0 * PAD)
        );
        let _ = writeln!(self.out, "</defs>");
    }

    /// The caller's title, then a line that says how to read distances.
    pub(super) fn heading(&mut self, model: &Model, view: &View) {
        let mut sub = format!(
            "{} to {} of simulated time; time flows down, 100 px = {}; {} messages",
            seconds(view.from),
            seconds(view.to),
            short_duration((100.0 / view.px_per_ms * 1000.0).round() as u64),
            view.messages_shown,
        );
        if let Some(l) = model.typical_latency {
            let _ = write!(
                sub,
                "; typical one-way latency {} ms (the slant of an arrow)",
                ms(l)
            );
        }
        if let Some(total) = view.truncated {
            let _ = write!(
                sub,
                "; stopped after {MAX_MESSAGES} of {total} messages, choose a window to see the rest"
            );
        }
        if !self.title.is_empty() {
            let _ = writeln!(
                self.out,
                r#"<text x="16" y="24" font-size="16" font-weight="bold" fill="{C_TEXT}">{}</text>"#,
                esc(&self.title)
            );
        }
        let _ = writeln!(
            self.out,
            r#"<text x="16" y="{}" fill="{C_MUTED}">{}</text>"#,
            f(view.legend_top - 16.0),
            esc(&sub)
        );
    }

    pub(super) fn legend(&mut self, view: &View) {
        let _ = writeln!(self.out, r#"<g fill="{C_TEXT}">"#);
        for (r, row) in view.legend.iter().enumerate() {
            let y = view.legend_top + r as f64 * LEGEND_ROW;
            for &(x, i) in row {
                let gx = x;
                let gy = y - 4.0;
                let Some(&(kind, text)) = LEGEND.get(i) else {
                    continue;
                };
                let glyph = match kind {
                    Glyph::Request => arrow_glyph(gx, gy, C_REQUEST, "req", 1.4, None, &view.id),
                    Glyph::Empty => {
                        arrow_glyph(gx, gy, C_EMPTY, "empty", 1.2, Some("4 3"), &view.id)
                    }
                    Glyph::Data => arrow_glyph(gx, gy, C_DATA, "data", 2.6, None, &view.id),
                    Glyph::Held => hold_rect(gx + 14.0, gy - 7.0, gy + 6.0),
                    Glyph::Proxy => proxy_mark(gx + 14.0, gy),
                    Glyph::Lost => format!(
                        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{C_LOST}" stroke-width="1.4"/>{}"#,
                        f(gx),
                        f(gy),
                        f(gx + 20.0),
                        f(gy),
                        cross(gx + 20.0, gy, 4.5, C_LOST, 2.0)
                    ),
                    Glyph::Publish => star(gx + 14.0, gy, 6.5),
                    Glyph::Deliver => format!(
                        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{C_DATA}" stroke-opacity="0.45" stroke-width="3"/><circle cx="{}" cy="{}" r="4" fill="{C_DATA}"/>"#,
                        f(gx + 4.0),
                        f(gy - 7.0),
                        f(gx + 4.0),
                        f(gy + 5.0),
                        f(gx + 14.0),
                        f(gy)
                    ),
                    Glyph::Conn => format!(
                        "{}{}",
                        open_circle(gx + 8.0, gy),
                        cross(gx + 22.0, gy, 3.5, C_OTHER, 1.5)
                    ),
                    Glyph::Error => diamond(gx + 14.0, gy, 4.5, C_LOST, true),
                    Glyph::Fault => format!(
                        r#"<rect x="{}" y="{}" width="24" height="12" fill="{C_FAULT}" fill-opacity="0.16"/>"#,
                        f(gx),
                        f(gy - 6.0)
                    ),
                };
                let _ = writeln!(
                    self.out,
                    r#"{glyph}<text x="{}" y="{}">{}</text>"#,
                    f(x + LEGEND_GLYPH),
                    f(y),
                    esc(text)
                );
            }
        }
        let _ = writeln!(self.out, "</g>");
    }

    pub(super) fn axis(&mut self, view: &View) {
        // Round steps at least ~56 px apart.
        let step = nice_step(56.0 / view.px_per_ms * 1000.0).max(1);
        let in_ms = view.to - view.from < 2_000_000 && step < 1_000_000;
        let x = 64.0;
        let _ = writeln!(
            self.out,
            r#"<g font-size="10" fill="{C_MUTED}" text-anchor="end">"#
        );
        let _ = writeln!(
            self.out,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{C_LIFELINE}"/>"#,
            f(view.plot_top),
            f(view.plot_bottom)
        );
        let first = view.from.div_ceil(step).saturating_mul(step);
        let mut t = first;
        let mut n = 0;
        while t <= view.to && n < 2000 {
            let y = view.y(t);
            let _ = writeln!(
                self.out,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{C_GRID}"/><line x1="{}" y1="{y}" x2="{x}" y2="{y}" stroke="{C_LIFELINE}"/><text x="{}" y="{}">{}</text>"#,
                f(x),
                f(view.width - 16.0),
                f(x - 4.0),
                f(x - 6.0),
                f(y + 3.5),
                esc(&tick_label(t, step, in_ms)),
                y = f(y)
            );
            match t.checked_add(step) {
                Some(next) => t = next,
                None => break,
            }
            n += 1;
        }
        let _ = writeln!(
            self.out,
            r#"<text x="{x}" y="{}" font-style="italic">time ↓</text>"#,
            f(view.plot_top - PAD - 6.0)
        );
        let _ = writeln!(self.out, "</g>");
    }

    pub(super) fn hosts(&mut self, model: &Model, view: &View) {
        let top = view.plot_top - PAD;
        let bottom = view.plot_bottom + PAD;
        for (host, &x) in model.hosts.iter().zip(&view.lane_x) {
            let name = esc(&clip_text(host, 18));
            let w = name.chars().count() as f64 * 7.2 + 16.0;
            let _ = writeln!(
                self.out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{C_LIFELINE}" stroke-width="1.5"/>"#,
                f(top),
                f(bottom),
                x = f(x)
            );
            for (y, box_y) in [
                (view.header_y, view.header_y - 14.0),
                (bottom + 22.0, bottom + 8.0),
            ] {
                let _ = writeln!(
                    self.out,
                    r##"<rect x="{}" y="{}" width="{}" height="20" rx="4" fill="#f8f9fa" stroke="{C_LIFELINE}"/><text x="{}" y="{}" text-anchor="middle" font-size="12" font-weight="bold" fill="{C_TEXT}">{name}</text>"##,
                    f(x - w / 2.0),
                    f(box_y),
                    f(w),
                    f(x),
                    f(y)
                );
            }
        }
    }

    pub(super) fn bands(&mut self, model: &Model, view: &View) {
        for band in &model.bands {
            let Some(x) = view.lane(model, band.host) else {
                continue;
            };
            let end = band.end.unwrap_or(u64::MAX);
            if band.start > view.to || end < view.from {
                continue;
            }
            // Shade the visible part; an open-ended fault runs to the edge.
            let y0 = view.y(band.start.max(view.from));
            let y1 = if end > view.to {
                view.plot_bottom + PAD
            } else {
                view.y(end)
            };
            let (what, start_word, end_word) = match band.kind {
                Outage::Cut(CutKind::Silent) => ("cut off", "cut off (packets dropped)", "healed"),
                Outage::Cut(CutKind::Hold) => {
                    ("cut off", "cut off (packets held until the heal)", "healed")
                }
                Outage::Cut(CutKind::Reset) => ("cut off", "cut off (connections reset)", "healed"),
                Outage::Cut(CutKind::Forget) => (
                    "cut off",
                    "cut off (the middlebox forgets its connections)",
                    "healed",
                ),
                Outage::Crash => ("crashed", "crashed", "restarted"),
            };
            let tip = match band.end {
                Some(e) => format!(
                    "{} {start_word} from {} ms to {} ms ({} ms)",
                    band.host,
                    ms(band.start),
                    ms(e),
                    ms(e.saturating_sub(band.start))
                ),
                None => format!(
                    "{} {start_word} from {} ms, not {end_word} by the end of the trace",
                    band.host,
                    ms(band.start)
                ),
            };
            let _ = writeln!(
                self.out,
                r#"<rect x="{}" y="{}" width="{BAND_W}" height="{}" fill="{C_FAULT}" fill-opacity="0.16"><title>{}</title></rect>"#,
                f(x - BAND_W / 2.0),
                f(y0),
                f((y1 - y0).max(1.0)),
                esc(&tip)
            );
            // Solid edges where the fault really begins and ends.
            for t in [Some(band.start), band.end] {
                let Some(t) = t.filter(|t| view.contains(*t)) else {
                    continue;
                };
                let y = view.y(t);
                let _ = writeln!(
                    self.out,
                    r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{C_FAULT}" stroke-width="2"/>"#,
                    f(x - BAND_W / 2.0),
                    f(x + BAND_W / 2.0),
                    y = f(y)
                );
            }
            // The label sits at the top of what is visible, even when the
            // fault began before the window.
            let label_t = band.start.max(view.from);
            self.labels.push(Label {
                spots: Label::at(
                    x + BAND_W / 2.0 + 4.0,
                    view.y(label_t) + 12.0,
                    Anchor::Start,
                ),
                text: what.to_string(),
                color: C_FAULT,
                bold: true,
                priority: 0,
                tooltip: tip.clone(),
            });
            if let Some(e) = band.end.filter(|e| view.contains(*e)) {
                self.labels.push(Label {
                    spots: Label::at(x + BAND_W / 2.0 + 4.0, view.y(e) + 12.0, Anchor::Start),
                    text: end_word.to_string(),
                    color: C_FAULT,
                    bold: false,
                    priority: 1,
                    tooltip: tip,
                });
            }
        }
    }

    /// Requests being held: a bar on the holding host's lifeline from the
    /// request's arrival to its answer (or the connection's end).
    pub(super) fn holds(&mut self, model: &Model, view: &View) {
        for h in &model.holds {
            let end = h.to.unwrap_or(u64::MAX);
            if end < view.from || h.from > view.to {
                continue;
            }
            let Some(x) = view.lane(model, h.host) else {
                continue;
            };
            let y0 = view.y(h.from.max(view.from));
            let y1 = if end > view.to {
                view.plot_bottom + PAD
            } else {
                view.y(end)
            };
            // An answer within a couple of pixels is not worth a bar: short
            // polling's server answers at once, and that is the point.
            if y1 - y0 < 2.0 {
                continue;
            }
            let tip = match (h.to, h.answered) {
                (Some(to), true) => format!(
                    "{} held {} from {} for {} ms: from {} ms to {} ms, then answered",
                    h.host,
                    h.what,
                    h.peer,
                    ms(to.saturating_sub(h.from)),
                    ms(h.from),
                    ms(to)
                ),
                (Some(to), false) => format!(
                    "{} held {} from {} for {} ms: from {} ms until its connection closed (or the host crashed) at {} ms, unanswered",
                    h.host,
                    h.what,
                    h.peer,
                    ms(to.saturating_sub(h.from)),
                    ms(h.from),
                    ms(to)
                ),
                (None, _) => format!(
                    "{} held {} from {} from {} ms, unanswered at the end of the trace",
                    h.host,
                    h.what,
                    h.peer,
                    ms(h.from)
                ),
            };
            let _ = writeln!(
                self.out,
                "<g><title>{}</title>{}</g>",
                esc(&tip),
                hold_rect(x, y0, y1)
            );
        }
    }

    /// The bar beside a client from an event's publication to its delivery:
    /// the delivery latency, drawn as a length.
    pub(super) fn waits(&mut self, model: &Model, view: &View) {
        let _ = writeln!(
            self.out,
            r#"<g stroke="{C_DATA}" stroke-opacity="0.45" stroke-width="3">"#
        );
        for (t, host, mark) in &model.marks {
            let Mark::Deliver {
                event,
                client,
                latency_us,
            } = mark
            else {
                continue;
            };
            let p = t.saturating_sub(*latency_us);
            if *t < view.from || p > view.to {
                continue;
            }
            let Some(x) = view.lane(model, host) else {
                continue;
            };
            let _ = writeln!(
                self.out,
                r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}"><title>client {client} waited {} ms for event {event}: published at {} ms, delivered at {} ms</title></line>"#,
                f(view.y(p)),
                f(view.y(*t)),
                ms(t - p),
                ms(p),
                ms(*t),
                x = f(x - 6.0),
            );
        }
        let _ = writeln!(self.out, "</g>");
    }

    pub(super) fn messages(&mut self, model: &Model, view: &View) {
        let lane_gap = if view.lane_x.len() > 1 {
            view.lane_x[1] - view.lane_x[0]
        } else {
            LANE_MAX
        };
        let latency_px = model.typical_latency.unwrap_or(0) as f64 / 1000.0 * view.px_per_ms;
        // Unimportant kinds first, so data and losses are drawn on top.
        let mut order: Vec<usize> = (0..model.messages.len()).collect();
        order.sort_by_key(|&i| {
            let m = &model.messages[i];
            let lost = m.t_recv.is_none();
            let rank = match (lost, m.look()) {
                (true, _) => 4,
                (false, Look::Empty) => 0,
                (false, Look::Other) => 1,
                (false, Look::Request) => 2,
                (false, Look::Data) => 3,
            };
            (rank, i)
        });
        let crowded = crowded_messages(model, view);
        let mut drawn = 0;
        for i in order {
            let m = &model.messages[i];
            let end_t = m.t_recv.unwrap_or(m.t_send).max(m.t_send);
            if end_t < view.from || m.t_send > view.to {
                continue;
            }
            drawn += 1;
            if drawn > MAX_MESSAGES {
                break;
            }
            let Some(x1) = view.lane(model, m.from) else {
                continue;
            };
            let y1 = view.y(m.t_send);
            let target = m.to.and_then(|h| view.lane(model, h));
            let kind = m.look();
            let (color, head, width, dash) = match kind {
                Look::Request => (C_REQUEST, "req", 1.4, None),
                Look::Empty => (C_EMPTY, "empty", 1.2, Some("4 3")),
                Look::Data => (C_DATA, "data", 2.6, None),
                Look::Other => (C_OTHER, "other", 1.4, None),
            };
            let to_name = m.to.unwrap_or("?");
            let mut tip = format!(
                "{}\n{} → {}\nsent at {} ms",
                m.what,
                m.from,
                to_name,
                ms(m.t_send)
            );
            // The message's own words, shortened, then what the diagram
            // knows about it, which must survive the shortening.
            let mut text = clip_text(m.what, 32);
            if let Some(n) = m.events {
                if n == 0 {
                    text.push_str(" (empty)");
                } else {
                    let _ = write!(text, " ({n} event{})", if n == 1 { "" } else { "s" });
                }
            }
            if m.retry {
                text.push_str(" (retry)");
            }
            let dash_attr = dash
                .map(|d| format!(r#" stroke-dasharray="{d}""#))
                .unwrap_or_default();

            let (x2, y2, label_color, priority) = match (m.t_recv, target) {
                (Some(r), Some(x2)) if x2 != x1 => {
                    let _ = write!(
                        tip,
                        ", received at {} ms ({} ms in flight)",
                        ms(r),
                        ms(r.saturating_sub(m.t_send))
                    );
                    let y2 = view.y(r);
                    let _ = writeln!(
                        self.out,
                        r##"<g><title>{}</title><line class="msg {head}" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="{width}"{dash_attr} marker-end="url(#head-{head}-{})"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#000" stroke-opacity="0" stroke-width="8"/></g>"##,
                        esc(&self.finish_tip(tip.clone(), m)),
                        f(x1),
                        f(y1),
                        f(x2),
                        f(y2),
                        view.id,
                        f(x1),
                        f(y1),
                        f(x2),
                        f(y2),
                    );
                    let priority = match kind {
                        Look::Data => 0,
                        Look::Other => 2,
                        Look::Request => 3,
                        Look::Empty => 4,
                    };
                    (x2, y2, color, priority)
                }
                (Some(r), _) => {
                    // Sent and received on the same lifeline (or to a host
                    // with no lifeline): a small loop.
                    let y2 = view.y(r);
                    let _ = writeln!(
                        self.out,
                        r#"<path class="msg {head}" d="M{},{} h24 V{} h-24" fill="none" stroke="{color}" stroke-width="{width}"{dash_attr} marker-end="url(#head-{head}-{})"><title>{}</title></path>"#,
                        f(x1),
                        f(y1),
                        f(y2),
                        view.id,
                        esc(&self.finish_tip(tip.clone(), m))
                    );
                    (x1 + 24.0, y2, color, 4)
                }
                (None, _) => {
                    // Never received: the arrow goes part of the way, at the
                    // slant of a typical message, and stops.
                    let in_flight = !m.lost
                        && m.t_send.saturating_add(
                            model.typical_latency.unwrap_or(100_000).saturating_mul(3),
                        ) > model.last_t;
                    // Never past the neighbouring lifeline: a stub that ended
                    // between two other hosts would seem to be aimed at them.
                    let dx = match target {
                        Some(x2) if x2 != x1 => {
                            let reach = lane_gap * 0.45;
                            ((x2 - x1) * 0.45).clamp(-reach, reach)
                        }
                        _ => {
                            let rightmost = view.lane_x.last().copied().unwrap_or(x1);
                            if x1 < rightmost {
                                lane_gap * 0.45
                            } else {
                                -lane_gap * 0.45
                            }
                        }
                    };
                    let x2 = x1 + dx;
                    let y2 = y1 + latency_px * 0.45;
                    if in_flight {
                        tip.push_str("\nstill in flight when the trace ended");
                    } else if m.lost {
                        tip.push_str("\ndid not get through: TCP sent it again later");
                    } else {
                        tip.push_str(
                            "\nnever received (the link was cut, or the peer was down or gone)",
                        );
                    }
                    let c = if in_flight { color } else { C_LOST };
                    let _ = writeln!(
                        self.out,
                        r#"<g><title>{}</title><line class="msg {}" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{c}" stroke-width="{}" stroke-dasharray="{}"/>{}</g>"#,
                        esc(&self.finish_tip(tip.clone(), m)),
                        if in_flight { "in-flight" } else { "lost" },
                        f(x1),
                        f(y1),
                        f(x2),
                        f(y2),
                        if kind == Look::Data { 2.6 } else { 1.6 },
                        if in_flight { "2 3" } else { "6 2" },
                        if in_flight {
                            String::new()
                        } else {
                            cross(x2, y2, 5.0, C_LOST, 2.2)
                        },
                    );
                    if !in_flight {
                        text.push_str(" — lost");
                    }
                    (x2, y2, c, if in_flight { 3 } else { 0 })
                }
            };
            if !view.contains(m.t_send) {
                continue;
            }
            // A transmission TCP repeated has its label on the one that got
            // through; the stubs keep only their tooltips.
            if m.lost {
                continue;
            }
            // The label starts where the arrow leaves its sender, above it
            // for requests and below it for answers, so that a request and
            // its answer a few pixels lower do not cover each other.
            // If that spot is taken, the label may go where the arrow
            // arrives instead (only for arrows that arrive in the window).
            let rightward = x2 >= x1;
            let below = m.dir == Dir::Down;
            let dy = if below { 12.0 } else { -4.0 };
            let (near, far) = if rightward {
                (Anchor::Start, Anchor::End)
            } else {
                (Anchor::End, Anchor::Start)
            };
            let side = if rightward { 10.0 } else { -10.0 };
            // Last resorts: the other side of the line, at either end.
            let other_dy = if below { -4.0 } else { 12.0 };
            let arrives = m.t_recv.is_some_and(|r| view.contains(r)) && x2 != x1;
            let mut spots = vec![(x1 + side, y1 + dy, near)];
            if arrives {
                spots.push((x2 - side, y2 + dy, far));
            }
            spots.push((x1 + side, y1 + other_dy, near));
            if arrives {
                spots.push((x2 - side, y2 + other_dy, far));
            }
            // Routine labels (requests, empty answers) are left out where
            // their lifeline is busy: there the rhythm is the message, and
            // each arrow still has its tooltip.
            if crowded.contains(&i) && matches!(kind, Look::Request | Look::Empty) {
                continue;
            }
            self.labels.push(Label {
                spots,
                text,
                color: label_color,
                bold: kind == Look::Data,
                priority,
                tooltip: self.finish_tip(tip, m),
            });
        }
    }

    pub(super) fn finish_tip(&self, mut tip: String, m: &Message) -> String {
        let _ = write!(
            tip,
            "\n{} bytes, message {} {} on {}",
            m.bytes,
            m.seq,
            match m.dir {
                Dir::Up => "up",
                Dir::Down => "down",
            },
            m.conn
        );
        tip
    }

    pub(super) fn marks(&mut self, model: &Model, view: &View) {
        for (t, host, mark) in &model.marks {
            if !view.contains(*t) {
                continue;
            }
            let Some(x) = view.lane(model, host) else {
                continue;
            };
            let y = view.y(*t);
            let at = ms(*t);
            // Each mark: its glyph, its tooltip, and maybe a label as
            // (text, colour, bold, priority, below the point).
            type MarkLabel = Option<(String, &'static str, bool, u8, bool)>;
            let (glyph, tip, label): (String, String, MarkLabel) = match mark {
                Mark::Publish(e) => (
                    star(x, y, 7.0),
                    format!("event {e} published at {at} ms"),
                    Some((format!("event {e} published"), C_DATA, true, 0, false)),
                ),
                Mark::Deliver {
                    client,
                    event,
                    latency_us,
                } => {
                    // With many clients per host, say which one it was.
                    let who = if model.single_client.get(host) == Some(client) {
                        String::new()
                    } else {
                        format!("client {client} ")
                    };
                    let text = format!("{who}got {event} (+{})", short_duration(*latency_us));
                    let tip = format!(
                        "client {client} got event {event} at {at} ms, {} ms after it was published",
                        ms(*latency_us)
                    );
                    (
                        format!(
                            r#"<circle cx="{}" cy="{}" r="4.5" fill="{C_DATA}" stroke="white"/>"#,
                            f(x),
                            f(y)
                        ),
                        tip,
                        Some((text, C_DATA, true, 0, true)),
                    )
                }
                Mark::Connect { conn, reconnect } => (
                    open_circle(x, y),
                    format!(
                        "{} {conn} at {at} ms",
                        if *reconnect {
                            "reconnected"
                        } else {
                            "connected"
                        }
                    ),
                    None,
                ),
                Mark::Accept { conn } => (
                    open_circle(x, y),
                    format!("accepted {conn} at {at} ms"),
                    None,
                ),
                Mark::Close {
                    conn,
                    ending,
                    reason,
                } => (
                    cross(x, y, 3.5, C_OTHER, 1.5),
                    match ending {
                        Ending::Closed => format!("closed {conn} at {at} ms: {reason}"),
                        Ending::Failed => format!("gave up {conn} at {at} ms: {reason}"),
                    },
                    None,
                ),
                Mark::ConnectFailed { target, reason } => (
                    diamond(x, y, 4.5, C_LOST, false),
                    format!("could not connect to {target} at {at} ms: {reason}"),
                    Some((format!("connect failed: {reason}"), C_LOST, false, 1, false)),
                ),
                Mark::SynRetransmit { target, attempt } => (
                    diamond(x, y, 3.0, C_LOST, false),
                    format!(
                        "SYN to {target} unanswered: sent again at {at} ms (retransmission {attempt})"
                    ),
                    None,
                ),
                Mark::KeepaliveProbe { conn, answered } => (
                    format!(
                        r#"<circle cx="{}" cy="{}" r="2.5" fill="{}"/>"#,
                        f(x),
                        f(y),
                        if *answered { C_MUTED } else { C_LOST }
                    ),
                    format!(
                        "keep-alive probe on {conn} at {at} ms: {}",
                        if *answered { "answered" } else { "unanswered" }
                    ),
                    None,
                ),
                Mark::Error { client, what } => (
                    diamond(x, y, 4.5, C_LOST, true),
                    format!("client {client} gave up on a request at {at} ms: {what}"),
                    Some((what.to_string(), C_LOST, false, 2, false)),
                ),
                Mark::Proxy {
                    conn,
                    action,
                    reason,
                } => (
                    proxy_mark(x, y),
                    format!(
                        "{host} at {at} ms: {} ({reason}) on {conn}",
                        action.describe()
                    ),
                    Some((action.describe().to_string(), C_FAULT, true, 0, false)),
                ),
            };
            let _ = writeln!(self.out, "<g><title>{}</title>{glyph}</g>", esc(&tip));
            if let Some((text, color, bold, priority, below)) = label {
                self.labels.push(Label {
                    // Right of the lifeline; a delivery, which matters most,
                    // may also go left of it (past the wait bar).
                    spots: {
                        let ly = if below { y + 14.0 } else { y + 4.0 };
                        let mut spots = vec![(x + 9.0, ly, Anchor::Start)];
                        if matches!(mark, Mark::Deliver { .. }) {
                            spots.push((x - 12.0, ly, Anchor::End));
                        }
                        spots
                    },
                    text: clip_text(&text, 36),
                    color,
                    bold,
                    priority,
                    tooltip: tip,
                });
            }
        }
    }

    pub(super) fn draw_labels(&mut self) {
        let chosen = place_labels(&self.labels);
        // A translucent white box keeps a label readable where arrows and
        // lifelines cross it, while still showing that they do.
        let _ = writeln!(self.out, "<g>");
        for (i, k) in chosen {
            let l = &self.labels[i];
            let Some(&(x, y, anchor)) = l.spots.get(k) else {
                continue;
            };
            let r = l.rect(k);
            let _ = writeln!(
                self.out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="white" fill-opacity="0.85"/>"#,
                f(r[0]),
                f(r[1]),
                f(r[2] - r[0]),
                f(r[3] - r[1])
            );
            let title = if l.tooltip.is_empty() {
                String::new()
            } else {
                format!("<title>{}</title>", esc(&l.tooltip))
            };
            let _ = writeln!(
                self.out,
                r#"<text x="{}" y="{}" fill="{}"{}{}>{title}{}</text>"#,
                f(x),
                f(y),
                l.color,
                if anchor == Anchor::End {
                    r#" text-anchor="end""#
                } else {
                    ""
                },
                if l.bold { r#" font-weight="bold""# } else { "" },
                esc(&l.text)
            );
        }
        let _ = writeln!(self.out, "</g>");
    }
}
