//! Gateways sharing one database (docs/cluster.md): which due queue entries
//! each one holds, which gateways are alive and so each one's share of the
//! limits that hold over all of them together, and the notices that wake
//! the others when work is queued.
//!
//! - **Leases.** [`PgStore::due`](super::PgStore) claims the entries it
//!   returns for this gateway (`FOR UPDATE SKIP LOCKED`, so two gateways
//!   scanning at once take different entries) until `now() + lease`; every
//!   third of the lease the heartbeat renews the leases this gateway holds
//!   that would run low before the next renewal, and ending an attempt
//!   removes or moves its entry. A gateway that dies stops renewing: its
//!   entries are due for the others when their leases run out (the
//!   heartbeat looks for such entries, and wakes the dispatcher to go back
//!   to them). Entries this gateway read but will not start now are given
//!   back at once (`release`), and all of them when it stops; a scan
//!   leaves out the endpoints its dispatcher passes over, so their entries
//!   are not claimed only to be given back.
//! - **Heartbeats.** Every [`HEARTBEAT`] each gateway writes `seen_at` in
//!   `gateways` and reads the gateways seen within [`LIVE`]: in id order
//!   they give each gateway its [`Share`] of every endpoint's in-flight and
//!   rate limits, so the shares add up to the limit. A gateway that finds
//!   others alive when it connects waits `settle` (the longest an attempt
//!   runs) before its first claim, so that the attempts they started under
//!   their former, larger shares have ended.
//! - **Notices.** Work queued by a publish (or a recovery, or given back)
//!   sends `NOTIFY hookgate_queue, '{gateway} {due ms}'` in its
//!   transaction; a connection of its own listens, and a notice from
//!   another gateway wakes this one's dispatcher instead of it polling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{Notify, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::{exec, rows};
use crate::store::backend::Share;
use crate::store::deliveries::QueuedSince;
use crate::store::{QueueKey, Result};

/// How often a gateway says it is alive and reads who else is.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// A gateway whose heartbeat is older than this is taken for gone: its
/// share goes to the others (its attempts died with it), though its leases
/// run to their end.
const LIVE: Duration = Duration::from_secs(3);
/// The channel of queue notices.
const CHANNEL: &str = "hookgate_queue";
/// Pause before listening again after the listening connection failed.
const RELISTEN: Duration = Duration::from_secs(1);

/// How a gateway takes part in the database it shares.
#[derive(Debug, Clone, Copy)]
pub struct PgOptions {
    /// Connections kept at most (the listening one aside).
    pub pool_size: usize,
    /// How long a claim on a due entry lasts unless it is renewed.
    pub lease: Duration,
    /// The longest one attempt runs: a gateway joining others waits this
    /// long before it claims work.
    pub settle: Duration,
}

impl PgOptions {
    /// `pool_size` connections, a 30 s lease, no wait on joining.
    pub fn pool(pool_size: usize) -> Self {
        Self {
            pool_size,
            lease: Duration::from_secs(30),
            settle: Duration::ZERO,
        }
    }
}

/// This gateway's part in the cluster, shared with its background tasks.
pub(super) struct Cluster {
    /// This gateway's id: `gw_` and a ULID, new at every start.
    pub(super) id: String,
    lease: Duration,
    settle: Duration,
    share: Mutex<Share>,
    /// Claims wait until then (ms since the epoch).
    claims_from: AtomicU64,
    /// Told when another gateway queued work.
    pub(super) woken: Notify,
    /// Entries queued by others, for the dispatcher's cursor.
    queued_since: Arc<QueuedSince>,
    pub(super) stop: CancellationToken,
}

impl Cluster {
    pub(super) fn new(options: &PgOptions, queued_since: Arc<QueuedSince>) -> Self {
        Self {
            id: format!("gw_{}", ulid::Ulid::new()),
            lease: options.lease,
            settle: options.settle,
            share: Mutex::new(Share::WHOLE),
            claims_from: AtomicU64::new(0),
            woken: Notify::new(),
            queued_since,
            stop: CancellationToken::new(),
        }
    }

    /// The lease as a number of milliseconds, for `* interval '1 millisecond'`.
    pub(super) fn lease_ms(&self) -> f64 {
        self.lease.as_secs_f64() * 1000.0
    }

