//! Records kept decoded in memory for the delivery path (tenants, plugins):
//! a bounded map of shared copies. Each user keeps its own protocol for
//! staying in step with its tree; this holds the copies and the bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Records kept at most; past it the copies are dropped and read again.
const RECORDS_KEPT: usize = 4096;

pub(super) struct Kept<K, V>(Mutex<HashMap<K, Arc<V>>>);

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

/// The locked copies, for a read-then-keep under one lock.
pub(super) struct Records<'a, K, V>(MutexGuard<'a, HashMap<K, Arc<V>>>);

impl<K: Hash + Eq, V> Kept<K, V> {
    pub(super) fn lock(&self) -> Records<'_, K, V> {
        Records(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn forget(&self, key: &K) {
        self.lock().forget(key);
    }

    pub(super) fn clear(&self) {
        self.lock().0.clear();
    }
}

impl<K: Hash + Eq, V> Records<'_, K, V> {
    pub(super) fn get(&self, key: &K) -> Option<Arc<V>> {
        self.0.get(key).cloned()
    }

    pub(super) fn forget(&mut self, key: &K) {
        self.0.remove(key);
    }

    /// Keeps `value` under `key`, dropping every copy first when full.
    pub(super) fn keep(&mut self, key: K, value: Arc<V>) {
        if self.0.len() >= RECORDS_KEPT {
            self.0.clear();
        }
        self.0.insert(key, value);
    }
}
