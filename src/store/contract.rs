//! What every [`Backend`](super::Backend) must do, as tests run against the
//! [`Store`] handle alone: `backend_contract!(name, make)` instantiates them
//! for a backend, where `make()` returns a fresh `(Store, guard)`.

use chrono::Utc;
use serde_json::json;

use super::test_support::{event_type, tenant};
use super::{PluginQuota, PublishOutcome, QueueEntry, Store, StoreError, Stored};
use crate::model::delivery::{Delivery, DeliveryStatus};
use crate::model::endpoint::Endpoint;
use crate::model::event::Event;
use crate::model::ids::{PluginId, TenantId};
use crate::model::plugin::PluginRef;
use crate::model::tenant::Tenant;

async fn with_catalog(store: &Store) -> Tenant {
    let owner = tenant("acme");
    store.create_tenant(&owner).await.unwrap();
    store
        .create_event_type(&owner.id, &event_type("a.b"))
        .await
        .unwrap();
    owner
}

fn due_delivery(endpoint: &Endpoint, event: &Event, ago_ms: i64) -> Delivery {
    let at = Utc::now() - chrono::Duration::milliseconds(ago_ms);
    let mut d = Delivery::new(endpoint.id, &event.id, &event.event_type, at);
    d.next_retry = Some(at);
    d
}

async fn upload(store: &Store, tenant: TenantId, sha256: &str) -> PluginId {
    let new = super::NewPlugin {
        tenant_id: tenant,
        name: "p",
        sha256,
        wasm: b"wasm",
        engine: "engine",
        artifact: b"code",
    };
    let quota = PluginQuota {
        count: 10,
        bytes: 1 << 20,
    };
    match store.create_plugin(new, quota).await.unwrap() {
        Stored::Created(p) => p.id,
        Stored::Existing(p) => p.id,
    }
}

/// A publish stores the event, each delivery and its queue entry, once:
/// the same id again stores nothing.
pub async fn publish_is_whole_and_idempotent(store: Store) {
    let owner = with_catalog(&store).await;
    let endpoint = Endpoint::sample(owner.id, "e");
    store.create_endpoint(&endpoint).await.unwrap();
    let event = Event::new(owner.id, Some("ord_1".into()), "a.b", json!({"n": 1}));
    let delivery = due_delivery(&endpoint, &event, 0);
    let outcome = store
        .publish(event.clone(), vec![delivery.clone()], None)
        .await
        .unwrap();
    assert!(matches!(outcome, PublishOutcome::Created(_)));
    let again = Event::new(owner.id, Some("ord_1".into()), "a.b", json!({"n": 2}));
    let repeat = store.publish(again, vec![], None).await.unwrap();
    assert!(matches!(repeat, PublishOutcome::Duplicate(e) if e.body == event.body));
    assert_eq!(
        store.event_deliveries(&owner.id, "ord_1").unwrap(),
        [(endpoint.id, delivery.id)]
    );
    assert!(
        store
            .get_delivery(&owner.id, &endpoint.id, &delivery.id)
            .unwrap()
            .is_some()
    );
    assert_eq!(store.queue_len(), 1);
}

