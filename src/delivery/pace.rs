//! An endpoint's `rate_limit`: attempts to it start at most `rate` a
//! second, evenly spaced (docs/product.md, "Delivery controls").
//!
//! The dispatcher keeps one [`Pace`] per rate-limited endpoint it has seen
//! busy; an entry that may not start yet stays held in memory, as one
//! waiting for a slot does, so the excess waits in the queue, is never
//! dropped and holds no worker. The pace is strict (no burst): within any
//! second at most `rate` attempts start, rounded up, plus the one at its
//! start.

use std::time::{Duration, Instant};

/// How often a pace reads its endpoint's `rate_limit` again, so a change
/// takes effect while the endpoint stays busy.
pub(super) const REREAD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(super) struct Pace {
    interval: Duration,
    /// When the next attempt is due to start: it may start up to `slack`
    /// before, so a timer that fires late does not push every later start
    /// back (each start moves this by one interval, not from "now").
    next: Instant,
}

/// How early a start may come before its time: a few timer ticks, and at
/// most a quarter of the interval.
fn slack(interval: Duration) -> Duration {
    (interval / 4).min(Duration::from_millis(2))
}

impl Pace {
    /// A pace of `rate` attempts a second whose first may start at once.
    pub fn new(rate: f64, now: Instant) -> Self {
        Self {
            interval: interval_of(rate),
            next: now,
        }
    }

    /// Takes a newly read rate; the next start keeps its time, brought
    /// forward if the new rate allows it sooner.
    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        let interval = interval_of(rate);
        if interval < self.interval {
            let earliest = self
                .next
                .checked_sub(self.interval - interval)
                .unwrap_or(now);
            self.next = earliest.max(now.min(self.next));
        }
        self.interval = interval;
    }

    /// Whether an attempt may start at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        now + slack(self.interval) >= self.next
    }

    /// An attempt starts at `now`: the next one waits an interval.
    pub fn take(&mut self, now: Instant) {
        self.next = self.next.max(now) + self.interval;
    }

    /// When the next attempt may start.
    pub fn next(&self) -> Instant {
        self.next - slack(self.interval)
    }
}

fn interval_of(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(f64::MIN_POSITIVE)).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_spaced_by_the_rate() {
        let t0 = Instant::now();
        let mut pace = Pace::new(10.0, t0);
        assert!(pace.allows(t0));
        pace.take(t0);
        assert!(!pace.allows(t0 + Duration::from_millis(97)));
        assert!(pace.allows(t0 + Duration::from_millis(98)));
        // Over a second of back-to-back starts: ten, not more.
        let mut now = t0 + Duration::from_millis(98);
        let mut started = 1;
        while now < t0 + Duration::from_millis(995) {
            if pace.allows(now) {
                pace.take(now);
                started += 1;
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(started, 10);
    }

    #[test]
    fn a_late_timer_does_not_slow_the_pace() {
        // Every start 1 ms after it was allowed: the rate holds.
        let t0 = Instant::now();
        let mut pace = Pace::new(200.0, t0);
        let mut now = t0;
        for _ in 0..200 {
            assert!(pace.allows(now));
            pace.take(now);
            now = pace.next() + Duration::from_millis(1);
        }
        let took = now.duration_since(t0);
        assert!(
            took <= Duration::from_millis(1010),
            "200 starts took {took:?}"
        );
    }

    #[test]
    fn an_idle_pace_does_not_save_up_a_burst() {
        let t0 = Instant::now();
        let mut pace = Pace::new(2.0, t0);
        pace.take(t0);
        let later = t0 + Duration::from_secs(60);
        assert!(pace.allows(later));
        pace.take(later);
        assert!(!pace.allows(later + Duration::from_millis(497)));
    }

    #[test]
    fn a_faster_rate_brings_the_next_start_forward_a_slower_one_does_not() {
        let t0 = Instant::now();
        let mut pace = Pace::new(1.0, t0);
        pace.take(t0);
        assert_eq!(pace.next, t0 + Duration::from_secs(1));
        pace.set_rate(10.0, t0 + Duration::from_millis(10));
        assert!(pace.next <= t0 + Duration::from_millis(100));
        let due = pace.next;
        pace.take(due);
        let next = pace.next;
        assert_eq!(next, due + Duration::from_millis(100));
        pace.set_rate(0.5, due);
        assert_eq!(pace.next, next);
        pace.take(next);
        assert_eq!(pace.next, next + Duration::from_secs(2));
    }
}
