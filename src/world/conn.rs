//! One end of a TCP connection on the simulated network: bytes in and out,
//! the network's faults applied to them, and a trace record for every whole
//! message. It does not parse anything: the codecs in `wire` say where a
//! message ends, and `world::http_conn` puts the two together (the split of
//! mini-redis's `connection.rs` and `frame.rs`). The one thing it keeps for
//! request/response protocols is which received requests are still
//! unanswered, so that each answer's record can say which request it answers.
//!
//! A connection ends in one of two ways, and the trace says which:
//! [`Conn::close`] (this end closes on purpose; the peer reads the end of the
//! stream) or [`Conn::fail`] (it broke: reset by the network, a lost message,
//! a timeout; the end is dropped without a word).

use crate::record::trace::{Dir, Ending, Event, HostTrace, Kind};
use crate::world::clock::{Instant, sleep, sleep_until};
use crate::world::network::ConnSlot;
use crate::world::tcp::{KEEPALIVE_PROBES, Loss, Path, backed_off};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most one read takes from the socket.
const READ_CHUNK: usize = 4096;

/// Simulated time now, in microseconds (0 outside a simulation).
fn now_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset by the network",
    )
}

/// Whether a connection or a request is the first try, a retry after a
/// failure, or a request re-sent at once because the kept-alive connection it
/// went out on had been closed by the server (the report counts each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    First,
    Retry,
    /// RFC 9112 section 9.3.1: a client MAY re-send an idempotent request
    /// on a new connection when the connection it reused closed before any
    /// answer came; browsers do, at once and without telling the page.
    Resend,
}

impl Attempt {
    /// A retry when the last `failures` tries in a row failed.
    pub fn after_failures(failures: u32) -> Attempt {
        if failures > 0 {
            Attempt::Retry
        } else {
            Attempt::First
        }
    }
}

/// The application events a message carries: how many, and the id of the
/// first (ours are consecutive), so the report can tell where an event was
/// when the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    pub count: u32,
    pub first: Option<u64>,
}

impl Carried {
    /// `count` events from `first` on (`None` when `count` is 0).
    pub fn from(first: Option<u64>, count: u32) -> Carried {
        Carried { count, first }
    }
}

/// What a message is, for the trace: written by the code that knows (the
/// mechanism that built it), never worked out from the bytes later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub kind: Kind,
    /// A short description: a request line, a status, a block's first lines.
    pub what: String,
    /// The application events the message carries, where that applies.
    pub events: Option<Carried>,
    /// A request re-sent because an earlier attempt failed, or at once on a
    /// new connection because the server had closed the kept-alive one.
    pub attempt: Attempt,
}

impl Label {
    pub fn new(kind: Kind, what: String) -> Label {
        Label {
            kind,
            what,
            events: None,
            attempt: Attempt::First,
        }
    }

    /// The same label, saying which events the message carries.
    pub fn carrying(mut self, events: Option<Carried>) -> Label {
        self.events = events;
        self
    }
}

/// Most bytes a connection holds unread while its owner waits for the peer
/// to close (a held long poll, an open stream): a peer sending more is
/// treated as gone.
pub const MAX_UNREAD_BYTES: usize = 16 * 1024 * 1024 + 8 * 1024;

