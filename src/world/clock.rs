//! The hosts' clock and tasks: tokio's `sleep`, `sleep_until`, `timeout` and
//! `spawn_local`, with the same meaning, that also leave a note for the run
//! loop of when a host may next have something to do.
//!
//! Why: turmoil moves time in ticks (1 ms by default) and runs every host
//! through every tick, whether or not anything happens on it. A learner's
//! five-minute run is 300,000 ticks per host, nearly all of them empty: a
//! long poll held for 30 s, a stream waiting for the next event. Real time
//! is spent per tick, so the cost followed simulated time, not messages.
//!
//! The run loop (`run::run`) skips a stretch of ticks when it can show that
//! nothing would happen in any of them:
//!
//! - no task ran and no message was delivered in the last tick: every task
//!   is spawned through [`spawn_local`] (and every host's software wrapped in
//!   [`counted`]), which counts polls. A task is woken by a timer, by a
//!   delivery, or by another task; once woken it runs within a tick. So a
//!   tick in which nothing ran and nothing arrived leaves nothing waiting;
//! - no timer is due: every timer is made through [`sleep`], [`sleep_until`]
//!   or [`timeout`], which note its deadline in simulated time. A timer that
//!   was cancelled leaves a note behind; that only costs a few ticks not
//!   skipped;
//! - no message is in flight (turmoil's `Sim::next_delivery`, one of the
//!   additions in `vendor/turmoil`, listed in its `PUSHPULL.md`), and no
//!   publication or fault is due.
//!
//! Skipping is exact, not an approximation: the skipped ticks are crossed in
//! one `Sim::step_by`, in which each host's clock moves as far as it would
//! have tick by tick and nothing else changes. `pushpull run --every-tick`
//! steps every tick instead, and `tests/determinism.rs` runs each
//! mechanism, with each kind of fault, both ways and compares the traces
//! byte for byte. In a debug build the run loop also asserts that no task
//! ran inside a skipped stretch.
//!
//! Outside a simulation (the live servers and clients on real sockets) these
//! are tokio's functions and nothing more.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::{Future, IntoFuture};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Sleep, Timeout};

pub use tokio::time::Instant;

/// Sleeps for `duration` (tokio's `sleep`), noting when it ends.
#[allow(clippy::disallowed_methods)] // the one place tokio's timers are made
pub fn sleep(duration: Duration) -> Sleep {
    note_timer(duration);
    tokio::time::sleep(duration)
}

/// Sleeps until `deadline` (tokio's `sleep_until`), noting it.
#[allow(clippy::disallowed_methods)]
pub fn sleep_until(deadline: Instant) -> Sleep {
    note_timer(deadline.saturating_duration_since(Instant::now()));
    tokio::time::sleep_until(deadline)
}

/// Runs `future` for at most `duration` (tokio's `timeout`), noting when it
/// would give up.
#[allow(clippy::disallowed_methods)]
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    note_timer(duration);
    tokio::time::timeout(duration, future)
}

/// Spawns a task on this host (tokio's `spawn_local`), counting its polls.
#[allow(clippy::disallowed_methods)]
pub fn spawn_local<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    tokio::task::spawn_local(counted(task))
}

/// `future`, counting each time it is polled: for a host's software, which
/// turmoil spawns itself.
pub fn counted<F: Future>(future: F) -> impl Future<Output = F::Output> {
    // Boxed: moved into an async block and pinned there, a task's future
    // would take its room twice over in the task.
    let mut future = Box::pin(future);
    std::future::poll_fn(move |cx| {
        POLLS.set(POLLS.get() + 1);
        future.as_mut().poll(cx)
    })
}

thread_local! {
    /// Polls of counted tasks on this thread, ever. The run loop compares it
    /// before and after a tick.
    static POLLS: Cell<u64> = const { Cell::new(0) };
    /// The deadlines of the timers made during the current run, in whole
    /// milliseconds of simulated time since its start, rounded down (a
    /// little early is safe; tokio's timers are no finer); `None` outside a
    /// run. A set: thousands of connections' timers share a millisecond.
    static TIMERS: RefCell<Option<BTreeSet<u64>>> = const { RefCell::new(None) };
}

fn note_timer(after: Duration) {
    // Outside a simulated host (live mode) there is nobody to tell.
    let Some(now) = turmoil::sim_elapsed() else {
        return;
    };
    TIMERS.with_borrow_mut(|timers| {
        if let (Some(timers), Some(deadline)) = (timers.as_mut(), now.checked_add(after)) {
            timers.insert(deadline.as_millis() as u64);
        }
    });
}

/// What the run loop reads between ticks. One per run; the run's thread
/// keeps its timers until it is dropped.
pub struct Watch {
    polls_before: u64,
}

impl Watch {
    /// Starts noting timers on this thread (a run is on one thread).
    pub fn start() -> Watch {
        TIMERS.set(Some(BTreeSet::new()));
        Watch {
            polls_before: POLLS.get(),
        }
    }

    /// Whether any counted task was polled since the last call.
    pub fn anything_ran(&mut self) -> bool {
        let polls = POLLS.get();
        std::mem::replace(&mut self.polls_before, polls) != polls
    }

    /// The earliest timer deadline after `after` (to the millisecond, rounded
    /// down), forgetting those at or before it (they have fired, or were
    /// cancelled).
    pub fn next_timer_after(&mut self, after: Duration) -> Option<Duration> {
        let after = after.as_millis() as u64;
        TIMERS.with_borrow_mut(|timers| {
            let timers = timers.as_mut()?;
            while let Some(&deadline) = timers.first() {
                if deadline > after {
                    return Some(Duration::from_millis(deadline));
                }
                timers.pop_first();
            }
            None
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        TIMERS.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_are_counted_and_timers_are_forgotten_once_passed() {
        let mut watch = Watch::start();
        assert!(!watch.anything_ran());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            spawn_local(async {}).await.unwrap();
        });
        assert!(watch.anything_ran());
        assert!(!watch.anything_ran());

        // Outside a turmoil host nothing is noted; note by hand.
        TIMERS.with_borrow_mut(|timers| {
            let timers = timers.as_mut().unwrap();
            for ms in [30, 10, 20, 20] {
                timers.insert(ms);
            }
        });
        assert_eq!(
            watch.next_timer_after(Duration::ZERO),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            watch.next_timer_after(Duration::from_millis(10)),
            Some(Duration::from_millis(20))
        );
        assert_eq!(watch.next_timer_after(Duration::from_millis(30)), None);
        drop(watch);
        TIMERS.with_borrow(|timers| assert!(timers.is_none()));
    }
}
