//! Each tenant's turns at running plugin calls (ARCHITECTURE.md, "Plugin
//! isolation").
//!
//! A tenant runs at most `Limits::tenant_calls` calls at once; its other
//! calls wait for a turn. That bounds how many of the executor's turns one
//! tenant's guest code takes, but not how much CPU: sixteen calls that each
//! spin until their CPU limit keep both cores of a small machine busy. So a
//! tenant whose calls run out of CPU time loses turns, as TCP's congestion
//! window does on loss: each such call halves its turns (down to one) and
//! holds its own turn idle for [`PAUSE_PER_CPU`] times the CPU it burnt
//! before handing it on; each call that ends within its limit gives back
//! one turn. A tenant whose plugins keep running out of time thus takes at
//! most a fifth of one core, whatever else runs, while tenants whose calls
//! end in time are never held back.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::PluginError;
use super::host::take_turn;

/// How long a call that ran out of CPU time holds its turn idle, per unit
/// of the CPU it used: with one turn left, the tenant's guest code runs at
/// most `1 / (1 + PAUSE_PER_CPU)` of one core.
pub const PAUSE_PER_CPU: u32 = 4;

/// One tenant's turns.
pub struct Turns {
    semaphore: Arc<Semaphore>,
    most: usize,
    state: Mutex<State>,
}

/// How many turns the tenant has now, and how many of the permits held by
/// calls are to be withdrawn as they come back: the permits in
/// circulation (free or held) are always `limit + owed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    limit: usize,
    owed: usize,
}

/// A turn held by one call; released when dropped, or by [`Turn::end`]
/// with what the call did.
pub struct Turn {
    permit: OwnedSemaphorePermit,
    turns: Arc<Turns>,
}

impl Turns {
    pub fn new(most: usize) -> Arc<Self> {
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(most)),
            most,
            state: Mutex::new(State {
                limit: most,
                owed: 0,
            }),
        })
    }

    /// Waits up to `wait` for a turn.
    pub async fn take(self: &Arc<Self>, wait: Duration) -> Result<Turn, PluginError> {
        let permit = take_turn(
            wait,
            self.semaphore.clone().acquire_owned(),
            "the tenant's plugin calls",
        )
        .await?;
        Ok(Turn {
            permit,
            turns: self.clone(),
        })
    }

    /// Whether nothing is running and no turn is withheld: forgetting the
    /// tenant now loses nothing.
    pub fn idle(&self) -> bool {
        let state = *self.state();
        state.limit == self.most && self.semaphore.available_permits() == self.most
    }

    /// The turns the tenant has now.
    #[cfg(test)]
    fn limit(&self) -> usize {
        self.state().limit
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Turn {
    /// Ends the turn of a call that ended with `result` after `cpu` of its
    /// own time. A call that ran out of CPU time halves its tenant's turns
    /// and keeps its own turn idle for [`PAUSE_PER_CPU`] × `cpu` (on a task
    /// of its own, so the caller goes on); any other call gives one back.
    pub fn end<T>(self, result: &Result<T, PluginError>, cpu: Duration) {
        let Turn { permit, turns } = self;
        let mut state = turns.state();
        if !matches!(result, Err(PluginError::Timeout(_))) {
            if state.limit < turns.most {
                state.limit += 1;
                if state.owed > 0 {
                    state.owed -= 1;
                } else {
                    turns.semaphore.add_permits(1);
                }
            }
            return;
        }
        let halved = (state.limit / 2).max(1);
        state.owed += state.limit - halved;
        state.limit = halved;
        // Withdraw free turns at once, held ones as they come back.
        state.owed -= turns.semaphore.forget_permits(state.owed);
        if state.owed > 0 {
            state.owed -= 1;
            permit.forget();
            return;
        }
        drop(state);
        let pause = cpu * PAUSE_PER_CPU;
        tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(50);
    const SPUN: Result<(), PluginError> = Err(PluginError::Timeout(Duration::from_millis(100)));
    const FINE: Result<(), PluginError> = Ok(());

    /// Turns free right now, taking none.
    fn free(turns: &Turns) -> usize {
        turns.semaphore.available_permits()
    }

    #[tokio::test(start_paused = true)]
    async fn calls_that_run_out_of_time_halve_the_turns_down_to_one() {
        let turns = Turns::new(16);
        let mut held = Vec::new();
        for _ in 0..16 {
            held.push(turns.take(WAIT).await.unwrap());
        }
        assert!(turns.take(WAIT).await.is_err(), "all 16 turns are taken");
        for (i, turn) in held.into_iter().enumerate() {
            turn.end(&SPUN, Duration::from_millis(100));
            assert_eq!(turns.limit(), (16 >> (i + 1)).max(1));
        }
        // Fifteen permits withdrawn, the last one held for its pause.
        assert_eq!(free(&turns), 0);
        tokio::time::sleep(Duration::from_millis(399)).await;
        assert_eq!(free(&turns), 0, "still paused");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(free(&turns), 1, "one turn left, free after 4 × 100 ms");
        assert!(!turns.idle());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_ending_in_time_give_the_turns_back_one_each() {
        let turns = Turns::new(4);
        let first = turns.take(WAIT).await.unwrap();
        let second = turns.take(WAIT).await.unwrap();
        first.end(&SPUN, Duration::from_millis(10));
        second.end(&SPUN, Duration::from_millis(10));
        assert_eq!(turns.limit(), 1);
        tokio::time::sleep(Duration::from_millis(41)).await;
        assert_eq!(free(&turns), 1);
        for expected in 2..=4 {
            let turn = turns.take(WAIT).await.unwrap();
            turn.end(&FINE, Duration::from_millis(1));
            assert_eq!(turns.limit(), expected);
            assert_eq!(free(&turns), expected);
        }
        let turn = turns.take(WAIT).await.unwrap();
        turn.end(&FINE, Duration::from_millis(1));
        assert_eq!(turns.limit(), 4, "never more than the most");
        assert_eq!(free(&turns), 4);
        assert!(turns.idle());
    }

    /// Turns given back while permits are still owed cancel the debt
    /// instead of adding permits: the permits in circulation stay
    /// `limit + owed`.
    #[tokio::test(start_paused = true)]
    async fn owed_turns_are_settled_before_new_ones_are_added() {
        let turns = Turns::new(8);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(turns.take(WAIT).await.unwrap());
        }
        held.pop().unwrap().end(&SPUN, Duration::from_millis(5));
        assert_eq!(*turns.state(), State { limit: 4, owed: 3 });
        held.pop().unwrap().end(&FINE, Duration::from_millis(5));
        assert_eq!(*turns.state(), State { limit: 5, owed: 2 });
        for turn in held {
            turn.end(&FINE, Duration::from_millis(5));
        }
        assert_eq!(*turns.state(), State { limit: 8, owed: 0 });
        assert_eq!(free(&turns), 8, "the withdrawn permit was added back");
        assert!(turns.idle());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_turn_is_returned_as_it_was() {
        let turns = Turns::new(2);
        drop(turns.take(WAIT).await.unwrap());
        assert_eq!(free(&turns), 2);
        assert!(turns.idle());
    }
}
