//! The `transformer` world of `wit/plugin.wit`, as host-side Rust types.

/// Generated from `wit/plugin.wit`. In a module of its own: the generated
/// `hookgate` module would otherwise clash with this crate's own name.
mod bindings {
    wasmtime::component::bindgen!({
        world: "transformer",
        path: "wit",
        exports: { default: async },
    });
}

pub(super) use bindings::hookgate::plugin::{log as wit_log, types as wit_types};
pub(super) use bindings::{Transformer, TransformerPre};

pub use bindings::Outcome;
pub use bindings::hookgate::plugin::types::{Delivery, Event as WitEvent, Header};
