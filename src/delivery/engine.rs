//! The delivery engine: takes due work off the durable queue and runs
//! attempts on a bounded worker pool (SPEC §2, isolation).
//!
//! One dispatcher task scans the front of the queue. An entry is leased and
//! handed to a worker only if both the global pool and its endpoint's
//! in-flight cap have room; otherwise it stays queued and the scan moves on,
//! so a slow or dead endpoint holds at most its cap of workers and never
//! delays other endpoints' deliveries. The dispatcher sleeps until the next
//! entry falls due, a publish wakes it, or a worker finishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::RetrySchedule;
use super::sender::Sender;
use crate::ids::EndpointId;
use crate::plugins::Plugins;
use crate::store::{QueueEntry, QueueKey, Store};

/// Queue entries examined per dispatcher pass.
const SCAN_LIMIT: usize = 1024;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Engine settings, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub schedule: RetrySchedule,
    /// Random spread applied to retry delays, as a fraction (0.1 = ±10%).
    pub jitter: f64,
    pub workers: usize,
    pub endpoint_concurrency: usize,
    pub retention_days: u32,
}

/// Handle to the running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub store: Store,
    pub sender: Sender,
    pub plugins: Arc<Plugins>,
    pub settings: EngineSettings,
    wake: Notify,
    workers: Arc<Semaphore>,
    in_flight: Mutex<HashMap<EndpointId, usize>>,
    queued: AtomicI64,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Engine {
    /// Returns leases left by a previous run to the queue and starts the
    /// dispatcher and the retention task.
    pub fn start(
        store: Store,
        sender: Sender,
        plugins: Arc<Plugins>,
        settings: EngineSettings,
    ) -> Result<Self, crate::store::StoreError> {
        let recovered = store.recover_leases()?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "re-queued attempts that were in flight when the gateway stopped"
            );
        }
        let queued = store.queue_len() as i64;
        let inner = Arc::new(Inner {
            workers: Arc::new(Semaphore::new(settings.workers)),
            store,
            sender,
            plugins,
            settings,
            wake: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            queued: AtomicI64::new(queued),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        metrics::gauge!("hookgate_queue_depth").set(queued as f64);
        tokio::spawn(dispatch(inner.clone()));
        tokio::spawn(retention(inner.clone()));
        Ok(Self { inner })
    }

    /// New work was queued: look now rather than at the next timer.
    pub fn queued(&self, count: usize) {
        self.inner.add_queued(count as i64);
        self.inner.wake.notify_one();
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Stops dispatching and waits up to `grace` for attempts in flight.
    /// Attempts still running after that keep their lease and are made again
    /// on the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.inner.tasks.len(),
                "shutdown grace ran out; unfinished attempts will be retried on restart"
            );
        }
    }
}

impl Inner {
    pub(super) fn add_queued(&self, delta: i64) {
        let now = self.queued.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("hookgate_queue_depth").set(now as f64);
    }

    fn try_reserve(&self, endpoint: EndpointId) -> bool {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(endpoint).or_insert(0);
        if *n >= self.settings.endpoint_concurrency {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, endpoint: EndpointId) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&endpoint) {
            *n -= 1;
            if *n == 0 {
                map.remove(&endpoint);
            }
        }
    }
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

async fn dispatch(inner: Arc<Inner>) {
    loop {
        let wait = match dispatch_once(&inner) {
            Ok(wait) => wait,
            Err(e) => {
                tracing::error!(error = %e, "delivery dispatcher cannot read the queue");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = inner.wake.notified() => {},
            _ = tokio::time::sleep(wait) => {},
        }
    }
}

/// One pass over due work; returns how long to sleep if nothing wakes us.
fn dispatch_once(inner: &Arc<Inner>) -> Result<Duration, crate::store::StoreError> {
    let now = now_ms();
    let scan = inner.store.due(now, SCAN_LIMIT)?;
    let mut held_back = false;
    for (key, entry) in scan.entries {
        let Ok(permit) = inner.workers.clone().try_acquire_owned() else {
            held_back = true;
            break;
        };
        if !inner.try_reserve(entry.endpoint) {
            held_back = true;
            continue;
        }
        if !inner.store.lease(&key)? {
            inner.release(entry.endpoint);
            continue;
        }
        inner.add_queued(-1);
        inner
            .tasks
            .spawn(run_attempt(inner.clone(), key, entry, permit));
    }
    // Held-back work is retried when a worker finishes (which wakes us).
    let idle = Duration::from_secs(1);
    Ok(match scan.next_due_ms {
        _ if held_back => idle,
        Some(due) if due <= now => Duration::ZERO,
        Some(due) => Duration::from_millis(due - now).min(idle * 60),
        None => idle * 60,
    })
}

async fn run_attempt(
    inner: Arc<Inner>,
    key: QueueKey,
    entry: QueueEntry,
    _permit: OwnedSemaphorePermit,
) {
    if let Err(e) = super::attempt::scheduled(&inner, &key, &entry).await {
        // The lease stays: the attempt is made again on the next start.
        tracing::error!(delivery = %entry.delivery, error = %e, "delivery attempt could not be recorded");
    }
    inner.release(entry.endpoint);
    inner.wake.notify_one();
}

async fn retention(inner: Arc<Inner>) {
    let days = i64::from(inner.settings.retention_days);
    loop {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(days);
        match inner.store.prune(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "delivery logs past retention removed"),
            Err(e) => tracing::error!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {},
        }
    }
}
