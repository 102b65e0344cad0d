//! Delivery: getting each event to each subscribed endpoint (docs/product.md,
//! "Delivery").

pub mod attempt;
pub mod engine;
pub mod fanout;
pub mod operational;
mod pace;
pub mod retry;
pub mod sender;
mod window;

pub use engine::{Engine, EngineSettings};
pub use retry::RetrySchedule;
