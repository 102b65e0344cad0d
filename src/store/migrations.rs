//! The store's layout versions, and the one place that reads older ones.
//!
//! The `meta` tree holds `schema_version`. Opening a data dir brings it up to
//! [`SCHEMA_VERSION`] here, before anything else reads it, and refuses a dir
//! written by a newer hookgate. Each step rewrites what an older layout kept
//! differently, so no other module reads an old layout:
//!
//! - version 1 (dirs written before versions were recorded): running
//!   attempts sat in an `inflight` tree instead of staying queued; an
//!   event's `(endpoint, delivery)` list sat inside the event record instead
//!   of in `event_deliveries`.
//! - version 2: deliveries were keyed by ids written `msg_...` (attempts
//!   `log_...`), before they took their own names, `dlv_` and `att_`. Ids
//!   inside records still parse with the old prefixes; only the keys of the
//!   `deliveries` tree spell them, and are rewritten.
//! - version 3: catalogs held `webhook.test` as their one built-in type,
//!   before the gateway's operational events (`hookgate.*`) joined it; each
//!   tenant's catalog gets them.
//! - version 4: before FIFO lines (`store/lines.rs`). Nothing to convert:
//!   no endpoint kept its deliveries in order, so every line is empty; the
//!   new version keeps a binary that knows no lines from opening a dir with
//!   deliveries waiting in one, which it would never send.
//! - version 5: delivery rows, queue entries and event delivery lists were
//!   serde JSON, before their compact layout (`store/record.rs`); each is
//!   rewritten.
//! - version 6: the layout `store/mod.rs` documents.

use super::record::{Record, is_compact};
use super::{Result, SledStore, StoreError, decode, encode};

/// The layout this binary writes.
pub(super) const SCHEMA_VERSION: u32 = 6;

const VERSION_KEY: &[u8] = b"schema_version";

/// Brings the store in `db` to [`SCHEMA_VERSION`]; returns whether it wrote.
pub(super) fn migrate(store: &SledStore, db: &sled::Db) -> Result<bool> {
    let found = match store.meta.get(VERSION_KEY)? {
        Some(v) => decode::<u32>(&v)?,
        // A new dir has no trees with data; an old one has no version.
        None if is_new(db)? => SCHEMA_VERSION,
        None => 1,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::Write(format!(
            "the data dir has layout version {found}, written by a newer hookgate; this one knows up to {SCHEMA_VERSION}"
        )));
    }
    let mut wrote = false;
    if found < 2 {
        requeue_old_leases(store, db)?;
        move_event_lists(store)?;
        wrote = true;
    }
    if found < 3 {
        rename_delivery_keys(store)?;
        wrote = true;
    }
    if found < 4 {
        add_builtin_types(store)?;
        wrote = true;
    }
    if found < 5 {
        wrote = true;
    }
    if found < 6 {
        compact_delivery_rows(store)?;
        wrote = true;
    }
    if store.meta.get(VERSION_KEY)?.is_none() || wrote {
        store.meta.insert(VERSION_KEY, encode(&SCHEMA_VERSION))?;
        wrote = true;
    }
    Ok(wrote)
}

