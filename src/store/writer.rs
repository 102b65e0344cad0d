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
//! Jobs come in two lanes ([`Lane`]). A publish's producer waits for its
//! answer, so publishes never wait for a group to fill and go ahead of every
//! result waiting with them; a result only keeps its queue entry taken (the
//! worker and the endpoint's slot are free already), so results wait for
//! company a while longer, ride along with the next publish, and fill the
//! group only as far as leaves a publish arriving meanwhile a short wait.
//!
//! Each job keeps the all-or-nothing of a transaction of its own: a job that
//! aborts is dropped from the group with its error, and the group runs again
//! without it, so its partial writes never land and the others' do.
//! Durability is unchanged: a job is applied, not flushed, when it answers;
//! callers that answer 2xx still wait for the group commit.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use tokio::sync::oneshot;

use super::{Result, StoreError};

/// Rows (keys written) a group stops taking jobs at: bounds the memory of
/// the transaction's write set and how long one group holds sled's lock.
const GROUP_ROWS: usize = 4096;

/// Rows of results a group takes at most: a publish that arrives while a
/// group is being written waits for it, so results alone never make one
/// longer than this (about 340 results).
const RESULT_ROWS: usize = 1024;

/// How long a group with a publish waits for more jobs when the last one had
/// company: under load, fewer and larger groups (each seals sled's I/O
/// buffer) are cheaper, by 3–7% CPU and 1–8% delivery rate at 300 µs in
/// interleaved runs; an idle gateway's lone publishes do not wait.
const GATHER: Duration = Duration::from_micros(300);

/// How long results wait for company when no publish is waiting: at a
/// moderate rate most then ride along with a publish's group instead of
/// sealing a buffer of their own. A publish arriving ends the wait.
const RESULT_GATHER: Duration = Duration::from_millis(5);

/// Which writes a group serves first, and how long each may wait for
/// company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// A publish: its producer waits for the answer. The result of a FIFO
    /// line's head goes here too: the line's next delivery waits for it.
    Publish,
    /// An attempt's result: only its queue entry waits for it.
    Result,
}

impl Lane {
    fn as_str(self) -> &'static str {
        match self {
            Lane::Publish => "publish",
            Lane::Result => "result",
        }
    }
}

/// The trees a grouped write can touch, inside the group's transaction.
pub(super) struct Tx<'a> {
    pub events: &'a TransactionalTree,
    pub event_deliveries: &'a TransactionalTree,
    pub idempotency: &'a TransactionalTree,
    pub deliveries: &'a TransactionalTree,
    pub queue: &'a TransactionalTree,
    pub fanouts: &'a TransactionalTree,
    pub lines: &'a TransactionalTree,
}

impl Tx<'_> {
    /// The trees FIFO lines change.
    pub fn line(&self) -> super::lines::LineTx<'_> {
        super::lines::LineTx {
            deliveries: self.deliveries,
            queue: self.queue,
            lines: self.lines,
        }
    }
}

/// The same trees, outside any transaction.
pub(super) struct Trees {
    pub events: sled::Tree,
    pub event_deliveries: sled::Tree,
    pub idempotency: sled::Tree,
    pub deliveries: sled::Tree,
    pub queue: sled::Tree,
    pub fanouts: sled::Tree,
    pub lines: sled::Tree,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// A queued write, type-erased so jobs of any result type share a group.
trait Job: Send {
    /// Rows the job writes, at most: what it weighs in a group.
    fn rows(&self) -> usize;
    fn lane(&self) -> Lane;
    /// Runs the job's part of the group's transaction. May run more than
    /// once (sled retries a conflicting transaction); the last run counts.
    fn run(&self, tx: &Tx<'_>) -> TxResult<()>;
    /// Hands the outcome to the caller.
    fn answer(self: Box<Self>, outcome: Result<()>);
}

struct Pending<T, F> {
    rows: usize,
    lane: Lane,
    queued: Instant,
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

    fn lane(&self) -> Lane {
        self.lane
    }

