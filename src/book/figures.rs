//! Every run the book shows, one line each: figures (a report and a
//! space-time diagram), comparisons, sweeps and decoded streams, and the
//! command line that reproduces each.

use std::path::{Path, PathBuf};

/// One run shown in the book.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// Where its files go: `book/src/generated/<name>/`.
    pub name: &'static str,
    /// The lesson it runs (a name from [`crate::scenario::lessons::LESSONS`]).
    pub lesson: &'static str,
    /// `--set` overrides, exactly as on the command line.
    pub overrides: &'static [&'static str],
    /// The stretch of simulated time the diagram and the trace excerpt show,
    /// as `--window` takes it, e.g. `"25s..45s"`; the whole run if `None`.
    pub window: Option<&'static str>,
}

impl Figure {
    /// A figure of the whole run; add `.window("25s..45s")` to show a stretch.
    pub const fn new(
        name: &'static str,
        lesson: &'static str,
        overrides: &'static [&'static str],
    ) -> Figure {
        Figure {
            name,
            lesson,
            overrides,
            window: None,
        }
    }

    /// The same figure, showing only `window` of simulated time (`FROM..TO`).
    pub const fn window(mut self, window: &'static str) -> Figure {
        self.window = Some(window);
        self
    }
}

/// Every run the book shows. Adding a figure is adding a line here, then
/// `cargo run --release -- book`.
#[rustfmt::skip]
pub const FIGURES: &[Figure] = &[
    Figure::new("short_polling/default", "short_polling", &[]).window("25s..40s"),
    Figure::new("short_polling/interval_1s", "short_polling", &["short_polling.interval=1s"]).window("27s..33s"),
    Figure::new("short_polling/cut_off", "short_polling", &[r#"faults=[{cut="client-1",from="85s",to="105s"}]"#]).window("82s..112s"),
    Figure::new("short_polling/crash", "short_polling", &[r#"faults=[{crash="server",at="86s",restart="96s"}]"#]).window("82s..108s"),
    Figure::new("long_polling/default", "long_polling", &[]).window("0s..100s"),
    Figure::new("long_polling/burst", "long_polling", &[r#"workload.events={at=["30s","30.01s","30.02s"]}"#, "workload.clients=1", "network.jitter=0ms"]).window("29.95s..30.2s"),
    Figure::new("long_polling/proxy_cut", "long_polling", &["proxy.enabled=true", "proxy.idle_timeout=20s"]).window("0s..70s"),
    Figure::new("sse/default", "sse", &[]).window("3s..22s"),
    Figure::new("sse/resume", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s",reset=true}]"#]).window("58s..80s"),
    Figure::new("sse/held_cut", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s",hold=true}]"#]).window("58s..80s"),
    Figure::new("sse/silent_cut", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s"}]"#]).window("58s..80s"),
    Figure::new("sse/silent_partition", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s",forget=true}]"#]).window("55s..100s"),
    Figure::new("sse/heartbeat_timeout", "sse", &[r#"faults=[{cut="client-1",from="60s",to="75s",forget=true}]"#, "sse.client_heartbeat_timeout=20s"]).window("55s..100s"),
    Figure::new("sse/retry_10s", "sse", &["sse.retry=10s", r#"faults=[{cut="client-1",from="60s",to="62s",reset=true}]"#]).window("58s..75s"),
    Figure::new("sse/fail_500", "sse", &["sse.refuse_after=50s", r#"faults=[{cut="client-1",from="60s",to="61s",reset=true}]"#]).window("58s..70s"),
    Figure::new("sse/proxy_restart", "sse", &["proxy.enabled=true", r#"faults=[{crash="server",at="60s",restart="75s"}]"#]).window("58s..82s"),
    Figure::new("sse/proxy_restart_reopened", "sse", &["proxy.enabled=true", r#"faults=[{crash="server",at="60s",restart="75s"}]"#, "sse.reopen_after_failure=5s"]).window("58s..95s"),
    Figure::new("sse/buffering_proxy", "sse", &["proxy.enabled=true", "proxy.mode=\"buffer\"", "proxy.buffer_kib=1"]).window("0s..60s"),
    Figure::new("sse/buffering_fixed", "sse", &["proxy.enabled=true", "proxy.mode=\"buffer\"", "proxy.buffer_kib=1", "sse.no_proxy_buffering=true"]).window("0s..60s"),
    Figure::new("sse/streamed_answer", "sse", &[r#"workload.events={every="50ms",start="30s",count=40}"#, "workload.payload_bytes=16", "network.jitter=0ms", "workload.clients=1"]).window("29.9s..32.2s"),
    Figure::new("websocket/default", "websocket", &[]).window("3s..20s"),
    Figure::new("websocket/browser_reset", "websocket", &["websocket.client=browser", r#"faults=[{cut="client-1",from="60s",to="90s",reset=true}]"#]).window("55s..100s"),
    Figure::new("websocket/resilient_reset", "websocket", &[r#"faults=[{cut="client-1",from="60s",to="90s",reset=true}]"#]).window("55s..100s"),
    Figure::new("websocket/forgotten", "websocket", &[r#"faults=[{cut="client-1",from="60s",to="62s",forget=true}]"#]).window("55s..120s"),
    Figure::new("websocket/browser_forgotten", "websocket", &["websocket.client=browser", r#"faults=[{cut="client-1",from="60s",to="62s",forget=true}]"#]).window("55s..120s"),
    Figure::new("websocket/no_resume", "websocket", &["websocket.resume=false", r#"faults=[{cut="client-1",from="60s",to="90s"}]"#]).window("55s..110s"),
    Figure::new("websocket/server_restart", "websocket", &[r#"faults=[{crash="server",at="60s",restart="70s"}]"#]).window("58s..80s"),
    Figure::new("websocket/through_proxy", "websocket", &["proxy.enabled=true"]).window("3.9s..4.9s"),
    Figure::new("websocket/proxy_idle", "websocket", &["proxy.enabled=true", "workload.sends=0", r#"workload.events={every="90s",start="15s"}"#, "websocket.heartbeat_timeout=200s", "websocket.heartbeat=0"]).window("70s..170s"),
    Figure::new("websocket/proxy_heartbeat", "websocket", &["proxy.enabled=true", "workload.sends=0", r#"workload.events={every="90s",start="15s"}"#, "websocket.heartbeat_timeout=200s", "websocket.heartbeat=25s"]).window("70s..170s"),
    Figure::new("websocket/refuse_upgrade", "websocket", &["proxy.enabled=true", "proxy.mode=refuse_upgrade"]).window("3.9s..5.3s"),
    Figure::new("websocket/refuse_upgrade_browser", "websocket", &["proxy.enabled=true", "proxy.mode=refuse_upgrade", "websocket.client=browser"]).window("3.9s..5.3s"),
    Figure::new("websocket/two_servers", "websocket", &["servers=2", "proxy.enabled=true"]).window("9.25s..9.6s"),
    Figure::new("websocket/two_servers_broker", "websocket", &["servers=2", "proxy.enabled=true", "broker=true"]).window("9.25s..9.6s"),
    Figure::new("websocket/crash_server_and_broker", "websocket", &["servers=2", "proxy.enabled=true", "broker=true", r#"faults=[{crash="server-2",at="60s",restart="70s"},{crash="broker",at="100s",restart="110s"}]"#]).window("59.9s..61.5s"),
    Figure::new("websocket/slow_reader", "websocket", &["duration=90s", "workload.sends=0", r#"workload.events={rate=50,start="5s"}"#, "workload.payload_bytes=512", "websocket.slow_readers=1", "websocket.slow_read_pause=100ms"]).window("35.964s..36.02s"),
    Figure::new("websocket/slow_reader_small_buffers", "websocket", &["duration=30s", "workload.sends=0", r#"workload.events={rate=20,start="5s"}"#, "workload.payload_bytes=512", "websocket.slow_readers=1", "websocket.slow_read_pause=100ms", "network.socket_buffer_kib=4", "websocket.max_queued=20"]).window("7.45s..8.45s"),
    Figure::new("webhooks/default", "webhooks", &[]).window("14.95s..15.35s"),
    Figure::new("webhooks/receiver_down_refused", "webhooks", &["duration=10m", r#"faults=[{crash="receiver-1",at="60s",restart="200s"}]"#]).window("74.95s..80.5s"),
    Figure::new("webhooks/receiver_down", "webhooks", &["duration=10m", r#"faults=[{crash="receiver-1",at="60s",restart="200s"}]"#]).window("372.7s..375.3s"),
    Figure::new("webhooks/two_hours_down", "webhooks", &["duration=8h", r#"workload.events={every="10m",start="15s"}"#, r#"faults=[{crash="receiver-1",at="30m",restart="150m"}]"#]).window("8995s..9420s"),
    Figure::new("webhooks/doubles", "webhooks", &["receiver.work=20s", "receiver.dedupe=false"]).window("14.9s..56s"),
    Figure::new("webhooks/deduped", "webhooks", &["receiver.work=20s"]).window("14.9s..56s"),
    Figure::new("webhooks/ack_early", "webhooks", &["receiver.work=20s", "receiver.dedupe=false", "receiver.ack=before_processing"]).window("14.9s..56s"),
    Figure::new("webhooks/ack_early_crash", "webhooks", &["duration=10m", "receiver.work=20s", "receiver.ack=before_processing", r#"faults=[{crash="receiver-1",at="20s",restart="30s"}]"#]).window("14.9s..36s"),
    Figure::new("webhooks/ack_after_crash", "webhooks", &["duration=10m", "receiver.work=20s", r#"faults=[{crash="receiver-1",at="20s",restart="30s"}]"#]).window("14.9s..36s"),
    Figure::new("webhooks/dead_letters", "webhooks", &[r#"webhooks.schedule=["1s"]"#, r#"faults=[{crash="receiver-2",at="60s",restart="150s"}]"#]).window("74.95s..76.4s"),
    Figure::new("webhooks/replayed", "webhooks", &[r#"webhooks.schedule=["1s"]"#, r#"faults=[{crash="receiver-2",at="60s",restart="150s"}]"#, "webhooks.replay_dead_letters_at=200s"]).window("199.95s..200.35s"),
    Figure::new("webhooks/attacker", "webhooks", &["attacker=true", "duration=10m"]).window("16.2s..17.3s"),
    Figure::new("webhooks/attacker_replay", "webhooks", &["attacker=true", "duration=10m"]).window("75.1s..75.3s"),
    Figure::new("webhooks/attacker_late", "webhooks", &["attacker=true", "duration=10m"]).window("375.1s..375.3s"),
    Figure::new("webhooks/clock_skew", "webhooks", &["receiver.clock_skew=6m"]).window("14.95s..20.75s"),
    Figure::new("webhooks/out_of_order", "webhooks", &["network.jitter=0ms", r#"workload.events={at=["15s","15.5s","16s"]}"#, r#"faults=[{cut="receiver-1",from="14.9s",to="15.2s",reset=true}]"#, "receiver.ordering=as_arrived"]).window("14.85s..16.3s"),
    Figure::new("webhooks/version_check", "webhooks", &["network.jitter=0ms", r#"workload.events={at=["15s","15.5s","16s"]}"#, r#"faults=[{cut="receiver-1",from="14.9s",to="15.2s",reset=true}]"#, "receiver.ordering=version_check"]).window("14.85s..21.6s"),
    Figure::new("webhooks/burst", "webhooks", &["workload.clients=1", r#"workload.events={rate=1000,start="15s",count=1000}"#, "receiver.max_concurrent=20", "receiver.work=1s", "webhooks.concurrency=100", "duration=1h"]).window("15.175s..15.2s"),
    Figure::new("jobs/poll", "jobs", &[]).window("9.9s..16.8s"),
    Figure::new("jobs/callback", "jobs", &["jobs.notify=callback"]).window("9.9s..16.8s"),
    Figure::new("jobs/worker_crash", "jobs", &["jobs.notify=callback", r#"faults=[{crash="worker",at="62s",restart="70s"}]"#]).window("61s..107s"),
];

/// One `pushpull compare` shown in the book: the same scenario under every
/// mechanism, side by side.
#[derive(Clone, Copy, Debug)]
pub struct Comparison {
    /// Where its files go: `book/src/generated/<name>/`.
    pub name: &'static str,
    pub lesson: &'static str,
    pub overrides: &'static [&'static str],
}

/// Every comparison the book shows (one line each, like [`FIGURES`]).
#[rustfmt::skip]
pub const COMPARISONS: &[Comparison] = &[
    Comparison { name: "compare/notifications", lesson: "long_polling", overrides: &[] },
    Comparison { name: "compare/ticker", lesson: "sse", overrides: &[] },
    Comparison { name: "compare/streamed_answer", lesson: "sse", overrides: &[r#"workload.events={every="50ms",start="30s",count=40}"#, "workload.payload_bytes=16", "network.jitter=0ms", "short_polling.interval=1s"] },
    Comparison { name: "compare/chat_announcements", lesson: "websocket", overrides: &["workload.sends=0"] },
    Comparison { name: "compare/chat", lesson: "websocket", overrides: &[] },
    Comparison { name: "compare/orders_feed", lesson: "webhooks", overrides: &[] },
    Comparison { name: "compare/dashboard_100", lesson: "short_polling", overrides: &["workload.clients=100", "workload.client_hosts=5", "duration=5m", "short_polling.interval=60s", "workload.events={every=\"10s\", start=\"10s\"}"] },
];

/// One parameter swept over several values on the same lesson, one row per
/// value (`sweep.txt`): how a number moves when a knob turns.
#[derive(Clone, Copy, Debug)]
pub struct Sweep {
    pub name: &'static str,
    pub lesson: &'static str,
    pub overrides: &'static [&'static str],
    /// The parameter's path, as for `--set`.
    pub param: &'static str,
    pub values: &'static [&'static str],
}

/// Every sweep the book shows.
#[rustfmt::skip]
pub const SWEEPS: &[Sweep] = &[
    Sweep { name: "short_polling/interval_sweep", lesson: "short_polling", overrides: &["workload.events={rate=0.2, start=\"10s\"}", "workload.clients=10", "network.jitter=0ms"], param: "short_polling.interval", values: &["1s", "2s", "5s", "10s", "30s"] },
    Sweep { name: "long_polling/hold_vs_proxy", lesson: "long_polling", overrides: &["proxy.enabled=true", "proxy.idle_timeout=20s", "long_polling.client_timeout=65s"], param: "long_polling.hold", values: &["10s", "15s", "19s", "25s", "60s"] },
    Sweep { name: "websocket/heartbeat_vs_proxy", lesson: "websocket", overrides: &["proxy.enabled=true", "workload.sends=0", r#"workload.events={every="90s",start="15s"}"#, "websocket.heartbeat_timeout=200s"], param: "websocket.heartbeat", values: &["0", "25s", "55s", "75s"] },
];

/// A raw `text/event-stream` file (under `book/src/`) decoded as EventSource
/// would: `raw.txt` shows its bytes with line ends visible, `decoded.jsonl`
/// what `pushpull decode sse` prints for it.
#[derive(Clone, Copy, Debug)]
pub struct Decode {
    pub name: &'static str,
    pub input: &'static str,
    /// Which decoder reads it, as `pushpull decode` names it: `sse`, or
    /// `ws` with `--from client` or `--from server`.
    pub format: DecodeAs,
}

/// The decoder a [`Decode`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeAs {
    Sse,
    /// WebSocket frames sent by a client (`true`) or a server.
    Ws {
        from_client: bool,
    },
}

#[rustfmt::skip]
pub const DECODES: &[Decode] = &[
    Decode { name: "sse/decode_ticker", input: "examples/ticker.stream", format: DecodeAs::Sse },
    Decode { name: "websocket/decode_client", input: "examples/chat-client.ws", format: DecodeAs::Ws { from_client: true } },
    Decode { name: "websocket/decode_server", input: "examples/chat-server.ws", format: DecodeAs::Ws { from_client: false } },
];

/// How many trace lines `trace.jsonl` keeps.
pub const TRACE_EXCERPT_LINES: usize = 12;

/// The directory generated files go to, relative to the book's `src`.
pub const GENERATED_DIR: &str = "generated";

/// The book's root (holding `book.toml`), in the source tree this binary was
/// built from.
pub fn book_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book")
}

/// Quotes `word` for a POSIX shell: bare if it is made of safe characters,
/// in single quotes otherwise.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub(super) fn set_args(overrides: &[&str]) -> String {
    overrides
        .iter()
        .map(|o| format!(" --set {}", shell_quote(o)))
        .collect()
}

/// The command line that reproduces `figure`: its report on standard output,
/// its diagram in `diagram.svg`.
pub fn figure_command(figure: &Figure) -> String {
    let mut cmd = format!(
        "pushpull run {}{} --diagram diagram.svg",
        shell_quote(figure.lesson),
        set_args(figure.overrides)
    );
    if let Some(window) = figure.window {
        cmd.push_str(&format!(" --window {}", shell_quote(window)));
    }
    cmd
}

/// The command line that reproduces `comparison`.
pub fn comparison_command(comparison: &Comparison) -> String {
    format!(
        "pushpull compare {}{}",
        shell_quote(comparison.lesson),
        set_args(comparison.overrides)
    )
}

pub(super) fn overrides_vec(overrides: &[&str]) -> Vec<String> {
    overrides.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_quote("short_polling.interval=1s"),
            "short_polling.interval=1s"
        );
        assert_eq!(
            shell_quote(r#"faults=[{cut="client-1",from="60s",to="80s"}]"#),
            r#"'faults=[{cut="client-1",from="60s",to="80s"}]'"#
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn figure_commands() {
        let f = Figure::new("x", "short_polling", &["a=1", "b=[2]"]).window("25s..45s");
        assert_eq!(
            figure_command(&f),
            "pushpull run short_polling --set a=1 --set 'b=[2]' --diagram diagram.svg --window 25s..45s"
        );
    }
}
