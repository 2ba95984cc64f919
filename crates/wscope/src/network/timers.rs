//! Optional timers for `tokio::select!` arms: a deadline or interval that
//! may not be set. An unset one never fires, so the arm can stay in place
//! behind its `if` guard.

use tokio::time::{Instant, Interval};

/// Waits for `deadline`, or forever when there is none.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits for the interval's next tick, or forever when there is none.
pub async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// An interval whose first tick is one period from now, that does not try
/// to catch up after a stall.
pub fn every(period: std::time::Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}
