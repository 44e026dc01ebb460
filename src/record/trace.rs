//! The trace: what happened in a run, one record per line, in simulated time.
//!
//! Every number in a report is computed from these records, and every picture is
//! drawn from them. Each record says what it is: the host's part in the run
//! (`host` records at the start), the kind of each message (a request, a
//! response, the head of a stream, a block of one), which request a response
//! answers, the kind of a fault. Nothing downstream guesses from names.
//!
//! These are lines of `pushpull run short_polling --trace run.jsonl` (a test
//! checks that the run still writes them):
//!
//! ```text
//! {"t_us":0,"host":"server","ev":"host","role":"server"}
//! {"t_us":0,"host":"client-1","ev":"host","role":"client","clients":[1]}
//! {"t_us":4031000,"host":"client-1","ev":"connect","conn":"client-1:32768>server:80","client":1}
//! {"t_us":4031000,"host":"client-1","ev":"send","conn":"client-1:32768>server:80","dir":"up","seq":1,"kind":"request","what":"GET /updates?after=0","bytes":73}
//! {"t_us":4074000,"host":"server","ev":"recv","conn":"client-1:32768>server:80","dir":"up","seq":1,"kind":"request","what":"GET /updates?after=0","bytes":73}
//! {"t_us":4074000,"host":"server","ev":"send","conn":"client-1:32768>server:80","dir":"down","seq":1,"kind":"response","what":"200 OK","bytes":97,"events":0,"reply_to":1}
//! {"t_us":4114000,"host":"client-1","ev":"recv","conn":"client-1:32768>server:80","dir":"down","seq":1,"kind":"response","what":"200 OK","bytes":97}
//! {"t_us":30000000,"host":"server","ev":"publish","event":1}
//! {"t_us":33992000,"host":"server","ev":"send","conn":"client-1:32768>server:80","dir":"down","seq":7,"kind":"response","what":"200 OK","bytes":180,"events":1,"first_event":1,"reply_to":7}
//! {"t_us":34034000,"host":"client-1","ev":"deliver","client":1,"event":1,"latency_us":4034000}
//! ```
//!
//! A message is matched across the network by `(conn, dir, seq)`: the sender and
//! the receiver each count the messages they send and receive on a connection.
//! The connection's name is the TCP four-tuple with host names, which both ends
//! can see without telling each other anything. The sender's record says what
//! the message carried (`events`); the receiver's says when it arrived.
//!
//! The records are hashed as they are written (`trace_hash`): two runs with the
//! same hash crossed the simulated network with the same bytes at the same times.
//! Whoever wants to watch the records go by (the report's running totals)
//! registers an [`Observer`]; the trace knows nothing of what they compute.

pub use crate::scenario::CutKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

/// The part a host plays in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs clients (the numbered ones its `host` record lists).
    Client,
    /// Sits between clients and server, forwarding.
    Proxy,
    /// Runs the server and publishes the events.
    Server,
    /// Passes messages between servers (publish/subscribe, as Redis is used).
    Broker,
    /// Sends forged, tampered and replayed requests.
    Attacker,
    /// Works behind the server: a message queue, a worker.
    Backend,
}

/// Which way a message travels on a connection: `up` from the side that opened
/// it to the side that accepted it, `down` back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    Up,
    Down,
}

impl Dir {
    pub fn reverse(self) -> Dir {
        match self {
            Dir::Up => Dir::Down,
            Dir::Down => Dir::Up,
        }
    }
}

/// What a message is, as its sender wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An HTTP request.
    Request,
    /// A whole HTTP response, head and body.
    Response,
    /// The head of a response whose body is a stream that follows in blocks.
    StreamHead,
    /// One block of a streamed body (an SSE event, comment or `retry`).
    StreamBlock,
    /// The end of a streamed body: its last chunk.
    StreamEnd,
    /// A WebSocket frame (after the handshake, a request and its `101`).
    Frame,
    /// A line between a server and the pub/sub broker.
    Broker,
}

