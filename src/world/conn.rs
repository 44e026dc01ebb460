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
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The network's dice for `network.loss`, shared by every connection of a host
/// and seeded from the scenario, so the same seed loses the same messages.
#[derive(Clone)]
pub struct Loss {
    pub probability: f64,
    pub rng: Rc<RefCell<ChaCha8Rng>>,
}

impl Loss {
    pub fn none() -> Loss {
        use rand::SeedableRng;
        Loss {
            probability: 0.0,
            rng: Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(0))),
        }
    }

    fn strikes(&self) -> bool {
        // Drawing only when loss is on keeps lossless runs independent of it.
        self.probability > 0.0 && self.rng.borrow_mut().random_bool(self.probability)
    }
}

/// The network's switch to reset a connection at once, as when a phone loses
/// its network and the operating system tells every app its sockets are gone.
/// (turmoil's own partitions are silent: packets vanish and nobody is told.)
#[derive(Default)]
pub struct ResetSwitch {
    reset: Cell<bool>,
    /// The task blocked reading this connection, to wake when it is reset.
    /// (A plain waker slot: `Notify` costs more on every read, and every
    /// read of every connection pays it.)
    reader: RefCell<Option<std::task::Waker>>,
}

impl ResetSwitch {
    pub fn reset(&self) {
        self.reset.set(true);
        if let Some(waker) = self.reader.borrow_mut().take() {
            waker.wake();
        }
    }

    pub fn is_reset(&self) -> bool {
        self.reset.get()
    }

    fn register(&self, waker: &std::task::Waker) {
        let mut slot = self.reader.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
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

/// What a message is, for the trace: written by the code that knows (the
/// mechanism that built it), never worked out from the bytes later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub kind: Kind,
    /// A short description: a request line, a status, a block's first lines.
    pub what: String,
    /// How many application events the message carries, where that applies.
    pub events: Option<u32>,
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

    /// The same label, saying the message carries `events` events.
    pub fn carrying(mut self, events: Option<u32>) -> Label {
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
    /// Set once the network has lost a message: the connection is dead.
    failed: bool,
    reset: Rc<ResetSwitch>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// `outgoing` is `Up` for the end that opened the connection.
    pub fn new(stream: S, name: String, outgoing: Dir, trace: HostTrace, loss: Loss) -> Conn<S> {
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
            failed: false,
            reset: Rc::default(),
        }
    }

    /// Lets the network reset this connection through `switch`.
    pub fn with_reset_switch(mut self, switch: Rc<ResetSwitch>) -> Conn<S> {
        self.reset = switch;
        self
    }

    /// The host this end runs on.
    pub fn host(&self) -> &str {
        self.trace.host()
    }

    /// Writes one whole message and records it. If `network.loss` strikes, the
    /// message is recorded as lost, nothing is written, and the connection is
    /// dead from now on: the caller drops it, and the peer sees it close.
    pub async fn send(&mut self, bytes: &[u8], label: Label) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection already failed",
            ));
        }
        if self.reset.is_reset() {
            return Err(reset_error());
        }
        self.sent += 1;
        let lost = self.loss.strikes();
        let reply_to = match label.kind {
            Kind::Response | Kind::StreamHead => self.unanswered.pop_front(),
            Kind::Request | Kind::StreamBlock | Kind::StreamEnd => None,
        };
        self.trace.record(Event::Send {
            conn: self.name.clone(),
            dir: self.outgoing,
            seq: self.sent,
            kind: label.kind,
            what: label.what,
            bytes: bytes.len() as u64,
            events: label.events,
            reply_to,
            lost,
            retry: label.attempt == Attempt::Retry,
            resent: label.attempt == Attempt::Resend,
        });
        if lost {
            self.failed = true;
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "message lost: the network broke the connection",
            ));
        }
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
    /// (a clean end of stream).
    pub async fn read_more(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 4096];
        let reset = &self.reset;
        let read = self.stream.read(&mut chunk);
        tokio::pin!(read);
        // A read that a reset by the network can interrupt.
        let n = std::future::poll_fn(|cx| {
            if reset.is_reset() {
                return std::task::Poll::Ready(Err(reset_error()));
            }
            reset.register(cx.waker());
            std::future::Future::poll(read.as_mut(), cx)
        })
        .await?;
        self.buf.extend_from_slice(&chunk[..n]);
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
        // A failed shutdown means the peer is already gone: nothing to do.
        let _ = self.stream.shutdown().await;
        self.record_end(Ending::Closed, reason);
    }

    /// Drops a connection that failed (reset, lost message, timeout), without
    /// a shutdown, and records why.
    pub fn fail(self, reason: &str) {
        self.record_end(Ending::Failed, reason);
    }

    fn record_end(&self, ending: Ending, reason: &str) {
        self.trace.record(Event::Close {
            conn: self.name.clone(),
            ending,
            reason: reason.to_string(),
        });
    }
}
