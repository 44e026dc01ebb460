//! The record of a run: the trace, and what is read from it (the report, the
//! space-time diagram). Report and diagram only read records; nothing in a
//! run calls them.
pub mod diagram;
pub mod report;
pub mod trace;
