//! The single writer (its own thread, see `spawn_writer`): drains the queue in batches, one transaction per batch (group commit).
use std::sync::{Arc, atomic::Ordering};

use tokio::sync::{mpsc, watch};
use tracing::{debug, error, trace, warn};

use super::{
    StoreError, WriteError,
    backend::{Op, WriteBackend},
    sink::{Queued, Shared},
    spool::{Released, Ticket},
};

/// Most operations committed in one transaction.
pub(crate) const BATCH_MAX: usize = 2048;

/// How long a batch nobody waits on may gather more operations in a store without a spool (in
/// one with a spool, a record without a place in it asks for a write at once): at most this much
/// of the statement, request and end records can be lost in a crash (their connection records
/// are committed before their connection proceeds).
pub(crate) const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a batch may gather in a store with a spool: spooled records survive a crash whatever
/// the wait (a record without a place in the spool asks for a write at once, [`Shared::flush`]),
/// and fewer, larger commits cost less per record (each commit writes every index page its rows
/// touched, and a busy agent's rows touch one page per open session). The price: a record shows
/// in `tollgate sessions` up to this much later.
pub(crate) const GATHER_SPOOLED: std::time::Duration = std::time::Duration::from_millis(50);

/// Records at which a gathering batch is written without waiting for its time: senders ask the
/// writer to write each time the records not yet committed reach a multiple of it (of half
/// the backlog, if that is less; [`Shared::full_at`]), so that a busy agent's queue does not
/// fill while the writer sleeps.
pub(crate) const FULL: usize = BATCH_MAX / 2;

/// Most spooled records kept from a write that failed as such, to be tried again.
const KEPT_MAX: usize = BATCH_MAX / 2;

/// After a write that failed as such, how long the writer waits before it tries its spooled
/// records again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// While stopping, how long the writer waits for a record before it stops anyway (a record
/// that waits in its held slot must come sooner: see `http::audit::BODY_WAIT`).
pub(crate) const CLOSE_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The operations of one transaction, each with its place in the spool if it has one.
#[derive(Default)]
struct Batch {
    ops: Vec<Op>,
    tickets: Vec<Option<Ticket>>,
}

impl Batch {
    fn push(&mut self, q: Queued) {
        self.ops.push(q.op);
        self.tickets.push(q.ticket);
    }

