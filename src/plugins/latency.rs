//! Recent call times per plugin, for the median the API shows: a small
//! ring of the last calls' times per plugin, for a bounded number of
//! plugins (the ones called longest ago are forgotten first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::model::ids::PluginId;

/// Calls remembered per plugin.
const KEPT_CALLS: usize = 128;
/// Plugins remembered.
const KEPT_PLUGINS: usize = 4096;

#[derive(Default)]
struct Ring {
    micros: Vec<u32>,
    next: usize,
    used: u64,
}

#[derive(Default)]
pub(super) struct Latencies {
    rings: Mutex<(HashMap<PluginId, Ring>, u64)>,
}

impl Latencies {
    pub(super) fn record(&self, plugin: PluginId, elapsed: Duration) {
        let mut guard = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let (rings, clock) = &mut *guard;
        *clock += 1;
        if rings.len() >= KEPT_PLUGINS && !rings.contains_key(&plugin) {
            let oldest = rings.iter().min_by_key(|(_, r)| r.used).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                rings.remove(&oldest);
            }
        }
        let ring = rings.entry(plugin).or_default();
        let micros = elapsed.as_micros().min(u128::from(u32::MAX)) as u32;
        if ring.micros.len() < KEPT_CALLS {
            ring.micros.push(micros);
        } else {
            ring.micros[ring.next] = micros;
        }
        ring.next = (ring.next + 1) % KEPT_CALLS;
        ring.used = *clock;
    }

    /// The median of the plugin's recent call times.
    pub(super) fn p50(&self, plugin: &PluginId) -> Option<Duration> {
        let guard = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = guard.0.get(plugin)?;
        let mut sorted = ring.micros.clone();
        sorted.sort_unstable();
        let mid = *sorted.get(sorted.len() / 2)?;
        Some(Duration::from_micros(u64::from(mid)))
    }

    pub(super) fn forget(&self, plugin: &PluginId) {
        let mut guard = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.remove(plugin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_of_the_last_calls_only() {
        let l = Latencies::default();
        let id = PluginId::generate();
        assert_eq!(l.p50(&id), None);
        for _ in 0..KEPT_CALLS {
            l.record(id, Duration::from_micros(1000));
        }
        assert_eq!(l.p50(&id), Some(Duration::from_micros(1000)));
        for _ in 0..KEPT_CALLS / 2 + 1 {
            l.record(id, Duration::from_micros(10));
        }
        assert_eq!(l.p50(&id), Some(Duration::from_micros(10)));
        l.forget(&id);
        assert_eq!(l.p50(&id), None);
    }
}
