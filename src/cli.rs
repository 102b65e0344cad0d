//! The `hookgate` command line.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

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

impl Cli {
    /// Parses the command line. The top-level help ends with every
    /// `HOOKGATE_*` variable, read off `serve`'s options so the list cannot
    /// drift from them.
    pub fn parse_args() -> Self {
        let matches = Self::command().after_help(environment_help()).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

fn environment_help() -> String {
    let serve = ServeArgs::augment_args(clap::Command::new("serve"));
    let vars: Vec<String> = serve
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|v| format!("  {}", v.to_string_lossy()))
        .collect();
    format!(
        "Environment (`hookgate serve --help` explains each):\n{}",
        vars.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_help_lists_serve_variables() {
        let help = environment_help();
        for var in [
            "HOOKGATE_LISTEN",
            "HOOKGATE_DATA_DIR",
            "HOOKGATE_RETRY_SCHEDULE",
        ] {
            assert!(help.contains(var), "{help}");
        }
    }
}
