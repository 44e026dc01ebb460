//! The mechanisms, one file each, server and client side by side, and the
//! chat's HTTP side ([`chat`]: posts up as `POST /messages`), which the
//! three HTTP mechanisms share. This is the one place that matches on
//! [`Mechanism`]: the run asks here which software each host runs.

pub mod chat;
pub mod jobs;
pub mod long_polling;
pub mod short_polling;
pub mod sse;
pub mod webhooks;
pub mod websocket;

use crate::scenario::{Mechanism, Scenario};
use crate::world::context::Store;
use crate::world::context::{ClientCtx, ServerCtx};
use crate::world::network::HostNet;
use crate::world::proxy::EventCounters;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// A host's software, as turmoil runs it.
pub type HostSoftware = Pin<Box<dyn Future<Output = turmoil::Result>>>;
/// A client's software, a task on its host.
pub type ClientSoftware = Pin<Box<dyn Future<Output = ()>>>;

/// The server of `mechanism`.
pub fn server(mechanism: Mechanism, ctx: ServerCtx) -> HostSoftware {
    match mechanism {
        Mechanism::ShortPolling => Box::pin(short_polling::server(ctx)),
        Mechanism::LongPolling => Box::pin(long_polling::server(ctx)),
        Mechanism::Sse => Box::pin(sse::server(ctx)),
        Mechanism::Websocket => Box::pin(websocket::server(ctx)),
        Mechanism::Webhooks => Box::pin(webhooks::server(ctx)),
        Mechanism::Jobs => Box::pin(jobs::server(ctx)),
    }
}

/// One client of `mechanism`.
pub fn client(mechanism: Mechanism, ctx: ClientCtx) -> ClientSoftware {
    match mechanism {
        Mechanism::ShortPolling => Box::pin(short_polling::client(ctx)),
        Mechanism::LongPolling => Box::pin(long_polling::client(ctx)),
        Mechanism::Sse => Box::pin(sse::client(ctx)),
        Mechanism::Websocket => Box::pin(websocket::client(ctx)),
        Mechanism::Webhooks => Box::pin(webhooks::client(ctx)),
        Mechanism::Jobs => Box::pin(jobs::client(ctx)),
    }
}

/// A host behind a server: it gets its network, its store (kept across its
/// crashes) and the scenario.
pub type BackendSoftware = fn(HostNet, Store, Rc<Scenario>) -> HostSoftware;

/// The hosts a mechanism runs behind its server (the jobs' queue and
/// worker), by name, with what each runs.
pub fn backends(mechanism: Mechanism) -> Vec<(&'static str, BackendSoftware)> {
    match mechanism {
        Mechanism::Jobs => vec![
            ("queue", |net, store, s| {
                let visibility = s.jobs.visibility_timeout.to_std();
                Box::pin(jobs::queue(net, store, visibility))
            }),
            ("worker", |net, _, s| {
                Box::pin(jobs::worker(net, s.jobs.work.to_std()))
            }),
        ],
        _ => Vec::new(),
    }
}

/// The attacker's software, for a mechanism that has one (webhooks: a
/// host that forges, tampers with and replays deliveries).
pub fn attacker(mechanism: Mechanism) -> Option<fn(ClientCtx) -> ClientSoftware> {
    match mechanism {
        Mechanism::Webhooks => Some(|ctx| Box::pin(webhooks::attacker(ctx))),
        _ => None,
    }
}

/// How a proxy relaying `mechanism`'s messages counts the events in them,
/// for its trace (it relays bytes; the mechanism knows what they mean).
pub fn event_counters(mechanism: Mechanism) -> EventCounters {
    match mechanism {
        Mechanism::ShortPolling | Mechanism::LongPolling => EventCounters {
            answer: short_polling::count_events,
            block: |_| None,
            frame: |_| None,
        },
        // No proxy between provider and receivers.
        Mechanism::Webhooks | Mechanism::Jobs => EventCounters {
            answer: |_| None,
            block: |_| None,
            frame: |_| None,
        },
        Mechanism::Sse => EventCounters {
            answer: |_| None,
            block: sse::block_events,
            frame: |_| None,
        },
        // A client that fell back to long polling sends its polls through
        // the same proxy.
        Mechanism::Websocket => EventCounters {
            answer: short_polling::count_events,
            block: |_| None,
            frame: websocket::frame_events,
        },
    }
}
