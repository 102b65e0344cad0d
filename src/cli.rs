//! The `hookgate` command line.

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;

/// hookgate: a multi-tenant webhook gateway with signed deliveries, retries,
/// delivery logs and per-endpoint WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: the HTTP API and the delivery workers.
    ///
    /// With no options at all it listens on 127.0.0.1:8080 and keeps its data
    /// in an embedded store in ./data. Every option can also come from the
    /// config file or the environment variable shown.
    Serve(ServeArgs),
}
