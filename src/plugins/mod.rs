//! Per-endpoint WebAssembly plugins (ARCHITECTURE.md, "Plugin isolation").
//!
//! - [`host`]: the sandbox (wasmtime engine, limits, one call).
//! - [`wit`]: the host side of the `transformer` world.
//! - [`error`]: why a plugin was refused or a call failed.
//! - [`output`]: what a call returns, checked and bounded.
//! - [`pipe`]: the bounded stdout and stderr of a call.
//! - [`compile`]: compiling uploads in a bounded child process.
//! - [`registry`]: uploads (validated, content-addressed, versioned), the
//!   cache of compiled plugins, and running an endpoint's chain.
//! - [`turns`]: each tenant's turns at running calls, fewer for a tenant
//!   whose calls run out of CPU time.
//! - [`chain`]: what a chain passes from one plugin to the next.

pub mod chain;
pub mod compile;
mod error;
pub mod host;
pub mod js;
mod latency;
pub mod offline;
pub mod output;
mod pipe;
pub mod registry;
mod turns;
mod wit;

pub use chain::{ChainOutcome, Prepared};
pub use error::PluginError;
pub use host::{Limits, PluginHost};
pub use registry::Plugins;
