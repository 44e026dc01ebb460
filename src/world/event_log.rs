//! The server's event log: what the server has to tell its clients.

use std::cell::RefCell;
use std::rc::Rc;

/// One application event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppEvent {
    /// 1, 2, 3, ... in publication order. Clients use it as their cursor.
    pub id: u64,
    pub data: String,
}

/// The log lives outside the server process, like a database would, so it
/// survives a server crash and restart; the server reads it, the run loop
/// appends to it at the scheduled times.
#[derive(Clone, Default)]
pub struct EventLog {
    events: Rc<RefCell<Vec<AppEvent>>>,
    /// When each event was published (for the trace's delivery latencies,
    /// not for the mechanisms).
    publications: Publications,
    /// Wakes whoever waits for new events (long polling, streams).
    published: Rc<tokio::sync::Notify>,
    /// The keys of the events appended with one ([`EventLog::append_once`]):
    /// a unique index, as a database keeps, so that it survives a server
    /// restart with the events themselves.
    keys: Rc<RefCell<std::collections::HashSet<(String, u64)>>>,
}

impl EventLog {
    /// Appends an event published at `t_us`; returns its id.
    pub fn append(&self, data: String, t_us: u64) -> u64 {
        let mut events = self.events.borrow_mut();
        let id = events.len() as u64 + 1;
        events.push(AppEvent { id, data });
        self.publications.0.borrow_mut().push(t_us);
        self.published.notify_waiters();
        id
    }

    /// Appends the event `data` makes of its id, published at `t_us`,
    /// unless an event with the same `key` is already in: an idempotency
    /// key (a chat post's user and number), so that a request sent again
    /// because its answer was lost adds nothing. `None` when it was in.
    pub fn append_once(
        &self,
        key: (&str, u64),
        t_us: u64,
        data: impl FnOnce(u64) -> String,
    ) -> Option<u64> {
        if !self.keys.borrow_mut().insert((key.0.to_string(), key.1)) {
            return None;
        }
        Some(self.append(data(self.last_id() + 1), t_us))
    }

    /// Events with `id > after`, at most `limit` of them.
    pub fn after(&self, after: u64, limit: usize) -> Vec<AppEvent> {
        let events = self.events.borrow();
        let start = (after as usize).min(events.len());
        events[start..].iter().take(limit).cloned().collect()
    }

    pub fn last_id(&self) -> u64 {
        self.events.borrow().len() as u64
    }

    /// A read-only view of when each event was published.
    pub fn publications(&self) -> Publications {
        self.publications.clone()
    }

    /// Wakes whoever waits, with nothing appended (a chat's join notice).
    pub fn wake_all(&self) {
        self.published.notify_waiters();
    }

    /// Resolves at the next `append`.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.published.notified()
    }
}

/// When each event was published, in microseconds of simulated time: what
/// a client's context reads to stamp a delivery with its latency. Read-only:
/// clients learn of events over the network, never from here.
#[derive(Clone, Default)]
pub struct Publications(Rc<RefCell<Vec<u64>>>);

impl Publications {
    /// When event `id` was published, if it was.
    pub fn of(&self, id: u64) -> Option<u64> {
        let index = (id as usize).checked_sub(1)?;
        self.0.borrow().get(index).copied()
    }
}

/// When each chat message was posted, in microseconds of simulated time,
/// by (client, message number): written by the client as its user posts,
/// read by the server as the message joins the room, so that the message's
/// delivery latencies run from the moment its user pressed Send. Like
/// [`Publications`], a measurement, never a channel between hosts.
#[derive(Clone, Default)]
pub struct PostTimes(Rc<RefCell<std::collections::HashMap<(u32, u64), u64>>>);

impl PostTimes {
    pub fn note(&self, client: u32, message: u64, t_us: u64) {
        self.0.borrow_mut().insert((client, message), t_us);
    }

    pub fn of(&self, client: u32, message: u64) -> Option<u64> {
        self.0.borrow().get(&(client, message)).copied()
    }
}

/// The payload of event `id`: `payload_bytes` of readable text, so that a
/// learner reading a trace or a wire dump can tell events apart.
pub fn payload(id: u64, payload_bytes: u32) -> String {
    let mut s = format!("event {id} ");
    let n = payload_bytes as usize;
    while s.len() < n {
        s.push('.');
    }
    s.truncate(n);
    s
}
