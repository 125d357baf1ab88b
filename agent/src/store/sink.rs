//! The proxy's handle on the audit store: queues writes for the writer task without blocking.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::AuditFailure;

use super::{
    ConnectionEnd, ConnectionRecord, MAX_REQUEST_BODY, MAX_STATEMENT_TEXT, RequestRecord,
    StatementRecord, StoreError, StoreStats,
    backend::Op,
    spool::{Spool, Ticket},
    writer::FULL,
};

/// A record on its way to the writer, with its place in the spool if it has one.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) op: Op,
    /// Given back to the spool once the record is committed.
    pub(crate) ticket: Option<Ticket>,
}

/// State shared by the sinks, the writer task and the [`super::Store`].
#[derive(Debug)]
pub(crate) struct Shared {
    /// Operations committed.
    pub(crate) written: AtomicU64,
    /// Operations whose write failed, lost.
    pub(crate) failed: AtomicU64,
    /// Writes that failed as such.
    pub(crate) write_errors: AtomicU64,
    /// Operations refused on a full queue.
    pub(crate) queue_full: AtomicU64,
    /// Times a statement, request or connection waited for room in the queue.
    pub(crate) room_waits: AtomicU64,
    /// Times a session waited for results of its own, holding [`SESSION_IN_FLIGHT`] slots.
    pub(crate) session_waits: AtomicU64,
    /// Statements and requests let through without a slot (`audit_failure = "open"`).
    pub(crate) unheld: AtomicU64,
    /// Records that found no room in the spool.
    pub(crate) unspooled: AtomicU64,
    /// Transactions committed.
    pub(crate) commits: AtomicU64,
    /// Set to `true` to make the writer flush what is queued and stop.
    pub(crate) close: watch::Sender<bool>,
    /// The same signal, read on every send and hold without the watch channel's lock.
    closed: AtomicBool,
    /// Rung for a `begin` that waits for its commit, and with [`Self::flush`]: while the writer
    /// gathers a batch it sleeps on this and its timer only, so that statements and requests
    /// (which nobody waits on) do not wake its thread one by one, and a connection waiting on
    /// its record does not wait for the timer.
    pub(crate) wake: tokio::sync::Notify,
    /// Set (then [`Self::wake`] rung) when the writer should write what it gathered now: the
    /// records not yet committed reached a multiple of [`Self::full_at`], a record found no room
    /// in the spool or started its other segment (whose records must be committed before it is
    /// reused), or someone waits for room in the queue or found none. Cleared by the writer
    /// before each batch, which is then written without gathering if it was set.
    pub(crate) flush: AtomicBool,
    /// [`FULL`], or half the backlog if that is less: a small `audit_queue` must not fill while
    /// the writer gathers.
    pub(crate) full_at: usize,
    /// Records queued and not yet committed (or failed): in the queue or in the writer's batch.
    uncommitted: AtomicUsize,
    /// Rung by the writer each time it takes operations out of the queue, and by a slot given
    /// back unused: what waits for room ([`AuditSink::hold`]) looks again.
    pub(crate) drained: tokio::sync::Notify,
    /// Most records waiting for the writer (the configured `audit_queue`); records sent in
    /// held slots may go past it.
    pub(crate) backlog_max: usize,
    /// Most slots held at once ([`IN_FLIGHT`] in the agent).
    pub(crate) in_flight_max: usize,
    /// Slots held by work in flight ([`Slot`]) and not yet used.
    pub(crate) held: AtomicUsize,
    /// Where each record is copied before it is queued, when the store has one.
    pub(crate) spool: Option<Spool>,
    /// Set by the writer when a batch failed for another reason than its data (a full disk, a
    /// lock), cleared by the next commit: meanwhile a `begin` waits for its commit, so that a
    /// store that cannot write refuses connections instead of letting them through on the
    /// spool's word.
    pub(crate) write_failing: AtomicBool,
    /// When the write under way began, in milliseconds since `epoch` plus one; 0 while the
    /// writer is not writing. A write that takes longer than [`STALLED`] makes a `begin` wait
    /// for its commit too: a writer stuck in a write that has not failed yet (a lock, before
    /// the busy timeout; a hung disk) does not let connections through on the spool's word.
    writing_since: AtomicU64,
    epoch: std::time::Instant,
}