/// How this end of a connection ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Closed on purpose (TCP FIN): the peer reads the end of the stream.
    Closed,
    /// Dropped because it failed (reset, lost message, timeout, bad bytes
    /// from the network): nothing more can be said on it.
    Failed,
}

/// What a proxy did on its own initiative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyAction {
    /// Closed a connection pair on which nothing moved for its idle timeout.
    CloseIdle,
    /// Gave up waiting for the server's answer and answered the client
    /// `504 Gateway Timeout`.
    GatewayTimeout,
    /// Passed on the stream bytes it had been holding (buffer mode).
    FlushBuffer,
    /// Dropped a request's `Upgrade` header (`refuse_upgrade` mode).
    DropUpgrade,
}

impl ProxyAction {
    /// In words, for a diagram label.
    pub fn describe(self) -> &'static str {
        match self {
            ProxyAction::CloseIdle => "closed idle connection",
            ProxyAction::GatewayTimeout => "answered 504 (no answer in time)",
            ProxyAction::FlushBuffer => "flushed its buffer",
            ProxyAction::DropUpgrade => "dropped the Upgrade header",
        }
    }
}

/// The pseudo-host on which the run records network-wide faults (cuts and
/// heals): they happen between hosts, not on one.
pub const NETWORK: &str = "network";

/// One thing that happened, at `t_us` microseconds of simulated time, on `host`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub t_us: u64,
    pub host: String,
    #[serde(flatten)]
    pub event: Event,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    /// A host of the run and its role, recorded once at the start. A client
    /// host lists the clients it runs.
    Host {
        role: Role,
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        clients: Vec<u32>,
    },
    /// A TCP connection was established (recorded by the side that opened it).
    /// `reconnect` marks one opened to replace an earlier one: after a
    /// failure, or (an EventSource) to re-establish a stream that ended.
    Connect {
        conn: String,
        #[serde(skip_serializing_if = "is_false", default)]
        reconnect: bool,
        /// The client that opened it (none for a proxy's own connections).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        client: Option<u32>,
    },
    /// The proxy forwards what arrives on `downstream` (a client's
    /// connection) over `upstream` (its own to the server), and back.
    Relay {
        downstream: String,
        upstream: String,
    },
    /// A connection was accepted (recorded by the listening side).
    Accept { conn: String },
    /// This host's end of the connection is gone, and why.
    Close {
        conn: String,
        ending: Ending,
        reason: String,
    },
    /// An attempt to open a connection failed. `retry`: the attempt was
    /// itself a retry after an earlier failure (the report counts it).
    ConnectFailed {
        target: String,
        reason: String,
        #[serde(skip_serializing_if = "is_false", default)]
        retry: bool,
    },
    /// A whole message was written (its first transmission). `events`: how
    /// many application events it carried, where that applies. `reply_to`:
    /// for a response, the `seq` of the request it answers. `retry`: a
    /// request re-sent because an earlier attempt failed; `resent`: one
    /// re-sent at once because its kept-alive connection had been closed by
    /// the server.
    Send {
        conn: String,
        dir: Dir,
        seq: u32,
        kind: Kind,
        what: String,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        events: Option<u32>,
        /// The id of the first event carried (the others follow in order).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        first_event: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reply_to: Option<u32>,
        #[serde(skip_serializing_if = "is_false", default)]
        retry: bool,
        /// A request re-sent at once on a new connection because the server
        /// had closed the kept-alive one it first went out on.
        #[serde(skip_serializing_if = "is_false", default)]
        resent: bool,
    },
    /// TCP sent message `seq` again: the previous transmission did not get
    /// through (a cut, a middlebox that forgot the connection, loss).
    Retransmit {
        conn: String,
        dir: Dir,
        seq: u32,
        attempt: u32,
    },
    /// A connect's SYN went unanswered and was sent again.
    SynRetransmit { target: String, attempt: u32 },
    /// The kernel probed an idle connection (TCP keep-alive); `answered`:
    /// the path still carried it.
    KeepaliveProbe { conn: String, answered: bool },
    /// A whole message was read.
    Recv {
        conn: String,
        dir: Dir,
        seq: u32,
        kind: Kind,
        what: String,
        bytes: u64,
    },
    /// A client gave up on a request (timeout, reset, bad answer) and will retry.
    Error { client: u32, what: String },
    /// The server's application produced event number `event`; in a chat,
    /// the room's message `event`, posted by client `from` as its message
    /// number `message`.
    Publish {
        event: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        from: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        message: Option<u64>,
    },
    /// Client `client`'s user posted its chat message number `message`.
    Post { client: u32, message: u64 },
    /// The provider gave up on delivering `event` to `subscription`
    /// (receiver `client`) after its last attempt: the message goes to the
    /// dead-letter list.
    DeadLetter {
        subscription: String,
        client: Option<u32>,
        event: u64,
    },
    /// An attempt to deliver `event` to receiver `client` failed; the
    /// provider tries again in `in_ms`.
    RetryScheduled { client: u32, event: u64, in_ms: u64 },
    /// Receiver `client` refused a delivery (answered 400), and why.
    Refused { client: u32, why: String },
    /// Client `client` switched to another transport (a WebSocket client
    /// falling back to long polling when its handshake cannot get through),
    /// and why.
    Transport {
        client: u32,
        transport: String,
        why: String,
    },
    /// Client `client` handed event `event` to its application, `latency_us`
    /// after it was published.
    Deliver {
        client: u32,
        event: u64,
        latency_us: u64,
    },
    /// The proxy did something to a connection on its own initiative.
    Proxy {
        conn: String,
        action: ProxyAction,
        reason: String,
    },
    /// The network cut `hosts` off from the host they talk to.
    Cut { hosts: Vec<String>, how: CutKind },
    /// The cut of `hosts` ended.
    Heal { hosts: Vec<String> },
    /// The host's process died with everything in it.
    Crash,
    /// The host's process started again (with nothing from before).
    Restart,
}

