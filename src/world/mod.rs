//! The simulated world the mechanisms live in: traced connections over
//! turmoil's TCP, the network's faults, the contexts hosts run with, the
//! server's event log, the proxy between clients and servers, and the
//! broker between servers.
pub mod broker;
pub mod clock;
pub mod conn;
pub mod context;
pub mod event_log;
pub mod http_conn;
pub mod network;
pub mod proxy;
pub mod tcp;
