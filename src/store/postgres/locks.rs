//! The locks that keep rules spanning records race-free, and the one order
//! every transaction takes them in (so no two wait on each other):
//!
//! 1. The tenant's row in `tenants`. Endpoint writes that add a reference
//!    (an event type subscribed by name, a plugin in the chain) check it
//!    under `FOR KEY SHARE`; deleting an event type or a plugin checks its
//!    users under `FOR UPDATE`, so neither can pass the other: an endpoint
//!    never refers to a deleted record. Plugin uploads number versions and
//!    check the quota under `FOR UPDATE`, so two at once never share a
//!    number or pass the quota together. Tenant deletion holds `FOR UPDATE`.
//! 2. The tenant's lines (advisory, [`TENANT_LINES`]): shared by every
//!    change to one of its FIFO lines; held alone by tenant deletion, which
//!    so never meets a line being moved, and by a change to more lines
//!    than [`ENDPOINT_LINES_AT_MOST`].
//! 3. An endpoint's line (advisory, [`ENDPOINT_LINE`]): serialises its
//!    joins, the end of its head and its deletion, so a line has one head.
//!    Several are taken in key order.
//! 4. Plugin content (advisory, [`CONTENT`]): storing bytes and deciding
//!    they are unused, so a deletion never removes bytes an upload relies
//!    on. Several are taken in key order.
//! 5. Rows: a delivery's before its queue entry's.
//!
//! Advisory keys are 32-bit hashes of the id; two ids sharing one only wait
//! for each other.

use deadpool_postgres::GenericClient;

use super::exec;
use crate::model::ids::{EndpointId, TenantId};
use crate::store::Result;

/// Held (bigint key space) while the schema is checked and migrated.
pub(super) const MIGRATIONS: i64 = 0x686f_6f6b_6761_7465; // "hookgate"

// Classes of the two-int key space, which is apart from the bigint one.
const TENANT_LINES: i32 = 1;
const ENDPOINT_LINE: i32 = 2;
const CONTENT: i32 = 3;

/// FNV-1a of `text`: a stable key, the same in every process.
fn key(text: &str) -> i32 {
    let hash = text.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash as i32
}

fn sorted_keys(texts: impl IntoIterator<Item = String>) -> Vec<i32> {
    let mut keys: Vec<i32> = texts.into_iter().map(|t| key(&t)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Endpoint lines one transaction locks one by one at most; past it, it
/// takes all the tenant's lines at once. Advisory locks fill the server's
/// shared lock table (some 64 per connection), which a fan-out to
/// thousands of FIFO endpoints would overflow.
const ENDPOINT_LINES_AT_MOST: usize = 32;

/// Takes, until the transaction ends, the lines of `endpoints` (and the
/// tenant's lines, shared).
pub(super) async fn lines<C: GenericClient>(
    tx: &C,
    tenant: &TenantId,
    endpoints: impl IntoIterator<Item = EndpointId>,
) -> Result<()> {
    let keys = sorted_keys(endpoints.into_iter().map(|e| e.to_string()));
    if keys.is_empty() {
        return Ok(());
    }
    if keys.len() > ENDPOINT_LINES_AT_MOST {
        return all_lines(tx, tenant).await;
    }
    exec(
        tx,
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&TENANT_LINES, &key(&tenant.to_string())],
    )
    .await?;
    // A function scan yields the array in order, so the locks are taken in
    // it.
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k",
        &[&ENDPOINT_LINE, &keys],
    )
    .await?;
    Ok(())
}

/// Takes every line of `tenant` at once, until the transaction ends.
pub(super) async fn all_lines<C: GenericClient>(tx: &C, tenant: &TenantId) -> Result<()> {
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&TENANT_LINES, &key(&tenant.to_string())],
    )
    .await?;
    Ok(())
}

/// Takes the content of each of `contents` (SHA-256 hex), until the
/// transaction ends.
pub(super) async fn contents<C: GenericClient>(tx: &C, contents: &[String]) -> Result<()> {
    let keys = sorted_keys(contents.iter().cloned());
    if keys.is_empty() {
        return Ok(());
    }
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k",
        &[&CONTENT, &keys],
    )
    .await?;
    Ok(())
}