    fn len(&self) -> usize {
        self.ops.len()
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Whether someone waits for the commit of an operation from `from` on: a `begin` that
    /// found no room in the spool.
    fn waited_on(&self, from: usize) -> bool {
        self.ops[from..]
            .iter()
            .zip(&self.tickets[from..])
            .any(|(op, ticket)| op.has_waiter() && ticket.is_none())
    }

    /// Whether the batch may gather: nobody waits on it, and it holds records that are safe
    /// meanwhile (spooled) or that nobody would have waited on anyway.
    fn may_gather(&self) -> bool {
        !self.waited_on(0)
            && self
                .ops
                .iter()
                .zip(&self.tickets)
                .any(|(op, ticket)| op.is_bulk() || ticket.is_some())
    }
}

/// Moves what is queued into `batch` (up to [`BATCH_MAX`]) and tells whoever waits for room.
fn drain(rx: &mut mpsc::Receiver<Queued>, batch: &mut Batch, shared: &Shared) {
    while batch.len() < BATCH_MAX {
        match rx.try_recv() {
            Ok(q) => batch.push(q),
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
    mut rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut closing = false;
    let mut closing_error = None;
    let mut batch = Batch::default();
    let gather = if shared.spool.is_some() {
        GATHER_SPOOLED
    } else {
        GATHER
    };
    loop {
        if batch.is_empty() {
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
        } else if !closing {
            // Spooled records kept from a write that failed: tried again after a pause (a full
            // disk fails at once; a lock already cost the busy timeout), with what came since.
            tokio::select! {
                () = tokio::time::sleep(RETRY_AFTER) => {}
                _ = close.wait_for(|closed| *closed) => {
                    closing = true;
                    rx.close();
                }
            }
        }
        drain(&mut rx, &mut batch, &shared);
        // Records nobody waits on: let the batch gather for a moment, so that a busy agent
        // costs one commit per many records instead of one per statement. The writer then
        // sleeps on its timer and on `wake` only (not on the queue, whose every send would wake
        // this thread): a `begin` waiter is answered at once, connection records stay
        // write-ahead, and the batch is written at once when a sender asks (`Shared::flush`:
        // a full batch, a spool that needs its other segment back or has no room, a full
        // queue).
        // A request for a write is met by this batch whether it gathers or not: cleared first,
        // so that it never cuts a later batch's gathering short.
        let flush = shared.flush.swap(false, Ordering::Relaxed);
        if !closing && !flush && batch.may_gather() && batch.len() < shared.full_at {
            let deadline = tokio::time::Instant::now() + gather;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {
                        drain(&mut rx, &mut batch, &shared);
                        break;
                    }
                    () = shared.wake.notified() => {
                        let from = batch.len();
                        drain(&mut rx, &mut batch, &shared);
                        if shared.flush.swap(false, Ordering::Relaxed)
                            || batch.len() >= shared.full_at
                            || batch.waited_on(from)
                        {
                            break;
                        }
                    }
                }
            }
        }
        if let Err(e) = commit(&mut db, &mut batch, &shared, !closing).await
            && closing
        {
            closing_error = Some(e);
        }
    }
    db.close().await;
    if let Some(spool) = &shared.spool
        && spool.clear_if_committed()
    {
        debug!("audit spool emptied: every record in it was committed");
    }
    debug!("audit writer stopped");
    closing_error.map_or(Ok(()), |e| Err(StoreError::Write(e)))
}

/// Writes `batch`, answers its waiters and gives its records' places in the spool back. A batch
/// rejected for its data (a constraint) is retried one operation at a time so that one bad
/// record does not sink the others. A write that fails as such (a lock past the busy timeout, a
/// full disk) fails what is not spooled at once (no retry storm, and a `begin` waiting for its
/// commit is refused), and leaves the spooled records in `batch`, in order, to be tried again
/// if `keep` (the writer is not stopping; else they stay in the spool for the next start).
async fn commit<B: WriteBackend>(
    db: &mut B,
    batch: &mut Batch,
    shared: &Shared,
    keep: bool,
) -> Result<(), Arc<WriteError>> {
    let ops = std::mem::take(&mut batch.ops);
    let tickets = std::mem::take(&mut batch.tickets);
    let n = ops.len();
    let mut released = Released::default();
    let mut kept = 0_usize;
    shared.writing(true);
    // At most half a batch is kept, so that each retry also takes records from the queue: a
    // `begin` waiting there for its commit is answered, not starved behind kept records. The
    // others stay in the spool (never given back) and are written at the next start.
    let mut set_aside = |op: Op, ticket: Option<Ticket>, e: &Arc<WriteError>| match ticket {
        Some(ticket) if keep && batch.len() < KEPT_MAX => {
            batch.push(Queued {
                op,
                ticket: Some(ticket),
            });
            kept += 1;
        }
        // Left in the spool: not lost.
        Some(_) => answer(op, Err(StoreError::Write(e.clone()))),
        None => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            answer(op, Err(StoreError::Write(e.clone())));
        }
    };
    let result = match db.write_batch(&ops).await {
        Ok(()) => {
            trace!(ops = n, "audit batch committed");
            committed(shared, n);
            released.add(tickets.into_iter().flatten());
            ops.into_iter().for_each(|op| answer(op, Ok(())));
            Ok(())
        }
        Err(e) if n > 1 && e.is_data() => {
            warn!(error = %e, ops = n, "audit batch rejected; writing its records one by one");
            let mut last = Ok(());
            let mut each = ops.into_iter().zip(tickets);
            while let Some((op, ticket)) = each.next() {
                match db.write_batch(std::slice::from_ref(&op)).await {
                    Ok(()) => {
                        committed(shared, 1);
                        released.add(ticket);
                        answer(op, Ok(()));
                    }
                    // A record its database refuses is never written: its place goes back.
                    Err(e) if e.is_data() => {
                        released.add(ticket);
                        let e = lost(shared, 1, e);
                        answer(op, Err(StoreError::Write(e.clone())));
                        last = Err(e);
                    }
                    // The write itself failed: this one and the rest are set aside at once,
                    // not one busy timeout and one log line each.
                    Err(e) => {
                        let e = write_failed(shared, e);
                        set_aside(op, ticket, &e);
                        each.by_ref()
                            .for_each(|(op, ticket)| set_aside(op, ticket, &e));
                        last = Err(e);
                    }
                }
            }
            last
        }
        Err(e) if e.is_data() => {
            released.add(tickets.into_iter().flatten());
            let e = lost(shared, n, e);
            ops.into_iter()
                .for_each(|op| answer(op, Err(StoreError::Write(e.clone()))));
            Err(e)
        }
        Err(e) => {
            let e = write_failed(shared, e);
            ops.into_iter()
                .zip(tickets)
                .for_each(|(op, ticket)| set_aside(op, ticket, &e));
            Err(e)
        }
    };
    shared.writing(false);
    shared.done(n - kept);
    if let Some(spool) = &shared.spool {
        spool.release(released);
    }
    match &result {
        Err(e) if !e.is_data() => error!(
            error = %e,
            ops = n,
            kept,
            "audit records not written: the spooled ones are tried again (or written at the next \
             start), the others are lost"
        ),
        _ => shared.write_failing.store(false, Ordering::Relaxed),
    }
    result
}

/// A write that failed as such: counted, and the store marked failing before any waiter is
/// answered, so that a `begin` after the answer already waits for its commit.
fn write_failed(shared: &Shared, e: WriteError) -> Arc<WriteError> {
    shared.write_errors.fetch_add(1, Ordering::Relaxed);
    shared.write_failing.store(true, Ordering::Relaxed);
    Arc::new(e)
}

fn committed(shared: &Shared, ops: usize) {
    shared.commits.fetch_add(1, Ordering::Relaxed);
    shared.written.fetch_add(ops as u64, Ordering::Relaxed);
}

/// Records the database refused: logged and counted as lost.
fn lost(shared: &Shared, ops: usize, e: WriteError) -> Arc<WriteError> {
    error!(error = %e, ops, "audit records refused by the database");
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
