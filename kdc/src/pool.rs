//! The bounded CPU pool for public-key work.
//!
//! Admission is decided up front: a request takes one of `threads + queue`
//! permits or is shed (KDC_ERR_SVC_UNAVAILABLE) before any public-key work.
//! Admitted work runs on `threads` dedicated threads fed from one queue, so
//! RSA/DH never stalls the reactor and never oversubscribes cores. Under
//! load a thread that finishes a request takes the next one from the queue
//! without sleeping; tokio's blocking pool behind a "running" semaphore
//! (the first version) parked and woke a thread for every request.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct CpuPool {
    admission: Arc<Semaphore>,
    capacity: usize,
    shed: AtomicUsize,
    threads: usize,
    /// Jobs sent and not yet taken by a thread.
    queued: Arc<AtomicUsize>,
    /// Closing it (dropping the pool) ends the threads.
    jobs: mpsc::Sender<Job>,
}

/// Why pool work did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("public-key work panicked or was cancelled")]
    Failed,
}

impl CpuPool {
    /// `threads` 0 means one per core.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<CpuPool> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let (jobs, queue_rx) = mpsc::channel::<Job>();
        let queue_rx = Arc::new(Mutex::new(queue_rx));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let queue_rx = queue_rx.clone();
            let queued = queued.clone();
            std::thread::Builder::new()
                .name(format!("pktc-pk-{i}"))
                .spawn(move || {
                    loop {
                        let next = queue_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(job) => {
                                queued.fetch_sub(1, Ordering::Relaxed);
                                job()
                            }
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(CpuPool {
            admission: Arc::new(Semaphore::new(threads + queue)),
            capacity: threads + queue,
            threads,
            queued,
            shed: AtomicUsize::new(0),
            jobs,
        })
    }

    /// A permit for one request, or None (counted) when the queue is full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.admission.clone().try_acquire_owned().ok();
        if p.is_none() {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// Runs `f` on a pool thread (in queue order) and waits for it.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic drops `done`: the caller gets PoolError, the thread lives on.
            if let Ok(v) = catch_unwind(AssertUnwindSafe(f)) {
                let _ = done.send(v);
            }
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.jobs.send(job).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(PoolError::Failed);
        }
        result.await.map_err(|_| PoolError::Failed)
    }

    /// Requests admitted and not yet finished (running + waiting).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Public-key threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Jobs waiting for a thread.
    pub fn waiting(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Requests shed because the queue was full.
    pub fn shed_count(&self) -> usize {
        self.shed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sheds_beyond_capacity_and_runs_work() {
        let pool = CpuPool::new(1, 1).unwrap();
        let a = pool.admit().expect("first");
        let b = pool.admit().expect("second (queued)");
        assert!(pool.admit().is_none());
        assert_eq!((pool.in_flight(), pool.shed_count()), (2, 1));
        drop(a);
        assert!(pool.admit().is_some());
        drop(b);
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_the_thread_keeps_working() {
        let pool = CpuPool::new(1, 0).unwrap();
        let r: Result<(), _> = pool.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(PoolError::Failed)));
        assert_eq!(pool.run(|| "still here").await.unwrap(), "still here");
    }

    #[tokio::test]
    async fn work_runs_on_at_most_the_pool_threads() {
        let pool = CpuPool::new(2, 8).unwrap();
        let names: Vec<_> = thread_names(&pool, 8).await;
        assert!(names.iter().all(|n| n.starts_with("pktc-pk-")), "{names:?}");
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert!(distinct.len() <= 2, "{distinct:?}");
    }

    async fn thread_names(pool: &CpuPool, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                pool.run(|| {
                    std::thread::current()
                        .name()
                        .unwrap_or_default()
                        .to_string()
                })
                .await
                .unwrap(),
            );
        }
        out
    }
}
