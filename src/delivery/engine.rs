//! The delivery engine: takes due work off the durable queue and runs
//! attempts on a bounded worker pool (docs/product.md, "Delivery": isolation).
//!
//! One dispatcher task owns the scheduling state. It scans the queue from a
//! cursor, so each due entry is read about once rather than on every pass:
//! an entry is marked taken (in memory; it stays in the queue until its
//! attempt is recorded) and handed to a worker if the global pool, its
//! endpoint's in-flight cap and its tenant's have room. An entry whose
//! endpoint or tenant is at its cap is held in memory (bounded per endpoint
//! and in all) and started the moment one of that endpoint's (or tenant's)
//! attempts finishes, without touching the queue; past
//! those bounds it is left queued and found again when the cursor wraps to the
//! front, and that endpoint's newer entries are left with it, so each
//! endpoint's deliveries start oldest first (the cursor wraps early when
//! such an endpoint has nothing held left). An attempt frees its worker and
//! its endpoint's and tenant's slots when the receiver answers, and its
//! entry when the result is durable; each endpoint's in-flight limit adapts
//! to the answers (`window.rs`). An entry whose due time was set before another, later one's
//! commit lands behind the cursor; the store notes the earliest due time
//! written, and the next pass steps back to it. So a slow or dead endpoint
//! holds at most its cap of workers, one tenant's endpoints (slow receivers,
//! plugins up to their deadline) hold at most the tenant's cap, neither
//! delays other tenants' deliveries, and a backlog costs bounded memory. Workers report back on a channel; the dispatcher sleeps until the
//! next entry falls due, a publish wakes it, or a worker finishes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::RetrySchedule;
use super::attempt::{Answer, Answered, Attempter, scheduled};
use super::operational::{Announcer, Queued};
use super::pace::{self, Pace};
use super::sender::Sender;
use super::window::Window;
use crate::model::delivery::Delivery;
use crate::model::endpoint::Endpoint;
use crate::model::ids::{EndpointId, TenantId};
use crate::model::tenant::Tenant;
use crate::plugins::Plugins;
use crate::store::{QueueEntry, QueueKey, Store, StoreError};

/// Queue entries read per dispatcher pass.
const SCAN_LIMIT: usize = 1024;
/// Due entries held in memory for one endpoint at its in-flight cap.
const HOLD_PER_ENDPOINT: usize = 4096;
/// Due entries held in memory in all.
const HOLD_TOTAL: usize = 16_384;
/// Pause between passes that leave entries behind for saturated endpoints,
/// and least time between two wraps of the cursor to the queue's front:
/// bounds the reading a deep backlog of a slow endpoint costs.
const WRAP_EVERY: Duration = Duration::from_millis(100);
/// The cursor goes back to the front at least this often, so an entry that
/// landed before it (a wall clock stepping back) is not left behind.
const SAFETY_WRAP: Duration = Duration::from_secs(10);
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
    pub tenant_concurrency: usize,
    pub retention_days: u32,
}

