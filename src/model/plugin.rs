//! Plugin records: an uploaded version and its place in an endpoint's chain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{PluginId, TenantId};
use crate::validation::FieldError;

/// Most plugins in one endpoint's chain.
pub const MAX_CHAIN: usize = 8;
/// Longest plugin name.
pub const MAX_NAME_LEN: usize = 64;

/// One uploaded plugin version. Uploading new bytes under the same name makes
/// the next version; the bytes are stored once per SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plugin {
    pub id: PluginId,
    pub tenant_id: TenantId,
    pub name: String,
    pub version: u32,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    pub size: usize,
    pub created_at: DateTime<Utc>,
    /// What the bytes are: a component, or a script the JavaScript engine
    /// runs. Records stored before there were scripts are components.
    #[serde(default)]
    pub language: Language,
}

/// What a plugin's bytes are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// A WebAssembly component of the `transformer` world.
    #[default]
    Wasm,
    /// An ES module exporting `transform(event, config)`, run by the
    /// gateway's JavaScript engine.
    Javascript,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Wasm => "wasm",
            Language::Javascript => "javascript",
        }
    }
}

impl Plugin {
    /// How the plugin is named in log messages: `name v3`.
    pub fn label(&self) -> String {
        format!("{} v{}", self.name, self.version)
    }
}

/// A plugin in an endpoint's chain, with that endpoint's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRef {
    pub plugin_id: PluginId,
    /// Passed to the plugin as JSON text; `{}` when left out.
    #[serde(default = "empty_config")]
    pub config: serde_json::Value,
}

fn empty_config() -> serde_json::Value {
    serde_json::json!({})
}

/// Checks a plugin name: lowercase letters, digits, `-` and `_`.
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "name",
            format!("use 1 to {MAX_NAME_LEN} lowercase letters, digits, '-' or '_'"),
        ))
    }
}
