//! Delivery: getting each event to each subscribed endpoint (SPEC §2).

pub mod retry;

pub use retry::RetrySchedule;
