//! What every [`Backend`](super::Backend) must do, as tests run against the
//! [`Store`] handle alone: `backend_contract!(name, make)` instantiates them
//! for a backend, where `make()` returns a fresh `(Store, guard)`.

use chrono::Utc;
use serde_json::json;

use super::test_support::{event_type, tenant};
use super::{PluginQuota, PublishOutcome, QueueEntry, Store, StoreError, Stored};
use crate::model::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::model::endpoint::{DeliveryOrder, Endpoint};
use crate::model::event::Event;
use crate::model::ids::{AttemptId, PluginId, TenantId};
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
        language: crate::model::plugin::Language::Wasm,
        engine: "engine",
        artifact: Some(b"code".as_slice()),
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
        store.event_deliveries(&owner.id, "ord_1").await.unwrap(),
        [(endpoint.id, delivery.id)]
    );
    assert!(
        store
            .get_delivery(&owner.id, &endpoint.id, &delivery.id)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.queue_len().await.unwrap(), 1);
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
    let due = store.due(None, now, 10).await.unwrap();
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
    let due = store.due(None, now, 10).await.unwrap();
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
    assert_eq!(
        store.queue_len().await.unwrap(),
        1,
        "only the moved entry is left"
    );
    let done = store
        .get_delivery(&owner.id, &endpoint.id, &newer.id)
        .await
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
    let record = store.get_plugin(&owner.id, &plugin).await.unwrap().unwrap();
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
        .await
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
            language: crate::model::plugin::Language::Wasm,
            engine: "engine",
            artifact: Some(b"code".as_slice()),
        };
        versions.push(store.create_plugin(new, quota).await);
    }
    assert!(matches!(&versions[0], Ok(Stored::Created(p)) if p.version == 1));
    assert!(matches!(&versions[1], Ok(Stored::Created(p)) if p.version == 2));
    assert!(matches!(&versions[2], Err(StoreError::LimitReached(_))));

    // A script, stored without an artifact (nothing was compiled), keeps
    // its language; it counts toward the same quota.
    let roomy = PluginQuota {
        count: 10,
        bytes: 1 << 20,
    };
    let sha256 = format!("{:064}", 9);
    let script = super::NewPlugin {
        tenant_id: owner.id,
        name: "js",
        sha256: &sha256,
        wasm: b"export function transform() {}",
        language: crate::model::plugin::Language::Javascript,
        engine: "engine",
        artifact: None,
    };
    let Ok(Stored::Created(js)) = store.create_plugin(script, roomy).await else {
        panic!("the script is not stored");
    };
    let read = store.get_plugin(&owner.id, &js.id).await.unwrap().unwrap();
    assert_eq!(read.language, crate::model::plugin::Language::Javascript);
    assert_eq!(read.size, 30);
    assert_eq!(
        store.plugin_artifact(&sha256, "engine").await.unwrap(),
        None
    );
    assert_eq!(
        store.plugin_blob(&sha256).await.unwrap().as_deref(),
        Some(b"export function transform() {}".as_slice())
    );
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
    assert!(store.get_tenant(&owner.id).await.unwrap().is_none());
    assert!(
        store
            .get_endpoint(&owner.id, &endpoint.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.get_event(&owner.id, "ord_1").await.unwrap().is_none());
    assert_eq!(store.queue_len().await.unwrap(), 0, "nothing more is sent");
}

/// Ends the attempt of `due` with `status` and nothing more to try.
async fn end(store: &Store, due: &(super::QueueKey, QueueEntry), status: DeliveryStatus) {
    let (key, entry) = due;
    store
        .finish_attempt(key, entry, move |d| {
            d.status = status;
            None
        })
        .await
        .unwrap();
}