/// Something that watches the records go by (the report's running totals).
pub trait Observer {
    fn observe(&mut self, record: &Record);
}

/// Where records go: a hasher always, a file if asked, memory if asked (for the
/// diagram), and whoever observes them.
struct Recorder {
    hasher: Sha256,
    file: Option<Box<dyn Write>>,
    keep: bool,
    kept: Vec<Record>,
    line: Vec<u8>,
    observers: Vec<Rc<RefCell<dyn Observer>>>,
    file_error: Option<std::io::Error>,
}

/// A cheap, clonable handle to the run's recorder. Every host of a simulation
/// runs on the one thread that steps it, so `Rc<RefCell<..>>` is enough.
#[derive(Clone)]
pub struct Tracer(Rc<RefCell<Recorder>>);

/// What is left of a trace when it ends.
pub struct Finished {
    /// SHA-256 of every line, in hex.
    pub hash: String,
    /// The records, if they were kept.
    pub records: Vec<Record>,
}

impl Tracer {
    pub fn new(file: Option<Box<dyn Write>>, keep: bool) -> Tracer {
        Tracer(Rc::new(RefCell::new(Recorder {
            hasher: Sha256::new(),
            file,
            keep,
            kept: Vec::new(),
            line: Vec::with_capacity(256),
            observers: Vec::new(),
            file_error: None,
        })))
    }

    /// Shows every record from now on to `observer`.
    pub fn observe(&self, observer: Rc<RefCell<dyn Observer>>) {
        self.0.borrow_mut().observers.push(observer);
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
    pub fn at(&self, t_us: u64, host: &str, event: Event) {
        let record = Record {
            t_us,
            host: host.to_string(),
            event,
        };
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
        for observer in &r.observers {
            observer.borrow_mut().observe(&record);
        }
        if r.keep {
            r.kept.push(record);
        }
    }

    /// Ends the trace: flushes the file and returns the hash and the records
    /// kept in memory.
    pub fn finish(self) -> std::io::Result<Finished> {
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
        Ok(Finished {
            hash: hex,
            records: r.kept,
        })
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
        self.tracer.at(t.as_micros() as u64, &self.host, event);
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
