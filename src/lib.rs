//! # pushpull: watch real-time client-server mechanisms happen
//!
//! pushpull runs a server and its clients on a simulated network (turmoil on
//! tokio) and records everything that crosses it. The same scenario and seed
//! give the same run, byte for byte, so a book can show a run and a learner can
//! reproduce it exactly, then change one parameter and see what moves.
//!
//! What it is: real async code speaking real HTTP/1.1 bytes over simulated TCP,
//! with latency, jitter, cut-offs, crashes and proxies in simulated time. What it
//! is not: a load tester or a production library. Each mechanism is written to
//! be read; WebSocket and webhooks are not here yet.
//!
//! ## Map of the crate
//!
//! | module | what it holds | chapter |
//! |---|---|---|
//! | [`short_polling`] | short polling: server and client | "Short polling" |
//! | [`long_polling`] | long polling: server and client | "Long polling" |
//! | [`sse`] | Server-Sent Events: server and EventSource client | "Server-Sent Events" |
//! | [`event_stream`] | the `text/event-stream` parser, as browsers interpret it | "Server-Sent Events" |
//! | [`proxy`] | an HTTP proxy between clients and server: idle timeout, buffering | "Long polling", "Server-Sent Events" |
//! | [`scenario`] | the parameters of a run, from TOML and `--set` | "The sandbox" |
//! | [`sim`] | hosts on turmoil, the schedule of events and faults, the run loop | "The sandbox" |
//! | [`http`] | HTTP/1.1 messages on the wire, traced | every chapter |
//! | [`net`] | traced connections, the server's event log | plumbing |
//! | [`trace`] | the JSON-lines record of a run and its hash | "The sandbox" |
//! | [`report`] | the numbers of a run, computed from its trace | every chapter |
//! | [`diagram`] | the space-time diagram, drawn from a trace | every chapter |
//! | [`lessons`] | finding lesson files by name | plumbing |
//! | [`book`] | building the book from fresh runs | plumbing |

pub mod book;
pub mod diagram;
pub mod event_stream;
pub mod http;
pub mod lessons;
pub mod long_polling;
pub mod net;
pub mod proxy;
pub mod report;
pub mod scenario;
pub mod short_polling;
pub mod sim;
pub mod sse;
pub mod trace;
