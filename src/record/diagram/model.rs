//! The model: what happened, independent of how it is drawn. Built from the
//! records as they say what they are: hosts by role, messages by kind,
//! answers by the request they reply to, faults by kind.

use crate::record::trace::{CutKind, Dir, Ending, Event, Kind, NETWORK, ProxyAction, Record, Role};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How a message's arrow looks: its colour and dash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Look {
    /// A request.
    Request,
    /// An answer that said "nothing new": the waste polling pays for.
    Empty,
    /// An answer that carried events: the point of the whole exercise.
    Data,
    /// Any other answer (an error status, a stream's head or comment).
    Other,
}

/// One message, matched across the network.
#[derive(Clone)]
pub(super) struct Message<'a> {
    pub(super) from: &'a str,
    /// The receiver, or for an unreceived message the peer named by the
    /// connection, if it can be read from it.
    pub(super) to: Option<&'a str>,
    pub(super) t_send: u64,
    pub(super) t_recv: Option<u64>,
    pub(super) conn: &'a str,
    pub(super) dir: Dir,
    pub(super) seq: u32,
    pub(super) kind: Kind,
    pub(super) what: &'a str,
    pub(super) bytes: u64,
    pub(super) events: Option<u32>,
    /// For an answer: the `seq` of the request it answers.
    pub(super) reply_to: Option<u32>,
    /// A transmission that did not get through: TCP sent the message again
    /// later (drawn as a stub that stops short).
    pub(super) lost: bool,
    pub(super) retry: bool,
}

impl Message<'_> {
    pub(super) fn look(&self) -> Look {
        match (self.kind, self.events) {
            // A request that carries events (a webhook delivery, a job's
            // callback) is data too.
            (Kind::Request, Some(n)) if n > 0 => Look::Data,
            (Kind::Request, _) => Look::Request,
            (_, Some(0)) => Look::Empty,
            (_, Some(_)) => Look::Data,
            (_, None) => Look::Other,
        }
    }
}

/// Something that happened at one instant on one host.
pub(super) enum Mark<'a> {
    Publish(u64),
    Deliver {
        client: u32,
        event: u64,
        latency_us: u64,
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
        ending: Ending,
        reason: &'a str,
    },
    ConnectFailed {
        target: &'a str,
        reason: &'a str,
    },
    /// A connect's SYN went unanswered and was sent again.
    SynRetransmit {
        target: &'a str,
        attempt: u32,
    },
    /// The kernel probed an idle connection (TCP keep-alive).
    KeepaliveProbe {
        conn: &'a str,
        answered: bool,
    },
    Error {
        client: u32,
        what: &'a str,
    },
    /// A proxy acted on its own (cut an idle connection, say).
    Proxy {
        conn: &'a str,
        action: ProxyAction,
        reason: &'a str,
    },
}

/// A request a host has received and not yet answered: the time it holds
/// it. Long polling is this bar growing; a proxy's idle timeout is this bar
/// being cut.
pub(super) struct Hold<'a> {
    pub(super) host: &'a str,
    pub(super) from: u64,
    /// When the answer left, or the connection closed; `None` if neither
    /// happened in the trace.
    pub(super) to: Option<u64>,
    pub(super) answered: bool,
    pub(super) what: &'a str,
    pub(super) peer: &'a str,
}

/// What kind of outage a band shows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Outage {
    Cut(CutKind),
    Crash,
}

/// A stretch of time during which a host was cut off or down. `end` is
/// `None` when the trace never says it ended.
pub(super) struct Band<'a> {
    pub(super) kind: Outage,
    pub(super) host: &'a str,
    pub(super) start: u64,
    pub(super) end: Option<u64>,
}

pub(super) struct Model<'a> {
    /// Hosts in lifeline order: clients, then the hosts in between, then the
    /// server.
    pub(super) hosts: Vec<&'a str>,
    /// Hosts that run exactly one client, and its number.
    pub(super) single_client: BTreeMap<&'a str, u32>,
    pub(super) messages: Vec<Message<'a>>,
    pub(super) marks: Vec<(u64, &'a str, Mark<'a>)>,
    pub(super) bands: Vec<Band<'a>>,
    pub(super) holds: Vec<Hold<'a>>,
    /// Median one-way latency of the messages that arrived, in microseconds.
    pub(super) typical_latency: Option<u64>,
    pub(super) last_t: u64,
}