/// One end of a TCP connection, recording every whole message.
pub struct Conn<S> {
    stream: S,
    /// Bytes read from the stream but not yet taken by a message.
    buf: Vec<u8>,
    /// The connection's name in the trace, the same at both ends:
    /// `client-1:49153>server:80`.
    pub name: String,
    /// The direction of messages this end sends.
    outgoing: Dir,
    sent: u32,
    received: u32,
    /// Requests received and not yet answered, by `seq`: HTTP/1.1 answers in
    /// order, so the next response answers the first of them.
    unanswered: VecDeque<u32>,
    trace: HostTrace,
    loss: Loss,
    /// Set when the kernel gave up on it (a timeout): nothing more, not even
    /// a FIN, goes to the peer.
    aborted: bool,
    /// The path through the network, shared with the other end.
    path: Rc<Path>,
    /// TCP keep-alive, if this end's kernel runs it: the idle time before
    /// the first probe and between probes.
    keepalive: Option<Duration>,
    /// When this end last heard from its peer, for keep-alive.
    last_heard: Instant,
    /// At a server with a connection limit: this connection's place in it,
    /// given back when the connection is dropped.
    slot: Option<ConnSlot>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Conn<S> {
    /// `outgoing` is `Up` for the end that opened the connection.
    pub fn new(stream: S, name: String, outgoing: Dir, trace: HostTrace, loss: Loss) -> Conn<S> {
        let host = trace.host().to_string();
        let path = Path::new(
            (host, "peer".into()),
            Default::default(),
            Default::default(),
            Default::default(),
            now_us(),
        );
        Conn {
            stream,
            buf: Vec::with_capacity(1024),
            name,
            outgoing,
            sent: 0,
            received: 0,
            unanswered: VecDeque::new(),
            trace,
            loss,
            aborted: false,
            path: Rc::new(path),
            keepalive: None,
            last_heard: Instant::now(),
            slot: None,
        }
    }

    /// Counts this connection against its server's limit while it lives.
    pub fn holding(mut self, slot: Option<ConnSlot>) -> Conn<S> {
        self.slot = slot;
        self
    }

    /// Puts this end on `path`, the one its peer shares.
    pub fn on_path(mut self, path: Rc<Path>) -> Conn<S> {
        self.path = path;
        self
    }

    /// Lets this end's kernel probe an idle connection every `interval`.
    pub fn with_keepalive(mut self, interval: Option<Duration>) -> Conn<S> {
        self.keepalive = interval;
        self
    }

    /// Which of the path's two ends this is (0: the one that opened it).
    fn end_index(&self) -> usize {
        match self.outgoing {
            Dir::Up => 0,
            Dir::Down => 1,
        }
    }

    /// Writes one whole message and records it. TCP delivers it or dies
    /// trying: a transmission that does not get through (the path is cut, a
    /// middlebox forgot the connection, `network.loss` struck) is sent again
    /// after the retransmission timeout, doubling each time, each attempt a
    /// `retransmit` record; past `network.tcp_retransmit_timeout` the
    /// connection is dead ("connection timed out"), on this side only.
    pub async fn send(&mut self, bytes: &[u8], label: Label) -> io::Result<()> {
        if self.aborted {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        if self.path.is_reset() {
            return Err(reset_error());
        }
        // Flow control: a peer that does not read fills the buffers between
        // us, and then we wait for it.
        self.path.room_for(self.end_index(), bytes.len()).await;
        if self.path.is_reset() {
            return Err(reset_error());
        }
        self.sent += 1;
        let reply_to = match label.kind {
            Kind::Response | Kind::StreamHead => self.unanswered.pop_front(),
            Kind::Request | Kind::StreamBlock | Kind::StreamEnd | Kind::Frame | Kind::Broker => {
                None
            }
        };
        self.trace.record(Event::Send {
            conn: self.name.clone(),
            dir: self.outgoing,
            seq: self.sent,
            kind: label.kind,
            what: label.what,
            bytes: bytes.len() as u64,
            events: label.events.map(|c| c.count),
            first_event: label.events.and_then(|c| c.first),
            reply_to,
            retry: label.attempt == Attempt::Retry,
            resent: label.attempt == Attempt::Resend,
        });
        let first_sent = Instant::now();
        let give_up = self.path.settings().retransmit_timeout.to_std();
        let mut rto = self.path.rto();
        let mut attempt = 0;
        // A transmission gets through if the path carries it and loss
        // spares it (the dice are thrown only when the path is open).
        while !self.path.passes(now_us) || self.loss.strikes() {
            // The retransmission timer, cut short by the give-up time: the
            // kernel aborts when that passes, with nothing sent.
            let left = give_up.saturating_sub(first_sent.elapsed());
            sleep(rto.min(left)).await;
            if self.path.is_reset() {
                return Err(reset_error());
            }
            if first_sent.elapsed() >= give_up {
                self.aborted = true;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection timed out: data unacknowledged past tcp_retransmit_timeout",
                ));
            }
            attempt += 1;
            self.trace.record(Event::Retransmit {
                conn: self.name.clone(),
                dir: self.outgoing,
                seq: self.sent,
                attempt,
            });
            rto = backed_off(rto);
        }
        // A link of finite bandwidth: the bytes leave once serialized.
        if let Some(leaves) = self.path.leaves_at(self.end_index() == 0, bytes.len()) {
            sleep_until(leaves).await;
        }
        self.path.crossed(now_us);
        self.path.wrote(self.end_index(), bytes.len());
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Records that a whole message of `bytes` bytes has been read.
    pub fn record_received(&mut self, kind: Kind, what: String, bytes: usize) {
        self.received += 1;
        if kind == Kind::Request {
            self.unanswered.push_back(self.received);
        }
        self.trace.record(Event::Recv {
            conn: self.name.clone(),
            dir: self.outgoing.reverse(),
            seq: self.received,
            kind,
            what,
            bytes: bytes as u64,
        });
    }

    /// Bytes read and not yet taken by a message.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the first `n` buffered bytes (a message that has been read).
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n.min(self.buf.len()));
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads more bytes into the buffer. `Ok(false)`: the peer closed its end
    /// (a clean end of stream). A reset by the network interrupts it; with
    /// keep-alive on, so does a path that stops answering the kernel's
    /// probes.
    pub async fn read_more(&mut self) -> io::Result<bool> {
        use bytes::BufMut;
        // Read straight into the buffer, what fits and at most READ_CHUNK.
        // A 4 KiB chunk array here would sit in every connection task's
        // future, and a 4 KiB reservation in every idle connection's buffer:
        // 400 MiB either way for 100,000 connections. The buffer grows by
        // doubling, so a long message still takes few reads.
        self.buf.reserve(512);
        let path = self.path.clone();
        let end = self.end_index();
        let mut unanswered_probes = 0;
        let n = loop {
            let mut into = (&mut self.buf).limit(READ_CHUNK);
            let read = self.stream.read_buf(&mut into);
            tokio::pin!(read);
            let reading = std::future::poll_fn(|cx| {
                if path.is_reset() {
                    return std::task::Poll::Ready(Err(reset_error()));
                }
                path.register_reader(end, cx.waker());
                std::future::Future::poll(read.as_mut(), cx)
            });
            let Some(interval) = self.keepalive else {
                break reading.await?;
            };
            // `biased`: the read first, so the run does not depend on
            // tokio's branch-picking RNG.
            tokio::select! {
                biased;
                n = reading => break n?,
                _ = sleep_until(self.last_heard + interval) => {
                    // Linux aborts when the timer fires with all its probes
                    // unanswered: idle + probes x interval after the last byte.
                    if unanswered_probes >= KEEPALIVE_PROBES {
                        self.aborted = true;
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "connection timed out: keep-alive probes unanswered",
                        ));
                    }
                    // The kernel's probe: an empty segment the peer's
                    // kernel acknowledges if the path still carries it.
                    let answered = path.passes(now_us);
                    self.trace.record(Event::KeepaliveProbe {
                        conn: self.name.clone(),
                        answered,
                    });
                    self.last_heard = Instant::now();
                    if answered {
                        path.crossed(now_us);
                        unanswered_probes = 0;
                    } else {
                        unanswered_probes += 1;
                    }
                }
            }
        };
        if self.keepalive.is_some() {
            self.last_heard = Instant::now();
        }
        self.path.read(end, n);
        Ok(n > 0)
    }

    /// Resolves when the peer closes the connection or it fails. Bytes that
    /// arrive meanwhile are kept for the next read, so nothing is lost.
    pub async fn until_peer_closes(&mut self) {
        while let Ok(true) = self.read_more().await {
            if self.buf.len() > MAX_UNREAD_BYTES {
                return; // a peer flooding a held connection: treat as gone
            }
        }
    }

    /// Closes this end on purpose (a FIN) and records why.
    pub async fn close(mut self, reason: &str) {
        if self.fin_would_vanish() {
            return self.bury(Ending::Closed, reason);
        }
        // A failed shutdown means the peer is already gone: nothing to do.
        let _ = self.stream.shutdown().await;
        self.record_end(Ending::Closed, reason);
    }

    /// Drops a connection that failed (reset, timeout, bad bytes), without
    /// a shutdown, and records why.
    pub fn fail(self, reason: &str) {
        if self.fin_would_vanish() {
            return self.bury(Ending::Failed, reason);
        }
        self.record_end(Ending::Failed, reason);
    }

    /// Whether the peer must not hear of this end going: the kernel aborted
    /// it (a retransmission or keep-alive timeout sends nothing), or a
    /// middlebox forgot the path (the FIN would vanish on the way). Dropping
    /// turmoil's stream would send a FIN regardless.
    fn fin_would_vanish(&self) -> bool {
        self.aborted || self.path.is_forgotten()
    }

    /// Ends this side without a word to the peer: the stream is kept, unread
    /// and unwritten, until the run ends.
    fn bury(self, ending: Ending, reason: &str) {
        self.record_end(ending, reason);
        let path = self.path.clone();
        path.bury(Box::new(self.stream));
    }

    fn record_end(&self, ending: Ending, reason: &str) {
        self.trace.record(Event::Close {
            conn: self.name.clone(),
            ending,
            reason: reason.to_string(),
        });
    }
}
