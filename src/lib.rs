//! # pushpull: watch real-time client-server mechanisms happen
//!
//! pushpull runs a server and its clients on a simulated network (turmoil on
//! tokio) and records everything that crosses it. The same scenario and seed
//! give the same run, byte for byte, so a book can show a run and a learner can
//! reproduce it exactly, then change one parameter and see what moves.
//!
//! What it is: real async code speaking real HTTP/1.1 bytes and WebSocket
//! frames over simulated TCP
//! (with the retransmissions and timeouts of Linux's), with latency, jitter,
//! loss, cut-offs, forgetful middleboxes, crashes and proxies in simulated
//! time. What it
//! is not: a load tester or a production library. Each mechanism is written to
//! be read.
//!
//! ## Map of the crate
//!
//! The folders are the layers of the design, numbered from the bottom:
//! a module may use modules of lower layers and of its own group, never one
//! above, and groups that share a layer do not use each other
//! (`tests/layers.rs` reads every `crate::` path and fails when one points
//! back up or sideways).
//!
//! | layer | module | what it holds | chapter |
//! |---|---|---|---|
//! | 5 the book | [`book`] | the figures, run fresh; the drift check; the mdBook build | every chapter |
//! | 4 the run | [`run`] | a plan turned into hosts on turmoil, the schedule of events and faults, the run loop | "The sandbox" |
//! | | [`run::sweep`] | one scenario over every combination of some parameters' values and mechanisms (`pushpull sweep`) | |
//! | 3 mechanisms | [`mechanisms::short_polling`] | short polling: server and client | "Short polling" |
//! | | [`mechanisms::long_polling`] | long polling: server and client | "Long polling" |
//! | | [`mechanisms::sse`] | Server-Sent Events: server and EventSource client | "Server-Sent Events" |
//! | | [`mechanisms::websocket`] | WebSocket: the handshake, frames, the chat room and its clients | "WebSocket" |
//! | | [`mechanisms::chat`] | the chat over HTTP: posts as `POST /messages`, for the three HTTP mechanisms | "WebSocket" |
//! | | [`mechanisms::webhooks`] | webhooks: the provider's signed deliveries and retries, the receivers, the attacker | "Webhooks" |
//! | | [`mechanisms::jobs`] | the async-job pattern: a queue, a worker, and polling or a callback for the outcome | "Webhooks" |
//! | 2 the simulated world | [`world::proxy`] | an HTTP proxy (and load balancer) between clients and servers: idle timeout, buffering, WebSocket tunnels | "Long polling", "Server-Sent Events", "WebSocket" |
//! | | [`world::broker`] | a pub/sub host between servers, as Redis is used | "WebSocket" |
//! | | [`world::context`] | what the server and each client run with | |
//! | | [`world::http_conn`] | HTTP/1.1 messages over a traced connection | |
//! | | [`world::network`] | connecting, accepting, the switchboard through which faults reach connections | "The sandbox" |
//! | | [`world::tcp`] | what a kernel's TCP adds to turmoil: retransmission, timeouts, SYN retries, keep-alive, middleboxes that forget | "The sandbox" |
//! | | [`world::conn`] | one end of a TCP connection: bytes, faults, trace records | |
//! | | [`world::event_log`] | the server's events, outside the server process | |
//! | 2 reading the record | [`record::report`] | the numbers of a run, computed from its trace | every chapter |
//! | | [`record::diagram`] | the space-time diagram, drawn from a trace | every chapter |
//! | | [`record::chart`] | line charts of a sweep's measures | |
//! | 1 the record | [`record::trace`] | what happened, typed, as JSON lines, and its hash | "The sandbox" |
//! | 0 parameters | [`scenario`] | a scenario from TOML and `--set`, checked and resolved once into a [`scenario::Plan`]; the lessons' files | "The sandbox" |
//! | 0 wire formats | [`wire::http`] | HTTP/1.1 messages as bytes, chunked coding: pure, no I/O | every chapter |
//! | | [`wire::event_stream`] | the `text/event-stream` parser, as browsers interpret it | "Server-Sent Events" |
//! | | [`wire::websocket`] | RFC 6455: the handshake, frames, masking, the failure rules | "WebSocket" |
//! | | [`wire::webhook`] | Standard Webhooks signatures: sign, verify, the tolerance | "Webhooks" |
//!
//! So the world never reads the report (a run's numbers come from its trace
//! only), and never uses the mechanisms: the run hands it what a mechanism
//! decides (how a proxy counts events, say). The one `match` on the
//! mechanism is in [`mechanisms`].
//!
//! The `pushpull` binary (`src/bin/pushpull/`) holds the command line, live
//! mode, the clients against real servers and the benchmark: nothing a
//! lesson test needs.

pub mod book;
pub mod mechanisms;
pub mod record;
pub mod run;
pub mod scenario;
pub mod wire;
pub mod world;
