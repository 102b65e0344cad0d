//! Shared test helpers: a gateway process, an HTTPS receiver, and an
//! independent signature check.

pub mod gateway;
pub mod receiver;
pub mod verify;

#[allow(unused_imports)]
pub use gateway::{ADMIN_TOKEN, Gateway, GatewayBuilder};
#[allow(unused_imports)]
pub use receiver::{Receiver, test_ca};