/// Due entries come oldest first; an attempt's end moves its entry to the
/// retry time or drops it, with the delivery, together.
pub async fn the_queue_is_oldest_first_and_attempts_move_their_entry(store: Store) {
    let owner = with_catalog(&store).await;
    let endpoint = Endpoint::sample(owner.id, "e");
    store.create_endpoint(&endpoint).await.unwrap();
    let event = Event::new(owner.id, None, "a.b", json!({}));
    let newer = due_delivery(&endpoint, &event, 10);
    let older = due_delivery(&endpoint, &event, 5_000);
    store
        .publish(event, vec![newer.clone(), older.clone()], None)
        .await
        .unwrap();
    let now = Utc::now().timestamp_millis() as u64;
    let due = store.due(None, now, 10).unwrap();
    let order: Vec<_> = due.entries.iter().map(|(_, e)| e.delivery).collect();
    assert_eq!(order, [older.id, newer.id], "oldest first");

    let (key, entry): (_, QueueEntry) = due.entries[0].clone();
    let later = now as i64 + 60_000;
    let moved = store
        .finish_attempt(&key, &entry, move |d| {
            d.retry_count += 1;
            Some(later)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.retry_count, 1);
    let due = store.due(None, now, 10).unwrap();
    assert_eq!(due.entries.len(), 1, "the moved entry is not due now");
    assert_eq!(due.next_due_ms, Some(later as u64));

    let (key, entry) = due.entries[0].clone();
    store
        .finish_attempt(&key, &entry, |d| {
            d.status = DeliveryStatus::Delivered;
            None
        })
        .await
        .unwrap();
    assert_eq!(store.queue_len(), 1, "only the moved entry is left");
    let done = store
        .get_delivery(&owner.id, &endpoint.id, &newer.id)
        .unwrap()
        .unwrap();
    assert_eq!(done.status, DeliveryStatus::Delivered);
}

/// A record an endpoint refers to cannot be deleted, and an endpoint
/// cannot refer to a deleted one.
pub async fn references_hold_both_ways(store: Store) {
    let owner = with_catalog(&store).await;
    let plugin = upload(&store, owner.id, &format!("{:064}", 1)).await;
    let mut endpoint = Endpoint::sample(owner.id, "e");
    endpoint.plugins = vec![PluginRef {
        plugin_id: plugin,
        config: json!({}),
    }];
    store.create_endpoint(&endpoint).await.unwrap();
    let used = store.delete_event_type(&owner.id, "a.b").await;
    assert!(matches!(used, Err(StoreError::Conflict(_))), "{used:?}");
    let record = store.get_plugin(&owner.id, &plugin).unwrap().unwrap();
    let attached = store.delete_plugin(&record).await;
    assert!(
        matches!(attached, Err(StoreError::Conflict(_))),
        "{attached:?}"
    );

    store
        .create_event_type(&owner.id, &event_type("c.d"))
        .await
        .unwrap();
    assert!(store.delete_event_type(&owner.id, "c.d").await.unwrap());
    let stale = store
        .update_endpoint(&owner.id, &endpoint.id, |e| {
            e.events = vec!["c.d".into()];
            Ok::<_, StoreError>(())
        })
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let kept = store
        .get_endpoint(&owner.id, &endpoint.id)
        .unwrap()
        .unwrap();
    assert_eq!(kept.events, ["a.b"], "a refused change leaves it as it was");
}

/// Versions of a name are numbered in order and the quota holds.
pub async fn plugin_versions_are_numbered_within_the_quota(store: Store) {
    let owner = with_catalog(&store).await;
    let quota = PluginQuota {
        count: 2,
        bytes: 1 << 20,
    };
    let mut versions = Vec::new();
    for i in 0..3 {
        let sha256 = format!("{i:064}");
        let new = super::NewPlugin {
            tenant_id: owner.id,
            name: "p",
            sha256: &sha256,
            wasm: b"wasm",
            engine: "engine",
            artifact: b"code",
        };
        versions.push(store.create_plugin(new, quota).await);
    }
    assert!(matches!(&versions[0], Ok(Stored::Created(p)) if p.version == 1));
    assert!(matches!(&versions[1], Ok(Stored::Created(p)) if p.version == 2));
    assert!(matches!(&versions[2], Err(StoreError::LimitReached(_))));
}

/// Deleting a tenant removes everything it owns.
pub async fn a_deleted_tenant_leaves_nothing(store: Store) {
    let owner = with_catalog(&store).await;
    let endpoint = Endpoint::sample(owner.id, "e");
    store.create_endpoint(&endpoint).await.unwrap();
    let event = Event::new(owner.id, Some("ord_1".into()), "a.b", json!({}));
    let delivery = due_delivery(&endpoint, &event, 0);
    store.publish(event, vec![delivery], None).await.unwrap();
    assert!(store.delete_tenant(&owner.id).await.unwrap());
    assert!(store.get_tenant(&owner.id).unwrap().is_none());
    assert!(
        store
            .get_endpoint(&owner.id, &endpoint.id)
            .unwrap()
            .is_none()
    );
    assert!(store.get_event(&owner.id, "ord_1").unwrap().is_none());
    assert_eq!(store.queue_len(), 0, "nothing more is sent");
}

/// The contract's tests for one backend.
macro_rules! backend_contract {
    ($name:ident, $make:expr) => {
        mod $name {
            use crate::store::contract;

            #[tokio::test]
            async fn publish_is_whole_and_idempotent() {
                let (store, _guard) = $make();
                contract::publish_is_whole_and_idempotent(store).await;
            }

            #[tokio::test]
            async fn the_queue_is_oldest_first_and_attempts_move_their_entry() {
                let (store, _guard) = $make();
                contract::the_queue_is_oldest_first_and_attempts_move_their_entry(store).await;
            }

            #[tokio::test]
            async fn references_hold_both_ways() {
                let (store, _guard) = $make();
                contract::references_hold_both_ways(store).await;
            }

            #[tokio::test]
            async fn plugin_versions_are_numbered_within_the_quota() {
                let (store, _guard) = $make();
                contract::plugin_versions_are_numbered_within_the_quota(store).await;
            }

            #[tokio::test]
            async fn a_deleted_tenant_leaves_nothing() {
                let (store, _guard) = $make();
                contract::a_deleted_tenant_leaves_nothing(store).await;
            }
        }
    };
}

backend_contract!(sled, crate::store::test_support::temp_store);