/// A FIFO endpoint's deliveries are queued one at a time, in the order they
/// were published: the next only when the one before ended, whatever its
/// retries; one delivered by hand while it waited is passed over.
pub async fn a_fifo_line_queues_only_its_head(store: Store) {
    let owner = with_catalog(&store).await;
    let mut endpoint = Endpoint::sample(owner.id, "e");
    endpoint.ordering = DeliveryOrder::Fifo;
    store.create_endpoint(&endpoint).await.unwrap();
    let mut line = Vec::new();
    for n in 0..4 {
        let event = Event::new(owner.id, None, "a.b", json!({ "n": n }));
        let mut delivery = due_delivery(&endpoint, &event, 0);
        delivery.fifo = true;
        store
            .publish(event, vec![delivery.clone()], None)
            .await
            .unwrap();
        line.push(delivery.id);
    }
    let due_now = async |store: &Store| {
        let now = Utc::now().timestamp_millis() as u64 + 1;
        let due = store.due(None, now, 10).await.unwrap();
        due.entries
    };
    let get = async |id| {
        store
            .get_delivery(&owner.id, &endpoint.id, id)
            .await
            .unwrap()
            .unwrap()
    };
    let due = due_now(&store).await;
    assert_eq!(due.len(), 1, "only the head is queued");
    assert_eq!(due[0].1.delivery, line[0]);
    let waiting = get(&line[1]).await;
    assert!(waiting.fifo && waiting.next_retry.is_none(), "{waiting:?}");

    // A retry keeps the head's place: nothing else is due meanwhile.
    let later = Utc::now().timestamp_millis() + 60_000;
    let (key, entry) = due[0].clone();
    store
        .finish_attempt(&key, &entry, move |d| {
            d.status = DeliveryStatus::Failed;
            Some(later)
        })
        .await
        .unwrap();
    assert!(
        due_now(&store).await.is_empty(),
        "the line waits for its head"
    );
    let retried = store.due(None, later as u64, 10).await.unwrap().entries;
    assert_eq!(retried.len(), 1);

    // The third is delivered by hand while it waits.
    let attempt = Attempt {
        id: AttemptId::generate(),
        at: Utc::now(),
        success: true,
        response_code: Some(200),
        response_time_ms: 1,
        response_body: None,
        error: None,
        manual: true,
    };
    store
        .record_manual_attempt(&owner.id, &endpoint.id, &line[2], &attempt)
        .await
        .unwrap();
    assert!(
        due_now(&store).await.is_empty(),
        "a hand delivery queues nothing"
    );

    // The head ends: the second's turn, due at once.
    end(&store, &retried[0], DeliveryStatus::Delivered).await;
    assert!(
        store.take_queued_since().is_some(),
        "the dispatcher is told"
    );
    let due = due_now(&store).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.delivery, line[1]);
    assert!(!get(&line[0]).await.fifo, "out of the line");
    assert!(get(&line[1]).await.next_retry.is_some());

    // The second ends: the third, delivered by hand, is passed over.
    end(&store, &due[0], DeliveryStatus::Failed).await;
    let due = due_now(&store).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.delivery, line[3]);
    let passed = get(&line[2]).await;
    assert!(passed.status == DeliveryStatus::Delivered && !passed.fifo);
    assert_eq!(store.queue_len().await.unwrap(), 1);

    // The second, failed for good, is recovered behind the fourth.
    let window = (Utc::now() - chrono::Duration::minutes(1), Utc::now());
    let recovered = store
        .recover_deliveries(&owner.id, &endpoint.id, window, Utc::now(), true)
        .await
        .unwrap();
    assert_eq!(recovered, 1);
    assert_eq!(
        store.queue_len().await.unwrap(),
        1,
        "it waits behind the fourth"
    );
    end(&store, &due[0], DeliveryStatus::Delivered).await;
    let due = due_now(&store).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.delivery, line[1], "the recovered one's turn");
    end(&store, &due[0], DeliveryStatus::Delivered).await;
    assert_eq!(store.queue_len().await.unwrap(), 0);

    // An empty line: the next publish is its head at once.
    let event = Event::new(owner.id, None, "a.b", json!({}));
    let mut delivery = due_delivery(&endpoint, &event, 0);
    delivery.fifo = true;
    store.publish(event, vec![delivery], None).await.unwrap();
    assert_eq!(due_now(&store).await.len(), 1);
}

/// Retention keeps a delivery waiting in a FIFO line whatever its age, and
/// deleting the endpoint takes its line with it.
pub async fn a_fifo_line_outlives_retention_not_its_endpoint(store: Store) {
    let owner = with_catalog(&store).await;
    let mut endpoint = Endpoint::sample(owner.id, "e");
    endpoint.ordering = DeliveryOrder::Fifo;
    store.create_endpoint(&endpoint).await.unwrap();
    let old = 40 * 24 * 3600 * 1000;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let event = Event::new(owner.id, None, "a.b", json!({}));
        let mut delivery = due_delivery(&endpoint, &event, old);
        delivery.fifo = true;
        ids.push(delivery.id);
        store.publish(event, vec![delivery], None).await.unwrap();
    }
    assert_eq!(store.prune(Utc::now()).await.unwrap(), 0);
    for id in &ids {
        assert!(
            store
                .get_delivery(&owner.id, &endpoint.id, id)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        store
            .delete_endpoint(&owner.id, &endpoint.id)
            .await
            .unwrap()
    );
    assert_eq!(store.queue_len().await.unwrap(), 0);
    // The same endpoint id never comes back; a new FIFO endpoint starts
    // its own line.
    let mut next = Endpoint::sample(owner.id, "f");
    next.ordering = DeliveryOrder::Fifo;
    store.create_endpoint(&next).await.unwrap();
    let event = Event::new(owner.id, None, "a.b", json!({}));
    let mut delivery = due_delivery(&next, &event, 0);
    delivery.fifo = true;
    store.publish(event, vec![delivery], None).await.unwrap();
    assert_eq!(store.queue_len().await.unwrap(), 1);
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
            async fn a_fifo_line_queues_only_its_head() {
                let (store, _guard) = $make();
                contract::a_fifo_line_queues_only_its_head(store).await;
            }

            #[tokio::test]
            async fn a_fifo_line_outlives_retention_not_its_endpoint() {
                let (store, _guard) = $make();
                contract::a_fifo_line_outlives_retention_not_its_endpoint(store).await;
            }

            #[tokio::test]
            async fn a_deleted_tenant_leaves_nothing() {
                let (store, _guard) = $make();
                contract::a_deleted_tenant_leaves_nothing(store).await;
            }
        }
    };
}

pub(super) use backend_contract;

backend_contract!(sled, crate::store::test_support::temp_store);
