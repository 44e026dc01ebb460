//! The record of a run: the trace, and what is read from it (the report, the
//! space-time diagram). Report and diagram only read records: the run
//! registers the report's running totals as an observer of the trace, and
//! neither reaches back into the run or the world.
pub mod chart;
pub mod diagram;
pub mod report;
pub mod trace;
