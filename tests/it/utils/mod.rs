//! Test helpers: a gateway process with an API client ([`gateway`]) and
//! envelope assertions ([`assert`]); the rest comes from the shared
//! `hookgate-test-support` crate (tests/support).

pub mod assert;
pub mod gateway;

pub use hookgate_test_support::{components, proxy, receiver, verify, wasm};

#[allow(unused_imports)]
pub use assert::{
    assert_no_secret, expect_error, expect_invalid, expect_ok, stored_contains, strings,
};
#[allow(unused_imports)]
pub use gateway::{ADMIN_TOKEN, Gateway, GatewayBuilder};
#[allow(unused_imports)]
pub use receiver::{Receiver, test_ca};

/// The built-in types of every catalog, in name order: the gateway's
/// operational events and `webhook.test`.
pub const BUILTIN_TYPES: [&str; 4] = [
    "hookgate.delivery.failed",
    "hookgate.endpoint.disabled",
    "hookgate.endpoint.recovered",
    "webhook.test",
];

/// `own` types with the built-in ones, in name order.
pub fn catalog_with(own: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = own
        .iter()
        .chain(&BUILTIN_TYPES)
        .map(|s| s.to_string())
        .collect();
    names.sort();
    names
}
