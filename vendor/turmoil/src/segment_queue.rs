//! pushpull: the queue that carries a TCP stream's in-order segments from
//! the host to the socket that reads them.
//!
//! turmoil used a bounded `tokio::sync::mpsc` channel, whose first block of
//! 32 slots is allocated when the channel is made: with the channel's state,
//! about 1.5 KiB per socket, two sockets per connection, whether a byte ever
//! moves. With 100,000 long-polling clients that was 294 MiB (measured). This queue allocates nothing
//! until a segment arrives and keeps mpsc's behaviour where turmoil relies on
//! it: a bound (`Full`), the receiver's end seen by the sender (`Closed`),
//! the sender's end seen by the receiver (`None` once the queue is empty),
//! and one wake of the reading task per send.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct Shared<T> {
    queue: VecDeque<T>,
    capacity: usize,
    reader: Option<Waker>,
    sender_alive: bool,
    receiver_alive: bool,
}

pub(crate) struct Sender<T>(Arc<Mutex<Shared<T>>>);

pub(crate) struct Receiver<T>(Arc<Mutex<Shared<T>>>);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError {
    /// The receiver is gone.
    Closed,
    /// `capacity` segments wait to be read.
    Full,
}

pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(Shared {
        queue: VecDeque::new(),
        capacity,
        reader: None,
        sender_alive: true,
        receiver_alive: true,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Whether a send would succeed now.
    pub(crate) fn can_send(&self) -> Result<(), TrySendError> {
        let shared = self.0.lock().unwrap();
        if !shared.receiver_alive {
            Err(TrySendError::Closed)
        } else if shared.queue.len() >= shared.capacity {
            Err(TrySendError::Full)
        } else {
            Ok(())
        }
    }

    /// Sends after `can_send` said yes.
    pub(crate) fn send(&self, value: T) {
        let waker = {
            let mut shared = self.0.lock().unwrap();
            shared.queue.push_back(value);
            shared.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut shared = self.0.lock().unwrap();
            shared.sender_alive = false;
            shared.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next segment; `None` once the sender is gone and the queue empty.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut shared = self.0.lock().unwrap();
        if let Some(value) = shared.queue.pop_front() {
            return Poll::Ready(Some(value));
        }
        if !shared.sender_alive {
            return Poll::Ready(None);
        }
        match &mut shared.reader {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            reader => *reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.0.lock().unwrap().queue.pop_front()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut shared = self.0.lock().unwrap();
        shared.receiver_alive = false;
        // What was never read goes now, as mpsc's receiver dropped it.
        shared.queue.clear();
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}
