//! The `hookgate` command line.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use std::path::PathBuf;

use crate::config::ServeArgs;

/// hookgate: a multi-tenant webhook gateway with signed deliveries, retries,
/// delivery logs and per-endpoint WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up; boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: the HTTP API and the delivery workers.
    ///
    /// With no options at all it listens on 127.0.0.1:8080 and keeps its data
    /// in an embedded store in ./data. Every option can also come from the
    /// config file or the environment variable shown.
    Serve(ServeArgs),
    /// Work with WebAssembly plugins offline.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run a plugin on an event, as a delivery would, and print the outcome.
    ///
    /// The event file holds either a whole envelope
    /// ({"id","type","created_at","data"}) or just {"type","data"}. Exits 0
    /// when the plugin delivered or dropped the event, 1 when it failed.
    Run(PluginRunArgs),
    /// Write a new plugin project to start from: Rust (on the hookgate-plugin
    /// SDK, copied in), JavaScript (one plugin.js, uploaded as source) or
    /// Python (componentize-py). Its README has the one command that builds
    /// it.
    New(PluginNewArgs),
    /// Compile a component read on stdin to machine code on stdout: what the
    /// gateway runs, under resource limits, for each upload.
    #[command(hide = true)]
    CompileWorker,
}

#[derive(Debug, Args)]
pub struct PluginRunArgs {
    /// The plugin component (.wasm).
    pub plugin: PathBuf,
    /// JSON file with the event.
    #[arg(long, value_name = "FILE")]
    pub event: PathBuf,
    /// The plugin's configuration, as JSON text [default: {}].
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// The endpoint id the plugin is told about.
    #[arg(long, value_name = "ID", default_value = "wh_offline")]
    pub endpoint_id: String,
    /// CPU time the call may use.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// Memory the instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    pub memory_mib: usize,
}

#[derive(Debug, Args)]
pub struct PluginNewArgs {
    /// The plugin's language.
    #[arg(long, value_enum)]
    pub lang: crate::plugin_new::Lang,
    /// The plugin's name: lowercase letters, digits, '-' and '_', starting
    /// with a letter (the name it is uploaded under).
    pub name: String,
    /// The project's directory, which must not exist or be empty [default:
    /// ./NAME].
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
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
