//! The single writer (its own thread, see `spawn_writer`): drains the queue in batches, one transaction per batch (group commit).
use std::sync::{Arc, atomic::Ordering};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, trace, warn};

use super::{
    StoreError, WriteError,
    backend::{Op, WriteBackend},
    sink::Shared,
};

/// Most operations committed in one transaction.
pub(crate) const BATCH_MAX: usize = 2048;

/// How long a batch nobody waits on may gather more operations. At most this much of the
/// statement/request/end records can be lost in a crash of the agent; connection records are
/// committed before their connection proceeds.
pub(crate) const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// While stopping, how long the writer waits for a record before it stops anyway.
const CLOSE_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Moves what is queued into `batch` (up to [`BATCH_MAX`]) and tells whoever waits for room.
fn drain(rx: &mut mpsc::Receiver<Op>, batch: &mut Vec<Op>, shared: &Shared) {
    while batch.len() < BATCH_MAX {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    shared.drained.notify_waiters();
}

/// Runs until the queue is closed (by [`Shared::close`] or the drop of every sink) and drained.
/// Returns the error of a batch that failed after the close signal, so that
/// [`super::Store::shutdown`] can report records lost while stopping.
pub(crate) async fn run<B: WriteBackend>(
    mut db: B,
    mut rx: mpsc::Receiver<Op>,
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut closing = false;
    let mut closing_error = None;
    let mut batch = Vec::with_capacity(BATCH_MAX);
    loop {
        let first = if closing {
            // Past a while with nothing coming, what still holds a slot (a task the agent's
            // stop did not reach) must not keep the writer from stopping.
            match tokio::time::timeout(CLOSE_IDLE, rx.recv()).await {
                Ok(op) => op,
                Err(_) => {
                    let held = shared.held.load(Ordering::Relaxed);
                    warn!(
                        held,
                        "audit writer stopping with slots still held: their records are lost"
                    );
                    break;
                }
            }
        } else {
            tokio::select! {
                op = rx.recv() => op,
                _ = close.wait_for(|closed| *closed) => {
                    debug!(queued = rx.len(), "audit writer closing: flushing the queue");
                    closing = true;
                    rx.close();
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        batch.push(first);
        drain(&mut rx, &mut batch, &shared);
        // Statement and request records nobody waits on: let the batch gather for a moment, so
        // that a busy session costs one commit per few milliseconds instead of one per statement.
        // The writer then sleeps on its timer and on `begin_queued` only (not on the queue, whose
        // every send would wake this thread): a `begin` waiter is answered at once, and
        // connection records stay write-ahead.
        if !closing
            && batch.iter().any(Op::is_bulk)
            && !batch.iter().any(Op::has_waiter)
            && batch.len() < BATCH_MAX
        {
            let deadline = tokio::time::Instant::now() + GATHER;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {
                        drain(&mut rx, &mut batch, &shared);
                        break;
                    }
                    () = shared.begin_queued.notified() => {
                        let from = batch.len();
                        drain(&mut rx, &mut batch, &shared);
                        if batch.len() >= BATCH_MAX || batch[from..].iter().any(Op::has_waiter) {
                            break;
                        }
                    }
                }
            }
        }
        if let Err(e) = commit(&mut db, &mut batch, &shared).await
            && closing
        {
            closing_error = Some(e);
        }
    }
    db.close().await;
    debug!("audit writer stopped");
    closing_error.map_or(Ok(()), |e| Err(StoreError::Write(e)))
}

/// Writes `batch` (emptied) and answers its waiters. A batch rejected for its data (a constraint)
/// is retried one operation at a time so that one bad record does not sink the others; any other
/// error fails the whole batch at once (no retry storm on a locked or full disk).
async fn commit<B: WriteBackend>(
    db: &mut B,
    batch: &mut Vec<Op>,
    shared: &Shared,
) -> Result<(), Arc<WriteError>> {
    let n = batch.len();
    match db.write_batch(batch).await {
        Ok(()) => {
            trace!(ops = n, "audit batch committed");
            committed(shared, n);
            batch.drain(..).for_each(|op| answer(op, Ok(())));
            Ok(())
        }
        Err(e) if n > 1 && e.is_data() => {
            warn!(error = %e, ops = n, "audit batch rejected; writing its records one by one");
            let mut last = Ok(());
            let mut ops = batch.drain(..);
            for op in ops.by_ref() {
                let one = std::slice::from_ref(&op);
                match db.write_batch(one).await {
                    Ok(()) => {
                        committed(shared, 1);
                        answer(op, Ok(()));
                    }
                    Err(e) => {
                        let data = e.is_data();
                        let e = failed(shared, 1, e);
                        answer(op, Err(StoreError::Write(e.clone())));
                        last = Err(e);
                        if !data {
                            break;
                        }
                    }
                }
            }
            // The write itself failed (a lock, a full disk): the rest (none if the loop got to
            // the end) fail with it at once, not one busy timeout and one log line each.
            if let Err(e) = &last {
                shared.failed.fetch_add(ops.len() as u64, Ordering::Relaxed);
                ops.for_each(|op| answer(op, Err(StoreError::Write(e.clone()))));
            }
            last
        }
        Err(e) => {
            let e = failed(shared, n, e);
            batch
                .drain(..)
                .for_each(|op| answer(op, Err(StoreError::Write(e.clone()))));
            Err(e)
        }
    }
}

fn committed(shared: &Shared, ops: usize) {
    shared.commits.fetch_add(1, Ordering::Relaxed);
    shared.written.fetch_add(ops as u64, Ordering::Relaxed);
}

fn failed(shared: &Shared, ops: usize, e: WriteError) -> Arc<WriteError> {
    error!(error = %e, ops, "audit records not written");
    shared.failed.fetch_add(ops as u64, Ordering::Relaxed);
    Arc::new(e)
}

/// Wakes the waiter of a `begin`; the other operations have none.
fn answer(op: Op, result: Result<(), StoreError>) {
    if let Op::Begin { done, .. } = op {
        // The waiter may have given up (its connection task was cancelled).
        let _ = done.send(result);
    }
}