/// Handle to the running engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    attempts: Attempter,
    settings: EngineSettings,
    /// Where the dispatcher and the attempts run (see [`Engine::start`]).
    runtime: tokio::runtime::Handle,

    /// Each endpoint's in-flight limit where its window has it below its
    /// maximum (the dispatcher's, published for the API).
    limits: Mutex<HashMap<EndpointId, usize>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Engine {
    /// The endpoint's in-flight limit now, when its receiver's answers have
    /// brought it below the endpoint's maximum; `None` at the maximum.
    pub fn in_flight_limit(&self, endpoint: &EndpointId) -> Option<usize> {
        self.inner.limits().get(endpoint).copied()
    }

    /// The maximum in flight of an endpoint without its own.
    pub fn default_max_in_flight(&self) -> usize {
        self.inner.settings.endpoint_concurrency
    }

    /// Starts the dispatcher and the retention task on `runtime`, where the
    /// attempts will run too. Attempts a previous run left unfinished are
    /// still due in the queue and are made again.
    ///
    /// The gateway gives the engine a runtime of its own: draining a backlog
    /// readies thousands of attempt tasks a second, and on the API's workers
    /// every request would queue behind them; on threads of their own, the
    /// kernel shares the cores between the two.
    pub async fn start(
        store: Store,
        sender: Sender,
        plugins: Arc<Plugins>,
        settings: EngineSettings,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, crate::store::StoreError> {
        let queued = store.queue_len().await?;
        let inner = Arc::new(Inner::new(
            store, sender, plugins, settings, runtime, queued,
        ));
        inner.runtime.spawn(Dispatcher::new(inner.clone()).run());
        inner.runtime.spawn(retention(inner.clone()));
        Ok(Self { inner })
    }

    /// Publishes one of the gateway's operational events (see
    /// `delivery::operational`).
    pub async fn announce(&self, notice: super::operational::Notice) {
        self.inner.attempts.announcer.announce(notice).await;
    }

    /// Whether a client certificate can be used for mutual TLS; the reason
    /// when not.
    pub fn check_client_tls(&self, tls: &crate::model::endpoint::ClientTls) -> Result<(), String> {
        self.inner.attempts.sender.check_identity(tls)
    }

    /// Entries waiting in the queue, and the attempts' recent rates.
    pub fn stats(&self) -> (i64, super::operational::Rates) {
        let queued = &self.inner.attempts.announcer.queued;
        let second = chrono::Utc::now().timestamp().max(0) as u64;
        (queued.count().max(0), queued.recent.rates(second))
    }

    /// New work was queued: look now rather than at the next timer.
    pub fn queued(&self, count: usize) {
        self.inner.attempts.announcer.queued.queued(count);
    }

    /// "Send test": a synthetic event sent at once, even when the endpoint
    /// is paused, logged like any delivery, with the receiver's answer.
    pub async fn send_test(
        &self,
        tenant: &Tenant,
        endpoint: &Endpoint,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<Delivery, StoreError> {
        let attempts = &self.inner.attempts;
        attempts.send_test(tenant, endpoint, event_type, data).await
    }

    /// "Retry": one attempt now, outside the schedule, answered
    /// synchronously.
    pub async fn retry_now(
        &self,
        tenant: &Tenant,
        endpoint: &Endpoint,
        delivery: &Delivery,
    ) -> Result<Delivery, StoreError> {
        let attempts = &self.inner.attempts;
        let (updated, unqueued) = attempts.retry_now(tenant, endpoint, delivery).await?;
        if unqueued {
            self.inner.add_queued(-1);
        }
        Ok(updated)
    }

    /// Stops dispatching and waits up to `grace` for attempts in flight.
    /// Attempts still running after that leave their entries due and are made again
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
    fn new(
        store: Store,
        sender: Sender,
        plugins: Arc<Plugins>,
        settings: EngineSettings,
        runtime: tokio::runtime::Handle,
        queued: usize,
    ) -> Self {
        let queued = Arc::new(Queued::new(queued as i64));
        Self {
            attempts: Attempter {
                announcer: Announcer {
                    store: store.clone(),
                    schedule: settings.schedule.clone(),
                    queued,
                },
                store,
                sender,
                plugins,
                schedule: settings.schedule.clone(),
                jitter: settings.jitter,
                noted: Default::default(),
            },
            settings,
            runtime,
            limits: Mutex::default(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    fn store(&self) -> &Store {
        &self.attempts.store
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, usize>> {
        self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add_queued(&self, delta: i64) {
        self.attempts.announcer.queued.add(delta);
    }
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Due entries waiting in memory for their endpoint's or tenant's cap to
/// free up.
#[derive(Default)]
struct Held {
    by_endpoint: HashMap<EndpointId, VecDeque<(QueueKey, QueueEntry)>>,
    /// The endpoints with held entries, per tenant: where a tenant's freed
    /// slot may go.
    by_tenant: HashMap<TenantId, HashSet<EndpointId>>,
    keys: HashSet<QueueKey>,
}

impl Held {
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Holds an entry; `false` when the bounds leave it in the queue.
    fn push(&mut self, key: QueueKey, entry: QueueEntry) -> bool {
        if self.keys.len() >= HOLD_TOTAL {
            return false;
        }
        let queue = self.by_endpoint.entry(entry.endpoint).or_default();
        if queue.len() >= HOLD_PER_ENDPOINT {
            return false;
        }
        self.keys.insert(key.clone());
        self.by_tenant
            .entry(entry.tenant)
            .or_default()
            .insert(entry.endpoint);
        queue.push_back((key, entry));
        true
    }

    fn pop(&mut self, endpoint: &EndpointId) -> Option<(QueueKey, QueueEntry)> {
        let queue = self.by_endpoint.get_mut(endpoint)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.by_endpoint.remove(endpoint);
            if let Some((_, entry)) = &item
                && let Some(endpoints) = self.by_tenant.get_mut(&entry.tenant)
            {
                endpoints.remove(endpoint);
                if endpoints.is_empty() {
                    self.by_tenant.remove(&entry.tenant);
                }
            }
        }
        if let Some((key, _)) = &item {
            self.keys.remove(key);
        }
        item
    }

    /// The endpoints of `tenant` with held entries.
    fn endpoints_of(&self, tenant: &TenantId) -> Vec<EndpointId> {
        self.by_tenant
            .get(tenant)
            .map(|e| e.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// What a running attempt tells the dispatcher.
enum Report {
    /// The request is over (or was never made): the attempt's worker and its
    /// endpoint's and tenant's slots are free, and its endpoint's window
    /// takes in the answer (with the endpoint's own maximum, if it has one).
    Answered(QueueEntry, Answer, Option<usize>),
    /// Its result is durable: the entry may be read again.
    Recorded(QueueKey),
}

/// The scheduling state, owned by the dispatcher task alone.
struct Dispatcher {
    inner: Arc<Inner>,
    /// Attempts whose request is not over yet: what `workers` bounds.
    running: usize,
    /// Attempts running per endpoint.
    in_flight: HashMap<EndpointId, usize>,
    /// Attempts running per tenant.
    tenant_in_flight: HashMap<TenantId, usize>,
    /// Endpoints whose in-flight limit adapts to their receiver's answers
    /// (ones at their maximum with nothing in flight are not kept).
    windows: HashMap<EndpointId, Window>,
    /// When each busy endpoint's maximum and rate were last read.
    limits_read: HashMap<EndpointId, Instant>,
    /// The pace of each busy endpoint with a `rate_limit` (kept past a rest
    /// while its next start must still wait): only these are visited on
    /// every pass.
    paces: HashMap<EndpointId, Pace>,
    held: Held,
    /// Endpoints of which this process has no slot at all (more processes
    /// share the store than the endpoint has slots): their entries are
    /// given back to the store rather than held.
    unshared: HashSet<EndpointId>,
    /// Entries a scan read but did not start or hold, to give back.
    unkept: Vec<QueueKey>,
    /// Entries whose attempt is running or whose result is being made
    /// durable: they stay in the queue until it is, so a scan must not start
    /// them twice, and a crash before makes the attempt again.
    taken: HashSet<QueueKey>,
    /// The last queue key read: every due entry before it is taken, held,
    /// or was passed over and waits for the next wrap.
    cursor: Option<QueueKey>,
    /// Entries were passed over since the cursor last went to the front.
    passed_over: bool,
    /// Endpoints with entries passed over since the cursor last went to the
    /// front: their later entries are passed over too, so each endpoint's
    /// deliveries start oldest first.
    behind: HashSet<EndpointId>,
    /// The first queue key passed over since the cursor last went back: it
    /// goes back there, not to the front, since every due entry before it
    /// is taken or held.
    first_passed: Option<QueueKey>,
    /// An endpoint with entries passed over has run out of held ones: the
    /// cursor should go back now rather than at the end of the backlog.
    starving: bool,
    /// The last pass read every due entry after the cursor.
    caught_up: bool,
    last_wrap: Instant,
    /// After a pass that had to pass entries over, the next scan waits until
    /// then: a publish wake-up must not re-read a saturated backlog.
    rest_until: Instant,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
}

impl Dispatcher {
    fn new(inner: Arc<Inner>) -> Self {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Self {
            inner,
            running: 0,
            in_flight: HashMap::new(),
            tenant_in_flight: HashMap::new(),
            windows: HashMap::new(),
            limits_read: HashMap::new(),
            paces: HashMap::new(),
            held: Held::default(),
            unshared: HashSet::new(),
            unkept: Vec::new(),
            taken: HashSet::new(),
            cursor: None,
            passed_over: false,
            behind: HashSet::new(),
            first_passed: None,
            starving: false,
            caught_up: true,
            last_wrap: Instant::now(),
            rest_until: Instant::now(),
            reports_tx,
            reports_rx,
        }
    }

    async fn run(mut self) {
        let inner = self.inner.clone();
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = inner.stop.cancelled() => return,
                _ = inner.attempts.announcer.queued.wake.notified() => {},
                _ = inner.store().queued_elsewhere() => {},
                Some(report) = self.reports_rx.recv() => {
                    self.report(report).await;
                    while let Ok(report) = self.reports_rx.try_recv() {
                        self.report(report).await;
                    }
                },
                _ = tokio::time::sleep(wait) => {},
            }
            wait = match self.pass().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "delivery dispatcher cannot read the queue");
                    Duration::from_secs(1)
                }
            };
        }
    }

    async fn report(&mut self, report: Report) {
        match report {
            Report::Answered(entry, answer, max) => self.answered(&entry, answer, max).await,
            Report::Recorded(key) => {
                self.taken.remove(&key);
            }
        }
    }

    /// An attempt's request is over: its endpoint's window learns from the
    /// answer, and its endpoint's next held entry may start, or else one of
    /// its tenant's other endpoints'.
    async fn answered(&mut self, done: &QueueEntry, answer: Answer, max: Option<usize>) {
        self.running -= 1;
        release(&mut self.in_flight, &done.endpoint);
        release(&mut self.tenant_in_flight, &done.tenant);
        self.learn(&done.endpoint, answer, max);
        if !self.tenant_has_room(&done.tenant) {
            return;
        }
        while self.endpoint_has_room(&done.tenant, &done.endpoint).await
            && self.tenant_has_room(&done.tenant)
            && self.running < self.inner.settings.workers
            && let Some((key, entry)) = self.held.pop(&done.endpoint)
        {
            self.start(key, entry);
        }
        if self.behind.contains(&done.endpoint)
            && !self.held.by_endpoint.contains_key(&done.endpoint)
        {
            self.starving = true;
        }
        for endpoint in self.held.endpoints_of(&done.tenant) {
            if self.tenant_has_room(&done.tenant)
                && self.endpoint_has_room(&done.tenant, &endpoint).await
                && self.running < self.inner.settings.workers
                && let Some((key, entry)) = self.held.pop(&endpoint)
            {
                self.start(key, entry);
            }
        }
    }

    /// Moves the endpoint's window by one answer (and to the endpoint's own
    /// maximum, when the attempt read one), and publishes its limit.
    fn learn(&mut self, endpoint: &EndpointId, answer: Answer, own_max: Option<usize>) {
        let share = self.inner.store().share();
        let own_max = own_max.map(|max| share.of(max));
        let default = share.of(self.inner.settings.endpoint_concurrency);
        // Made when the attempt started; kept while it was in flight.
        let window = self
            .windows
            .entry(*endpoint)
            .or_insert_with(|| Window::new(own_max.unwrap_or(default)));
        if let Some(max) = own_max {
            window.set_max(max);
        }
        let before = window.limit();
        window.answered(answer, Instant::now());
        let (limit, max) = (window.limit(), window.max());
        let resting = limit >= max && !self.in_flight.contains_key(endpoint);
        if resting {
            // As good as a new one: not kept, nor what was read with it,
            // unless its pace still makes the next start wait.
            self.windows.remove(endpoint);
            let now = Instant::now();
            if self.paces.get(endpoint).is_none_or(|pace| pace.allows(now)) {
                self.paces.remove(endpoint);
                self.limits_read.remove(endpoint);
            }
        }
        if before != limit || resting {
            let mut limits = self.inner.limits();
            if limit >= max {
                limits.remove(endpoint);
            } else {
                limits.insert(*endpoint, limit);
            }
        }
    }

    async fn endpoint_has_room(&mut self, tenant: &TenantId, endpoint: &EndpointId) -> bool {
        let now = Instant::now();
        let limit = match self.windows.get(endpoint) {
            Some(window) => window.limit(),
            None => {
                // First sight since it last rested: its window starts at
                // its maximum, read once for the whole busy spell.
                let (max, rate) = self.read_limits(tenant, endpoint).await;
                let window = Window::new(max);
                let limit = window.limit();
                self.windows.insert(*endpoint, window);
                self.set_rate(endpoint, rate, now);
                limit
            }
        };
        if self.unshared.contains(endpoint)
            || self.in_flight.get(endpoint).copied().unwrap_or(0) >= limit
        {
            return false;
        }
        if self
            .limits_read
            .get(endpoint)
            .is_none_or(|at| now.duration_since(*at) >= pace::REREAD)
        {
            // Busy for a while: a changed maximum or rate applies now.
            let (max, rate) = self.read_limits(tenant, endpoint).await;
            if let Some(window) = self.windows.get_mut(endpoint) {
                window.set_max(max);
            }
            self.set_rate(endpoint, rate, now);
        }
        self.paces.get(endpoint).is_none_or(|pace| pace.allows(now))
    }

    /// This process's part of the endpoint's own `max_in_flight` (or the
    /// default) and of its `rate_limit`, from the store's endpoint cache:
    /// where several processes share the store, the parts of all add up
    /// to the endpoint's limits. Notes an endpoint whose part is no slot
    /// at all.
    async fn read_limits(
        &mut self,
        tenant: &TenantId,
        endpoint: &EndpointId,
    ) -> (usize, Option<f64>) {
        let (own, rate) = match self.inner.store().get_endpoint(tenant, endpoint).await {
            Ok(Some(e)) => (e.max_in_flight, e.rate_limit),
            _ => (None, None),
        };
        let share = self.inner.store().share();
        let max = share.of(own.map_or(self.inner.settings.endpoint_concurrency, |m| m as usize));
        if max == 0 {
            self.unshared.insert(*endpoint);
        } else {
            self.unshared.remove(endpoint);
        }
        (max, rate.map(|rate| share.of_rate(rate)))
    }

    /// Notes what was read of the endpoint's rate at `now`.
    fn set_rate(&mut self, endpoint: &EndpointId, rate: Option<f64>, now: Instant) {
        self.limits_read.insert(*endpoint, now);
        match rate {
            None => {
                self.paces.remove(endpoint);
            }
            Some(rate) => {
                self.paces
                    .entry(*endpoint)
                    .and_modify(|pace| pace.set_rate(rate, now))
                    .or_insert_with(|| Pace::new(rate, now));
            }
        }
    }

    /// Starts the held entries of rate-limited endpoints whose pace allows
    /// one now, and forgets the paces of endpoints gone quiet (and what was
    /// read with them, so a new busy spell reads the rate again).
    async fn release_paced(&mut self) {
        let now = Instant::now();
        let ready: Vec<(EndpointId, TenantId)> = self
            .paces
            .iter()
            .filter(|(_, pace)| pace.allows(now))
            .filter_map(|(endpoint, _)| {
                let held = self.held.by_endpoint.get(endpoint)?;
                Some((*endpoint, held.front()?.1.tenant))
            })
            .collect();
        for (endpoint, tenant) in ready {
            while self.workers_free()
                && self.tenant_has_room(&tenant)
                && self.endpoint_has_room(&tenant, &endpoint).await
                && let Some((key, entry)) = self.held.pop(&endpoint)
            {
                self.start(key, entry);
            }
        }
        let (held, in_flight, read) = (
            &self.held.by_endpoint,
            &self.in_flight,
            &mut self.limits_read,
        );
        self.paces.retain(|endpoint, pace| {
            let keep = held.contains_key(endpoint)
                || in_flight.contains_key(endpoint)
                || !pace.allows(now);
            if !keep {
                read.remove(endpoint);
            }
            keep
        });
    }

    /// How long until the next held entry of a paced endpoint may start.
    fn paced_wait(&self) -> Option<Duration> {
        let now = Instant::now();
        self.paces
            .iter()
            .filter(|(endpoint, _)| self.held.by_endpoint.contains_key(*endpoint))
            .map(|(_, pace)| pace.next().saturating_duration_since(now))
            .min()
    }

    fn tenant_has_room(&self, tenant: &TenantId) -> bool {
        self.tenant_in_flight.get(tenant).copied().unwrap_or(0)
            < self.inner.settings.tenant_concurrency
    }

    async fn has_room(&mut self, entry: &QueueEntry) -> bool {
        self.endpoint_has_room(&entry.tenant, &entry.endpoint).await
            && self.tenant_has_room(&entry.tenant)
    }

    fn note_passed(&mut self, key: &QueueKey) {
        if self.first_passed.as_ref().is_none_or(|first| key < first) {
            self.first_passed = Some(key.clone());
        }
    }

    /// Whether another attempt may start: a worker is free, and the results
    /// waiting to be made durable are not piling up behind a slow disk.
    fn workers_free(&self) -> bool {
        let workers = self.inner.settings.workers;
        self.running < workers && self.taken.len() < workers * 2
    }

    /// Starts an entry's attempt on a worker.
    fn start(&mut self, key: QueueKey, entry: QueueEntry) {
        if let Some(pace) = self.paces.get_mut(&entry.endpoint) {
            pace.take(Instant::now());
        }
        self.inner.add_queued(-1);
        self.running += 1;
        *self.in_flight.entry(entry.endpoint).or_insert(0) += 1;
        *self.tenant_in_flight.entry(entry.tenant).or_insert(0) += 1;
        self.taken.insert(key.clone());
        let (inner, reports) = (self.inner.clone(), self.reports_tx.clone());
        self.inner.tasks.spawn_on(async move {
            let answered = {
                let (reports, entry) = (reports.clone(), entry.clone());
                Answered::new(move |answer, max| {
                    let _ = reports.send(Report::Answered(entry, answer, max));
                })
            };
            match scheduled(&inner.attempts, &key, &entry, answered).await {
                Ok(true) => inner.add_queued(1),
                Ok(false) => {}
                // The entry stays due: the attempt is made again, at the
                // latest on the next start.
                Err(e) => {
                    tracing::error!(delivery = %entry.delivery, error = %e, "delivery attempt could not be recorded");
                }
            }
            let _ = reports.send(Report::Recorded(key));
        }, &self.inner.runtime);
    }

    /// Starts held entries whose pace allows them, reads due work from the
    /// cursor on and starts what has room; returns how long to sleep if
    /// nothing wakes the dispatcher.
    async fn pass(&mut self) -> Result<Duration, crate::store::StoreError> {
        self.release_paced().await;
        let wait = self.scan().await?;
        // Entries held for their pace only start when it allows them.
        Ok(match self.paced_wait() {
            Some(paced) => wait.min(paced),
            None => wait,
        })
    }

    /// Reads due work from the cursor on and starts what has room, and
    /// gives back to the store what it read but left; returns how long to
    /// sleep if nothing wakes the dispatcher.
    async fn scan(&mut self) -> Result<Duration, crate::store::StoreError> {
        let wait = self.scan_due().await;
        if !self.unkept.is_empty() {
            let keys = std::mem::take(&mut self.unkept);
            if let Err(e) = self.inner.store().release(&keys).await {
                // Held until the lease runs out instead: later, not lost.
                tracing::warn!(error = %e, "cannot give back queue entries left for later");
            }
        }
        wait
    }

    /// [`Dispatcher::scan`] but for giving back what it leaves
    /// (`unkept`).
    async fn scan_due(&mut self) -> Result<Duration, crate::store::StoreError> {
        let idle = Duration::from_secs(60);
        if !self.workers_free() {
            // A finishing worker wakes us.
            return Ok(idle);
        }
        let now = Instant::now();
        if now < self.rest_until {
            return Ok(self.rest_until - now);
        }
        let since_wrap = now.duration_since(self.last_wrap);
        // Back to the front once the scan has read all it could, or sooner
        // when an endpoint whose entries wait there has nothing held left:
        // it would idle until the scan reached the end of the backlog.
        let early =
            self.passed_over && since_wrap >= WRAP_EVERY && (self.caught_up || self.starving);
        let safety = self.caught_up && since_wrap >= SAFETY_WRAP;
        if (early || safety) && self.cursor.is_some() {
            self.cursor = match (safety, self.first_passed.take()) {
                (false, Some(first)) => Some(QueueKey::before(first.due_ms())),
                _ => None,
            };
            self.first_passed = None;
            self.passed_over = false;
            self.behind.clear();
            self.starving = false;
            self.last_wrap = now;
        }
        if let (Some(queued), Some(cursor)) = (self.inner.store().take_queued_since(), &self.cursor)
            && queued <= cursor.due_ms()
        {
            // Written behind the cursor (its due time was set before a
            // later one's commit): step back to it. Entries re-read on the
            // way are skipped as taken or held.
            self.cursor = Some(QueueKey::before(queued));
            if !self.behind.is_empty() {
                // The scan may leave out the passed endpoints' entries
                // from here on: the wrap must come back at least this far.
                self.note_passed(&QueueKey::before(queued));
            }
        }
        let now_ms = now_ms();
        // No more entries than this pass can start or hold: the rest would
        // be read only to be left (and, on a shared database, claimed and
        // given back, two writes each).
        let room = (self.inner.settings.workers.saturating_sub(self.running))
            .saturating_add(HOLD_TOTAL.saturating_sub(self.held.len()));
        // Endpoints passed over wait for the wrap; their entries need not
        // even be read until then (where reading them costs a claim).
        let passed: Vec<EndpointId> = self.behind.iter().copied().collect();
        let scan = self
            .inner
            .store()
            .due_passing(
                self.cursor.as_ref(),
                now_ms,
                room.clamp(1, SCAN_LIMIT),
                &passed,
            )
            .await?;
        let mut passed_over = false;
        let mut entries = scan.entries.into_iter();
        while let Some((key, entry)) = entries.next() {
            if !self.workers_free() {
                // Not read: the cursor stays before it.
                self.caught_up = false;
                let left: Vec<QueueKey> = std::iter::once(key)
                    .chain(entries.map(|(key, _)| key))
                    .filter(|key| !self.held.keys.contains(key) && !self.taken.contains(key))
                    .collect();
                self.unkept.extend(left);
                return Ok(idle);
            }
            self.cursor = Some(key.clone());
            if self.held.keys.contains(&key) || self.taken.contains(&key) {
                continue;
            }
            if self.behind.contains(&entry.endpoint) {
                // Older entries of its endpoint wait for the wrap: so do
                // the newer ones.
                passed_over = true;
                self.note_passed(&key);
                self.unkept.push(key);
                continue;
            }
            if !self.has_room(&entry).await {
                let endpoint = entry.endpoint;
                if self.unshared.contains(&endpoint) || !self.held.push(key.clone(), entry) {
                    self.behind.insert(endpoint);
                    passed_over = true;
                    self.note_passed(&key);
                    self.unkept.push(key);
                }
                continue;
            }
            self.start(key, entry);
        }
        self.passed_over |= passed_over;
        self.caught_up = scan.caught_up;
        if passed_over {
            self.rest_until = now + WRAP_EVERY;
        }
        if !scan.caught_up {
            return Ok(if passed_over {
                WRAP_EVERY
            } else {
                Duration::ZERO
            });
        }
        // Caught up: new work lands after the cursor. With nothing running,
        // held or passed over, the front is as cheap a start as the cursor.
        if !self.passed_over && self.held.len() == 0 && self.taken.is_empty() {
            self.cursor = None;
        }
        let until_due = scan
            .next_due_ms
            .map(|due| Duration::from_millis(due.saturating_sub(now_ms)));
        Ok(match until_due {
            _ if self.passed_over => WRAP_EVERY,
            Some(d) => d.min(idle),
            None => idle,
        })
    }
}

/// One attempt fewer in flight for `key`.
fn release<K: std::hash::Hash + Eq>(in_flight: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = in_flight.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            in_flight.remove(key);
        }
    }
}

async fn retention(inner: Arc<Inner>) {
    let days = i64::from(inner.settings.retention_days);
    loop {
        let cutoff = chrono::Utc::now() - chrono::Duration::days(days);
        match inner.store().prune(cutoff).await {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;

    use super::{Dispatcher, EngineSettings, Inner};
    use crate::delivery::RetrySchedule;
    use crate::delivery::sender::Sender;
    use crate::model::delivery::Delivery;
    use crate::model::event::Event;
    use crate::model::ids::EndpointId;
    use crate::plugins::compile::Compiler;
    use crate::plugins::{Limits, PluginHost, Plugins};
    use crate::store::test_support::temp_store;
    use crate::store::{PluginQuota, QueueKey, Store};
    use crate::target_guard::TargetGuard;

    fn dispatcher(store: Store) -> Dispatcher {
        let sender =
            Sender::new(TargetGuard::default(), Duration::from_secs(1), None, None).unwrap();
        let plugins = Plugins::new(
            PluginHost::new(Limits::default()).unwrap(),
            Compiler::in_process(),
            store.clone(),
            PluginQuota {
                count: 10,
                bytes: 1 << 20,
            },
        );
        let settings = EngineSettings {
            schedule: RetrySchedule::default(),
            jitter: 0.0,
            workers: 8,
            endpoint_concurrency: 1,
            tenant_concurrency: 4,
            retention_days: 30,
        };
        let runtime = tokio::runtime::Handle::current();
        Dispatcher::new(Arc::new(Inner::new(
            store, sender, plugins, settings, runtime, 0,
        )))
    }

    /// Publishes one event with one delivery to `endpoint`, due `ago_ms`
    /// before now; returns its queue key.
    async fn publish(store: &Store, endpoint: EndpointId, ago_ms: i64) -> QueueKey {
        let event = Event::new(
            crate::model::ids::TenantId::generate(),
            None,
            "probe.ping",
            serde_json::json!({}),
        );
        let due = Utc::now() - chrono::Duration::milliseconds(ago_ms);
        let mut delivery = Delivery::new(endpoint, &event.id, "probe.ping", due);
        delivery.next_retry = Some(due);
        let id = delivery.id;
        store.publish(event, vec![delivery], None).await.unwrap();
        let queued = store.due(None, u64::MAX, usize::MAX).await.unwrap().entries;
        let (key, _) = queued
            .into_iter()
            .find(|(_, entry)| entry.delivery == id)
            .expect("the delivery is queued");
        key
    }

    /// An entry whose commit lands behind the cursor (due earlier than one
    /// already read) is found by the next pass, not at the next wrap.
    #[tokio::test]
    async fn an_entry_written_behind_the_cursor_is_found_at_once() {
        let (store, _dir) = temp_store();
        let mut d = dispatcher(store.clone());
        // The endpoint is at its cap, so what the passes find is held, and
        // nothing is sent.
        let endpoint = EndpointId::generate();
        d.in_flight.insert(endpoint, 1);

        let later = publish(&store, endpoint, 5).await;
        d.pass().await.unwrap();
        assert!(d.held.keys.contains(&later));
        assert_eq!(d.cursor.as_ref(), Some(&later));

        let earlier = publish(&store, endpoint, 1000).await;
        d.pass().await.unwrap();
        assert!(
            d.held.keys.contains(&earlier),
            "the entry behind the cursor was not read"
        );
        assert_eq!(d.held.len(), 2);
    }

    /// Once an endpoint's entry is passed over (its hold is full), its
    /// newer entries wait too, even when the endpoint has room again, until
    /// the cursor goes back to the front and starts the older one first.
    #[tokio::test]
    async fn an_endpoints_newer_entries_never_start_before_one_passed_over() {
        use super::{HOLD_PER_ENDPOINT, WRAP_EVERY};
        use crate::store::QueueEntry;
        let (store, _dir) = temp_store();
        let mut d = dispatcher(store.clone());
        let endpoint = EndpointId::generate();
        let tenant = crate::model::ids::TenantId::generate();
        // At its cap, with a full hold.
        d.in_flight.insert(endpoint, 1);
        for i in 0..HOLD_PER_ENDPOINT {
            let entry = QueueEntry {
                tenant,
                endpoint,
                delivery: crate::model::ids::DeliveryId::generate(),
                fifo: false,
            };
            assert!(d.held.push(QueueKey::before(i as u64), entry));
        }
        let older = publish(&store, endpoint, 1000).await;
        d.pass().await.unwrap();
        assert!(!d.held.keys.contains(&older) && !d.taken.contains(&older));
        assert!(d.behind.contains(&endpoint));

        // The endpoint drains: room again, nothing held.
        d.in_flight.clear();
        d.held = Default::default();
        d.rest_until = std::time::Instant::now();
        let newer = publish(&store, endpoint, 0).await;
        d.pass().await.unwrap();
        assert!(
            !d.taken.contains(&newer),
            "a newer entry started while an older one waits"
        );

        // At the wrap, the older one starts first.
        d.last_wrap = std::time::Instant::now() - WRAP_EVERY * 2;
        d.rest_until = std::time::Instant::now();
        d.pass().await.unwrap();
        assert!(d.taken.contains(&older), "the older entry did not start");
        assert!(!d.taken.contains(&newer), "the endpoint's cap is one");
        assert!(d.held.keys.contains(&newer));
    }
}
