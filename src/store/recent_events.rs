//! Events just published, kept decoded for their first attempts.
//!
//! Every delivery's first attempt reads its event, within seconds of the
//! publish and once per endpoint; the stored record holds the envelope as an
//! escaped JSON string, so each read was a tree lookup plus unescaping the
//! whole body. Events never change once stored, so a copy cannot go stale;
//! the only removals (retention, tenant deletion) clear the cache. Bounded by
//! the bytes of the bodies it holds, oldest out first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::model::event::Event;

/// Body bytes held at most.
const CAPACITY_BYTES: usize = 8 << 20;

#[derive(Default)]
pub(super) struct RecentEvents {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By store key (`{tenant}/{event id}`).
    events: HashMap<Vec<u8>, Arc<Event>>,
    /// Keys, oldest first.
    order: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl RecentEvents {
    /// Keeps `event`, stored under `key`, dropping the oldest past the bound.
    pub fn insert(&self, key: Vec<u8>, event: Event) {
        let size = event.body.len();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.events.insert(key.clone(), Arc::new(event)).is_none() {
            inner.order.push_back(key);
            inner.bytes += size;
        }
        while inner.bytes > CAPACITY_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.events.remove(&oldest) {
                inner.bytes -= gone.body.len();
            }
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Arc<Event>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.events.get(key).cloned()
    }

    /// Forgets everything: some events were removed from the store.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::TenantId;

    fn event(size: usize) -> Event {
        let mut e = Event::new(TenantId::generate(), None, "a.b", serde_json::json!({}));
        e.body = "x".repeat(size);
        e
    }

    #[test]
    fn holds_recent_events_within_its_bound() {
        let cache = RecentEvents::default();
        let size = CAPACITY_BYTES / 4;
        for i in 0..6u8 {
            cache.insert(vec![i], event(size));
        }
        // The two oldest made room for the last two.
        assert!(cache.get(&[0]).is_none());
        assert!(cache.get(&[1]).is_none());
        for i in 2..6u8 {
            assert_eq!(cache.get(&[i]).expect("kept").body.len(), size);
        }
        let inner = cache.inner.lock().unwrap();
        assert_eq!(inner.bytes, 4 * size);
        assert_eq!(inner.order.len(), 4);
        drop(inner);
        cache.clear();
        assert!(cache.get(&[5]).is_none());
    }
}