/// How long a write may run before a `begin` stops trusting the spool alone.
pub(crate) const STALLED: Duration = Duration::from_secs(1);

impl Shared {
    /// State for a queue of at most `backlog_max` records waiting for the writer (at least 1)
    /// and `in_flight_max` slots held; its channel needs room for both.
    #[cfg(test)]
    pub(crate) fn new(
        backlog_max: usize,
        in_flight_max: usize,
    ) -> (Arc<Self>, watch::Receiver<bool>) {
        Self::spooled(backlog_max, in_flight_max, None)
    }

    /// [`Self::new`], each record copied to `spool` before it is queued.
    pub(crate) fn spooled(
        backlog_max: usize,
        in_flight_max: usize,
        spool: Option<Spool>,
    ) -> (Arc<Self>, watch::Receiver<bool>) {
        let (close, closed) = watch::channel(false);
        let shared = Self {
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            room_waits: AtomicU64::new(0),
            session_waits: AtomicU64::new(0),
            unheld: AtomicU64::new(0),
            unspooled: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            close,
            closed: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            uncommitted: AtomicUsize::new(0),
            flush: AtomicBool::new(false),
            full_at: FULL.min(backlog_max / 2).max(1),
            drained: tokio::sync::Notify::new(),
            backlog_max: backlog_max.max(1),
            in_flight_max,
            held: AtomicUsize::new(0),
            spool,
            write_failing: AtomicBool::new(false),
            writing_since: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        };
        (Arc::new(shared), closed)
    }

    /// Most slots statements and requests may hold: the last quarter of the budget is kept for
    /// connection ends, so that work in flight never keeps new connections out.
    fn work_max(&self) -> usize {
        self.in_flight_max - self.in_flight_max / 4
    }

    /// Whether [`Self::close`] was called.
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Copies `op` into the spool: its ticket, or `None` when there is no spool or no room in it.
    pub(crate) fn spool(&self, op: &Op) -> Option<Ticket> {
        let ticket = self.spool.as_ref()?.append(op);
        if ticket.is_none() {
            self.unspooled.fetch_add(1, Ordering::Relaxed);
        }
        ticket
    }

    /// Counts a record about to be queued (before it is: the writer may commit it before the
    /// sender runs again): the records not yet committed, with it.
    pub(crate) fn uncommitted_with_one(&self) -> usize {
        self.uncommitted
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// After a record counted by [`Self::uncommitted_with_one`] was queued with `ticket`:
    /// asks the writer to write its batch now if it should not wait for its gathering timer
    /// (see [`Self::flush`]).
    pub(crate) fn queued(&self, uncommitted: usize, ticket: Option<Ticket>) {
        let spool_asks = match ticket {
            Some(ticket) => ticket.started_segment(),
            None => self.spool.is_some(),
        };
        if spool_asks || uncommitted.is_multiple_of(self.full_at) {
            self.ask_flush();
        }
    }

    /// Asks the writer to write what it gathered now ([`Self::flush`]).
    pub(crate) fn ask_flush(&self) {
        self.flush.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// By the writer: `records` of its batch were committed, failed, or left in the spool.
    pub(crate) fn done(&self, records: usize) {
        self.uncommitted.fetch_sub(records, Ordering::Relaxed);
    }

    /// Milliseconds since `epoch`, plus one (never 0).
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Marks a write under way (by the writer, around each batch), or none.
    pub(crate) fn writing(&self, under_way: bool) {
        let since = if under_way { self.now() } else { 0 };
        self.writing_since.store(since, Ordering::Relaxed);
    }

    /// Whether a `begin` may go ahead once its record is spooled: the last write did not fail
    /// and none has been running for longer than [`STALLED`].
    fn trusts_spool(&self) -> bool {
        if self.write_failing.load(Ordering::Relaxed) {
            return false;
        }
        let since = self.writing_since.load(Ordering::Relaxed);
        let stalled = u64::try_from(STALLED.as_millis()).unwrap_or(u64::MAX);
        since == 0 || self.now().saturating_sub(since) <= stalled
    }

    /// Asks the writer to flush and stop; later sends fail with [`StoreError::Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.close.send_replace(true);
    }
}

/// Queues audit records for the single writer task. Cheap to clone; never blocks a thread.
///
/// The channel holds two kinds of places: up to `audit_queue` records waiting for the writer
/// (the backlog), and the slots held by work in flight ([`Self::hold`]), up to [`IN_FLIGHT`].
/// Only the backlog tells whether the writer keeps up: work in flight (a long query, a streamed
/// response) does not count against it until its record is sent.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
    /// How long [`Self::hold`] and [`Self::begin`] wait for room in a full queue.
    wait: Duration,
    /// What [`Self::hold`] gives when that wait runs out: nothing (refuse the work), or a slot
    /// that holds no place (`audit_failure = "open"`).
    failure: AuditFailure,
}

