//! Each endpoint's in-flight limit, adapting to its receiver as TCP's
//! congestion window does to a path (docs/product.md, "Delivery"):
//! additive increase while answers are 2xx and their latency stays near its
//! floor, multiplicative decrease on failures (no answer in time, no
//! connection, an error status) and on latency far above the floor.
//!
//! The limit stays between 1 and the endpoint's `max_in_flight`. A receiver
//! that keeps failing ends at one attempt at a time: a dead endpoint costs
//! one request per retry slot, not one per queued delivery, which makes a
//! circuit breaker without a switch of its own; as soon as answers are 2xx
//! again the limit grows back, by one for every `limit` answers.

use std::time::{Duration, Instant};

use super::attempt::Answer;

/// Latency this many times the floor (plus [`LATENCY_SLACK`]) counts as the
/// receiver queueing our requests: the limit falls, gently.
const LATENCY_FACTOR: u32 = 4;
/// Latency this far above the floor is never taken for congestion: a
/// receiver answering in 1 ms now and 5 ms later is not overloaded.
const LATENCY_SLACK: Duration = Duration::from_millis(20);
/// Least time between two decreases: the failures of attempts that were in
/// flight together count once, as TCP cuts its window once per loss event.
const CUT_GAP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub(super) struct Window {
    limit: f64,
    /// The endpoint's `max_in_flight`: the limit never passes it.
    max: usize,
    /// The lowest recent latency of a 2xx answer; it creeps up towards
    /// newer ones, so a floor from quieter times is forgotten.
    floor: Option<Duration>,
    cut_at: Option<Instant>,
}

impl Window {
    /// A new endpoint's window: it starts at its `max`, as an endpoint did
    /// before windows adapted, and falls at the first sign of trouble.
    pub(super) fn new(max: usize) -> Self {
        Self {
            limit: max.max(1) as f64,
            max: max.max(1),
            floor: None,
            cut_at: None,
        }
    }

    /// Attempts the endpoint may have in flight now.
    pub(super) fn limit(&self) -> usize {
        (self.limit as usize).max(1)
    }

    /// The endpoint's maximum.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// The endpoint's maximum changed: the limit follows a lower one at
    /// once, and may grow to a higher one.
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
        self.limit = self.limit.min(self.max as f64);
    }

    /// Takes in one answer of the endpoint.
    pub(super) fn answered(&mut self, answer: Answer, now: Instant) {
        match answer {
            Answer::Unknown => {}
            Answer::Failing => self.cut(0.5, now),
            Answer::Healthy(latency) => {
                let floor = match self.floor {
                    Some(f) if latency >= f => f + (latency - f) / 64,
                    _ => latency,
                };
                self.floor = Some(floor);
                if latency > floor * LATENCY_FACTOR + LATENCY_SLACK {
                    self.cut(0.8, now);
                } else {
                    self.limit += 1.0 / self.limit;
                }
            }
        }
        self.limit = self.limit.clamp(1.0, self.max as f64);
    }

    fn cut(&mut self, factor: f64, now: Instant) {
        if self
            .cut_at
            .is_some_and(|at| now.duration_since(at) < CUT_GAP)
        {
            return;
        }
        self.cut_at = Some(now);
        self.limit = (self.limit * factor).max(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn failures_halve_the_limit_once_per_gap_down_to_one() {
        let mut w = Window::new(8);
        let t = Instant::now();
        w.answered(Answer::Failing, t);
        assert_eq!(w.limit(), 4);
        // The other attempts in flight with it fail together: one cut.
        w.answered(Answer::Failing, t + 10 * MS);
        assert_eq!(w.limit(), 4);
        w.answered(Answer::Failing, t + 200 * MS);
        w.answered(Answer::Failing, t + 400 * MS);
        w.answered(Answer::Failing, t + 600 * MS);
        assert_eq!(w.limit(), 1, "a dead receiver gets one probe at a time");
    }

    #[test]
    fn healthy_answers_grow_it_back_to_the_max_and_no_further() {
        let mut w = Window::new(8);
        let t = Instant::now();
        for i in 0..4 {
            w.answered(Answer::Failing, t + i * 200 * MS);
        }
        assert_eq!(w.limit(), 1);
        let mut answers = 0;
        while w.limit() < 8 {
            w.answered(Answer::Healthy(2 * MS), t + 1000 * MS);
            answers += 1;
            assert!(answers < 100, "it does not grow");
        }
        // About one more per `limit` answers: 1 + 2 + ... + 7 = 28.
        assert!((25..=32).contains(&answers), "{answers}");
        for _ in 0..100 {
            w.answered(Answer::Healthy(2 * MS), t + 1000 * MS);
        }
        assert_eq!(w.limit(), 8);
    }

    #[test]
    fn latency_far_above_the_floor_lowers_it_gently() {
        let mut w = Window::new(10);
        let t = Instant::now();
        for _ in 0..10 {
            w.answered(Answer::Healthy(MS), t);
        }
        // Within the slack: not congestion.
        w.answered(Answer::Healthy(15 * MS), t);
        assert_eq!(w.limit(), 10);
        w.answered(Answer::Healthy(200 * MS), t + 10 * MS);
        assert_eq!(w.limit(), 8);
    }

    #[test]
    fn a_lower_max_takes_effect_at_the_next_answer_and_unknowns_change_nothing() {
        let mut w = Window::new(8);
        let t = Instant::now();
        w.answered(Answer::Unknown, t);
        assert_eq!(w.limit(), 8);
        w.set_max(2);
        assert_eq!(w.limit(), 2);
        w.answered(Answer::Healthy(MS), t);
        assert_eq!(w.limit(), 2);
    }
}
