//! CPU-bound work moved off the proxy's worker thread: parsing long SQL, masking large rows and
//! response bodies. The proxy's connections share one worker thread (see `main.rs`), so such
//! work runs on tokio's blocking pool, where the kernel shares the CPUs between it and the
//! worker. At most one job per CPU runs at once; the others wait (asynchronously) for a turn:
//! each job may hold a lot of memory (a parse takes about 100 times its text), and the blocking
//! pool alone would run up to 512 of them side by side.
use std::sync::LazyLock;

use tokio::sync::Semaphore;

/// Turns to run a job: one per CPU.
static TURNS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(turns()));

/// Why offloaded work gave no result.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// The job panicked (or the runtime is shutting down).
    #[error("offloaded work failed: {0}")]
    Failed(String),
}

/// Runs `job` on the blocking pool once a turn is free; its result, or why there is none.
pub async fn run<T, F>(job: F) -> Result<T, OffloadError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    // The semaphore is never closed.
    let _turn = TURNS
        .acquire()
        .await
        .map_err(|e| OffloadError::Failed(e.to_string()))?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| OffloadError::Failed(e.to_string()))
}

/// Polls `fut` once, then to its end: whether that first poll ended it, and its output. Work
/// handed to [`run`] never ends at the first poll, work done in place does (tests tell them
/// apart with it).
#[cfg(test)]
pub(crate) async fn first_poll_ends<F: std::future::Future>(fut: F) -> (bool, F::Output) {
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(out) => (true, out),
        Poll::Pending => (false, fut.await),
    }
}

/// How many jobs may run at once: the CPUs this process may use.
pub fn turns() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// Never more jobs at once than turns, however many are started; each gives its result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_at_most_one_per_cpu_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..4 * turns() + 3)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i
                }))
            })
            .collect();
        for (i, job) in jobs.into_iter().enumerate() {
            assert_eq!(job.await.unwrap().unwrap(), i);
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=turns()).contains(&most), "{most} at once");
    }

    #[tokio::test]
    async fn a_job_that_panics_is_an_error() {
        let r = run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(r, Err(OffloadError::Failed(_))), "{r:?}");
        assert_eq!(run(|| 7).await.unwrap(), 7, "the turn came back");
    }
}