    fn run(&self, tx: &Tx<'_>) -> TxResult<()> {
        let output = (self.op)(tx)?;
        *self.output.borrow_mut() = Some(output);
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<()>) {
        let Pending {
            output,
            reply,
            lane,
            queued,
            ..
        } = *self;
        metrics::histogram!("hookgate_write_seconds", "lane" => lane.as_str())
            .record(queued.elapsed().as_secs_f64());
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
                // Ends when every Store clone (and so every sender) is gone,
                // after writing what was queued.
                let mut waiting = Waiting::default();
                let mut busy = false;
                loop {
                    if waiting.is_empty() {
                        match jobs.recv() {
                            Ok(job) => waiting.push(job),
                            Err(_) => return,
                        }
                    }
                    waiting.gather(&jobs, busy);
                    let group = waiting.group();
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
    pub async fn write<T, F>(&self, lane: Lane, rows: usize, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Tx<'_>) -> TxResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            rows,
            lane,
            queued: Instant::now(),
            op,
            output: RefCell::new(None),
            reply,
        });
        let stopped = || StoreError::Write("the writer thread has stopped".into());
        self.queue.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Jobs received and not yet in a group, by lane, each in arrival order.
#[derive(Default)]
struct Waiting {
    publishes: VecDeque<Box<dyn Job>>,
    results: VecDeque<Box<dyn Job>>,
    rows: usize,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.publishes.is_empty() && self.results.is_empty()
    }

    fn push(&mut self, job: Box<dyn Job>) {
        self.rows += job.rows();
        match job.lane() {
            Lane::Publish => self.publishes.push_back(job),
            Lane::Result => self.results.push_back(job),
        }
    }

    /// Takes what is queued, and waits for more while a group is worth
    /// waiting for: a publish waits [`GATHER`] when the last group had
    /// company (never when the gateway is idle), results alone
    /// [`RESULT_GATHER`] or until a publish comes.
    fn gather(&mut self, jobs: &mpsc::Receiver<Box<dyn Job>>, busy: bool) {
        let started = Instant::now();
        loop {
            while let Ok(job) = jobs.try_recv() {
                self.push(job);
            }
            if self.rows >= GROUP_ROWS {
                return;
            }
            let wait = match (self.publishes.is_empty(), busy) {
                (false, false) => return,
                (false, true) => GATHER,
                (true, _) if self.rows >= RESULT_ROWS => return,
                (true, _) => RESULT_GATHER,
            };
            let Some(left) = (started + wait).checked_duration_since(Instant::now()) else {
                return;
            };
            match jobs.recv_timeout(left) {
                Ok(job) => self.push(job),
                Err(_) => return,
            }
        }
    }

    /// The next group: the waiting publishes first, within [`GROUP_ROWS`],
    /// then results within [`RESULT_ROWS`] and what room is left. The first
    /// job is taken whatever it weighs.
    fn group(&mut self) -> Vec<Box<dyn Job>> {
        fn take(
            lane: &mut VecDeque<Box<dyn Job>>,
            group: &mut Vec<Box<dyn Job>>,
            rows: &mut usize,
            limit: usize,
        ) {
            while let Some(job) = lane.front() {
                if !group.is_empty() && *rows + job.rows() > limit {
                    break;
                }
                *rows += job.rows();
                group.push(lane.pop_front().expect("a front job"));
            }
        }
        let mut group = Vec::new();
        let mut rows = 0;
        take(&mut self.publishes, &mut group, &mut rows, GROUP_ROWS);
        let result_limit = GROUP_ROWS.min(rows + RESULT_ROWS);
        take(&mut self.results, &mut group, &mut rows, result_limit);
        self.rows -= rows;
        group
    }
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
        &trees.lines,
    );
    while !group.is_empty() {
        let aborted = Cell::new(None);
        let outcome = all.transaction(
            |(events, event_deliveries, idempotency, deliveries, queue, fanouts, lines)| {
                let tx = Tx {
                    events,
                    event_deliveries,
                    idempotency,
                    deliveries,
                    queue,
                    fanouts,
                    lines,
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
                    .write(Lane::Result, 2, move |tx| {
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

    /// A job that only says what it is, and its number when answered.
    struct Marker(Lane, usize, u32, std::sync::Arc<std::sync::Mutex<Vec<u32>>>);

    impl Job for Marker {
        fn rows(&self) -> usize {
            self.1
        }
        fn lane(&self) -> Lane {
            self.0
        }
        fn run(&self, _: &Tx<'_>) -> TxResult<()> {
            Ok(())
        }
        fn answer(self: Box<Self>, _: Result<()>) {
            self.3.lock().unwrap().push(self.2);
        }
    }

    /// The numbers of `group`'s markers, in group order.
    fn numbers(group: Vec<Box<dyn Job>>, answered: &std::sync::Mutex<Vec<u32>>) -> Vec<u32> {
        answered.lock().unwrap().clear();
        for job in group {
            job.answer(Ok(()));
        }
        answered.lock().unwrap().clone()
    }

    #[test]
    fn publishes_go_first_and_results_fill_only_their_share() {
        let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let marker = |lane, rows, n| Box::new(Marker(lane, rows, n, answered.clone()));
        let mut waiting = Waiting::default();
        // 600 results queued before two publishes, then one more result.
        for i in 0..600 {
            waiting.push(marker(Lane::Result, 3, i));
        }
        waiting.push(marker(Lane::Publish, 5, 1000));
        waiting.push(marker(Lane::Publish, 5, 1001));
        waiting.push(marker(Lane::Result, 3, 600));
        let first = numbers(waiting.group(), &answered);
        // The publishes, then the oldest results within their share.
        let share = (RESULT_ROWS / 3) as u32;
        let expected: Vec<u32> = [1000, 1001].into_iter().chain(0..share).collect();
        assert_eq!(first, expected);
        // The rest keep their order for the next groups.
        let mut rest = Vec::new();
        while !waiting.is_empty() {
            rest.extend(numbers(waiting.group(), &answered));
        }
        assert_eq!(rest, (share..=600).collect::<Vec<u32>>());
        assert_eq!(waiting.rows, 0);
    }

    #[test]
    fn a_job_heavier_than_a_group_still_gets_one() {
        let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Waiting::default();
        waiting.push(Box::new(Marker(
            Lane::Publish,
            GROUP_ROWS * 2,
            0,
            answered.clone(),
        )));
        waiting.push(Box::new(Marker(Lane::Result, 3, 1, answered.clone())));
        assert_eq!(numbers(waiting.group(), &answered), [0]);
        assert_eq!(numbers(waiting.group(), &answered), [1]);
        assert!(waiting.is_empty());
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
                    .write(Lane::Publish, 1, |tx| {
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
