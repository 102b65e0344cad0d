//! The retry schedule (docs/product.md, "Retries"): when each attempt of a
//! delivery is due.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Delays before each attempt, measured from the previous failure; the first
/// entry is the delay before the first attempt. The number of entries is the
/// number of attempts: after the last failure the delivery is `failed`.
#[derive(Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// The default schedule, also Menon's (docs/platforms.md): immediately, then
/// 1 min, 5 min, 30 min, 2 h and 24 h.
pub const DEFAULT_SCHEDULE: &str = "0s,1m,5m,30m,2h,24h";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("the retry schedule needs at least one delay")]
    Empty,
    #[error("'{0}' is not a duration (use forms like 0s, 50ms, 1m, 2h)")]
    BadDelay(String),
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> Result<Self, ScheduleError> {
        if delays.is_empty() {
            return Err(ScheduleError::Empty);
        }
        Ok(Self(delays))
    }

    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The delay before attempt number `attempt` (0-based), or `None` when the
    /// schedule is exhausted.
    pub fn delay_before(&self, attempt: usize) -> Option<Duration> {
        self.0.get(attempt).copied()
    }

    pub fn delays(&self) -> &[Duration] {
        &self.0
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        DEFAULT_SCHEDULE.parse().expect("default schedule parses")
    }
}

impl FromStr for RetrySchedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, ScheduleError> {
        let delays = s
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                humantime::parse_duration(part).map_err(|_| ScheduleError::BadDelay(part.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(delays)
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetrySchedule({self})")
    }
}

impl<'de> Deserialize<'de> for RetrySchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_documented_schedule() {
        let s = RetrySchedule::default();
        let mins = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(
            s.delays(),
            &[
                Duration::ZERO,
                mins(1),
                mins(5),
                mins(30),
                mins(120),
                mins(24 * 60)
            ]
        );
        assert_eq!(s.attempts(), 6);
        assert_eq!(s.delay_before(6), None);
    }

    #[test]
    fn parses_compressed_schedules_and_refuses_nonsense() {
        let s: RetrySchedule = "0ms, 50ms,100ms".parse().unwrap();
        assert_eq!(s.delays()[2], Duration::from_millis(100));
        assert_eq!("".parse::<RetrySchedule>(), Err(ScheduleError::Empty));
        assert_eq!(
            "1m,soon".parse::<RetrySchedule>(),
            Err(ScheduleError::BadDelay("soon".into()))
        );
    }
}
