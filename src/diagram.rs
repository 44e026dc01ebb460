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

use crate::scenario::Span;
use crate::trace::{Dir, Event, Record};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

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

// ---------------------------------------------------------------------------
// The model: what happened, independent of how it is drawn.

/// What kind of message an arrow is, which decides its colour and dash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Client to server (`Dir::Up`).
    Request,
    /// An answer that said "nothing new": the waste polling pays for.
    Empty,
    /// An answer that carried events: the point of the whole exercise.
    Data,
    /// Any other answer (an error status, a frame we cannot count).
    Other,
}

/// One message, matched across the network.
struct Message<'a> {
    from: &'a str,
    /// The receiver, or for an unreceived message the peer named by the
    /// connection, if it can be read from it.
    to: Option<&'a str>,
    t_send: u64,
    t_recv: Option<u64>,
    conn: &'a str,
    dir: Dir,
    seq: u32,
    what: &'a str,
    bytes: u64,
    events: Option<u32>,
    lost: bool,
    retry: bool,
}

impl Message<'_> {
    fn kind(&self) -> Kind {
        match (self.dir, self.events) {
            (Dir::Up, _) => Kind::Request,
            (Dir::Down, Some(0)) => Kind::Empty,
            (Dir::Down, Some(_)) => Kind::Data,
            (Dir::Down, None) => Kind::Other,
        }
    }
}

/// Something that happened at one instant on one host.
enum Mark<'a> {
    Publish(u64),
    Deliver {
        client: u32,
        event: u64,
    },
    Connect {
        conn: &'a str,
        reconnect: bool,
    },
    Accept {
        conn: &'a str,
    },
    Close {
        conn: &'a str,
        reason: &'a str,
    },
    ConnectFailed {
        target: &'a str,
        reason: &'a str,
    },
    Error {
        client: u32,
        what: &'a str,
    },
    /// A proxy acted on its own (cut an idle connection, say).
    Proxy {
        conn: &'a str,
        action: &'a str,
        reason: &'a str,
    },
}

/// A request a host has received and not yet answered: the time it holds
/// it. Long polling is this bar growing; a proxy's idle timeout is this bar
/// being cut.
struct Hold<'a> {
    host: &'a str,
    from: u64,
    /// When the answer left, or the connection closed; `None` if neither
    /// happened in the trace.
    to: Option<u64>,
    answered: bool,
    what: &'a str,
    peer: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Cut,
    Crash,
}

/// A stretch of time during which a host was cut off or down. `end` is
/// `None` when the trace never says it ended.
struct Band<'a> {
    kind: FaultKind,
    host: &'a str,
    start: u64,
    end: Option<u64>,
}

struct Model<'a> {
    /// Hosts in lifeline order: clients, then the hosts in between, then the
    /// server.
    hosts: Vec<&'a str>,
    messages: Vec<Message<'a>>,
    marks: Vec<(u64, &'a str, Mark<'a>)>,
    bands: Vec<Band<'a>>,
    holds: Vec<Hold<'a>>,
    /// When each event was published (the first time, if the trace repeats).
    published: BTreeMap<u64, u64>,
    /// Median one-way latency of the messages that arrived, in microseconds.
    typical_latency: Option<u64>,
    last_t: u64,
}

/// The pseudo-host the run loop records network-wide faults on.
const NETWORK: &str = "network";

/// Sorting key that puts `client-2` before `client-10`, clients first, the
/// server last and everything else (proxies) in between.
fn host_order(host: &str) -> (u8, u64, &str) {
    if let Some(n) = host.strip_prefix("client-") {
        (0, n.parse().unwrap_or(u64::MAX), host)
    } else if host == "server" {
        (2, 0, host)
    } else {
        (1, 0, host)
    }
}

/// The two hosts of a connection named `client-1:49152>server:80`.
fn conn_ends(conn: &str) -> Option<(&str, &str)> {
    let (a, b) = conn.split_once('>')?;
    fn host(end: &str) -> Option<&str> {
        let h = end.rsplit_once(':').map_or(end, |(h, _)| h);
        (!h.is_empty()).then_some(h)
    }
    Some((host(a)?, host(b)?))
}

/// Where a message sent on `conn` in direction `dir` was going.
fn conn_peer(conn: &str, dir: Dir) -> Option<&str> {
    let (opener, acceptor) = conn_ends(conn)?;
    Some(match dir {
        Dir::Up => acceptor,
        Dir::Down => opener,
    })
}

