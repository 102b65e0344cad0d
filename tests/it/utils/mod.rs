//! Shared test helpers: a gateway process, an HTTPS receiver, an independent
//! signature check, and envelope assertions.

pub mod assert;
pub mod components;
pub mod gateway;
pub mod receiver;
pub mod verify;
pub mod wasm;

#[allow(unused_imports)]
pub use assert::{
    assert_no_secret, dir_contains, expect_error, expect_invalid, expect_ok, strings,
};
#[allow(unused_imports)]
pub use gateway::{ADMIN_TOKEN, Gateway, GatewayBuilder};
#[allow(unused_imports)]
pub use receiver::{Receiver, test_ca};
