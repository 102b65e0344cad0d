//! Timestamps: UTC, millisecond precision, RFC 3339 on the wire.

use chrono::{DateTime, SubsecRound, Utc};

pub type Timestamp = DateTime<Utc>;

/// Now, truncated to milliseconds so that stored and displayed times agree.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}
