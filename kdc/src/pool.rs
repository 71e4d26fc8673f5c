//! The bounded CPU pool for public-key work.
//!
//! Admission is decided up front: a request takes one of `threads + queue`
//! permits or is shed (KDC_ERR_SVC_UNAVAILABLE) before any public-key work.
//! Admitted work runs on tokio's blocking threads, at most `threads` at a
//! time, so RSA/DH never stalls the reactor and never oversubscribes cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct CpuPool {
    admission: Arc<Semaphore>,
    running: Arc<Semaphore>,
    capacity: usize,
    shed: AtomicUsize,
    threads: usize,
}

/// Why pool work did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("public-key work panicked or was cancelled")]
    Failed,
}

impl CpuPool {
    /// `threads` 0 means one per core.
    pub fn new(threads: usize, queue: usize) -> CpuPool {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        CpuPool {
            admission: Arc::new(Semaphore::new(threads + queue)),
            running: Arc::new(Semaphore::new(threads)),
            capacity: threads + queue,
            threads,
            shed: AtomicUsize::new(0),
        }
    }

    /// A permit for one request, or None (counted) when the queue is full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.admission.clone().try_acquire_owned().ok();
        if p.is_none() {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// Runs `f` on a blocking thread once one of the `threads` slots is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _slot = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Failed)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| PoolError::Failed)
    }

    /// Requests admitted and not yet finished (running + waiting).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Public-key threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Requests admitted and waiting for a thread.
    pub fn waiting(&self) -> usize {
        let running = self.threads - self.running.available_permits();
        self.in_flight().saturating_sub(running)
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
        let pool = CpuPool::new(1, 1);
        let a = pool.admit().expect("first");
        let b = pool.admit().expect("second (queued)");
        assert!(pool.admit().is_none());
        assert_eq!((pool.in_flight(), pool.shed_count()), (2, 1));
        drop(a);
        assert!(pool.admit().is_some());
        drop(b);
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
    }
}
