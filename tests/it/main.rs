//! Integration tests: one binary (one link of the large dependency tree), a
//! module per resource. Each test starts the real `hookgate` binary on an
//! ephemeral loopback port with a temp data dir and talks HTTP to it.

mod utils;

mod auth;
mod bench;
mod cluster;
mod controls;
mod crash;
mod delivery;
mod errors;
mod event_types;
mod isolation;
mod platforms;
mod plugins;
mod plugins_in_every_language;
mod server;
mod tenants;
mod ui;
mod webhooks;
