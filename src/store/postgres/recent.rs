//! Records the delivery path read again and again, kept for a short time.
//!
//! An attempt reads its endpoint, tenant and event before it sends; at
//! thousands of deliveries a second to a handful of endpoints those reads
//! would be most of the database's work. [`Recent`] keeps what was read for
//! at most its time to live, so a change made through another gateway is
//! obeyed within that time (`docs/cluster.md`, "What each gateway keeps");
//! this gateway's own writes drop the entry at once. Only the `recent_*`
//! reads of [`Backend`](crate::store::Backend) use it: the API always reads
//! the database.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an endpoint or tenant read is used: the bound on how late a
/// change made through another gateway is obeyed.
pub(super) const RECORD_TTL: Duration = crate::store::RECENT;
/// How long an event is kept. Events never change; one is only ever
/// removed by retention, days after it was published.
pub(super) const EVENT_TTL: Duration = Duration::from_secs(60);
/// Bytes of events kept at most (their bodies), and records of any kind.
pub(super) const EVENT_BYTES: usize = 16 << 20;
pub(super) const RECORDS: usize = 4096;

/// Values by key, each for at most `ttl`, within `budget` (each value
/// weighs what `weigh` says), the oldest dropped first.
pub(super) struct Recent<K, V> {
    ttl: Duration,
    budget: usize,
    weigh: fn(&V) -> usize,
    kept: Mutex<Kept<K, V>>,
}

struct Kept<K, V> {
    values: HashMap<K, (Instant, V)>,
    /// Keys in the order they were put, with when (a key put again has an
    /// older mark here that no longer matches its value's, and is skipped).
    order: VecDeque<(Instant, K)>,
    weight: usize,
    /// When something was last forgotten: a value read before then may
    /// be from before the change, and is not kept.
    changed: Option<Instant>,
}

impl<K: Eq + Hash + Clone, V: Clone> Recent<K, V> {
    pub(super) fn new(ttl: Duration, budget: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            ttl,
            budget,
            weigh,
            kept: Mutex::new(Kept {
                values: HashMap::new(),
                order: VecDeque::new(),
                weight: 0,
                changed: None,
            }),
        }
    }

    /// The value kept for `key`, if it is younger than the time to live.
    pub(super) fn get(&self, key: &K) -> Option<V> {
        let kept = self.kept.lock().unwrap();
        let (at, value) = kept.values.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Keeps `value` for `key`, read at `at` (taken before the read, so a
    /// value is never kept longer than the time to live from the moment it
    /// was true).
    pub(super) fn put(&self, key: K, value: V, at: Instant) {
        let weight = (self.weigh)(&value);
        if weight > self.budget {
            return;
        }
        let mut kept = self.kept.lock().unwrap();
        if kept.changed.is_some_and(|changed| at <= changed) {
            return;
        }
        if let Some((_, old)) = kept.values.insert(key.clone(), (at, value)) {
            kept.weight -= (self.weigh)(&old);
        }
        kept.weight += weight;
        kept.order.push_back((at, key));
        let now = Instant::now();
        while let Some((at, key)) = kept.order.front().cloned() {
            let stale = now.duration_since(at) >= self.ttl;
            if !stale && kept.weight <= self.budget && kept.order.len() <= 2 * self.budget {
                break;
            }
            kept.order.pop_front();
            if kept.values.get(&key).is_some_and(|(put, _)| *put == at) {
                let (_, old) = kept.values.remove(&key).unwrap();
                kept.weight -= (self.weigh)(&old);
            }
        }
    }

    /// Drops what is kept for `key`: this gateway changed it.
    pub(super) fn forget(&self, key: &K) {
        let mut kept = self.kept.lock().unwrap();
        kept.changed = Some(Instant::now());
        if let Some((_, old)) = kept.values.remove(key) {
            kept.weight -= (self.weigh)(&old);
        }
    }

    /// Drops every value whose key `gone` says is gone.
    pub(super) fn forget_where(&self, gone: impl Fn(&K) -> bool) {
        let mut kept = self.kept.lock().unwrap();
        kept.changed = Some(Instant::now());
        let Kept { values, weight, .. } = &mut *kept;
        values.retain(|key, (_, value)| {
            let keep = !gone(key);
            if !keep {
                *weight -= (self.weigh)(value);
            }
            keep
        });
    }
}

/// Each value weighs one: a budget of records.
pub(super) fn one<V>(_: &V) -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_for_its_time_to_live_only() {
        let recent = Recent::new(Duration::from_millis(50), 10, one);
        recent.put(1, "a", Instant::now());
        assert_eq!(recent.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(recent.get(&1), None);
        // Read long ago: not kept past its time from when it was read.
        recent.put(2, "b", Instant::now() - Duration::from_millis(60));
        assert_eq!(recent.get(&2), None);
    }

    #[test]
    fn forgetting_drops_at_once() {
        let recent = Recent::new(Duration::from_secs(60), 10, one);
        recent.put(1, "a", Instant::now());
        recent.put(2, "b", Instant::now());
        recent.forget(&1);
        assert_eq!(recent.get(&1), None);
        recent.forget_where(|k| *k == 2);
        assert_eq!(recent.get(&2), None);
        // A read that began before the change is not kept after it.
        let began = Instant::now();
        recent.forget(&3);
        recent.put(3, "old", began);
        assert_eq!(recent.get(&3), None);
        recent.put(3, "new", Instant::now());
        assert_eq!(recent.get(&3), Some("new"));
    }

    #[test]
    fn the_oldest_go_first_past_the_budget() {
        let recent: Recent<u32, String> = Recent::new(Duration::from_secs(60), 10, |s| s.len());
        recent.put(1, "aaaa".into(), Instant::now());
        recent.put(2, "bbbb".into(), Instant::now());
        recent.put(1, "cccc".into(), Instant::now());
        recent.put(3, "dddd".into(), Instant::now());
        // 12 bytes over 10: the oldest put, 2, goes (1 was put again since).
        assert_eq!(recent.get(&2), None);
        assert_eq!(recent.get(&1).as_deref(), Some("cccc"));
        assert_eq!(recent.get(&3).as_deref(), Some("dddd"));
        recent.put(4, "x".repeat(11), Instant::now());
        assert_eq!(recent.get(&4), None, "heavier than the whole budget");
    }
}