impl AuditSink {
    pub(crate) fn new(tx: mpsc::Sender<Queued>, shared: Arc<Shared>) -> Self {
        Self {
            tx,
            shared,
            wait: Duration::ZERO,
            failure: AuditFailure::Closed,
        }
    }

    /// This sink, letting work through unheld when [`Self::hold`] finds no room
    /// (`AuditFailure::Open`), or not (`Closed`, the default).
    #[must_use]
    pub fn with_failure(self, failure: AuditFailure) -> Self {
        Self { failure, ..self }
    }

    /// This sink, waiting up to `wait` for room in a full queue (zero, the default: not at all).
    #[must_use]
    pub fn with_wait(self, wait: Duration) -> Self {
        Self { wait, ..self }
    }

    /// Records a connection about to reach its target and returns once the record is safe from
    /// a crash of the agent: copied into the spool, or, when the spool has no room or the writer's
    /// last batch failed, committed. Returns the slot held for the connection's end
    /// ([`Self::finish`]): an end is never lost to a full queue. On a full queue it first waits
    /// (up to the sink's wait), then fails with [`StoreError::QueueFull`]: the caller must then
    /// refuse the connection.
    pub async fn begin(&self, rec: ConnectionRecord) -> Result<Slot, StoreError> {
        let (done, committed) = oneshot::channel();
        // One free place is enough for a connection.
        let end = self
            .wait_for(1, || {
                if self.free(1) {
                    self.reserve(self.shared.in_flight_max)
                } else {
                    None
                }
            })
            .await;
        let Some(end) = end else {
            if self.shared.is_closed() {
                return Err(StoreError::Closed);
            }
            self.shared.queue_full.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::QueueFull);
        };
        if self.send(Op::Begin { rec, done }, self.shared.trusts_spool())? {
            return Ok(end);
        }
        self.shared.wake.notify_one();
        committed.await.map_err(|_| StoreError::Closed)??;
        Ok(end)
    }

    /// Queues a complete record (a connection that never reached upstream); does not wait.
    pub fn record(&self, rec: ConnectionRecord, end: ConnectionEnd) -> Result<(), StoreError> {
        self.send(Op::Record(rec, end), true).map(drop)
    }

    /// Queues the end of a connection recorded by [`Self::begin`], in the `slot` it returned;
    /// does not wait.
    pub fn finish(
        &self,
        id: uuid::Uuid,
        end: ConnectionEnd,
        slot: Option<Slot>,
    ) -> Result<(), StoreError> {
        self.send_in(slot, Op::Finish(id, end))
    }

    /// Queues a statement of a connection whose [`Self::begin`] has returned; does not wait.
    /// With the `slot` held for it ([`Self::hold`]) it always fits; without one (a denial, say)
    /// it fails at once with [`StoreError::QueueFull`] when the writer is behind. A text longer
    /// than [`MAX_STATEMENT_TEXT`] is cut first. A statement of an unknown connection, or a
    /// repeated `seq`, is refused by the database and counted as failed; it does not sink the
    /// others.
    pub fn statement(
        &self,
        mut rec: StatementRecord,
        slot: Option<Slot>,
    ) -> Result<(), StoreError> {
        cap_text(&mut rec.text, MAX_STATEMENT_TEXT);
        self.send_in(slot, Op::Statement(rec))
    }

    /// Queues an HTTP request of a connection whose [`Self::begin`] has returned; does not wait.
    /// Same rules as [`Self::statement`]; a body longer than [`MAX_REQUEST_BODY`] is cut first.
    pub fn request(&self, mut rec: RequestRecord, slot: Option<Slot>) -> Result<(), StoreError> {
        if let Some(body) = rec.body.as_mut() {
            cap_text(body, MAX_REQUEST_BODY);
        }
        self.send_in(slot, Op::Request(Box::new(rec)))
    }

    /// A sink whose queue a test reads instead of a writer: room for `backlog` records waiting,
    /// and as many slots.
    #[cfg(test)]
    pub(crate) fn for_tests(backlog: usize) -> (Self, Sent) {
        let (shared, _) = Shared::new(backlog, backlog);
        let (tx, rx) = mpsc::channel(2 * backlog.max(1));
        (Self::new(tx, shared), Sent(rx))
    }

    /// Counters of the writer and the current queue depth.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            written: self.shared.written.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
            queue_full: self.shared.queue_full.load(Ordering::Relaxed),
            room_waits: self.shared.room_waits.load(Ordering::Relaxed),
            session_waits: self.shared.session_waits.load(Ordering::Relaxed),
            unheld: self.shared.unheld.load(Ordering::Relaxed),
            unspooled: self.shared.unspooled.load(Ordering::Relaxed),
            commits: self.shared.commits.load(Ordering::Relaxed),
            queued: self.backlog(),
            pending: self.shared.uncommitted.load(Ordering::Relaxed),
            in_flight: self.shared.held.load(Ordering::Relaxed),
        }
    }

    /// Records waiting for the writer: the channel's used places, less the slots held and not
    /// yet used.
    fn backlog(&self) -> usize {
        let used = self.tx.max_capacity() - self.tx.capacity();
        used.saturating_sub(self.shared.held.load(Ordering::Relaxed))
    }

    /// Whether the queue has room for a burst of records: [`ROOM`] slots are kept free for the
    /// records nobody holds a slot for (denials, connection ends).
    pub(crate) fn has_room(&self) -> bool {
        self.free(ROOM)
    }

    /// Whether the backlog has room for `need` more records (at most the whole backlog).
    fn free(&self, need: usize) -> bool {
        let max = self.shared.backlog_max;
        max.saturating_sub(self.backlog()) >= need.min(max)
    }

    /// Holds a slot for the record of a statement or request about to be let through, so that
    /// its record cannot be lost to a full queue however many others are let through meanwhile.
    /// Only while [`Self::has_room`] (the writer keeps up, and the margin stays free for the
    /// records nobody holds a slot for), and while fewer than [`IN_FLIGHT`] slots are held. When
    /// there is none, waits up to the sink's wait: a writer that falls behind (a slow disk, a
    /// starved CPU) holds new work back, which lets it catch up, instead of refusing it at once.
    /// `None` when the wait ran out or the store is closed: the caller then refuses (fail
    /// closed). Waiting takes no slot, so records of work already done are never crowded out by
    /// what waits.
    ///
    /// Under `audit_failure = "open"`, the work is let through instead (in both cases), with a
    /// slot that holds no place ([`Slot::unheld`]): its record goes into the queue only if there
    /// is room when it is sent, and is otherwise lost (counted in `queue_full`; a closed store
    /// refuses it as `Closed`). Counted in `unheld` and logged (at most once a second).
    pub async fn hold(&self) -> Option<Slot> {
        let slot = self.wait_for(ROOM, || self.try_hold()).await;
        match (slot, self.failure) {
            (Some(slot), _) => Some(slot),
            (None, AuditFailure::Closed) => None,
            (None, AuditFailure::Open) => {
                self.shared.unheld.fetch_add(1, Ordering::Relaxed);
                warn_unheld();
                Some(Slot::unheld(self.shared.clone()))
            }
        }
    }

    /// [`Self::hold`] without waiting.
    pub fn try_hold(&self) -> Option<Slot> {
        if !self.has_room() {
            return None;
        }
        self.reserve(self.shared.work_max())
    }

    /// A slot for work in flight, if fewer than `max` are held and the store is open.
    fn reserve(&self, max: usize) -> Option<Slot> {
        if self.shared.is_closed() {
            return None;
        }
        // Counted first: the backlog never counts a held slot as a record.
        if self.shared.held.fetch_add(1, Ordering::Relaxed) >= max {
            self.shared.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match self.tx.clone().try_reserve_owned() {
            Ok(permit) => Some(Slot {
                permit: Some(permit),
                shared: self.shared.clone(),
                session: None,
            }),
            Err(_) => {
                self.shared.held.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Waits, for at most the sink's wait, until `take` succeeds; it is tried again each time
    /// the writer drains the queue. `need` is the number of free slots it takes, for a count of
    /// waits that only counts real ones.
    async fn wait_for<T>(&self, need: usize, take: impl Fn() -> Option<T>) -> Option<T> {
        if let Some(t) = take() {
            return Some(t);
        }
        if self.wait.is_zero() {
            return None;
        }
        if !self.free(need) {
            self.shared.room_waits.fetch_add(1, Ordering::Relaxed);
            // A writer gathering its batch would otherwise make this wait for its timer.
            self.shared.ask_flush();
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            // Registered before the check: a drain between the check and the await still wakes.
            let drained = self.shared.drained.notified();
            if let Some(t) = take() {
                return Some(t);
            }
            if self.shared.is_closed() || self.tx.is_closed() {
                return None;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return take();
            }
        }
    }

    /// Logs a record that could not be queued: at most once a second, with how many were lost
    /// meanwhile (a flood of lines would hide everything else).
    pub fn warn_dropped(&self, what: &'static str, e: &StoreError) {
        static LOST: EverySecond = EverySecond::new();
        if let Some(lost) = LOST.count() {
            tracing::warn!(error = %e, kind = what, lost, "audit records lost (queue full or store closed)");
        }
    }

    /// Makes the writer flush everything queued and stop, for every clone of this sink.
    /// [`super::Store::shutdown`] waits for it.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Sends `op` in its held slot (even while the store closes: the writer still takes what
    /// was sent before it stops), or without one like [`Self::send`].
    fn send_in(&self, slot: Option<Slot>, op: Op) -> Result<(), StoreError> {
        match slot {
            Some(mut slot) if slot.permit.is_some() => {
                slot.send(op);
                Ok(())
            }
            // No slot, or one that holds no place: a place if the queue has one.
            _ => self.send(op, true).map(drop),
        }
    }

    /// Sends a record that has no slot, copied into the spool first if `spool` and it has
    /// room: whether it was. Refused when the backlog is full.
    fn send(&self, op: Op, spool: bool) -> Result<bool, StoreError> {
        if self.shared.is_closed() {
            return Err(StoreError::Closed);
        }
        let full = || {
            self.shared.queue_full.fetch_add(1, Ordering::Relaxed);
            self.shared.ask_flush();
            StoreError::QueueFull
        };
        if !self.free(1) {
            return Err(full());
        }
        // The place first: a record is spooled only once it is sure to reach the writer.
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => full(),
            mpsc::error::TrySendError::Closed(()) => StoreError::Closed,
        })?;
        let ticket = if spool { self.shared.spool(&op) } else { None };
        let uncommitted = self.shared.uncommitted_with_one();
        permit.send(Queued { op, ticket });
        self.shared.queued(uncommitted, ticket);
        Ok(ticket.is_some())
    }
}

#[cfg(test)]
impl AuditSink {
    /// Whether the writer is inside a write now: its batch is fixed, it gathers no more.
    pub(crate) fn writing_now(&self) -> bool {
        self.shared.writing_since.load(Ordering::Relaxed) != 0
    }
}

/// What was sent to a sink made by [`AuditSink::for_tests`].
#[cfg(test)]
pub(crate) struct Sent(mpsc::Receiver<Queued>);

#[cfg(test)]
impl Sent {
    /// The statement records sent since the last call, in order; panics on any other kind.
    pub(crate) fn statements(&mut self) -> Vec<StatementRecord> {
        std::iter::from_fn(|| self.0.try_recv().ok())
            .map(|q| match q.op {
                Op::Statement(rec) => rec,
                other => panic!("not a statement: {other:?}"),
            })
            .collect()
    }
}

/// Free queue slots below which no slot is held for new statements and requests
/// ([`AuditSink::hold`]): the records nobody holds a slot for use them.
pub(crate) const ROOM: usize = 64;

/// Most slots held at once by work in flight, over the whole agent: one per open connection (for
/// its end) and one per statement or request running ([`AuditSink::hold`]), which may take three
/// quarters of them. Beyond it, new work waits (then is refused) as when the writer falls
/// behind. The channel's places cost no memory until a record fills them.
pub(crate) const IN_FLIGHT: usize = 65_536;

/// Most slots one session may hold at once ([`SessionBudget`]): a PostgreSQL session that
/// pipelines Executes without reading their results holds one per Execute, and without a cap
/// one session could take the statements' whole share of [`IN_FLIGHT`] and make every other
/// workload wait. At the cap, the session waits for results of its own, and only it stalls.
pub const SESSION_IN_FLIGHT: usize = 1024;

/// The slots one session may hold ([`SESSION_IN_FLIGHT`]); each [`Slot`] it holds carries one
/// of its permits ([`Slot::in_session`]), given back with the slot.
#[derive(Debug, Clone)]
pub struct SessionBudget(Arc<tokio::sync::Semaphore>);

/// One of a [`SessionBudget`]'s permits.
#[derive(Debug)]
pub struct SessionPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Default for SessionBudget {
    fn default() -> Self {
        Self::new(SESSION_IN_FLIGHT)
    }
}

impl SessionBudget {
    /// A budget of `n` slots.
    pub fn new(n: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(n)))
    }

    /// A permit, if the session holds fewer slots than its budget.
    pub fn try_take(&self) -> Option<SessionPermit> {
        let permit = self.0.clone().try_acquire_owned().ok()?;
        Some(SessionPermit { _permit: permit })
    }

    /// Waits until the session holds fewer slots than its budget (its own results give them
    /// back), counting the wait in `sink`'s `session_waits`.
    pub async fn take(&self, sink: &AuditSink) -> SessionPermit {
        sink.shared.session_waits.fetch_add(1, Ordering::Relaxed);
        let permit = self.0.clone().acquire_owned().await;
        SessionPermit {
            _permit: permit.expect("the semaphore is never closed"),
        }
    }
}