/// Lifeline order: clients first, then the server (and a broker behind
/// it), every other host (a
/// proxy, a host the trace gives no role) in between; within a role by
/// name, with numbers in numeric order (`client-2` before `client-10`).
pub(super) fn host_order(role: Option<Role>, host: &str) -> (u8, &str, u64, &str) {
    let rank = match role {
        Some(Role::Client) => 0,
        Some(Role::Server) => 2,
        Some(Role::Broker | Role::Backend) => 3,
        Some(Role::Proxy | Role::Attacker) | None => 1,
    };
    let (stem, number) = match host.rsplit_once('-') {
        Some((stem, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
            (stem, n.parse().unwrap_or(u64::MAX))
        }
        _ => (host, 0),
    };
    (rank, stem, number, host)
}

/// The two hosts of a connection named `client-1:49152>server:80`.
pub(super) fn conn_ends(conn: &str) -> Option<(&str, &str)> {
    let (a, b) = conn.split_once('>')?;
    fn host(end: &str) -> Option<&str> {
        let h = end.rsplit_once(':').map_or(end, |(h, _)| h);
        (!h.is_empty()).then_some(h)
    }
    Some((host(a)?, host(b)?))
}

/// Where a message sent on `conn` in direction `dir` was going.
pub(super) fn conn_peer(conn: &str, dir: Dir) -> Option<&str> {
    let (opener, acceptor) = conn_ends(conn)?;
    Some(match dir {
        Dir::Up => acceptor,
        Dir::Down => opener,
    })
}

impl<'a> Model<'a> {
    pub(super) fn build(records: &'a [Record]) -> Model<'a> {
        // Records come in time order from a run, but a hand-made trace might
        // not; a stable sort keeps the order of records at the same instant.
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by_key(|&i| records[i].t_us);

        let mut hosts: BTreeSet<&str> = BTreeSet::new();
        let mut roles: BTreeMap<&str, Role> = BTreeMap::new();
        let mut single_client = BTreeMap::new();
        let mut messages: Vec<Message> = Vec::new();
        // A connection name could in principle come back (a port reused), so
        // each key holds a queue of sends waiting for their receipt.
        let mut waiting: BTreeMap<(&str, Dir, u32), VecDeque<usize>> = BTreeMap::new();
        let mut marks = Vec::new();
        let mut bands = Vec::new();
        let mut open_faults: BTreeMap<(bool, &str), (u64, Outage)> = BTreeMap::new();
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
                Event::Host { role, clients } => {
                    roles.insert(host, *role);
                    if let [only] = clients.as_slice() {
                        single_client.insert(host, *only);
                    }
                }
                Event::Send {
                    conn,
                    dir,
                    seq,
                    kind,
                    what,
                    bytes,
                    events,
                    reply_to,
                    retry,
                    ..
                } => {
                    let to = conn_peer(conn, *dir).filter(|p| *p != host);
                    if let Some(p) = to {
                        hosts.insert(p);
                    }
                    waiting
                        .entry((conn.as_str(), *dir, *seq))
                        .or_default()
                        .push_back(messages.len());
                    messages.push(Message {
                        from: host,
                        to,
                        t_send: t,
                        t_recv: None,
                        conn,
                        dir: *dir,
                        seq: *seq,
                        kind: *kind,
                        what,
                        bytes: *bytes,
                        events: *events,
                        reply_to: *reply_to,
                        lost: false,
                        retry: *retry,
                    });
                }
                Event::Retransmit { conn, dir, seq, .. } => {
                    // The transmission before this one did not get through:
                    // it becomes a stub, and the message leaves again now.
                    if let Some(&m) = waiting
                        .get(&(conn.as_str(), *dir, *seq))
                        .and_then(|queue| queue.front())
                    {
                        let mut stub = messages[m].clone();
                        stub.lost = true;
                        messages.push(stub);
                        messages[m].t_send = t;
                    }
                }
                Event::SynRetransmit { target, attempt } => marks.push((
                    t,
                    host,
                    Mark::SynRetransmit {
                        target,
                        attempt: *attempt,
                    },
                )),
                Event::KeepaliveProbe { conn, answered } => marks.push((
                    t,
                    host,
                    Mark::KeepaliveProbe {
                        conn,
                        answered: *answered,
                    },
                )),
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
                        action: *action,
                        reason,
                    },
                )),
                Event::Publish { event, .. } => marks.push((t, host, Mark::Publish(*event))),
                // A user pressing Send: the post itself is drawn as its frame.
                Event::Post { .. }
                | Event::Transport { .. }
                | Event::DeadLetter { .. }
                | Event::RetryScheduled { .. }
                | Event::Refused { .. } => {}
                Event::Deliver {
                    client,
                    event,
                    latency_us,
                } => marks.push((
                    t,
                    host,
                    Mark::Deliver {
                        client: *client,
                        event: *event,
                        latency_us: *latency_us,
                    },
                )),
                Event::Relay { .. } => {}
                Event::Connect {
                    conn, reconnect, ..
                } => marks.push((
                    t,
                    host,
                    Mark::Connect {
                        conn,
                        reconnect: *reconnect,
                    },
                )),
                Event::Accept { conn } => marks.push((t, host, Mark::Accept { conn })),
                Event::Close {
                    conn,
                    ending,
                    reason,
                } => marks.push((
                    t,
                    host,
                    Mark::Close {
                        conn,
                        ending: *ending,
                        reason,
                    },
                )),
                Event::ConnectFailed { target, reason, .. } => {
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
                // A fault opens with `cut`/`crash` and closes with
                // `heal`/`restart` of the same host; an unmatched end is
                // ignored, an unmatched start lasts to the end.
                Event::Cut { hosts: cut, how } => {
                    for h in cut {
                        hosts.insert(h);
                        open_faults
                            .entry((false, h.as_str()))
                            .or_insert((t, Outage::Cut(*how)));
                    }
                }
                Event::Heal { hosts: healed } => {
                    for h in healed {
                        if let Some((start, kind)) = open_faults.remove(&(false, h.as_str())) {
                            bands.push(Band {
                                kind,
                                host: h,
                                start,
                                end: Some(t),
                            });
                        }
                    }
                }
                Event::Crash => {
                    open_faults
                        .entry((true, host))
                        .or_insert((t, Outage::Crash));
                }
                Event::Restart => {
                    if let Some((start, kind)) = open_faults.remove(&(true, host)) {
                        bands.push(Band {
                            kind,
                            host,
                            start,
                            end: Some(t),
                        });
                    }
                }
            }
        }
        for ((_, host), (start, kind)) in open_faults {
            bands.push(Band {
                kind,
                host,
                start,
                end: None,
            });
        }
        bands.sort_by_key(|b| (b.start, b.host));

        // Retransmissions moved messages later and added stubs at the end:
        // back into time order (stable, so equal times keep their order).
        messages.sort_by_key(|m| m.t_send);
        let mut latencies: Vec<u64> = messages
            .iter()
            .filter_map(|m| m.t_recv.map(|r| r.saturating_sub(m.t_send)))
            .collect();
        latencies.sort_unstable();
        let typical_latency = latencies.get(latencies.len() / 2).copied();

        let holds = find_holds(&messages, &marks, &bands);
        let mut hosts: Vec<&str> = hosts.into_iter().collect();
        hosts.sort_by_key(|h| host_order(roles.get(h).copied(), h));
        Model {
            hosts,
            single_client,
            messages,
            marks,
            bands,
            holds,
            typical_latency,
            last_t,
        }
    }
}