    pub(super) fn share(&self) -> Share {
        *self.share.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When this gateway may claim work (ms since the epoch), if not yet at
    /// `now_ms`.
    pub(super) fn claims_wait(&self, now_ms: u64) -> Option<u64> {
        let from = self.claims_from.load(Ordering::Acquire);
        (now_ms < from).then_some(from)
    }

    /// Joins: says this gateway is alive, and when others are too, holds
    /// its claims back for `settle`. Others count as alive when their
    /// heartbeat moves on within a beat: a gateway that was just killed
    /// (and is being started again) still looks live for a moment.
    pub(super) async fn join(&self, pool: &Pool) -> Result<()> {
        self.beat(pool, false).await?;
        let before = self.others(pool).await?;
        if before.is_empty() || self.settle.is_zero() {
            return Ok(());
        }
        tokio::time::sleep(HEARTBEAT + HEARTBEAT / 4).await;
        let after = self.others(pool).await?;
        let alive = after
            .iter()
            .filter(|(id, seen)| before.iter().all(|b| b.0 != *id || b.1 != *seen))
            .count();
        if alive > 0 {
            let from = crate::time::now().timestamp_millis().max(0) as u64
                + self.settle.as_millis() as u64;
            self.claims_from.store(from, Ordering::Release);
            tracing::info!(
                others = alive,
                wait = ?self.settle,
                "joined other gateways on the database; claiming work after the wait"
            );
        }
        Ok(())
    }

    /// The other gateways seen lately, with when.
    async fn others(&self, pool: &Pool) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        let client = super::pooled_client(pool).await?;
        let live_ms = LIVE.as_secs_f64() * 1000.0;
        rows(
            &client,
            "SELECT id, seen_at FROM gateways
             WHERE id <> $1 AND seen_at > now() - $2::float8 * interval '1 millisecond'",
            &[&self.id, &live_ms],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
    }

    /// Says this gateway is alive, renews its leases when `renew`, and
    /// reads its share; returns how many gateways are alive.
    async fn beat(&self, pool: &Pool, renew: bool) -> Result<usize> {
        let client = super::pooled_client(pool).await?;
        exec(
            &client,
            "INSERT INTO gateways (id) VALUES ($1)
             ON CONFLICT (id) DO UPDATE SET seen_at = now()",
            &[&self.id],
        )
        .await?;
        if renew {
            // Only the leases that would run low before the next renewal:
            // those with less than `renew_below` left. One claimed since the
            // last renewal has more and is not written again, and none runs
            // below one renewal interval.
            let below_ms = self.renew_below().as_secs_f64() * 1000.0;
            exec(
                &client,
                "UPDATE queue SET leased_until = now() + $2::float8 * interval '1 millisecond'
                 WHERE leased_by = $1
                     AND leased_until < now() + $3::float8 * interval '1 millisecond'",
                &[&self.id, &self.lease_ms(), &below_ms],
            )
            .await?;
        }
        let live_ms = LIVE.as_secs_f64() * 1000.0;
        let live: Vec<String> = rows(
            &client,
            "SELECT id FROM gateways
             WHERE seen_at > now() - $1::float8 * interval '1 millisecond' ORDER BY id",
            &[&live_ms],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        // Not in the list only if its own row is older than a lease: the
        // database's clock stepped. It counts itself all the same.
        let rank = live.iter().position(|id| *id == self.id);
        let share = match rank {
            Some(rank) => Share {
                rank,
                count: live.len(),
            },
            None => Share {
                rank: live.len(),
                count: live.len() + 1,
            },
        };
        let before = std::mem::replace(
            &mut *self.share.lock().unwrap_or_else(PoisonError::into_inner),
            share,
        );
        if before != share {
            tracing::info!(
                gateways = share.count,
                rank = share.rank,
                "gateways sharing the database changed"
            );
        }
        // Entries whose lease ran out (their gateway died) may lie behind
        // the dispatcher's cursor: it steps back to the first. Looked for
        // among the leased entries only (`queue_leased`, a few thousand at
        // most): in key order the scan would walk the whole queue behind
        // them, every second. The fence keeps the planner from doing so.
        let lapsed = super::row(
            &client,
            "WITH lapsed AS MATERIALIZED (
                 SELECT key FROM queue
                 WHERE leased_by IS NOT NULL AND leased_by <> $1 AND leased_until < now())
             SELECT key FROM lapsed ORDER BY key LIMIT 1",
            &[&self.id],
        )
        .await?;
        if let Some(row) = lapsed {
            let key: &[u8] = row.try_get(0)?;
            self.queued_since
                .note(QueueKey::from_bytes(key).due_ms() as i64);
            self.woken.notify_one();
        }
        // Long gone gateways are forgotten.
        exec(
            &client,
            "DELETE FROM gateways WHERE seen_at < now() - interval '1 day'",
            &[],
        )
        .await?;
        Ok(share.count)
    }

    /// How often the heartbeat renews leases: every third of a lease.
    fn renew_every(&self) -> Duration {
        (self.lease / 3).max(HEARTBEAT)
    }

    /// The lease left under which a renewal renews: two thirds of the
    /// lease, and at least two renewal intervals, so that a lease skipped
    /// by one renewal still has one interval left at the next.
    fn renew_below(&self) -> Duration {
        (self.lease * 2 / 3).max(self.renew_every() * 2)
    }

    /// Beats until stopped, renewing the leases every third of a lease.
    pub(super) async fn heartbeat(self: Arc<Self>, pool: Pool) {
        let renew_every = self.renew_every();
        let mut renewed = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let renew = renewed.elapsed() >= renew_every;
            match self.beat(&pool, renew).await {
                Ok(_) if renew => renewed = tokio::time::Instant::now(),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot write this gateway's heartbeat"),
            }
        }
    }

