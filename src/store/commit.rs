//! Group commit: many writers, one fsync.
//!
//! A publish answers 2xx only once its writes are on disk. Calling
//! sled's flush per request would serialise every publish behind its own
//! fsync; instead writers queue a waiter, and one thread flushes for every
//! waiter queued before the flush began. A waiter's writes precede its
//! enqueue, so the flush that starts after dequeuing it covers them.

use std::sync::mpsc;

use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

pub(super) struct GroupCommit {
    queue: mpsc::Sender<Waiter>,
}

impl GroupCommit {
    pub fn start(db: sled::Db) -> Self {
        let (queue, waiters) = mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("hookgate-commit".into())
            .spawn(move || {
                // Ends when every Store clone (and so every sender) is gone.
                while let Ok(first) = waiters.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiters.try_iter());
                    let started = std::time::Instant::now();
                    let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                    metrics::histogram!("hookgate_commit_seconds")
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!("hookgate_commit_batch_size").record(batch.len() as f64);
                    for waiter in batch {
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .expect("spawn the commit thread");
        Self { queue }
    }

    /// Waits until every write made before this call is durable.
    pub async fn commit(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(tx)
            .map_err(|_| "the commit thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "the commit thread has stopped".to_string())?
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::temp_store;

    #[tokio::test]
    async fn concurrent_flushes_all_complete() {
        let (store, _dir) = temp_store();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.flush().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
}
