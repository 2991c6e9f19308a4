//! The ticking of the background loops: a round at once, then one every
//! period, until the loop is told to stop. A round that runs longer than
//! the period pushes the next ones back (tokio's `Delay`): the rounds
//! never bunch up to catch up. What a round decides by the time of day
//! reads the gateway's clock, which it is handed; the ticks themselves are
//! tokio's.
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

/// The ticks of a loop that waits on more than them and its stop: the
/// first at once, then every `period` after the one before was taken.
pub fn ticks(period: Duration) -> Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// A loop's rounds, every `period` until `shutdown` resolves:
///
/// ```ignore
/// let mut rounds = Every::new(PERIOD, shutdown);
/// while rounds.next().await {
///     round().await;
/// }
/// ```
///
/// A round under way is finished before the stop is heard.
pub struct Every<S> {
    shutdown: Pin<Box<S>>,
    ticks: Interval,
}

impl<S: Future<Output = ()>> Every<S> {
    pub fn new(period: Duration, shutdown: S) -> Self {
        Every {
            shutdown: Box::pin(shutdown),
            ticks: ticks(period),
        }
    }

    /// Waits for the next round ([`ticks`]): `true`, or `false` once the
    /// loop is told to stop (then asked no more).
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            () = &mut self.shutdown => false,
            _ = self.ticks.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn the_first_round_is_at_once_and_the_stop_ends_the_rounds() {
        let (stop, stopped) = oneshot::channel::<()>();
        let mut rounds = Every::new(HOUR, async move {
            let _ = stopped.await;
        });
        assert!(rounds.next().await, "the first round at once");
        stop.send(()).unwrap();
        assert!(
            !rounds.next().await,
            "none once stopped, the hour not waited"
        );
    }

    #[tokio::test]
    async fn rounds_that_overrun_push_the_next_back_rather_than_bunch_up() {
        let ticks = ticks(HOUR);
        assert_eq!(ticks.period(), HOUR);
        assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Delay);
    }
}