    /// Listens for the other gateways' notices until stopped, on a
    /// connection of its own, connecting again when it fails.
    pub(super) async fn listen(self: Arc<Self>, config: tokio_postgres::Config) {
        loop {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let (notices, mut received) = mpsc::unbounded_channel();
                    // The connection's messages, notices among them, come
                    // from polling it.
                    let driver = tokio::spawn(async move {
                        while let Some(message) =
                            std::future::poll_fn(|cx| connection.poll_message(cx)).await
                        {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if notices.send(n.payload().to_string()).is_err() {
                                        return;
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "the listening database connection failed");
                                    return;
                                }
                            }
                        }
                    });
                    match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        Ok(()) => {
                            // Notices sent while nobody listened are lost:
                            // look at the whole queue once.
                            self.queued_since.note(0);
                            self.woken.notify_one();
                            loop {
                                tokio::select! {
                                    _ = self.stop.cancelled() => {
                                        driver.abort();
                                        return;
                                    }
                                    notice = received.recv() => match notice {
                                        Some(payload) => self.noticed(&payload),
                                        None => break,
                                    },
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for other gateways' notices")
                        }
                    }
                    driver.abort();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to listen for other gateways' notices")
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(RELISTEN) => {}
            }
        }
    }

    /// A notice `{gateway} {due ms}`: work another gateway queued.
    fn noticed(&self, payload: &str) {
        let Some((from, due)) = payload.split_once(' ') else {
            return;
        };
        if from == self.id {
            return;
        }
        if let Ok(due) = due.parse::<i64>() {
            self.queued_since.note(due);
            self.woken.notify_one();
        }
    }

    /// Tells the other gateways that work falls due at `due_ms`: sent when
    /// the transaction `tx` commits.
    pub(super) async fn notify<C: GenericClient>(&self, tx: &C, due_ms: i64) -> Result<()> {
        let payload = format!("{} {due_ms}", self.id);
        rows(tx, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
        Ok(())
    }

    /// Gives back entries this gateway claimed but will not start now.
    pub(super) async fn release(&self, pool: &Pool, keys: &[QueueKey]) -> Result<()> {
        let Some(first) = keys.iter().map(QueueKey::due_ms).min() else {
            return Ok(());
        };
        let keys: Vec<&[u8]> = keys.iter().map(QueueKey::bytes).collect();
        let mut client = super::pooled_client(pool).await?;
        let tx = client.transaction().await?;
        exec(
            &tx,
            "UPDATE queue SET leased_by = NULL, leased_until = NULL
             WHERE key = ANY($1) AND leased_by = $2",
            &[&keys, &self.id],
        )
        .await?;
        self.notify(&tx, first as i64).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Leaves: gives back every entry this gateway holds and takes its name
    /// off the live ones, so the others take over at once.
    pub(super) async fn leave(&self, pool: &Pool) -> Result<()> {
        self.stop.cancel();
        let mut client = super::pooled_client(pool).await?;
        let tx = client.transaction().await?;
        let released = exec(
            &tx,
            "UPDATE queue SET leased_by = NULL, leased_until = NULL WHERE leased_by = $1",
            &[&self.id],
        )
        .await?;
        exec(&tx, "DELETE FROM gateways WHERE id = $1", &[&self.id]).await?;
        if released > 0 {
            self.notify(&tx, 0).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
