//! Grouped writes: the hot paths' transactions, many to one sled transaction.
//!
//! Every sled transaction and batch seals sled's current I/O buffer (its
//! `pin_log` rolls the buffer to mark the batch's start), and each sealed
//! buffer is one `pwrite` plus `sync_file_range` on sled's I/O pool, whose
//! hand-off wakes all of that pool's threads. At a few thousand publishes
//! and attempt results a second that was about a third of the gateway's
//! CPU (BENCHMARKS.md). So publishes and attempt results are not transactions of
//! their own: callers queue a job, and one thread runs every job queued
//! meanwhile in one transaction, so a busy gateway seals one buffer per
//! group rather than per write.
//!
//! Each job keeps the all-or-nothing of a transaction of its own: a job that
//! aborts is dropped from the group with its error, and the group runs again
//! without it, so its partial writes never land and the others' do.
//! Durability is unchanged: a job is applied, not flushed, when it answers;
//! callers that answer 2xx still wait for the group commit.

use std::cell::{Cell, RefCell};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use tokio::sync::oneshot;

use super::{Result, StoreError};

/// Rows (keys written) a group stops taking jobs at: bounds the memory of
/// the transaction's write set and how long one group holds sled's lock.
const GROUP_ROWS: usize = 4096;

/// How long a group waits for more jobs when the last one had company: under
/// load, fewer and larger groups (each seals sled's I/O buffer) are cheaper,
/// by 3–7% CPU and 1–8% delivery rate at 300 µs in interleaved runs; an
/// idle gateway's lone jobs do not wait.
const GATHER: Duration = Duration::from_micros(300);

/// The trees a grouped write can touch, inside the group's transaction.
pub(super) struct Tx<'a> {
    pub events: &'a TransactionalTree,
    pub event_deliveries: &'a TransactionalTree,
    pub idempotency: &'a TransactionalTree,
    pub deliveries: &'a TransactionalTree,
    pub queue: &'a TransactionalTree,
    pub fanouts: &'a TransactionalTree,
}

/// The same trees, outside any transaction.
pub(super) struct Trees {
    pub events: sled::Tree,
    pub event_deliveries: sled::Tree,
    pub idempotency: sled::Tree,
    pub deliveries: sled::Tree,
    pub queue: sled::Tree,
    pub fanouts: sled::Tree,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// A queued write, type-erased so jobs of any result type share a group.
trait Job: Send {
    /// Rows the job writes, at most: what it weighs in a group.
    fn rows(&self) -> usize;
    /// Runs the job's part of the group's transaction. May run more than
    /// once (sled retries a conflicting transaction); the last run counts.
    fn run(&self, tx: &Tx<'_>) -> TxResult<()>;
    /// Hands the outcome to the caller.
    fn answer(self: Box<Self>, outcome: Result<()>);
}

struct Pending<T, F> {
    rows: usize,
    op: F,
    output: RefCell<Option<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&Tx<'_>) -> TxResult<T> + Send,
{
    fn rows(&self) -> usize {
        self.rows
    }

    fn run(&self, tx: &Tx<'_>) -> TxResult<()> {
        let output = (self.op)(tx)?;
        *self.output.borrow_mut() = Some(output);
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<()>) {
        let Pending { output, reply, .. } = *self;
        let result = outcome.map(|()| {
            output
                .into_inner()
                .expect("a job in a committed group has run")
        });
        let _ = reply.send(result);
    }
}

/// Handle to the writer thread.
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub fn start(trees: Trees) -> Self {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("hookgate-writer".into())
            .spawn(move || {
                // Ends when every Store clone (and so every sender) is gone.
                let mut next = None;
                let mut busy = false;
                while let Some(first) = next.take().or_else(|| jobs.recv().ok()) {
                    let mut group = vec![first];
                    let mut rows = group[0].rows();
                    let gather_until = Instant::now() + if busy { GATHER } else { Duration::ZERO };
                    while rows < GROUP_ROWS {
                        let Some(job) = next_job(&jobs, gather_until) else {
                            break;
                        };
                        if rows + job.rows() > GROUP_ROWS {
                            next = Some(job);
                            break;
                        }
                        rows += job.rows();
                        group.push(job);
                    }
                    busy = group.len() > 1;
                    metrics::histogram!("hookgate_write_group_size").record(group.len() as f64);
                    commit_group(&trees, group);
                }
            })
            .expect("spawn the writer thread");
        Self { queue }
    }

