//! Shared test helpers: a gateway process and an API client.

pub mod gateway;

pub use gateway::{ADMIN_TOKEN, Gateway, GatewayBuilder};
