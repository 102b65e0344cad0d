//! hookgate: a multi-tenant webhook gateway. See `ARCHITECTURE.md` for the map.

pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod event_type;
pub mod ids;
pub mod logging;
pub mod plugins;
pub mod server;
pub mod signing;
pub mod store;
pub mod target_guard;
pub mod tenant;
pub mod time;
pub mod ui;
pub mod validation;