/// A place in the audit queue held for one record: of a statement or request let through
/// ([`AuditSink::hold`]), or of a connection's end ([`AuditSink::begin`]); given back when
/// dropped unused.
pub struct Slot {
    permit: Option<mpsc::OwnedPermit<Queued>>,
    shared: Arc<Shared>,
    /// The session's permit, given back with the slot.
    session: Option<SessionPermit>,
}

impl Slot {
    /// A slot that holds no place in the queue, for work let through when none was to be had
    /// (`audit_failure = "open"`): its record is sent as one without a slot.
    fn unheld(shared: Arc<Shared>) -> Self {
        Self {
            permit: None,
            shared,
            session: None,
        }
    }

    /// The slot counted in its session's budget until it is used or given back.
    pub fn in_session(mut self, permit: SessionPermit) -> Self {
        self.session = Some(permit);
        self
    }

    fn send(&mut self, op: Op) {
        if let Some(permit) = self.permit.take() {
            let ticket = self.shared.spool(&op);
            let uncommitted = self.shared.uncommitted_with_one();
            permit.send(Queued { op, ticket });
            self.shared.held.fetch_sub(1, Ordering::Relaxed);
            self.shared.queued(uncommitted, ticket);
        }
        self.session = None;
    }

    /// A slot of a queue nobody reads, for recorders in tests.
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        let (tx, rx) = mpsc::channel(1);
        std::mem::forget(rx);
        let (shared, _) = Shared::new(1, 1);
        shared.held.fetch_add(1, Ordering::Relaxed);
        Self {
            permit: Some(tx.try_reserve_owned().expect("an empty queue has room")),
            shared,
            session: None,
        }
    }
}