impl<'a> Model<'a> {
    fn build(records: &'a [Record]) -> Model<'a> {
        // Records come in time order from a run, but a hand-made trace might
        // not; a stable sort keeps the order of records at the same instant.
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| records[i].t_us);

        let mut hosts: BTreeSet<&str> = BTreeSet::new();
        let mut messages: Vec<Message> = Vec::new();
        // A connection name could in principle come back (a port reused), so
        // each key holds a queue of sends waiting for their receipt.
        let mut waiting: BTreeMap<(&str, Dir, u32), VecDeque<usize>> = BTreeMap::new();
        let mut marks = Vec::new();
        let mut bands = Vec::new();
        let mut open_faults: BTreeMap<(u8, &str), u64> = BTreeMap::new();
        let mut published = BTreeMap::new();
        let mut last_t = 0;

        for &i in &order {
            let r = &records[i];
            let t = r.t_us;
            last_t = last_t.max(t);
            let host = r.host.as_str();
            if host != NETWORK {
                hosts.insert(host);
            }
            match &r.event {
                Event::Send {
                    conn,
                    dir,
                    seq,
                    what,
                    bytes,
                    events,
                    lost,
                    retry,
                } => {
                    let to = conn_peer(conn, *dir).filter(|p| *p != host);
                    if let Some(p) = to {
                        hosts.insert(p);
                    }
                    if !lost {
                        waiting
                            .entry((conn.as_str(), *dir, *seq))
                            .or_default()
                            .push_back(messages.len());
                    }
                    messages.push(Message {
                        from: host,
                        to,
                        t_send: t,
                        t_recv: None,
                        conn,
                        dir: *dir,
                        seq: *seq,
                        what,
                        bytes: *bytes,
                        events: *events,
                        lost: *lost,
                        retry: *retry,
                    });
                }
                Event::Recv { conn, dir, seq, .. } => {
                    // A receipt without its send (a truncated trace) has
                    // nothing to draw an arrow from: it is skipped.
                    let key = (conn.as_str(), *dir, *seq);
                    if let Some(queue) = waiting.get_mut(&key)
                        && let Some(m) = queue.pop_front()
                    {
                        messages[m].t_recv = Some(t);
                        messages[m].to = Some(host);
                        if queue.is_empty() {
                            waiting.remove(&key);
                        }
                    }
                }
                Event::Proxy {
                    conn,
                    action,
                    reason,
                } => marks.push((
                    t,
                    host,
                    Mark::Proxy {
                        conn,
                        action,
                        reason,
                    },
                )),
                Event::Publish { event } => {
                    published.entry(*event).or_insert(t);
                    marks.push((t, host, Mark::Publish(*event)));
                }
                Event::Deliver { client, event } => {
                    marks.push((
                        t,
                        host,
                        Mark::Deliver {
                            client: *client,
                            event: *event,
                        },
                    ));
                }
                Event::Connect { conn, reconnect } => marks.push((
                    t,
                    host,
                    Mark::Connect {
                        conn,
                        reconnect: *reconnect,
                    },
                )),
                Event::Accept { conn } => marks.push((t, host, Mark::Accept { conn })),
                Event::Close { conn, reason } => {
                    marks.push((t, host, Mark::Close { conn, reason }))
                }
                Event::ConnectFailed { target, reason } => {
                    marks.push((t, host, Mark::ConnectFailed { target, reason }))
                }
                Event::Error { client, what } => marks.push((
                    t,
                    host,
                    Mark::Error {
                        client: *client,
                        what,
                    },
                )),
                Event::Fault {
                    kind,
                    hosts: fault_hosts,
                } => {
                    // A fault opens with `cut`/`crash` and closes with
                    // `heal`/`restart` of the same host; an unmatched end is
                    // ignored, an unmatched start lasts to the end.
                    let (class, opens) = match kind.as_str() {
                        "cut" => (0, true),
                        "heal" => (0, false),
                        "crash" => (1, true),
                        "restart" => (1, false),
                        _ => continue,
                    };
                    for h in fault_hosts {
                        let h = h.as_str();
                        if h != NETWORK {
                            hosts.insert(h);
                        }
                        if opens {
                            open_faults.entry((class, h)).or_insert(t);
                        } else if let Some(start) = open_faults.remove(&(class, h)) {
                            bands.push(Band {
                                kind: if class == 0 {
                                    FaultKind::Cut
                                } else {
                                    FaultKind::Crash
                                },
                                host: h,
                                start,
                                end: Some(t),
                            });
                        }
                    }
                }
            }
        }
        for ((class, host), start) in open_faults {
            bands.push(Band {
                kind: if class == 0 {
                    FaultKind::Cut
                } else {
                    FaultKind::Crash
                },
                host,
                start,
                end: None,
            });
        }
        bands.sort_by_key(|b| (b.start, b.host));

        let mut latencies: Vec<u64> = messages
            .iter()
            .filter_map(|m| m.t_recv.map(|r| r.saturating_sub(m.t_send)))
            .collect();
        latencies.sort_unstable();
        let typical_latency = latencies.get(latencies.len() / 2).copied();

        let holds = find_holds(&messages, &marks, &bands);
        let mut hosts: Vec<&str> = hosts.into_iter().collect();
        hosts.sort_by_key(|h| host_order(h));
        Model {
            hosts,
            messages,
            marks,
            bands,
            holds,
            published,
            typical_latency,
            last_t,
        }
    }
}

