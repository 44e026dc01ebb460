//! The scenario's network, applied to live traffic: every connection
//! `pushpull live` accepts passes through a relay in the same process
//! before the mechanisms' server code sees it. The relay delays each chunk
//! by the scenario's latency (plus jitter drawn from its seed), and a cut
//! ("cut for 10 s" on the pages, `POST /api/cut`) does to real connections
//! what it does in the simulation:
//!
//! - `reset`: every open connection is reset (the browser sees a network
//!   error: `ERR_CONNECTION_RESET`), and new ones are reset as they come,
//!   until the cut ends;
//! - `silent`: nothing passes either way, and nobody is told; what was sent
//!   arrives when the cut ends. (The kernel still accepts new connections:
//!   the real loopback is not cut, only what the relay passes on. A real
//!   silent partition also delays the SYN; TCP would deliver the held bytes
//!   at its next retransmission after the heal, not at the heal itself.)
//!
//! Loss and bandwidth are not applied: on loopback the kernel's TCP would
//! retransmit any loss at once, so only the delay would show.
// Real sockets in real time: no simulated clock to tell (world::clock).
#![allow(clippy::disallowed_methods)]

use pushpull::scenario::Span;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};

/// How a cut behaves, as in the simulation's faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutKind {
    Reset,
    Silent,
}

/// The live network: latency, jitter, and the cut in force.
#[derive(Clone)]
pub struct Network {
    inner: Rc<Inner>,
}

struct Inner {
    latency: Duration,
    jitter: Duration,
    rng: RefCell<ChaCha8Rng>,
    cut: RefCell<Option<(Instant, CutKind)>>,
    /// Wakes every connection when a cut begins (a reset ends them) or
    /// ends (held bytes flow again).
    changed: Notify,
    /// Bumped at each reset: a connection older than the last reset is dead.
    resets: RefCell<u64>,
}

impl Network {
    pub fn new(latency: Span, jitter: Span, seed: u64) -> Network {
        Network {
            inner: Rc::new(Inner {
                latency: latency.to_std(),
                jitter: jitter.to_std(),
                rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
                cut: RefCell::new(None),
                changed: Notify::new(),
                resets: RefCell::new(0),
            }),
        }
    }

    /// Starts a cut of `length`.
    pub fn cut(&self, how: CutKind, length: Duration) {
        let until = Instant::now() + length;
        *self.inner.cut.borrow_mut() = Some((until, how));
        if how == CutKind::Reset {
            *self.inner.resets.borrow_mut() += 1;
        }
        self.inner.changed.notify_waiters();
        let inner = self.inner.clone();
        tokio::task::spawn_local(async move {
            sleep_until(until).await;
            let mut cut = inner.cut.borrow_mut();
            if cut.is_some_and(|(u, _)| u <= Instant::now()) {
                *cut = None;
                drop(cut);
                inner.changed.notify_waiters();
            }
        });
    }

    /// The longest a chunk takes through the relay, one way.
    pub fn longest_delay(&self) -> Duration {
        self.inner.latency + self.inner.jitter
    }

    /// The cut in force now, and until when.
    pub fn current_cut(&self) -> Option<(Instant, CutKind)> {
        self.inner
            .cut
            .borrow()
            .filter(|(until, _)| *until > Instant::now())
    }

    fn delay(&self) -> Duration {
        let jitter = self.inner.jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            self.inner.rng.borrow_mut().random_range(0..=jitter)
        };
        self.inner.latency + Duration::from_micros(extra)
    }

    /// Waits while a silent cut holds traffic.
    async fn while_silent(&self) {
        loop {
            let changed = self.inner.changed.notified();
            match self.current_cut() {
                Some((_, CutKind::Silent)) => changed.await,
                _ => return,
            }
        }
    }

    /// Resolves when a reset happens after `generation`.
    async fn reset_after(&self, generation: u64) {
        loop {
            let changed = self.inner.changed.notified();
            if *self.inner.resets.borrow() > generation {
                return;
            }
            changed.await;
        }
    }

    /// Puts `socket` behind the relay and returns the end the server code
    /// reads and writes, or `None` when a reset cut refuses it.
    pub fn relay(&self, socket: TcpStream) -> Option<DuplexStream> {
        if let Some((_, CutKind::Reset)) = self.current_cut() {
            let _ = socket.set_zero_linger();
            return None; // dropped: an RST
        }
        let (server_end, relay_end) = tokio::io::duplex(256 * 1024);
        let generation = *self.inner.resets.borrow();
        let net = self.clone();
        tokio::task::spawn_local(async move {
            let _ = socket.set_nodelay(true);
            let socket = Rc::new(socket);
            let (relay_read, relay_write) = tokio::io::split(relay_end);
            let up = pump(SocketRead(socket.clone()), relay_write, net.clone());
            let down = pump(relay_read, SocketWrite(socket.clone()), net.clone());
            tokio::select! {
                _ = async { tokio::join!(up, down) } => {}
                _ = net.reset_after(generation) => {
                    // The browser's end gets an RST. (The server's end sees
                    // its stream end, as after a FIN: the duplex between
                    // relay and server has no reset of its own.)
                    let _ = socket.set_zero_linger();
                }
            }
        });
        Some(server_end)
    }
}

/// Moves bytes from `from` to `to`, each chunk `delay` later, in order,
/// and held (not lost) while a silent cut lasts.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, net: Network) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let delays = net.clone();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            // An empty chunk carries the end of the stream, delayed too.
            let due = Instant::now() + delays.delay();
            let _ = tx.send((due, buf[..n].to_vec()));
            if n == 0 {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            sleep_until(due).await;
            net.while_silent().await;
            if bytes.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

/// The read half of a shared socket (tokio's `TcpStream` reads and writes
/// through `&self`).
struct SocketRead(Rc<TcpStream>);
struct SocketWrite(Rc<TcpStream>);

impl AsyncRead for SocketRead {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            match self.0.poll_read_ready(cx) {
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SocketWrite {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            match self.0.poll_write_ready(cx) {
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
            match self.0.try_write(buf) {
                Ok(n) => return std::task::Poll::Ready(Ok(n)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // Half-close the browser's side: shutdown(SHUT_WR).
        let socket = socket2::SockRef::from(self.0.as_ref());
        std::task::Poll::Ready(socket.shutdown(std::net::Shutdown::Write))
    }
}
