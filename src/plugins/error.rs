//! Why a plugin was refused or a call failed.

use std::time::Duration;

/// Why a plugin was refused or a call failed. Each is a `plugin_failed`
/// reason in the delivery log, or a 422 at upload; except `Unavailable` and
/// `Host`, which are the gateway's own trouble: the delivery is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not implement hookgate:plugin/transformer@0.1.0: {0}")]
    WrongWorld(String),
    #[error("did not compile: {0}")]
    NotCompiled(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("did not finish within its {0:?} deadline (wall clock)")]
    Deadline(Duration),
    #[error("exceeds a sandbox bound: {0}")]
    Bound(String),
    #[error("the gateway could not run it now: {0}")]
    Unavailable(String),
    #[error("exceeded its memory limit of {0} MiB")]
    OutOfMemory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an error: {0}")]
    Returned(String),
    #[error("returned a body of {size} bytes, over the {limit}-byte limit")]
    OutputTooLarge { size: usize, limit: usize },
    #[error("returned invalid output: {0}")]
    BadOutput(String),
    #[error("plugin host failure: {0}")]
    Host(String),
}

impl PluginError {
    /// Whether the gateway, not the plugin, kept the call from running.
    pub fn is_gateway_trouble(&self) -> bool {
        matches!(self, PluginError::Unavailable(_) | PluginError::Host(_))
    }
}