/// Pairs each received request with the answer its receiver sent back on the
/// same connection (HTTP/1.1 answers in order, so answer `n` goes with
/// request `n`), or else with the receiver closing that connection or
/// crashing, whichever comes first.
fn find_holds<'a>(
    messages: &[Message<'a>],
    marks: &[(u64, &'a str, Mark<'a>)],
    bands: &[Band<'a>],
) -> Vec<Hold<'a>> {
    let mut answers: BTreeMap<(&str, u32, &str), u64> = BTreeMap::new();
    for m in messages.iter().filter(|m| m.dir == Dir::Down) {
        answers.entry((m.conn, m.seq, m.from)).or_insert(m.t_send);
    }
    let mut closes: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for (t, host, mark) in marks {
        if let Mark::Close { conn, .. } | Mark::Proxy { conn, .. } = mark {
            closes.entry((conn, host)).or_default().push(*t);
        }
    }
    // A crash drops every request the host held, on every connection.
    let conns: BTreeSet<(&str, &str)> = messages
        .iter()
        .filter_map(|m| Some((m.conn, m.to?)))
        .collect();
    for b in bands.iter().filter(|b| b.kind == FaultKind::Crash) {
        for &(conn, host) in conns.iter().filter(|(_, h)| *h == b.host) {
            closes.entry((conn, host)).or_default().push(b.start);
        }
    }
    for ts in closes.values_mut() {
        ts.sort_unstable();
    }
    let mut holds = Vec::new();
    for m in messages.iter().filter(|m| m.dir == Dir::Up) {
        let (Some(r), Some(host)) = (m.t_recv, m.to) else {
            continue;
        };
        let answer = answers
            .get(&(m.conn, m.seq, host))
            .copied()
            .filter(|a| *a >= r);
        let closed = || {
            closes
                .get(&(m.conn, host))
                .and_then(|ts| ts.iter().copied().find(|c| *c >= r))
        };
        let (to, answered) = match answer {
            Some(a) => (Some(a), true),
            None => (closed(), false),
        };
        holds.push(Hold {
            host,
            from: r,
            to,
            answered,
            what: m.what,
            peer: m.from,
        });
    }
    holds
}

// ---------------------------------------------------------------------------
// The view: which stretch of time, at what scale, and where things go.

struct View {
    from: u64,
    to: u64,
    /// Set when the picture stops early because of `MAX_MESSAGES`: how many
    /// messages the full window held.
    truncated: Option<usize>,
    px_per_ms: f64,
    lane_x: Vec<f64>,
    width: f64,
    plot_top: f64,
    plot_bottom: f64,
    height: f64,
    /// Legend rows: items and their x offsets.
    legend: Vec<Vec<(f64, usize)>>,
    legend_top: f64,
    header_y: f64,
    /// Makes element ids unique, so two diagrams inlined in one page do not
    /// borrow each other's clip paths.
    id: String,
    messages_shown: usize,
}

/// What a legend entry shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Glyph {
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
const LEGEND: &[(Glyph, &str)] = &[
    (Glyph::Request, "request"),
    (Glyph::Empty, "empty response"),
    (Glyph::Data, "response with events"),
    (Glyph::Lost, "lost / never arrived"),
    (Glyph::Held, "request held, not yet answered"),
    (Glyph::Publish, "event published"),
    (Glyph::Deliver, "event delivered (bar: time it waited)"),
    (Glyph::Conn, "connect / close"),
    (Glyph::Error, "error"),
    (Glyph::Fault, "cut off / crashed"),
    (Glyph::Proxy, "proxy action"),
];
const LEGEND_GLYPH: f64 = 34.0;
const LEGEND_ROW: f64 = 18.0;