/// Version 5 kept delivery rows, queue entries and event delivery lists as
/// JSON; each is rewritten in its compact layout. A value already compact
/// (a migration a crash cut short) is left as it is.
fn compact_delivery_rows(store: &SledStore) -> Result<()> {
    use crate::model::delivery::Delivery;
    use crate::model::ids::{DeliveryId, EndpointId};

    fn rewrite<T: serde::de::DeserializeOwned + Record>(tree: &sled::Tree) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for item in tree.iter() {
            let (key, value) = item?;
            if is_compact(&value) {
                continue;
            }
            let record: T = serde_json::from_slice(&value)?;
            batch.insert(key, record.to_value());
            pending += 1;
            if pending == 10_000 {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        tree.apply_batch(batch)?;
        Ok(())
    }
    rewrite::<Delivery>(&store.deliveries)?;
    rewrite::<super::QueueEntry>(&store.queue)?;
    rewrite::<Vec<(EndpointId, DeliveryId)>>(&store.event_deliveries)?;
    Ok(())
}

fn is_new(db: &sled::Db) -> Result<bool> {
    for name in db.tree_names() {
        if name != b"__sled__default" && !db.open_tree(&name)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Version 1 kept running attempts in an `inflight` tree; they go back to
/// the queue (to be attempted again, as before) and the tree is dropped.
fn requeue_old_leases(store: &SledStore, db: &sled::Db) -> Result<()> {
    const OLD_LEASES: &[u8] = b"inflight";
    if !db.tree_names().iter().any(|name| name == OLD_LEASES) {
        return Ok(());
    }
    let leases = db.open_tree(OLD_LEASES)?;
    let mut batch = sled::Batch::default();
    for item in leases.iter() {
        let (key, value) = item?;
        batch.insert(key, value);
    }
    store.queue.apply_batch(batch)?;
    db.flush()?;
    db.drop_tree(OLD_LEASES)?;
    Ok(())
}

/// Version 1 kept an event's `(endpoint, delivery)` list inside the event
/// record; it moves to `event_deliveries`, and the event loses the field.
fn move_event_lists(store: &SledStore) -> Result<()> {
    for item in store.events.iter() {
        let (key, value) = item?;
        let mut event: serde_json::Value = decode(&value)?;
        let Some(list) = event.as_object_mut().and_then(|e| e.remove("deliveries")) else {
            continue;
        };
        if !store.event_deliveries.contains_key(&key)? {
            store.event_deliveries.insert(&key, encode(&list))?;
        }
        store.events.insert(&key, encode(&event))?;
    }
    Ok(())
}

/// Version 2 keyed deliveries `{tenant}/{endpoint}/msg_{ulid}`; they move
/// to `.../dlv_{ulid}`, a chunk at a time (each chunk one batch, so a crash
/// midway leaves every delivery under one key or the other, and the next
/// start finishes the move).
fn rename_delivery_keys(store: &SledStore) -> Result<()> {
    const OLD: &[u8] = b"/msg_";
    const CHUNK: usize = 10_000;
    let new = format!("/{}", crate::model::ids::DeliveryId::PREFIX);
    loop {
        let mut batch = sled::Batch::default();
        let mut moved = 0;
        for item in store.deliveries.iter() {
            let (key, value) = item?;
            let Some(at) = key.windows(OLD.len()).rposition(|w| w == OLD) else {
                continue;
            };
            let mut renamed = key[..at].to_vec();
            renamed.extend_from_slice(new.as_bytes());
            renamed.extend_from_slice(&key[at + OLD.len()..]);
            batch.insert(renamed, value);
            batch.remove(key);
            moved += 1;
            if moved == CHUNK {
                break;
            }
        }
        if moved == 0 {
            return Ok(());
        }
        store.deliveries.apply_batch(batch)?;
    }
}

/// Version 3 catalogs lack the operational event types: every tenant's gets
/// those it lacks, with the tenant's creation time.
fn add_builtin_types(store: &SledStore) -> Result<()> {
    use crate::model::event_type::EventType;
    use crate::model::tenant::Tenant;
    for item in store.tenants.iter() {
        let (_, value) = item?;
        let tenant: Tenant = decode(&value)?;
        let mut batch = sled::Batch::default();
        for et in EventType::builtins(tenant.created_at) {
            let key = super::scoped_key(&tenant.id, &et.name);
            if !store.event_types.contains_key(&key)? {
                batch.insert(key, encode(&et));
            }
        }
        store.event_types.apply_batch(batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::Event;
    use crate::model::ids::{DeliveryId, EndpointId, TenantId};
    use crate::store::scoped_key;

    /// Opens the store over a dir a test just wrote with plain sled. The
    /// old handle's background threads can hold the dir's file lock for a
    /// moment after it is dropped, so a lock refusal is tried again.
    fn open(dir: &std::path::Path) -> Result<SledStore> {
        let mut tries = 0;
        loop {
            match SledStore::open(dir, 16 << 20) {
                Err(e) if tries < 50 && e.to_string().contains("acquire lock") => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn version(store: &SledStore) -> u32 {
        decode(&store.meta.get(VERSION_KEY).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn a_new_dir_gets_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(version(&open(dir.path()).unwrap()), SCHEMA_VERSION);
    }

    /// A version 1 dir with an attempt running when it stopped: the attempt
    /// is queued again.
    #[test]
    fn version_1_attempts_in_flight_are_queued_again() {
        let dir = tempfile::tempdir().unwrap();
        let entry = crate::store::QueueEntry {
            tenant: TenantId::generate(),
            endpoint: EndpointId::generate(),
            delivery: DeliveryId::generate(),
            fifo: false,
        };
        {
            let db = sled::open(dir.path()).unwrap();
            let old = db.open_tree("inflight").unwrap();
            let value = serde_json::to_vec(&entry).unwrap();
            old.insert(b"key-of-a-running-attempt", value).unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path()).unwrap();
        assert_eq!(store.queue_len(), 1);
        let queued = store.queue.get(b"key-of-a-running-attempt").unwrap();
        let queued: crate::store::QueueEntry = decode(&queued.unwrap()).unwrap();
        assert_eq!(queued.delivery, entry.delivery);
        assert_eq!(version(&store), SCHEMA_VERSION);
    }

    /// A version 1 dir whose event carries its delivery list inside: the
    /// list moves to its own tree and the event still reads.
    #[test]
    fn version_1_event_lists_move_to_their_own_tree() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::generate();
        let event = Event::new(tenant, None, "a.b", serde_json::json!({"n": 1}));
        let pairs = vec![(EndpointId::generate(), DeliveryId::generate())];
        let key = scoped_key(&tenant, &event.id);
        {
            let db = sled::open(dir.path()).unwrap();
            let mut old = serde_json::to_value(&event).unwrap();
            old["deliveries"] = serde_json::to_value(&pairs).unwrap();
            db.open_tree("events")
                .unwrap()
                .insert(&key, encode(&old))
                .unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path()).unwrap();
        assert_eq!(store.event_deliveries(&tenant, &event.id).unwrap(), pairs);
        let read = store.get_event(&tenant, &event.id).unwrap().unwrap();
        assert_eq!(read.body, event.body);
        let raw: serde_json::Value = decode(&store.events.get(&key).unwrap().unwrap()).unwrap();
        assert!(raw.get("deliveries").is_none(), "the event lost the field");
    }

    /// A version 2 dir with a delivery keyed by its `msg_` id: it is found
    /// by its id, listed, and keeps its attempts.
    #[test]
    fn version_2_delivery_keys_take_the_new_prefix() {
        use crate::model::delivery::Delivery;
        use crate::store::DeliveryFilter;
        let dir = tempfile::tempdir().unwrap();
        let (tenant, endpoint) = (TenantId::generate(), EndpointId::generate());
        let delivery = Delivery::new(endpoint, "evt_1", "a.b", chrono::Utc::now());
        let ulid = delivery.id.ulid();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(VERSION_KEY, encode(&2u32))
                .unwrap();
            let mut old = serde_json::to_value(&delivery).unwrap();
            old["id"] = format!("msg_{ulid}").into();
            let key = format!("{tenant}/{endpoint}/msg_{ulid}");
            db.open_tree("deliveries")
                .unwrap()
                .insert(key.as_bytes(), encode(&old))
                .unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path()).unwrap();
        assert_eq!(version(&store), SCHEMA_VERSION);
        let read = store
            .get_delivery(&tenant, &endpoint, &delivery.id)
            .unwrap()
            .expect("found under its new key");
        assert_eq!(read.id.to_string(), format!("dlv_{ulid}"));
        let page = store
            .list_deliveries(&tenant, &endpoint, &DeliveryFilter::default(), None, 10)
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(store.deliveries.len(), 1, "the old key is gone");
    }

    /// A version 3 dir whose tenant's catalog holds only `webhook.test`: the
    /// operational types join it, and its own types stay as they were.
    #[test]
    fn version_3_catalogs_get_the_operational_types() {
        use crate::model::event_type::{ENDPOINT_DISABLED, EventType};
        let dir = tempfile::tempdir().unwrap();
        let tenant = crate::store::test_support::tenant("acme");
        let own = EventType {
            builtin: false,
            name: "booking.created".into(),
            ..EventType::test_type(tenant.created_at)
        };
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(VERSION_KEY, encode(&3u32))
                .unwrap();
            db.open_tree("tenants")
                .unwrap()
                .insert(tenant.id.to_string().as_bytes(), encode(&tenant))
                .unwrap();
            let types = db.open_tree("event_types").unwrap();
            for et in [EventType::test_type(tenant.created_at), own.clone()] {
                types
                    .insert(scoped_key(&tenant.id, &et.name), encode(&et))
                    .unwrap();
            }
            db.flush().unwrap();
        }
        let store = open(dir.path()).unwrap();
        assert_eq!(version(&store), SCHEMA_VERSION);
        let names = store.event_type_names(&tenant.id).unwrap();
        assert_eq!(names.len(), 5, "{names:?}");
        let disabled = store
            .get_event_type(&tenant.id, ENDPOINT_DISABLED)
            .unwrap()
            .expect("added");
        assert!(disabled.builtin);
        let kept = store
            .get_event_type(&tenant.id, "booking.created")
            .unwrap()
            .unwrap();
        assert_eq!(kept.description, own.description);
    }

    /// A version 5 dir holds its delivery row, queue entry and event list
    /// as JSON: each is rewritten compact, reads back the same, and the
    /// queued attempt still finishes.
    #[tokio::test]
    async fn version_5_delivery_rows_are_rewritten_compact() {
        use crate::model::delivery::Delivery;
        use crate::store::QueueEntry;
        use crate::store::rows::{delivery_key, queue_key};
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::generate();
        let mut delivery =
            Delivery::new(EndpointId::generate(), "evt_1", "a.b", chrono::Utc::now());
        delivery.next_retry = Some(delivery.created_at);
        let due = delivery.created_at.timestamp_millis();
        let entry = QueueEntry::of(tenant, &delivery);
        let dkey = delivery_key(&tenant, &delivery.endpoint_id, &delivery.id);
        let list = vec![(delivery.endpoint_id, delivery.id)];
        // What a version 5 dir held: serde JSON of each record.
        fn json(record: &impl serde::Serialize) -> Vec<u8> {
            serde_json::to_vec(record).unwrap()
        }
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = |name: &str| db.open_tree(name).unwrap();
            tree("meta").insert(VERSION_KEY, encode(&5u32)).unwrap();
            tree("deliveries").insert(&dkey, json(&delivery)).unwrap();
            tree("queue")
                .insert(queue_key(due, &delivery.id), json(&entry))
                .unwrap();
            tree("event_deliveries")
                .insert(scoped_key(&tenant, "evt_1"), json(&list))
                .unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path()).unwrap();
        assert_eq!(version(&store), SCHEMA_VERSION);
        for tree in [&store.deliveries, &store.queue, &store.event_deliveries] {
            let (_, value) = tree.first().unwrap().unwrap();
            assert!(is_compact(&value));
        }
        let read = store
            .get_delivery(&tenant, &delivery.endpoint_id, &delivery.id)
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            serde_json::to_value(&delivery).unwrap()
        );
        assert_eq!(store.event_deliveries(&tenant, "evt_1").unwrap(), list);
        let scan = store.due(None, u64::MAX, 10).unwrap();
        let (key, queued) = &scan.entries[0];
        assert_eq!((queued.tenant, queued.delivery), (tenant, delivery.id));
        let done = store.finish_attempt(key, queued, |_| None).await.unwrap();
        assert!(done.is_some_and(|d| d.next_retry.is_none()));
        assert_eq!(store.queue_len(), 0);
    }

    #[test]
    fn a_dir_from_a_newer_hookgate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(VERSION_KEY, encode(&(SCHEMA_VERSION + 1)))
                .unwrap();
            db.flush().unwrap();
        }
        let err = open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("newer hookgate"), "{err}");
    }
}