impl Drop for Slot {
    /// A slot given back unused (the work failed or its session ended): whoever waits for one
    /// may take it.
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            drop(permit);
            // Only a full budget has waiters a slot given back can help (the backlog is as it
            // was): no wake-up, and no lock taken, for the slots a Parse checks and gives back.
            let before = self.shared.held.fetch_sub(1, Ordering::Relaxed);
            if before >= self.shared.work_max() {
                self.shared.drained.notify_waiters();
            }
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// Logs work let through unheld: at most once a second, with how many meanwhile.
fn warn_unheld() {
    static UNHELD: EverySecond = EverySecond::new();
    if let Some(unheld) = UNHELD.count() {
        tracing::warn!(
            unheld,
            "audit store behind: work let through without a place for its record (audit_failure = open)"
        );
    }
}

/// Counts events, and says when to log them: at most once a second (a flood of lines would hide
/// everything else), with how many came since the last line.
struct EverySecond {
    last: AtomicU64,
    since: AtomicU64,
}

impl EverySecond {
    const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Counts one event; `Some(events since the last line)` when a line is due.
    fn count(&self) -> Option<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let since = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        (self.last.swap(now, Ordering::Relaxed) != now).then(|| {
            self.since.store(0, Ordering::Relaxed);
            since
        })
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, then appends `… [N more bytes]`
/// (N counts the bytes cut).
pub(super) fn cap_text(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let end = text.floor_char_boundary(max);
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… [{cut} more bytes]"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text a session cut is stored as it is, its count of cut bytes exact.
    #[test]
    fn a_statement_text_cut_by_the_session_is_kept() {
        let mut t = "x".repeat(MAX_STATEMENT_TEXT * 4);
        super::super::cap_statement_text(&mut t);
        assert!(t.len() <= MAX_STATEMENT_TEXT, "{}", t.len());
        assert!(t.ends_with(&format!("… [{} more bytes]", MAX_STATEMENT_TEXT * 3 + 64)));
        let cut = t.clone();
        cap_text(&mut t, MAX_STATEMENT_TEXT);
        assert_eq!(t, cut);
    }

    #[test]
    fn cap_text_cases() {
        // (text, max, want)
        let cases = [
            ("select 1", 8, "select 1"),
            ("select 1", 100, "select 1"),
            ("select 12", 8, "select 1… [1 more bytes]"),
            ("", 0, ""),
            ("abc", 0, "… [3 more bytes]"),
            // 'é' is 2 bytes: a cut inside it backs off to the boundary before it.
            ("aé", 2, "a… [2 more bytes]"),
            ("aéb", 3, "aé… [1 more bytes]"),
        ];
        for (text, max, want) in cases {
            let mut t = text.to_owned();
            cap_text(&mut t, max);
            assert_eq!(t, want, "{text:?} / {max}");
        }
    }
}