    /// Runs `op` in the next group's transaction and returns what it
    /// returned. `rows` is how many keys it writes at most. An `Abort` from
    /// `op` fails this job alone, with nothing of it written.
    pub async fn write<T, F>(&self, rows: usize, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> TxResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            rows,
            op,
            output: RefCell::new(None),
            reply,
        });
        let stopped = || StoreError::Write("the writer thread has stopped".into());
        self.queue.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The next queued job, waiting for one until `until` at most.
fn next_job(jobs: &mpsc::Receiver<Box<dyn Job>>, until: Instant) -> Option<Box<dyn Job>> {
    if let Ok(job) = jobs.try_recv() {
        return Some(job);
    }
    let left = until.checked_duration_since(Instant::now())?;
    jobs.recv_timeout(left).ok()
}

/// Commits `group` in one transaction; a job that aborts is answered with
/// its error and the rest run again without it.
fn commit_group(trees: &Trees, mut group: Vec<Box<dyn Job>>) {
    let all = (
        &trees.events,
        &trees.event_deliveries,
        &trees.idempotency,
        &trees.deliveries,
        &trees.queue,
        &trees.fanouts,
    );
    while !group.is_empty() {
        let aborted = Cell::new(None);
        let outcome = all.transaction(
            |(events, event_deliveries, idempotency, deliveries, queue, fanouts)| {
                let tx = Tx {
                    events,
                    event_deliveries,
                    idempotency,
                    deliveries,
                    queue,
                    fanouts,
                };
                for (i, job) in group.iter().enumerate() {
                    if let Err(e) = job.run(&tx) {
                        if matches!(e, ConflictableTransactionError::Abort(_)) {
                            aborted.set(Some(i));
                        }
                        return Err(e);
                    }
                }
                Ok(())
            },
        );
        match outcome {
            Ok(()) => {
                for job in group.drain(..) {
                    job.answer(Ok(()));
                }
            }
            Err(TransactionError::Abort(e)) => {
                let i = aborted.get().expect("an abort names its job");
                group.remove(i).answer(Err(e));
            }
            Err(TransactionError::Storage(e)) => {
                let message = e.to_string();
                let mut jobs = group.drain(..);
                if let Some(first) = jobs.next() {
                    first.answer(Err(e.into()));
                }
                for job in jobs {
                    job.answer(Err(StoreError::Write(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::store::test_support::temp_sled;

    #[tokio::test]
    async fn an_aborting_job_leaves_nothing_and_spares_its_group() {
        let (store, _dir) = temp_sled();
        let mut jobs = Vec::new();
        for i in 0..200u32 {
            let store = store.clone();
            jobs.push(tokio::spawn(async move {
                store
                    .writer
                    .write(2, move |tx| {
                        tx.events.insert(format!("a{i}").as_bytes(), &b"x"[..])?;
                        if i % 7 == 3 {
                            return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                                format!("job {i} refuses"),
                            )));
                        }
                        tx.queue.insert(format!("b{i}").as_bytes(), &b"y"[..])?;
                        Ok(i)
                    })
                    .await
            }));
        }
        for (i, job) in jobs.into_iter().enumerate() {
            let i = i as u32;
            let result = job.await.unwrap();
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            if i % 7 == 3 {
                assert!(matches!(result, Err(StoreError::Conflict(_))), "job {i}");
                assert!(store.events.get(a).unwrap().is_none(), "job {i} wrote half");
                assert!(store.queue.get(b).unwrap().is_none());
            } else {
                assert_eq!(result.unwrap(), i);
                assert!(store.events.get(a).unwrap().is_some(), "job {i} lost");
                assert!(store.queue.get(b).unwrap().is_some());
            }
        }
    }

    #[tokio::test]
    async fn jobs_in_one_group_see_each_others_writes() {
        let (store, _dir) = temp_sled();
        // Two jobs claiming the same key: whichever runs second sees the
        // first's write, grouped or not.
        let claim = |store: &crate::store::SledStore| {
            let store = store.clone();
            async move {
                store
                    .writer
                    .write(1, |tx| {
                        if tx.idempotency.get(b"k")?.is_some() {
                            return Ok(false);
                        }
                        tx.idempotency.insert(&b"k"[..], &b"v"[..])?;
                        Ok(true)
                    })
                    .await
                    .unwrap()
            }
        };
        let (a, b) = tokio::join!(claim(&store), claim(&store));
        assert!(a ^ b, "exactly one claim wins: {a} {b}");
    }
}
