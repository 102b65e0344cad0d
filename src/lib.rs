//! hookgate: a multi-tenant webhook gateway. See `ARCHITECTURE.md` for the map.

pub(crate) mod api;
pub mod cli;
pub mod config;
pub(crate) mod delivery;
pub mod logging;
pub mod model;
pub mod plugin_new;
pub mod plugins;
pub mod server;
pub(crate) mod service;
pub mod signing;
pub mod store;
pub(crate) mod target_guard;
pub(crate) mod time;
pub(crate) mod ui;
pub(crate) mod validation;
