//! `hookgate plugin run`: one plugin call on an event file, no gateway.

use std::path::Path;

use serde_json::{Value, json};

use super::Prepared;
use super::host::{Limits, Outcome, PluginHost};
use crate::cli::PluginRunArgs;
use crate::model::event::Event;
use crate::model::ids::TenantId;
use crate::signing::HeaderNames;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a JSON event: {reason}")]
    BadEvent { path: String, reason: String },
    #[error("--config is not valid JSON: {0}")]
    BadConfig(serde_json::Error),
    #[error(transparent)]
    Plugin(#[from] super::PluginError),
}

fn read(path: &Path) -> Result<Vec<u8>, OfflineError> {
    std::fs::read(path).map_err(|source| OfflineError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Builds the event a delivery would carry from an event file: a whole
/// envelope keeps its id and time; `{"type","data"}` gets new ones.
fn event_from(path: &Path, bytes: &[u8]) -> Result<Event, OfflineError> {
    let bad = |reason: &str| OfflineError::BadEvent {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
    let event_type = value["type"]
        .as_str()
        .ok_or_else(|| bad("it needs a string \"type\""))?;
    let data = value
        .get("data")
        .cloned()
        .ok_or_else(|| bad("it needs \"data\""))?;
    let id = value["id"].as_str().map(String::from);
    let created_at = match value.get("created_at") {
        None => crate::time::now(),
        Some(v) => v
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| bad("\"created_at\" must be an RFC 3339 time"))?,
    };
    Ok(Event::at(
        TenantId::generate(),
        id,
        event_type,
        data,
        created_at,
    ))
}

/// Runs the command; returns the JSON report and whether the plugin failed.
pub fn run(args: &PluginRunArgs) -> Result<(Value, bool), OfflineError> {
    let wasm = read(&args.plugin)?;
    let event = event_from(&args.event, &read(&args.event)?)?;
    let config = match &args.config {
        Some(text) => serde_json::from_str::<Value>(text).map_err(OfflineError::BadConfig)?,
        None => json!({}),
    };
    let host = PluginHost::new(Limits {
        time: args.timeout,
        // Room for the CPU time even on a busy machine.
        deadline: (args.timeout * 10).max(std::time::Duration::from_secs(1)),
        memory: args.memory_mib << 20,
        ..Limits::default()
    })?;
    let (compiled, _) = host.compile(&wasm)?;
    let input = Prepared::of(&event).to_wit(&event, &args.endpoint_id);
    // The call yields at each epoch tick, so it needs an executor.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| super::PluginError::Host(e.to_string()))?;
    let limits = host.limits();
    let report = runtime.block_on(host.call(
        &compiled,
        &input,
        &config.to_string(),
        &HeaderNames::default(),
        limits.deadline,
    ));
    let mut out = json!({
        "duration_us": report.elapsed.as_micros() as u64,
        "logs": report.logs,
    });
    let failed = match report.result {
        Ok(Outcome::Deliver(d)) => {
            out["outcome"] = json!("deliver");
            out["body"] = json!(d.body);
            out["headers"] = json!(
                d.headers
                    .iter()
                    .map(|h| (&h.name, &h.value))
                    .collect::<Vec<_>>()
            );
            out["content_type"] = json!(d.content_type);
            false
        }
        Ok(Outcome::Drop(reason)) => {
            out["outcome"] = json!("drop");
            out["reason"] = json!(reason);
            false
        }
        Err(e) => {
            out["outcome"] = json!("error");
            out["error"] = json!(e.to_string());
            true
        }
    };
    Ok((out, failed))
}
