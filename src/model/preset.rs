//! Presets: what a tenant created to play one of the platforms of
//! docs/platforms.md starts with, its header names and its whole event
//! catalog with example payloads. Each is a data file beside this one
//! (`presets/*.json`), embedded in the binary.

use serde::Deserialize;

use super::event_type::EventType;
use crate::signing::HeaderNames;
use crate::time::Timestamp;

/// The presets, by the name a tenant is created with.
pub const NAMES: [&str; 2] = ["mogu", "menon"];

/// A platform's header names and catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Header names; those left out keep the defaults.
    pub headers: HeaderNames,
    pub event_types: Vec<PresetType>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetType {
    pub name: String,
    pub description: String,
    pub example: serde_json::Value,
}

impl Preset {
    /// The preset called `name`, if there is one.
    pub fn named(name: &str) -> Option<Self> {
        let text = match name {
            "mogu" => include_str!("presets/mogu.json"),
            "menon" => include_str!("presets/menon.json"),
            _ => return None,
        };
        Some(serde_json::from_str(text).expect("the embedded presets parse (tested)"))
    }

    /// The catalog's types as records, created at `at`.
    pub fn event_types(&self, at: Timestamp) -> Vec<EventType> {
        self.event_types
            .iter()
            .map(|t| EventType {
                name: t.name.clone(),
                description: t.description.clone(),
                example: Some(t.example.clone()),
                builtin: false,
                created_at: at,
                updated_at: at,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event_type::validate_name;

    #[test]
    fn every_preset_is_valid() {
        for name in NAMES {
            let preset = Preset::named(name).unwrap();
            preset.headers.validate().unwrap();
            assert!(!preset.event_types.is_empty());
            for t in &preset.event_types {
                validate_name(&t.name).unwrap_or_else(|e| panic!("{name}: {}: {e}", t.name));
                assert!(!super::super::event_type::is_operational(&t.name));
                assert!(t.example.is_object(), "{name}: {}", t.name);
            }
            let mut names: Vec<&str> = preset.event_types.iter().map(|t| t.name.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(
                names.len(),
                preset.event_types.len(),
                "{name}: a type twice"
            );
        }
        assert!(Preset::named("other").is_none());
    }

    #[test]
    fn the_platforms_header_names() {
        let mogu = Preset::named("mogu").unwrap().headers;
        assert_eq!(
            [mogu.event, mogu.delivery, mogu.signature],
            ["X-Mogu-Event", "X-Mogu-Delivery", "X-Mogu-Signature-256"]
        );
        let menon = Preset::named("menon").unwrap();
        assert_eq!(menon.headers.signature, "X-Menon-Signature");
        assert_eq!(menon.headers.event, HeaderNames::default().event);
        assert_eq!(menon.event_types.len(), 21);
    }
}