/// Pairs each received request with the answer that says it replies to it,
/// or else with the receiver closing that connection or crashing, whichever
/// comes first.
pub(super) fn find_holds<'a>(
    messages: &[Message<'a>],
    marks: &[(u64, &'a str, Mark<'a>)],
    bands: &[Band<'a>],
) -> Vec<Hold<'a>> {
    let mut answers: BTreeMap<(&str, u32, &str), u64> = BTreeMap::new();
    for m in messages {
        if let Some(request) = m.reply_to {
            answers.entry((m.conn, request, m.from)).or_insert(m.t_send);
        }
    }
    let mut closes: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for (t, host, mark) in marks {
        if let Mark::Close { conn, .. }
        | Mark::Proxy {
            conn,
            action: ProxyAction::CloseIdle,
            ..
        } = mark
        {
            closes.entry((conn, host)).or_default().push(*t);
        }
    }
    // A crash drops every request the host held, on every connection.
    let conns: BTreeSet<(&str, &str)> = messages
        .iter()
        .filter_map(|m| Some((m.conn, m.to?)))
        .collect();
    for b in bands.iter().filter(|b| b.kind == Outage::Crash) {
        for &(conn, host) in conns.iter().filter(|(_, h)| *h == b.host) {
            closes.entry((conn, host)).or_default().push(b.start);
        }
    }
    for ts in closes.values_mut() {
        ts.sort_unstable();
    }
    let mut holds = Vec::new();
    for m in messages.iter().filter(|m| m.kind == Kind::Request) {
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
