//! The records hookgate keeps, with their rules and no I/O: what the store
//! persists (their serde form is the on-disk encoding), the engine delivers
//! and plugins see. The API shows them through views of its own
//! (`api::views`), so they carry no OpenAPI schema. Everything else points
//! down to this module; it points to nothing above it.
//!
//! - [`ids`]: one typed id per record kind.
//! - [`tenant`]: tenants and their scoped API keys.
//! - [`endpoint`]: endpoints, their status, secrets and subscriptions.
//! - [`event_type`]: the catalog and subscription filters.
//! - [`event`]: a published event and its envelope.
//! - [`delivery`]: one event to one endpoint, and its attempts.
//! - [`plugin`]: uploaded plugin versions and chain steps.
//! - [`preset`]: the seed platforms' header names and catalogs, as data.

pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod event_type;
pub mod ids;
pub mod plugin;
pub mod preset;
pub mod tenant;
