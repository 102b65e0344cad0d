//! The contract's tests on PostgreSQL, and this backend's own. Each test
//! gets a database of its own on the server `HOOKGATE_TEST_DATABASE_URL`
//! names (`bash tests/run` starts a throwaway one).

use std::future::Future;

use chrono::Utc;
use serde_json::json;
use sha2::Digest;
use tokio_postgres::NoTls;

use super::migrations::SCHEMA_VERSION;
use super::{PgOptions, PgStore, exec};
use crate::model::delivery::{Delivery, DeliveryStatus};
use crate::model::endpoint::{DeliveryOrder, Endpoint};
use crate::model::event::Event;
use crate::store::test_support::{event_type, stored_tenant};
use crate::store::{
    Backend, FANOUT_CHUNK, NewPlugin, PluginQuota, PublishOutcome, Store, StoreError, Stored,
};

const URL_VAR: &str = "HOOKGATE_TEST_DATABASE_URL";

/// The server the tests make their databases on.
fn server() -> tokio_postgres::Config {
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set: run the tests with `bash tests/run`, which starts a \
             throwaway PostgreSQL server, or set it to the URL of a server where this \
             user may create databases (postgres://user@host:port/postgres)"
        )
    });
    url.parse()
        .unwrap_or_else(|e| panic!("{URL_VAR} is not a valid URL: {e}"))
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own:
/// a test's runtime cannot block on a future.
fn aside<T: Send>(work: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(work)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

async fn admin(server: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = server
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to the server {URL_VAR} names: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database made for one test; dropping it drops the database, when the
/// server still answers.
pub(crate) struct FreshDatabase {
    server: tokio_postgres::Config,
    name: String,
}

impl FreshDatabase {
    fn create() -> Self {
        let server = server();
        let name = format!("hg_{:016x}", rand::random::<u64>());
        aside(async {
            let client = admin(&server).await.unwrap_or_else(|e| panic!("{e}"));
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a database for the test");
        });
        Self { server, name }
    }

    fn config(&self) -> tokio_postgres::Config {
        let mut config = self.server.clone();
        config.dbname(&self.name);
        config
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let drop_it = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        aside(async {
            if let Ok(client) = admin(&self.server).await {
                let _ = client.batch_execute(&drop_it).await;
            }
        });
    }
}

/// A store on a fresh database, migrated, with the database's guard. The
/// pool connects on the test's own runtime.
fn make() -> (Store, FreshDatabase) {
    let db = FreshDatabase::create();
    let config = db.config();
    aside(PgStore::connect_with(config.clone(), PgOptions::pool(1)))
        .unwrap_or_else(|e| panic!("migrate the test database: {e}"));
    let store = PgStore::pooled(config, PgOptions::pool(4)).expect("a pool");
    (Store::on(store), db)
}

crate::store::contract::backend_contract!(contract, crate::store::postgres::tests::make);

/// Gateways starting together on a new database: each connects, and the
/// schema was applied once (a second run of a version would fail on its
/// tables, and leave two rows).
#[tokio::test]
async fn migrations_apply_once_when_connects_race() {
    let db = FreshDatabase::create();
    let connect = || PgStore::connect_with(db.config(), PgOptions::pool(1));
    let (a, b, c) = tokio::join!(connect(), connect(), connect());
    let stores = [a, b, c].map(|s| s.unwrap_or_else(|e| panic!("connect: {e}")));
    let client = stores[0].client().await.unwrap();
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

/// A database a newer hookgate migrated is refused, with a clear error.
#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused() {
    let db = FreshDatabase::create();
    let store = PgStore::connect_with(db.config(), PgOptions::pool(1))
        .await
        .unwrap();
    exec(
        &store.client().await.unwrap(),
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&(SCHEMA_VERSION + 1)],
    )
    .await
    .unwrap();
    match PgStore::connect_with(db.config(), PgOptions::pool(1)).await {
        Err(StoreError::Write(message)) => assert!(message.contains("newer"), "{message}"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

/// Component bytes and artifacts come back as they went in, every byte
/// value included, and go with the last record of their content.
#[tokio::test]
async fn plugin_bytes_round_trip() {
    let (store, _db) = make();
    let owner = stored_tenant(&*store, "acme").await;
    let wasm: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let artifact: Vec<u8> = (0..=255u8).rev().cycle().take(70_000).collect();
    let sha256 = hex::encode(sha2::Sha256::digest(&wasm));
    let new = NewPlugin {
        tenant_id: owner.id,
        name: "p",
        sha256: &sha256,
        wasm: &wasm,
        language: crate::model::plugin::Language::Wasm,
        engine: "engine",
        artifact: Some(&artifact),
    };
    let roomy = PluginQuota {
        count: 10,
        bytes: 1 << 20,
    };
    let Ok(Stored::Created(plugin)) = store.create_plugin(new, roomy).await else {
        panic!("not created");
    };
    assert_eq!(plugin.size, wasm.len());
    let blob = store.plugin_blob(&sha256).await.unwrap();
    assert!(blob.as_deref() == Some(&wasm[..]), "the component's bytes");
    let code = store.plugin_artifact(&sha256, "engine").await.unwrap();
    assert!(code.as_deref() == Some(&artifact[..]), "the artifact");
    store
        .put_plugin_artifact(&sha256, "other", &artifact[..1000])
        .await
        .unwrap();
    let other = store.plugin_artifact(&sha256, "other").await.unwrap();
    assert_eq!(other.as_deref(), Some(&artifact[..1000]));

    assert!(store.delete_plugin(&plugin).await.unwrap());
    assert!(store.plugin_blob(&sha256).await.unwrap().is_none());
    for engine in ["engine", "other"] {
        assert!(
            store
                .plugin_artifact(&sha256, engine)
                .await
                .unwrap()
                .is_none()
        );
    }
    // An artifact for content gone meanwhile is not kept.
    store
        .put_plugin_artifact(&sha256, "late", b"x")
        .await
        .unwrap();
    assert!(
        store
            .plugin_artifact(&sha256, "late")
            .await
            .unwrap()
            .is_none()
    );
}

/// An event type deleted while endpoints subscribe to it, on separate
/// connections at once: either the subscription or the deletion is
/// refused, never neither.
#[tokio::test]
async fn deleting_an_event_type_never_crosses_a_subscription_to_it() {
    let (store, _db) = make();
    let owner = stored_tenant(&*store, "acme").await;
    for round in 0..40 {
        let name = format!("race.t{round}");
        store
            .create_event_type(&owner.id, &event_type(&name))
            .await
            .unwrap();
        let mut endpoint = Endpoint::sample(owner.id, "subscriber");
        endpoint.events = vec![name.clone()];
        let _ = tokio::join!(
            store.create_endpoint(&endpoint),
            store.delete_event_type(&owner.id, &name)
        );
    }
    let catalog = store.event_type_names(&owner.id).await.unwrap();
    store
        .with_endpoints(&owner.id, |all| {
            for e in all.values() {
                for n in &e.events {
                    assert!(catalog.contains(n), "{} subscribes to deleted {n}", e.id);
                }
            }
        })
        .await
        .unwrap();
}

/// Uploads of one name at once get versions 1, 2, 3…, never one twice.
#[tokio::test]
async fn uploads_at_once_never_share_a_version() {
    let (store, _db) = make();
    let owner = stored_tenant(&*store, "acme").await;
    let shas: Vec<String> = (0..4).map(|i| format!("{i:064}")).collect();
    let upload = |i: usize| {
        let new = NewPlugin {
            tenant_id: owner.id,
            name: "p",
            sha256: &shas[i],
            wasm: b"wasm",
            language: crate::model::plugin::Language::Wasm,
            engine: "engine",
            artifact: Some(b"code".as_slice()),
        };
        let quota = PluginQuota {
            count: 10,
            bytes: 1 << 20,
        };
        store.create_plugin(new, quota)
    };
    let (a, b, c, d) = tokio::join!(upload(0), upload(1), upload(2), upload(3));
    let mut versions: Vec<u32> = [a, b, c, d]
        .into_iter()
        .map(|s| match s {
            Ok(Stored::Created(p)) => p.version,
            _ => panic!("not created"),
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4]);
}

/// Publishes to one FIFO endpoint at once, on separate connections: its
/// line still has one head, and the rest come in their turn.
#[tokio::test]
async fn publishes_at_once_keep_one_head_per_line() {
    let (store, _db) = make();
    let owner = stored_tenant(&*store, "acme").await;
    let mut endpoint = Endpoint::sample(owner.id, "e");
    endpoint.ordering = DeliveryOrder::Fifo;
    store.create_endpoint(&endpoint).await.unwrap();
    let publish = |n: usize| {
        let event = Event::new(owner.id, None, "a.b", json!({ "n": n }));
        let mut delivery = Delivery::new(endpoint.id, &event.id, "a.b", Utc::now());
        delivery.next_retry = Some(Utc::now());
        delivery.fifo = true;
        store.publish(event, vec![delivery], None)
    };
    let published = tokio::join!(publish(0), publish(1), publish(2), publish(3));
    for outcome in [published.0, published.1, published.2, published.3] {
        outcome.unwrap();
    }
    let mut sent = 0;
    loop {
        let now = Utc::now().timestamp_millis() as u64 + 1;
        let due = store.due(None, now, 10).await.unwrap().entries;
        if due.is_empty() {
            break;
        }
        assert_eq!(due.len(), 1, "one head at a time");
        let (key, entry) = &due[0];
        store
            .finish_attempt(key, entry, |d| {
                d.status = DeliveryStatus::Delivered;
                None
            })
            .await
            .unwrap();
        sent += 1;
    }
    assert_eq!(sent, 4, "each in its turn");
    assert_eq!(store.queue_len().await.unwrap(), 0);
}

/// A publish past [`FANOUT_CHUNK`] deliveries, to more FIFO endpoints than
/// are locked one by one, is written whole: every delivery, each queued
/// entry, each line's head.
#[tokio::test]
async fn a_large_fan_out_is_written_whole() {
    let (store, _db) = make();
    let owner = stored_tenant(&*store, "acme").await;
    let event = Event::new(owner.id, None, "a.b", json!({}));
    let deliveries: Vec<Delivery> = (0..2 * FANOUT_CHUNK + 7)
        .map(|i| {
            let endpoint = crate::model::ids::EndpointId::generate();
            let mut d = Delivery::new(endpoint, &event.id, "a.b", event.created_at);
            match i % 10 {
                0 => d.status = DeliveryStatus::Skipped,
                _ => d.next_retry = Some(event.created_at),
            }
            d.fifo = i % 2 == 0 && d.next_retry.is_some();
            d
        })
        .collect();
    let queued = deliveries.iter().filter(|d| d.next_retry.is_some()).count();
    let outcome = store.publish(event.clone(), deliveries.clone(), None).await;
    assert!(matches!(outcome, Ok(PublishOutcome::Created(_))));
    assert_eq!(store.queue_len().await.unwrap(), queued);
    let listed = store.event_deliveries(&owner.id, &event.id).await.unwrap();
    let made: Vec<_> = deliveries.iter().map(|d| (d.endpoint_id, d.id)).collect();
    assert_eq!(listed, made, "every delivery, in the order made");
    for d in deliveries.iter().step_by(97) {
        let stored = store.get_delivery(&owner.id, &d.endpoint_id, &d.id).await;
        let stored = stored.unwrap().expect("stored");
        assert_eq!(stored.next_retry.is_some(), d.next_retry.is_some());
        assert_eq!(stored.fifo, d.fifo, "a line's head keeps its mark");
    }
}

/// Gateways on one database as the binary connects them, with a short
/// lease.
async fn gateway(db: &FreshDatabase, settle: std::time::Duration) -> PgStore {
    let options = PgOptions {
        pool_size: 2,
        lease: std::time::Duration::from_secs(2),
        settle,
    };
    PgStore::connect_with(db.config(), options)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Publishes `n` deliveries to one endpoint, due now.
async fn publish_due(store: &PgStore, n: usize) {
    let owner = match store.list_tenants(None, 1).await.unwrap().items.pop() {
        Some(owner) => owner,
        None => stored_tenant(store, "acme").await,
    };
    let endpoint = Endpoint::sample(owner.id, "e");
    for i in 0..n {
        let event = Event::new(owner.id, None, "a.b", json!({ "n": i }));
        let mut delivery = Delivery::new(endpoint.id, &event.id, "a.b", Utc::now());
        delivery.next_retry = Some(Utc::now());
        store
            .publish_reserved(event, vec![delivery], None, None)
            .await
            .unwrap();
    }
}

async fn due_now(store: &PgStore) -> Vec<crate::store::QueueKey> {
    let now = Utc::now().timestamp_millis() as u64 + 1;
    let scan = store.due(None, now, 100, &[]).await.unwrap();
    scan.entries.into_iter().map(|(key, _)| key).collect()
}

/// A due entry is handed to one gateway at a time: the other sees it when
/// it is given back, when the first gateway leaves, or when its lease runs
/// out because the first stopped renewing it (it died).
#[tokio::test]
async fn a_due_entry_is_handed_to_one_gateway_at_a_time() {
    let db = FreshDatabase::create();
    let a = gateway(&db, std::time::Duration::ZERO).await;
    let b = gateway(&db, std::time::Duration::ZERO).await;
    publish_due(&a, 3).await;
    let claimed = due_now(&a).await;
    assert_eq!(claimed.len(), 3);
    assert!(due_now(&b).await.is_empty(), "a holds all three");
    assert_eq!(due_now(&a).await, claimed, "a's own are a's again");

    a.release(&claimed[..1]).await.unwrap();
    assert_eq!(due_now(&b).await, claimed[..1], "given back, b takes it");
    assert_eq!(due_now(&a).await, claimed[1..]);

    // Past several leases, a's heartbeat keeps its claims.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(
        due_now(&b).await,
        claimed[..1],
        "b still holds only its own"
    );

    // a dies: it renews nothing, and within a lease b takes a's entries.
    a.cluster.stop.cancel();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if due_now(&b).await == claimed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a's entries were not taken over when its lease ran out"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // b leaves: a third gateway gets everything at once.
    let c = gateway(&db, std::time::Duration::ZERO).await;
    assert!(due_now(&c).await.is_empty());
    b.close().await.unwrap();
    assert_eq!(due_now(&c).await, claimed);
}

/// A scan may leave out the endpoints its dispatcher passes over: their
/// entries are neither returned nor claimed, so another gateway takes them.
#[tokio::test]
async fn entries_of_passed_endpoints_are_neither_returned_nor_claimed() {
    let db = FreshDatabase::create();
    let a = gateway(&db, std::time::Duration::ZERO).await;
    let b = gateway(&db, std::time::Duration::ZERO).await;
    publish_due(&a, 2).await;
    publish_due(&a, 2).await;
    let now = Utc::now().timestamp_millis() as u64 + 1;
    let seen = a.due(None, now, 100, &[]).await.unwrap().entries;
    assert_eq!(seen.len(), 4);
    let keys: Vec<_> = seen.iter().map(|(key, _)| key.clone()).collect();
    a.release(&keys).await.unwrap();
    let passed = seen[0].1.endpoint;

    let scan = a.due(None, now, 100, &[passed]).await.unwrap();
    assert_eq!(scan.entries.len(), 2, "{:?}", scan.entries);
    assert!(scan.entries.iter().all(|(_, e)| e.endpoint != passed));
    let taken = b.due(None, now, 100, &[]).await.unwrap().entries;
    assert_eq!(taken.len(), 2, "the passed endpoint's entries are free");
    assert!(taken.iter().all(|(_, e)| e.endpoint == passed));
}

/// Each live gateway gets its share of an endpoint's limits, the shares
/// adding up to the limit; one joining others waits before it claims
/// work; one leaving gives its share back.
#[tokio::test]
async fn shares_follow_the_gateways_alive() {
    let db = FreshDatabase::create();
    let a = gateway(&db, std::time::Duration::ZERO).await;
    assert_eq!(a.share(), crate::store::Share::WHOLE);
    publish_due(&a, 1).await;
    let settle = std::time::Duration::from_millis(1500);
    let b = gateway(&db, settle).await;
    assert_eq!(b.share().count, 2, "b sees a at once");
    let now = Utc::now().timestamp_millis() as u64;
    let waiting = b.due(None, now, 10, &[]).await.unwrap();
    assert!(waiting.entries.is_empty(), "b waits before its first claim");
    assert!(waiting.next_due_ms.is_some_and(|at| at > now));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (sa, sb) = (a.share(), b.share());
    assert_eq!(
        (sa.count, sb.count),
        (2, 2),
        "a learnt of b by its heartbeat"
    );
    assert_ne!(sa.rank, sb.rank);
    for limit in [1, 2, 7, 64] {
        assert_eq!(sa.of(limit) + sb.of(limit), limit, "shares of {limit}");
    }
    assert_eq!(due_now(&b).await.len(), 1, "after the wait b claims work");

    b.close().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(a.share(), crate::store::Share::WHOLE, "b's share came back");
}

/// A publish through one gateway wakes the other's dispatcher, and tells
/// it when the work falls due.
#[tokio::test]
async fn a_publish_through_one_gateway_wakes_the_other() {
    let db = FreshDatabase::create();
    let a = gateway(&db, std::time::Duration::ZERO).await;
    let b = gateway(&db, std::time::Duration::ZERO).await;
    // The listener's first look at the queue, once it listens.
    tokio::time::timeout(std::time::Duration::from_secs(10), b.queued_elsewhere())
        .await
        .expect("b listens");
    b.take_queued_since();
    let before = Utc::now().timestamp_millis() as u64;
    let woken = tokio::spawn(async move {
        tokio::time::timeout(std::time::Duration::from_secs(10), b.queued_elsewhere())
            .await
            .map(|()| b.take_queued_since())
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    publish_due(&a, 1).await;
    let noted = woken.await.unwrap().expect("b is woken by a's publish");
    assert!(noted.is_some_and(|due| due >= before), "{noted:?}");
}

/// The delivery path's reads: a change through this gateway is seen at
/// once, one through another gateway within `RECENT`; the API's reads see
/// either at once. An event this gateway published is read without asking
/// the database.
#[tokio::test]
async fn recent_reads_follow_changes_within_their_bound() {
    use crate::model::endpoint::EndpointStatus;
    use crate::store::RECENT;
    let db = FreshDatabase::create();
    let a = gateway(&db, std::time::Duration::ZERO).await;
    let b = gateway(&db, std::time::Duration::ZERO).await;
    let owner = stored_tenant(&a, "acme").await;
    let endpoint = Endpoint::sample(owner.id, "e");
    a.create_endpoint(&endpoint).await.unwrap();
    let status = |e: Option<std::sync::Arc<Endpoint>>| e.map(|e| e.status);
    async fn recent(s: &PgStore, e: &Endpoint) -> Option<EndpointStatus> {
        let read = s.recent_endpoint(&e.tenant_id, &e.id).await.unwrap();
        read.map(|e| e.status)
    }
    assert_eq!(recent(&a, &endpoint).await, Some(EndpointStatus::Active));
    assert_eq!(recent(&b, &endpoint).await, Some(EndpointStatus::Active));

    let mut pause = |e: &mut Endpoint| {
        e.status = EndpointStatus::Paused;
        Ok(())
    };
    Backend::update_endpoint(&a, &owner.id, &endpoint.id, &mut pause)
        .await
        .unwrap();
    assert_eq!(
        recent(&a, &endpoint).await,
        Some(EndpointStatus::Paused),
        "own change"
    );
    assert_eq!(
        recent(&b, &endpoint).await,
        Some(EndpointStatus::Active),
        "kept by b"
    );
    let fresh = Backend::get_endpoint(&b, &owner.id, &endpoint.id)
        .await
        .unwrap();
    assert_eq!(
        status(fresh),
        Some(EndpointStatus::Paused),
        "the API reads afresh"
    );
    tokio::time::sleep(RECENT).await;
    assert_eq!(
        recent(&b, &endpoint).await,
        Some(EndpointStatus::Paused),
        "after RECENT"
    );

    // An event a published: a reads it from memory, even after the
    // database lost it; b, which did not publish it, asks.
    let event = Event::new(owner.id, None, "a.b", json!({"n": 1}));
    let delivery = Delivery::new(endpoint.id, &event.id, "a.b", Utc::now());
    Backend::publish_reserved(&a, event.clone(), vec![delivery], None, None)
        .await
        .unwrap();
    exec(
        &a.client().await.unwrap(),
        "DELETE FROM events WHERE id = $1",
        &[&event.id],
    )
    .await
    .unwrap();
    let kept = a.recent_event(&owner.id, &event.id).await.unwrap();
    assert_eq!(kept.map(|e| e.body), Some(event.body));
    assert!(
        b.recent_event(&owner.id, &event.id)
            .await
            .unwrap()
            .is_none()
    );

    Backend::delete_endpoint(&a, &owner.id, &endpoint.id)
        .await
        .unwrap();
    assert_eq!(recent(&a, &endpoint).await, None);
    tokio::time::sleep(RECENT).await;
    assert_eq!(recent(&b, &endpoint).await, None);
}

/// Attempts ending together are written in fewer transactions than there
/// are results, and each result is what it would be alone: retries moved
/// to their new time, ended deliveries out of the queue, a delivery
/// deleted meanwhile answered `None` with its entry gone.
#[tokio::test]
async fn attempt_results_ending_together_are_written_in_groups() {
    let db = FreshDatabase::create();
    let store = std::sync::Arc::new(gateway(&db, std::time::Duration::ZERO).await);
    publish_due(&store, 40).await;
    let now = Utc::now().timestamp_millis() as u64 + 1;
    let scan = store.due(None, now, 100, &[]).await.unwrap();
    assert_eq!(scan.entries.len(), 40);
    let (gone_key, gone) = scan.entries[0].clone();
    exec(
        &store.client().await.unwrap(),
        "DELETE FROM deliveries WHERE id = $1",
        &[&gone.delivery.to_string()],
    )
    .await
    .unwrap();
    let later_ms = Utc::now().timestamp_millis() + 60_000;
    let later = chrono::DateTime::from_timestamp_millis(later_ms).unwrap();
    // All ending at once: each task hands its result over before any is
    // written.
    let ending: Vec<_> = scan
        .entries
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (key, entry))| {
            let store = store.clone();
            tokio::spawn(async move {
                let change: crate::store::DeliveryChange = Box::new(move |d: &mut Delivery| {
                    if i % 2 == 0 {
                        d.next_retry = Some(later);
                        Some(later_ms)
                    } else {
                        d.status = DeliveryStatus::Delivered;
                        None
                    }
                });
                Backend::finish_attempt(&*store, &key, &entry, change)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in ending {
        results.push(task.await.unwrap());
    }
    let written = store.finisher.get().unwrap().transactions();
    assert!(written < 10, "{written} transactions for 40 results");
    assert!(results[0].is_none(), "deleted meanwhile");
    for (i, result) in results.iter().enumerate().skip(1) {
        let d = result.as_ref().expect("stored");
        match i % 2 {
            0 => assert_eq!(d.next_retry, Some(later)),
            _ => assert_eq!((d.status, d.next_retry), (DeliveryStatus::Delivered, None)),
        }
    }
    let client = store.client().await.unwrap();
    let queued: Vec<(Vec<u8>, String)> = client
        .query("SELECT key, delivery_id FROM queue ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(queued.len(), 19, "the retries, and nothing of the rest");
    assert!(
        queued
            .iter()
            .all(|(key, _)| key.as_slice() != gone_key.bytes())
    );
    let due_later = crate::store::rows::queue_key(later_ms, &scan.entries[2].1.delivery);
    assert!(queued.iter().any(|(key, _)| *key == due_later));
    let statuses: Vec<(String, Option<chrono::DateTime<Utc>>)> = client
        .query("SELECT status, next_retry FROM deliveries ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(statuses.len(), 39);
    assert_eq!(
        statuses.iter().filter(|(s, _)| s == "delivered").count(),
        20
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|(_, next)| *next == Some(later))
            .count(),
        19
    );
}
