//! Wire formats: bytes in, values out. No tokio, no trace, no network: each
//! codec is a pure function of the bytes it is given, tested beside its code.
pub mod event_stream;
pub mod http;
pub mod webhook;
pub mod websocket;