/// A round step of 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> u64 {
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
fn round_scale(px_per_ms: f64, span_ms: f64) -> f64 {
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
fn fnv(h: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

impl View {
    fn new(model: &Model, options: &DiagramOptions) -> View {
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

    fn y(&self, t: u64) -> f64 {
        self.plot_top + (t as f64 - self.from as f64) / 1000.0 * self.px_per_ms
    }

    fn contains(&self, t: u64) -> bool {
        self.from <= t && t <= self.to
    }

    fn lane(&self, model: &Model, host: &str) -> Option<f64> {
        let i = model.hosts.iter().position(|h| *h == host)?;
        self.lane_x.get(i).copied()
    }
}

// ---------------------------------------------------------------------------
// Text helpers.

/// Escapes text for XML content and attribute values.
fn esc(text: &str) -> String {
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
fn ms(us: u64) -> String {
    let (whole, frac) = (us / 1000, us % 1000);
    if frac == 0 {
        format!("{whole}")
    } else {
        let f = format!("{frac:03}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// Exact seconds from microseconds: `25 s`, `25.5 s`.
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        format!("{whole} s")
    } else {
        let f = format!("{frac:06}");
        format!("{whole}.{} s", f.trim_end_matches('0'))
    }
}

/// A duration for a label: `43 ms`, `4312 ms`, `12.3 s`.
fn short_duration(us: u64) -> String {
    if us < 10_000_000 {
        format!("{} ms", ms(us - us % 1000))
    } else {
        format!("{:.1} s", us as f64 / 1e6)
    }
}

/// About how wide `text` is at the label size, in pixels. There are no font
/// metrics in a pure function, so this uses Helvetica/Arial-like widths per
/// character class, a little generous because "sans-serif" may be wider.
fn text_width(text: &str, bold: bool) -> f64 {
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
fn clip_text(text: &str, max: usize) -> String {
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
fn tick_label(t: u64, step: u64, in_ms: bool) -> String {
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
enum Anchor {
    Start,
    End,
}

struct Label {
    /// Where the label may go, best first: x, baseline y, anchor.
    spots: Vec<(f64, f64, Anchor)>,
    text: String,
    color: &'static str,
    bold: bool,
    /// Lower is placed first and so wins a collision.
    priority: u8,
    tooltip: String,
}

impl Label {
    fn at(x: f64, y: f64, anchor: Anchor) -> Vec<(f64, f64, Anchor)> {
        vec![(x, y, anchor)]
    }

    /// The box the label covers at spot `k`: x0, y0, x1, y1.
    fn rect(&self, k: usize) -> [f64; 4] {
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
fn crowded_messages(model: &Model, view: &View) -> BTreeSet<usize> {
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
fn place_labels(labels: &[Label]) -> Vec<(usize, usize)> {
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

// ---------------------------------------------------------------------------
// Drawing.

struct Svg {
    out: String,
    title: String,
    labels: Vec<Label>,
}

fn f(v: f64) -> String {
    // One decimal is a tenth of a pixel: plenty, and stable across platforms.
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    if s == "-0.0" { "0.0".into() } else { s }
}

impl Svg {
    fn new(view: &View, options: &DiagramOptions) -> Svg {
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

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }

    fn draw(&mut self, model: &Model, view: &View) {
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

    fn defs(&mut self, view: &View) {
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
    fn heading(&mut self, model: &Model, view: &View) {
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

    fn legend(&mut self, view: &View) {
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

    fn axis(&mut self, view: &View) {
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

    fn hosts(&mut self, model: &Model, view: &View) {
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

    fn bands(&mut self, model: &Model, view: &View) {
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
                FaultKind::Cut => ("cut off", "cut off from the server", "healed"),
                FaultKind::Crash => ("crashed", "crashed", "restarted"),
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
    fn holds(&mut self, model: &Model, view: &View) {
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
    fn waits(&mut self, model: &Model, view: &View) {
        let _ = writeln!(
            self.out,
            r#"<g stroke="{C_DATA}" stroke-opacity="0.45" stroke-width="3">"#
        );
        for (t, host, mark) in &model.marks {
            let Mark::Deliver { event, client } = mark else {
                continue;
            };
            let Some(&p) = model.published.get(event) else {
                continue;
            };
            if p > *t || *t < view.from || p > view.to {
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

    fn messages(&mut self, model: &Model, view: &View) {
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
            let rank = match (lost, m.kind()) {
                (true, _) => 4,
                (false, Kind::Empty) => 0,
                (false, Kind::Other) => 1,
                (false, Kind::Request) => 2,
                (false, Kind::Data) => 3,
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
            let kind = m.kind();
            let (color, head, width, dash) = match kind {
                Kind::Request => (C_REQUEST, "req", 1.4, None),
                Kind::Empty => (C_EMPTY, "empty", 1.2, Some("4 3")),
                Kind::Data => (C_DATA, "data", 2.6, None),
                Kind::Other => (C_OTHER, "other", 1.4, None),
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
                        Kind::Data => 0,
                        Kind::Other => 2,
                        Kind::Request => 3,
                        Kind::Empty => 4,
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
                    let dx = match target {
                        Some(x2) if x2 != x1 => (x2 - x1) * 0.45,
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
                        tip.push_str("\nlost: the network broke the connection");
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
                        if kind == Kind::Data { 2.6 } else { 1.6 },
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
            if crowded.contains(&i) && matches!(kind, Kind::Request | Kind::Empty) {
                continue;
            }
            self.labels.push(Label {
                spots,
                text,
                color: label_color,
                bold: kind == Kind::Data,
                priority,
                tooltip: self.finish_tip(tip, m),
            });
        }
    }

    fn finish_tip(&self, mut tip: String, m: &Message) -> String {
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

    fn marks(&mut self, model: &Model, view: &View) {
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
                Mark::Deliver { client, event } => {
                    // With many clients per host, say which one it was.
                    let who = if *host == format!("client-{client}") {
                        String::new()
                    } else {
                        format!("client {client} ")
                    };
                    let waited = model
                        .published
                        .get(event)
                        .filter(|p| **p <= *t)
                        .map(|p| t - p);
                    let (text, tip) = match waited {
                        Some(w) => (
                            format!("{who}got {event} (+{})", short_duration(w)),
                            format!(
                                "client {client} got event {event} at {at} ms, {} ms after it was published",
                                ms(w)
                            ),
                        ),
                        None => (
                            format!("{who}got {event}"),
                            format!("client {client} got event {event} at {at} ms"),
                        ),
                    };
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
                Mark::Close { conn, reason } => (
                    cross(x, y, 3.5, C_OTHER, 1.5),
                    format!("closed {conn} at {at} ms: {reason}"),
                    None,
                ),
                Mark::ConnectFailed { target, reason } => (
                    diamond(x, y, 4.5, C_LOST, false),
                    format!("could not connect to {target} at {at} ms: {reason}"),
                    Some((format!("connect failed: {reason}"), C_LOST, false, 1, false)),
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
                    format!("{host} at {at} ms: {action} ({reason}) on {conn}"),
                    Some((action.to_string(), C_FAULT, true, 0, false)),
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

    fn draw_labels(&mut self) {
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

fn arrow_glyph(
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

fn cross(x: f64, y: f64, r: f64, color: &str, width: f64) -> String {
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

fn star(x: f64, y: f64, r: f64) -> String {
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
fn hold_rect(x: f64, y0: f64, y1: f64) -> String {
    format!(
        r##"<rect x="{}" y="{}" width="7" height="{}" fill="#dbe4ff" stroke="#91a7ff" stroke-width="0.8"/>"##,
        f(x - 3.5),
        f(y0),
        f((y1 - y0).max(0.5))
    )
}

/// A proxy's own action: a small red square.
fn proxy_mark(x: f64, y: f64) -> String {
    format!(
        r#"<rect x="{}" y="{}" width="9" height="9" fill="{C_FAULT}" stroke="white"/>"#,
        f(x - 4.5),
        f(y - 4.5)
    )
}

fn open_circle(x: f64, y: f64) -> String {
    format!(
        r#"<circle cx="{}" cy="{}" r="3.2" fill="white" stroke="{C_CONN}" stroke-width="1.5"/>"#,
        f(x),
        f(y)
    )
}

fn diamond(x: f64, y: f64, r: f64, color: &str, filled: bool) -> String {
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
        let mut hosts = vec!["server", "client-10", "proxy", "client-2", "client-x"];
        hosts.sort_by_key(|h| host_order(h));
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
