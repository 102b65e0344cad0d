//! The worlds of `wit/`, as host-side Rust types: `transformer` (a
//! plugin's component) and `js-engine` (the JavaScript engine, which runs
//! a script passed as data; it shares the `types` and `log` interfaces).

/// Generated from `wit/plugin.wit`. In a module of its own: the generated
/// `hookgate` module would otherwise clash with this crate's own name.
mod bindings {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "wit",
        exports: { default: async },
    });
}

/// Generated from `wit/js-engine.wit`, over the same `types` and `log`.
mod js_bindings {
    wasmtime::component::bindgen!({
        world: "js-engine",
        path: "wit",
        exports: { default: async },
        with: {
            "hookgate:plugin/types": super::bindings::hookgate::plugin::types,
            "hookgate:plugin/log": super::bindings::hookgate::plugin::log,
        },
    });
}

pub(super) use bindings::hookgate::plugin::{log as wit_log, types as wit_types};
pub(super) use bindings::{Transformer, TransformerPre};
pub(super) use js_bindings::JsEnginePre;

pub use bindings::Outcome;
pub use bindings::hookgate::plugin::types::{Delivery, Event as WitEvent, Header};
pub use js_bindings::hookgate::plugin::script::ScriptError;
