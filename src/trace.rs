//! The trace: what happened in a run, one record per line, in simulated time.
//!
//! Every number in a report is computed from these records, and every picture is
//! drawn from them. A run writes them as JSON lines; these are lines of
//! `pushpull run short_polling --trace run.jsonl`:
//!
//! ```text
//! {"t_us":3991000,"host":"client-1","ev":"connect","conn":"client-1:32768>server:80"}
//! {"t_us":3991000,"host":"client-1","ev":"send","conn":"client-1:32768>server:80","dir":"up","seq":1,"what":"GET /updates?after=0","bytes":73}
//! {"t_us":4034000,"host":"server","ev":"recv","conn":"client-1:32768>server:80","dir":"up","seq":1,"what":"GET /updates?after=0","bytes":73}
//! {"t_us":30000000,"host":"server","ev":"publish","event":1}
//! {"t_us":34034000,"host":"client-1","ev":"deliver","client":1,"event":1}
//! ```
//!
//! A message is matched across the network by `(conn, dir, seq)`: the sender and
//! the receiver each count the messages they send and receive on a connection.
//! The connection's name is the TCP four-tuple with host names, which both ends
//! can see without telling each other anything.
//!
//! The records are hashed as they are written (`trace_hash`): two runs with the
//! same hash crossed the simulated network with the same bytes at the same times.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// Which way a message travels on a connection: `up` from the side that opened
/// it (the client) to the side that accepted it, `down` back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    Up,
    Down,
}

/// One thing that happened, at `t_us` microseconds of simulated time, on `host`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub t_us: u64,
    pub host: String,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// A TCP connection was established (recorded by the side that opened it).
    /// `reconnect` marks one opened because the previous connection failed.
    Connect {
        conn: String,
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        reconnect: bool,
    },
    /// A connection was accepted (recorded by the listening side).
    Accept { conn: String },
    /// This host closed its end of the connection, or found it dead.
    Close { conn: String, reason: String },
    /// An attempt to open a connection failed.
    ConnectFailed { target: String, reason: String },
    /// A whole message (an HTTP request or response) was written.
    /// `events` is how many application events it carried, where that applies.
    /// `lost` means the network broke the connection instead of delivering it.
    Send {
        conn: String,
        dir: Dir,
        seq: u32,
        what: String,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        events: Option<u32>,
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        lost: bool,
        /// A request re-sent because an earlier attempt failed.
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        retry: bool,
    },
    /// A whole message was read.
    Recv {
        conn: String,
        dir: Dir,
        seq: u32,
        what: String,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        events: Option<u32>,
    },
    /// A client gave up on a request (timeout, reset, bad answer) and will retry.
    Error { client: u32, what: String },
    /// The server's application produced event number `event`.
    Publish { event: u64 },
    /// Client `client` handed event `event` to its application.
    Deliver { client: u32, event: u64 },
    /// The proxy did something to a connection on its own initiative.
    Proxy {
        conn: String,
        action: String,
        reason: String,
    },
    /// A fault began or ended: `cut` / `heal` (a partition between `hosts`
    /// and the server), `crash` / `restart` (of the hosts named).
    Fault { kind: String, hosts: Vec<String> },
}

/// Where records go: a hasher always, a file if asked, memory if asked (for the
/// diagram), and the metrics that make the report.
pub struct Recorder {
    hasher: Sha256,
    file: Option<Box<dyn Write>>,
    keep: bool,
    kept: Vec<Record>,
    line: Vec<u8>,
    pub metrics: crate::report::Metrics,
    file_error: Option<std::io::Error>,
}

/// A cheap, clonable handle to the run's recorder. Every host of a simulation
/// runs on the one thread that steps it, so `Rc<RefCell<..>>` is enough.
#[derive(Clone)]
pub struct Tracer(Rc<RefCell<Recorder>>);

impl Tracer {
    pub fn new(
        file: Option<Box<dyn Write>>,
        keep: bool,
        metrics: crate::report::Metrics,
    ) -> Tracer {
        Tracer(Rc::new(RefCell::new(Recorder {
            hasher: Sha256::new(),
            file,
            keep,
            kept: Vec::new(),
            line: Vec::with_capacity(256),
            metrics,
            file_error: None,
        })))
    }

    /// A handle that records on behalf of one host.
    pub fn on(&self, host: &str) -> HostTrace {
        HostTrace {
            tracer: self.clone(),
            host: Rc::from(host),
        }
    }

    /// Records `event` at an explicit time and host (used by the run loop,
    /// which is outside every host).
    pub fn at(&self, t_us: u64, host: String, event: Event) {
        let record = Record { t_us, host, event };
        let mut r = self.0.borrow_mut();
        let r = &mut *r;
        r.line.clear();
        // Serializing a plain struct of strings and integers cannot fail.
        serde_json::to_writer(&mut r.line, &record).expect("trace records serialize");
        r.line.push(b'\n');
        r.hasher.update(&r.line);
        if let Some(f) = r.file.as_mut()
            && r.file_error.is_none()
            && let Err(e) = f.write_all(&r.line)
        {
            r.file_error = Some(e);
        }
        r.metrics.observe(&record);
        if r.keep {
            r.kept.push(record);
        }
    }

    /// Ends the trace: flushes the file and returns the hash, the metrics and
    /// the records kept in memory.
    pub fn finish(self) -> std::io::Result<(String, crate::report::Metrics, Vec<Record>)> {
        let cell = Rc::try_unwrap(self.0)
            .unwrap_or_else(|_| panic!("the simulation is dropped before the trace is finished"));
        let mut r = cell.into_inner();
        if let Some(e) = r.file_error.take() {
            return Err(e);
        }
        if let Some(f) = r.file.as_mut() {
            f.flush()?;
        }
        let hash = r.hasher.finalize();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Ok((hex, r.metrics, r.kept))
    }
}

/// The recorder as one host sees it: records carry this host's name and the
/// current simulated time.
#[derive(Clone)]
pub struct HostTrace {
    tracer: Tracer,
    host: Rc<str>,
}

impl HostTrace {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Records `event` now. Inside a host, turmoil's clock is the simulated one.
    pub fn record(&self, event: Event) {
        let t = turmoil::sim_elapsed().unwrap_or_default();
        self.tracer
            .at(t.as_micros() as u64, self.host.to_string(), event);
    }
}

/// Reads a JSON-lines trace back (for `diagram` and tests).
pub fn parse_jsonl(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("trace line {}: {e}", i + 1)))
        .collect()
}
