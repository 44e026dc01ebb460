//! The small shapes of the picture: arrowheads, crosses, stars, diamonds.

use super::*;

pub(super) fn arrow_glyph(
    x: f64,
    y: f64,
    color: &str,
    head: &str,
    width: f64,
    dash: Option<&str>,
    id: &str,
) -> String {
    let dash = dash
        .map(|d| format!(r#" stroke-dasharray="{d}""#))
        .unwrap_or_default();
    format!(
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="{width}"{dash} marker-end="url(#head-{head}-{id})"/>"#,
        f(x),
        f(y - 3.0),
        f(x + 26.0),
        f(y + 3.0)
    )
}

pub(super) fn cross(x: f64, y: f64, r: f64, color: &str, width: f64) -> String {
    format!(
        r#"<path d="M{},{} L{},{} M{},{} L{},{}" stroke="{color}" stroke-width="{width}" fill="none"/>"#,
        f(x - r),
        f(y - r),
        f(x + r),
        f(y + r),
        f(x - r),
        f(y + r),
        f(x + r),
        f(y - r)
    )
}

pub(super) fn star(x: f64, y: f64, r: f64) -> String {
    let mut d = String::new();
    for k in 0..10 {
        let radius = if k % 2 == 0 { r } else { r * 0.45 };
        let a = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
        let _ = write!(
            d,
            "{}{},{} ",
            if k == 0 { "M" } else { "L" },
            f(x + radius * a.cos()),
            f(y + radius * a.sin())
        );
    }
    format!(
        r#"<path d="{}z" fill="{C_DATA}" stroke="white" stroke-width="0.8"/>"#,
        d
    )
}

/// The bar of a held request, centred on a lifeline.
pub(super) fn hold_rect(x: f64, y0: f64, y1: f64) -> String {
    format!(
        r##"<rect x="{}" y="{}" width="7" height="{}" fill="#dbe4ff" stroke="#91a7ff" stroke-width="0.8"/>"##,
        f(x - 3.5),
        f(y0),
        f((y1 - y0).max(0.5))
    )
}

/// A proxy's own action: a small red square.
pub(super) fn proxy_mark(x: f64, y: f64) -> String {
    format!(
        r#"<rect x="{}" y="{}" width="9" height="9" fill="{C_FAULT}" stroke="white"/>"#,
        f(x - 4.5),
        f(y - 4.5)
    )
}

pub(super) fn open_circle(x: f64, y: f64) -> String {
    format!(
        r#"<circle cx="{}" cy="{}" r="3.2" fill="white" stroke="{C_CONN}" stroke-width="1.5"/>"#,
        f(x),
        f(y)
    )
}

pub(super) fn diamond(x: f64, y: f64, r: f64, color: &str, filled: bool) -> String {
    format!(
        r#"<path d="M{},{} L{},{} L{},{} L{},{} z" fill="{}" stroke="{color}" stroke-width="1.5"/>"#,
        f(x),
        f(y - r),
        f(x + r),
        f(y),
        f(x),
        f(y + r),
        f(x - r),
        f(y),
        if filled { color } else { "white" }
    )
}
