//! The space-time diagram (placeholder: being written).

use crate::scenario::Span;
use crate::trace::Record;

/// What part of a run to draw, and how.
#[derive(Clone, Debug, Default)]
pub struct DiagramOptions {
    /// Draw only `[from, to]` of simulated time; the whole run if `None`.
    pub window: Option<(Span, Span)>,
    /// A caption drawn at the top.
    pub title: String,
}

/// Renders `records` as an SVG document.
pub fn render(records: &[Record], options: &DiagramOptions) -> String {
    let _ = (records, options);
    String::from("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
}
