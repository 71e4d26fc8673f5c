//! Admission to public-key work.
//!
//! Admission is decided up front: a request takes one of `threads + queue`
//! permits or is shed (KDC_ERR_SVC_UNAVAILABLE) before any public-key work.
//! The work itself runs on the serving thread that read the request
//! (`server.rs`): handing it to separate threads cost two context switches
//! per request, more than everything around the signature but the
//! signature itself. Before running, an admitted request yields once, so
//! the other requests already readable on that thread reach admission (or
//! are shed) first: admitted requests wait their turn as in a queue.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admission to public-key work, and the turn an admitted request takes on
/// its serving thread.
pub struct AdmissionGate {
    admission: Arc<Semaphore>,
    capacity: usize,
    shed: AtomicUsize,
    threads: usize,
    /// Admitted requests doing public-key work right now.
    running: AtomicUsize,
    /// Told after each piece of public-key work: the service's dispatcher
    /// then lets this thread take its next request.
    after_work: fn(),
}

/// Why gated work did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("public-key work panicked")]
    Failed,
}

/// `listen.threads`, 0 meaning one per core: the serving threads, which
/// also do the public-key work.
pub fn serving_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

impl AdmissionGate {
    /// `threads`: the serving threads that do the work; `queue`: admitted
    /// requests that may wait for one.
    pub fn new(threads: usize, queue: usize) -> AdmissionGate {
        let threads = threads.max(1);
        AdmissionGate {
            admission: Arc::new(Semaphore::new(threads + queue)),
            capacity: threads + queue,
            threads,
            running: AtomicUsize::new(0),
            shed: AtomicUsize::new(0),
            after_work: || {},
        }
    }

    /// Calls `hook` on the working thread after each piece of public-key work.
    pub fn with_after_work(mut self, hook: fn()) -> AdmissionGate {
        self.after_work = hook;
        self
    }

    /// A permit for one request, or None (counted) when the queue is full.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let p = self.admission.clone().try_acquire_owned().ok();
        if p.is_none() {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    /// This request's turn on the thread, once the requests already
    /// readable here have been admitted or shed. The turn ends (and the
    /// thread may take its next request) when it is dropped or waits.
    pub async fn turn(&self) -> Turn<'_> {
        tokio::task::yield_now().await;
        self.running.fetch_add(1, Ordering::Relaxed);
        Turn {
            gate: self,
            active: true,
        }
    }

    /// Runs `f` in a turn of its own.
    pub async fn run<T, F>(&self, f: F) -> Result<T, GateError>
    where
        F: FnOnce() -> T,
    {
        self.turn().await.run(f)
    }

    /// Requests admitted and not yet finished (running + waiting).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Threads doing public-key work (the serving threads).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Admitted requests waiting for their turn.
    pub fn waiting(&self) -> usize {
        self.in_flight()
            .saturating_sub(self.running.load(Ordering::Relaxed))
    }

    /// Requests shed because the queue was full.
    pub fn shed_count(&self) -> usize {
        self.shed.load(Ordering::Relaxed)
    }

    fn end_turn(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        // This thread may take its next request from the backlog.
        (self.after_work)();
    }
}

/// An admitted request's time on its serving thread ([`AdmissionGate::turn`]).
pub struct Turn<'a> {
    gate: &'a AdmissionGate,
    active: bool,
}

impl Turn<'_> {
    /// Runs `f` now. A panic in `f` is an error, not a crash.
    pub fn run<T>(&mut self, f: impl FnOnce() -> T) -> Result<T, GateError> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|_| GateError::Failed)
    }

    /// Awaits `f`. An answer at hand (a table, a cache hit) keeps the turn;
    /// one that must be waited for (a provisioning-server lookup) gives the
    /// thread to the next request meanwhile and takes a new turn after.
    pub async fn wait<F: Future>(&mut self, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let first = std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = first {
            return out;
        }
        self.active = false;
        self.gate.end_turn();
        let out = f.await;
        tokio::task::yield_now().await;
        self.gate.running.fetch_add(1, Ordering::Relaxed);
        self.active = true;
        out
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.active {
            self.gate.end_turn();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sheds_beyond_capacity_and_runs_work() {
        let pool = AdmissionGate::new(1, 1);
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
    async fn a_panic_is_an_error_and_work_goes_on() {
        let pool = AdmissionGate::new(1, 0);
        let r: Result<(), _> = pool.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(GateError::Failed)));
        assert_eq!(pool.run(|| "still here").await.unwrap(), "still here");
    }

    #[tokio::test]
    async fn admitted_work_yields_to_requests_already_waiting() {
        // Two tasks on one thread: the first admitted yields, so the second
        // reaches admission before any work runs (tokio resumes yielded
        // tasks in either order).
        let pool = Arc::new(AdmissionGate::new(1, 1));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let local = tokio::task::LocalSet::new();
        for name in ["a", "b"] {
            let (pool, order) = (pool.clone(), order.clone());
            local.spawn_local(async move {
                let _permit = pool.admit().expect("admitted");
                order.lock().unwrap().push(format!("admit {name}"));
                let o = order.clone();
                pool.run(move || o.lock().unwrap().push(format!("run {name}")))
                    .await
                    .unwrap();
            });
        }
        local.await;
        let order = order.lock().unwrap();
        assert_eq!(order[..2], ["admit a", "admit b"], "{order:?}");
        let mut runs = order[2..].to_vec();
        runs.sort();
        assert_eq!(runs, ["run a", "run b"]);
        assert_eq!((pool.in_flight(), pool.waiting()), (0, 0));
    }
}
