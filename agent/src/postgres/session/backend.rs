//! Server → client: responses are matched against what the client asked for, rows are masked,
//! and each statement's audit is completed when its result arrives.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::{
    masking::{MaskCounts, Masker},
    postgres::protocol::{
        BackendFrame, BackendMessage, CopyData, MAX_MESSAGE_LEN, ObjectKind, RowValues,
        TransactionStatus, next_backend,
    },
    proxy::Context,
    store::AuditSink,
};

use super::{
    check::SessionMeta,
    diagnostics,
    frontend::{record_done, record_unanswered},
    state::{self, Columns, Desync, Expect, Shared, State},
    stream::{self, ReadError},
};

/// Marker for values whose column could not be learned while column rules are on.
const UNKNOWN_COLUMN_MARK: &str = "[REDACTED]";
/// A DataRow or CopyData masked on the worker thread at most, bytes; a larger one is masked on
/// the blocking pool (the proxy's connections share the worker, and the detectors take some
/// 4 ms per MiB of text: a value of tens of MiB would hold every connection still).
const MASK_INLINE: usize = 64 << 10;

/// Pumps server messages to the client until the server closes.
#[allow(clippy::too_many_arguments)]
pub async fn pump<R, W>(
    ctx: &Context,
    meta: &SessionMeta,
    masker: &Arc<Masker>,
    shared: &Shared,
    mut server: R,
    mut buf: BytesMut,
    mut client: W,
    bytes_down: &AtomicU64,
) -> Result<(), ReadError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        let Some(frame) = next_backend(&mut buf, MAX_MESSAGE_LEN)? else {
            if !out.is_empty() {
                client.write_all(&out).await?;
                client.flush().await?;
                bytes_down.fetch_add(out.len() as u64, Ordering::Relaxed);
                out.clear();
            }
            if stream::fill(&mut server, &mut buf).await? == 0 {
                return Ok(());
            }
            continue;
        };
        let Some(frame) = mask_large(masker, shared, frame, &mut out).await? else {
            continue;
        };
        on_frame(&ctx.audit, meta, masker, shared, frame, &mut out)?;
        // Large result sets: do not let the outgoing buffer grow without bound.
        if out.len() >= 64 * 1024 {
            client.write_all(&out).await?;
            bytes_down.fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
        }
    }
}

fn on_frame(
    audit: &AuditSink,
    meta: &SessionMeta,
    masker: &Masker,
    shared: &Shared,
    frame: BackendFrame,
    out: &mut BytesMut,
) -> Result<(), ReadError> {
    let mut st = shared.lock();
    match frame.tag() {
        b'1' => {
            if let Expect::Parse { swallow: true, .. } =
                st.take("ParseComplete", |e| matches!(e, Expect::Parse { .. }))?
            {
                return Ok(());
            }
        }
        b'2' => match st.take("BindComplete", |e| matches!(e, Expect::Bind { .. }))? {
            Expect::Bind { swallow: true, .. } => return Ok(()),
            Expect::Bind { generation, .. } => st.bound = st.bound.max(generation),
            _ => {}
        },
        b'3' => {
            st.take("CloseComplete", |e| matches!(e, Expect::Close { .. }))?;
        }
        // ParameterDescription: RowDescription or NoData follows.
        b't' => st.expect_front("ParameterDescription", |e| {
            matches!(
                e,
                Expect::Describe {
                    kind: ObjectKind::Statement,
                    ..
                }
            )
        })?,
        b'n' => {
            // NoData: a statement that returns no rows (binary formats are then harmless).
            if let Expect::Describe {
                kind: ObjectKind::Statement,
                name,
                generation,
                ..
            } = st.take("NoData", |e| matches!(e, Expect::Describe { .. }))?
                && let Some(p) = st.prepared.get_mut(&name)
                && p.generation == generation
            {
                p.fields = Some(Vec::new());
            }
        }
        // Nothing is masked: a RowDescription only settles a pending Describe; rows pass as is.
        b'T' if masker.is_empty() => {
            st.expect_front("RowDescription", described)?;
            if matches!(st.expect.front(), Some(Expect::Describe { .. })) {
                st.pop();
            }
        }
        b'T' => {
            let Ok(BackendMessage::RowDescription(rd)) = frame.decode() else {
                return Err(bad("RowDescription"));
            };
            st.expect_front("RowDescription", described)?;
            match st.expect.front_mut() {
                Some(Expect::Describe { .. }) => {
                    let Some(Expect::Describe {
                        kind,
                        name,
                        generation,
                        exprs,
                    }) = st.pop()
                    else {
                        unreachable!("a Describe is owed first")
                    };
                    // What the name means now may have been parsed or bound again since the
                    // Describe was sent: only what it described takes the answer.
                    match kind {
                        ObjectKind::Statement => {
                            if let Some(p) = st.prepared.get_mut(&name)
                                && p.generation == generation
                            {
                                p.fields = Some(rd.fields.clone());
                            }
                        }
                        ObjectKind::Portal => {
                            let columns = state::columns(
                                masker,
                                &meta.catalog,
                                &rd.fields,
                                None,
                                exprs.as_deref(),
                            );
                            if let Some(p) = st.portals.get_mut(&name)
                                && p.generation == generation
                            {
                                p.columns = Some(columns.clone());
                            }
                            st.portal_described(generation, &columns);
                        }
                    }
                }
                Some(Expect::Query { columns, exprs, .. }) => {
                    // A BINARY cursor's rows come in binary format on the simple protocol, with
                    // no Bind where they could be refused first: the session ends instead.
                    if !meta.binary_allowed && rd.fields.iter().any(|f| f.format != 0) {
                        return Err(ReadError::Violation(
                            "binary-format rows (a BINARY cursor) on a target that masks and \
                             refuses binary results"
                                .to_owned(),
                        ));
                    }
                    let plan = exprs.clone();
                    *columns = Some(state::columns(
                        masker,
                        &meta.catalog,
                        &rd.fields,
                        None,
                        plan.as_deref(),
                    ));
                }
                _ => {} // Checked above.
            }
        }
        b'D' if !masker.is_empty() => {
            let cols = current_columns(&st.expect);
            let mut counts = MaskCounts::default();
            let masked = mask_row(masker, cols.as_ref(), &frame, &mut counts, out)?;
            if !counts.is_empty() {
                add_counts(&mut st.expect, &counts);
            }
            if masked {
                return Ok(());
            }
        }
        b'd' if st.copy_out && masker.has_detectors() => {
            let mut counts = MaskCounts::default();
            let masked = mask_copy(masker, &frame, &mut counts, out)?;
            if !counts.is_empty() {
                add_counts(&mut st.expect, &counts);
            }
            if masked {
                return Ok(());
            }
        }
        b'G' => st.copy_in_response()?,
        // Only a replication connection (refused at startup) copies both ways, and tollgate
        // never forwards a FunctionCall.
        b'W' | b'V' => {
            return Err(ReadError::Violation(format!(
                "unexpected {} from the server",
                frame.name()
            )));
        }
        b'H' => st.copy_out = true,
        b'c' => st.copy_out = false,
        b'C' | b'I' | b's' => {
            st.expect_front(frame.name(), |e| {
                matches!(e, Expect::Query { .. } | Expect::Execute { .. })
            })?;
            let rows = match frame.decode() {
                Ok(BackendMessage::CommandComplete(c)) => c.rows(),
                _ => None,
            };
            st.copy_out = false;
            complete(audit, meta, &mut st, rows, None, frame.tag() == b's');
        }
        b'E' => {
            let mut decoded = match frame.decode() {
                Ok(BackendMessage::ErrorResponse(e)) => Some(e),
                _ => None,
            };
            // tollgate's own denial, raised by the server for tollgate's own statement: shown
            // without the PL/pgSQL context and source location of the DO block that raised it.
            // Any other error's text may hold row values (a client's own DO block or function
            // raising the same words included): masked as rows are (`diagnostics`), for the
            // client and the record alike.
            let own = st.expect.front().is_some_and(Expect::is_raising)
                && decoded
                    .as_ref()
                    .is_some_and(|e| diagnostics::is_own(&e.fields));
            let mut counts = MaskCounts::default();
            let masked = match decoded.as_mut() {
                Some(e) if !own => diagnostics::mask_fields(masker, &mut e.fields, &mut counts),
                // Undecodable: forwarded as it came only when nothing masks.
                None if !masker.is_empty() => {
                    return Err(ReadError::Violation(
                        "an ErrorResponse tollgate cannot read on a masking target".to_owned(),
                    ));
                }
                _ => false,
            };
            add_counts(&mut st.expect, &counts);
            let message = decoded.as_ref().map_or_else(
                || "error".to_owned(),
                |e| {
                    format!(
                        "{}: {}",
                        e.sqlstate().unwrap_or("?????"),
                        e.message().unwrap_or_default()
                    )
                },
            );
            let rewritten = match decoded {
                Some(e) if own => Some(crate::postgres::protocol::ErrorResponse::new(
                    e.severity().unwrap_or("ERROR"),
                    e.sqlstate().unwrap_or(super::deny::SQLSTATE_DENIED),
                    e.message().unwrap_or_default(),
                )),
                Some(e) if masked => Some(e),
                _ => None,
            };
            st.copy_out = false;
            let simple = matches!(st.expect.front(), Some(Expect::Query { .. }));
            let owed = !st.expect.is_empty();
            if simple {
                st.query_failed();
            }
            // Refused before it ran (the error answers its Parse or Bind): its Execute is the
            // attempt. Taken before `complete`, which takes an Execute the error answers: the
            // entry after that one is not the failed one.
            let refused = (!simple).then(|| st.execute_of_failed()).flatten();
            // The error answers a Parse (the client's or tollgate's own): PostgreSQL dropped
            // the unnamed statement before it failed.
            let parse_failed = matches!(st.expect.front(), Some(Expect::Parse { .. }));
            complete(audit, meta, &mut st, None, Some(&message), false);
            if !simple {
                if let Some(Expect::Execute {
                    audit: Some(a),
                    slot: Some(slot),
                    ..
                }) = refused
                {
                    record_done(audit, meta, a, Some(slot), None, Some(&message));
                }
                // Extended protocol: the server skips everything up to the next Sync. What the
                // client sent of it already goes (with the slots held for records), and what
                // its Parses, Binds and Closes changed is taken back. A copy in that fails (bad
                // data, CopyFail) ends with its Execute.
                st.skip_to_sync(parse_failed);
                // No Sync owed: the client has not sent the batch's end yet (or it is held in
                // a copy window, and owed when released), and the rest of it is skipped too
                // (nothing waits for the audit store there). The frontend clears it at that
                // Sync; once sent, the Sync is owed, and a frontend already past it is not
                // held back.
                if owed && st.expect.is_empty() {
                    st.skipping = true;
                    st.batch_failed.notify_waiters();
                }
            }
            if let Some(e) = rewritten {
                e.encode(out);
                return Ok(());
            }
        }
        b'Z' => {
            query_done(audit, meta, &mut st);
            st.ready_for_query()?;
            if frame.raw().get(5) == Some(&TransactionStatus::Idle.byte()) {
                st.idle();
            }
        }
        b'S' => {
            // A setting that makes the server read SQL otherwise than tollgate does, changed
            // by something the classifier could not see (a function): what comes next cannot
            // be decided, so the session ends.
            if let Ok(BackendMessage::ParameterStatus(p)) = frame.decode()
                && !crate::postgres::sql::reported_value_is_safe(&p.name, &p.value)
            {
                return Err(ReadError::Violation(format!(
                    "the server now reads SQL with {} = {}, which tollgate cannot follow",
                    p.name, p.value
                )));
            }
        }
        b'N' if !masker.is_empty() => {
            let Ok(BackendMessage::NoticeResponse(mut n)) = frame.decode() else {
                return Err(ReadError::Violation(
                    "a NoticeResponse tollgate cannot read on a masking target".to_owned(),
                ));
            };
            let mut counts = MaskCounts::default();
            if diagnostics::mask_fields(masker, &mut n.fields, &mut counts) {
                add_counts(&mut st.expect, &counts);
                n.encode(out);
                return Ok(());
            }
        }
        b'A' if !masker.is_empty() => {
            let Ok(BackendMessage::NotificationResponse(mut n)) = frame.decode() else {
                return Err(ReadError::Violation(
                    "a NotificationResponse tollgate cannot read on a masking target".to_owned(),
                ));
            };
            let mut counts = MaskCounts::default();
            if let Some(payload) = diagnostics::mask_payload(masker, &n.payload, &mut counts) {
                add_counts(&mut st.expect, &counts);
                n.payload = payload;
                n.encode(out);
                return Ok(());
            }
        }
        _ => {} // Other notices and notifications: passed through.
    }
    drop(st);
    out.extend_from_slice(frame.raw());
    Ok(())
}

impl From<Desync> for ReadError {
    fn from(d: Desync) -> Self {
        ReadError::Violation(format!(
            "{d}: tollgate can no longer tell which request a response answers"
        ))
    }
}

fn bad(what: &'static str) -> ReadError {
    ReadError::Violation(format!("malformed {what} from the server"))
}

/// Columns of the rows arriving now.
fn current_columns(expect: &std::collections::VecDeque<Expect>) -> Option<Columns> {
    match expect.front() {
        Some(Expect::Query { columns, .. }) | Some(Expect::Execute { columns, .. }) => {
            columns.clone()
        }
        _ => None,
    }
}

fn add_counts(expect: &mut std::collections::VecDeque<Expect>, counts: &MaskCounts) {
    match expect.front_mut() {
        Some(Expect::Query { stmts, .. }) => {
            if let Some(a) = stmts.front_mut() {
                a.masked.add(counts);
            }
        }
        Some(Expect::Execute { audit: Some(a), .. }) => a.masked.add(counts),
        _ => {}
    }
}

/// A statement's result arrived: record it and move on.
fn complete(
    audit: &AuditSink,
    meta: &SessionMeta,
    st: &mut State,
    rows: Option<u64>,
    error: Option<&str>,
    suspended: bool,
) {
    match st.expect.front_mut() {
        // Recorded at ReadyForQuery, with every statement's result (`query_done`).
        Some(Expect::Query { columns, tally, .. }) => {
            *columns = None;
            tally.add(rows, error);
        }
        Some(Expect::Execute { .. }) => {
            if let Some(Expect::Execute {
                audit: Some(a),
                slot,
                ..
            }) = st.pop()
            {
                let rows = rows.or(suspended.then_some(0));
                record_done(audit, meta, a, slot, rows, error);
            }
        }
        _ => {}
    }
}

/// A simple Query's ReadyForQuery: its record, with its statements' rows summed and the first
/// error, once any result came (without one, the ReadyForQuery is out of step).
fn query_done(audit: &AuditSink, meta: &SessionMeta, st: &mut State) {
    if let Some(Expect::Query {
        stmts, slot, tally, ..
    }) = st.expect.front_mut()
        && tally.answered
        && let Some(a) = stmts.pop_front()
    {
        let tally = std::mem::take(tally);
        record_done(
            audit,
            meta,
            a,
            slot.take(),
            tally.rows,
            tally.error.as_deref(),
        );
    }
}

/// What a RowDescription answers: a Describe, or a simple Query's result set.
fn described(e: &Expect) -> bool {
    matches!(e, Expect::Describe { .. } | Expect::Query { .. })
}

/// The session ended (the client or the server went away, the agent stops): the statements
/// let through whose result never came may have run. Each is recorded all the same, in the
/// slot held for it, without a duration and with [`super::frontend::SESSION_ENDED`] as its
/// error. (What the server skipped after an error holds no slot, and is not recorded.)
pub fn session_ended(audit: &AuditSink, meta: &SessionMeta, shared: &Shared) {
    let owed = std::mem::take(&mut shared.lock().expect);
    for e in owed {
        match e {
            Expect::Query {
                mut stmts,
                slot: Some(slot),
                tally,
                ..
            } => match stmts.pop_front() {
                // Some of its statements were answered: what they told.
                Some(a) if tally.answered => {
                    record_done(
                        audit,
                        meta,
                        a,
                        Some(slot),
                        tally.rows,
                        tally.error.as_deref(),
                    );
                }
                Some(a) => record_unanswered(audit, meta, a, slot),
                None => {}
            },
            Expect::Execute {
                audit: Some(a),
                slot: Some(slot),
                ..
            } => record_unanswered(audit, meta, a, slot),
            _ => {}
        }
    }
}

/// What [`mask_large`] masks off the worker.
enum Large {
    /// A DataRow of a result with these columns.
    Row(Option<Columns>),
    /// A row of `COPY … TO STDOUT`.
    Copy,
}

/// A DataRow or CopyData over [`MASK_INLINE`] bytes that `on_frame` would mask: masked on the
/// blocking pool, as `on_frame` masks it (the same functions), and put in `out`; `None` then.
/// Any other frame is given back for `on_frame`. The front of the session's expectations, which
/// the frame answers, cannot change meanwhile: only this pump takes from it.
async fn mask_large(
    masker: &Arc<Masker>,
    shared: &Shared,
    frame: BackendFrame,
    out: &mut BytesMut,
) -> Result<Option<BackendFrame>, ReadError> {
    if frame.raw().len() <= MASK_INLINE || masker.is_empty() {
        return Ok(Some(frame));
    }
    let job = {
        let st = shared.lock();
        match frame.tag() {
            b'D' => Large::Row(current_columns(&st.expect)),
            b'd' if st.copy_out && masker.has_detectors() => Large::Copy,
            _ => return Ok(Some(frame)),
        }
    };
    let masker = Arc::clone(masker);
    let work = crate::offload::run(move || {
        let mut counts = MaskCounts::default();
        let mut masked = BytesMut::new();
        let done = match job {
            Large::Row(cols) => mask_row(&masker, cols.as_ref(), &frame, &mut counts, &mut masked),
            Large::Copy => mask_copy(&masker, &frame, &mut counts, &mut masked),
        };
        (done, counts, masked, frame)
    });
    // A masking task that failed (panicked) ends the session: its row is never sent unmasked.
    let (done, counts, masked, frame) = work
        .await
        .map_err(|e| ReadError::Violation(format!("masking a large row failed: {e}")))?;
    if !counts.is_empty() {
        add_counts(&mut shared.lock().expect, &counts);
    }
    if done? {
        out.extend_from_slice(&masked);
    } else {
        out.extend_from_slice(frame.raw());
    }
    Ok(None)
}

/// Masks one row of `COPY … TO STDOUT` (text) into `out` with the detectors; false when
/// nothing changed (forward the raw frame).
fn mask_copy(
    masker: &Masker,
    frame: &BackendFrame,
    counts: &mut MaskCounts,
    out: &mut BytesMut,
) -> Result<bool, ReadError> {
    let Ok(BackendMessage::CopyData(cd)) = frame.decode() else {
        return Err(bad("CopyData"));
    };
    let Ok(text) = std::str::from_utf8(&cd.data) else {
        // Binary COPY, or another encoding: what the detectors cannot read is not sent.
        return Err(ReadError::Violation(
            "COPY data that is not UTF-8 text (FORMAT binary?) on a target whose detectors \
             read it"
                .to_owned(),
        ));
    };
    let Some(masked) = masker.mask_text(text, counts) else {
        return Ok(false);
    };
    CopyData {
        data: Bytes::from(masked.into_bytes()),
    }
    .encode(out);
    Ok(true)
}

/// Masks one DataRow into `out`; false when nothing changed (forward the raw frame). The
/// values are read in place: a row that needs no masking costs no allocation.
fn mask_row(
    masker: &Masker,
    cols: Option<&Columns>,
    frame: &BackendFrame,
    counts: &mut MaskCounts,
    out: &mut BytesMut,
) -> Result<bool, ReadError> {
    let body = frame.raw().get(5..).unwrap_or_default();
    let Ok(row) = RowValues::parse(body) else {
        return Err(bad("DataRow"));
    };
    let mut replaced: Vec<(usize, String)> = Vec::new();
    for (i, value) in row.iter().enumerate() {
        let Some(bytes) = value else { continue };
        let col = cols.and_then(|c| c.get(i));
        let replacement = match col {
            None if masker.has_column_rules() => {
                // Columns unknown: column rules cannot be told apart, so every value is hidden.
                *counts
                    .by_column
                    .entry("unknown-columns".into())
                    .or_default() += 1;
                Some(UNKNOWN_COLUMN_MARK.to_owned())
            }
            // Binary values of non-text types pass only for unmasked columns (checked at Bind); a
            // masked one is never forwarded. Text types are the same bytes in both formats.
            Some(c) if c.binary && !c.text_like => {
                c.mask.is_some().then(|| UNKNOWN_COLUMN_MARK.to_owned())
            }
            _ => match std::str::from_utf8(bytes) {
                Ok(text) => masker.mask_value(col.and_then(|c| c.mask.as_ref()), text, counts),
                Err(_) => Some(UNKNOWN_COLUMN_MARK.to_owned()),
            },
        };
        if let Some(r) = replacement {
            replaced.push((i, r));
        }
    }
    if replaced.is_empty() {
        return Ok(false);
    }
    // In column order, as pushed.
    let mut next = replaced.iter().peekable();
    row.encode_replacing(out, |i| {
        next.next_if(|(at, _)| *at == i).map(|(_, r)| r.as_bytes())
    });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::{
        postgres::protocol::{
            BackendMessage, BindComplete, CommandComplete, CopyInResponse, ErrorResponse,
            ParseComplete, ReadyForQuery, TransactionStatus,
        },
        store::Sent,
    };

    /// The backend of a session without masking, whose records a test reads.
    struct Backend {
        audit: AuditSink,
        sent: Sent,
        meta: SessionMeta,
        masker: Arc<Masker>,
        shared: Shared,
    }

    impl Backend {
        fn new() -> Self {
            let (audit, sent) = AuditSink::for_tests(8);
            let meta = SessionMeta::for_tests();
            Self {
                audit,
                sent,
                meta,
                masker: Arc::default(),
                shared: Shared::default(),
            }
        }

        /// What the frontend owes for an Execute of `text` let through: its audit and a slot.
        fn execute(&self, text: &str) -> Expect {
            Expect::Execute {
                portal: 0,
                statement: 0,
                columns: None,
                audit: Some(self.allowed(text)),
                slot: Some(self.audit.try_hold().expect("a slot")),
                copy: None,
                raising: false,
            }
        }

        /// The audit of a statement let through.
        fn allowed(&self, text: &str) -> state::StmtAudit {
            state::StmtAudit::allowed_in_test(self.shared.lock().seq(), text)
        }

        /// The server sends `msg`; what goes to the client.
        fn receive(&self, msg: impl Into<BackendMessage>) -> BytesMut {
            self.try_receive(msg).expect("handled")
        }

        fn try_receive(&self, msg: impl Into<BackendMessage>) -> Result<BytesMut, ReadError> {
            let mut buf = BytesMut::new();
            msg.into().encode(&mut buf);
            let frame = next_backend(&mut buf, MAX_MESSAGE_LEN)
                .expect("frames")
                .expect("whole");
            let mut out = BytesMut::new();
            on_frame(
                &self.audit,
                &self.meta,
                &self.masker,
                &self.shared,
                frame,
                &mut out,
            )?;
            Ok(out)
        }

        fn owed(&self) -> VecDeque<&'static str> {
            self.shared
                .lock()
                .expect
                .iter()
                .map(|e| match e {
                    Expect::Execute { .. } => "execute",
                    Expect::Sync => "sync",
                    Expect::Bind { .. } => "bind",
                    _ => "other",
                })
                .collect()
        }
    }

    /// The audit of a statement denied by policy.
    fn denied(text: &str) -> state::StmtAudit {
        state::StmtAudit {
            classes: vec!["ddl".into()],
            decision: "deny".into(),
            rule: "no-ddl".into(),
            ..state::StmtAudit::allowed_in_test(9, text)
        }
    }

    fn error() -> ErrorResponse {
        ErrorResponse::new("ERROR", "22012", "division by zero")
    }

    /// A row over [`MASK_INLINE`] bytes is masked on the blocking pool (the first poll waits,
    /// where masking in place would end), as `on_frame` masks it, its counts on its statement; a
    /// small one, and a large one with nothing to mask, are left to `on_frame` or forwarded as
    /// they came.
    #[tokio::test]
    async fn a_large_row_is_masked_off_the_worker() {
        use crate::masking::{Detector, Style};
        let mut b = Backend::new();
        b.masker = Arc::new(Masker::detecting(Detector::Card, Style::Last4));
        let execute = b.execute("select note from notes");
        b.shared.lock().expect.push_back(execute);
        let frame = |value: String| {
            let mut buf = BytesMut::new();
            crate::postgres::protocol::DataRow {
                values: vec![Some(Bytes::from(value)), None],
            }
            .encode(&mut buf);
            next_backend(&mut buf, MAX_MESSAGE_LEN).unwrap().unwrap()
        };
        let filler = "x".repeat(100 << 10);
        let large = frame(format!("{filler} 4111111111111111 {filler}"));

        let mut out = BytesMut::new();
        let (ended, got) =
            crate::offload::first_poll_ends(mask_large(&b.masker, &b.shared, large, &mut out))
                .await;
        assert!(!ended, "masked in place");
        assert!(got.unwrap().is_none(), "handled");
        let want = frame(format!("{filler} ************1111 {filler}"));
        assert!(out[..] == want.raw()[..], "masked as on_frame masks it");
        {
            let st = b.shared.lock();
            let Some(Expect::Execute { audit: Some(a), .. }) = st.expect.front() else {
                panic!("the execute is still owed");
            };
            assert_eq!(a.masked.by_detector.get("card"), Some(&1));
        }

        let mut out = BytesMut::new();
        let plain = frame(filler.clone());
        let got = mask_large(&b.masker, &b.shared, plain.clone(), &mut out).await;
        assert!(got.unwrap().is_none());
        assert!(out[..] == plain.raw()[..], "forwarded as it came");

        let small = frame("4111111111111111".into());
        let mut out = BytesMut::new();
        let back = mask_large(&b.masker, &b.shared, small, &mut out)
            .await
            .unwrap();
        assert!(back.is_some() && out.is_empty(), "left to on_frame");

        // A large row of COPY … TO STDOUT, the same way.
        b.shared.lock().copy_out = true;
        let copy = |text: String| {
            let mut buf = BytesMut::new();
            CopyData {
                data: Bytes::from(text),
            }
            .encode(&mut buf);
            next_backend(&mut buf, MAX_MESSAGE_LEN).unwrap().unwrap()
        };
        let mut out = BytesMut::new();
        let large = copy(format!("{filler}\t4111111111111111\n"));
        let got = mask_large(&b.masker, &b.shared, large, &mut out).await;
        assert!(got.unwrap().is_none());
        let want = copy(format!("{filler}\t************1111\n"));
        assert!(out[..] == want.raw()[..]);
    }

    /// The server fails a statement of an extended batch whose Sync the client has not sent
    /// yet: the server skips the rest of the batch, so what the client still sends of it
    /// neither waits for an audit slot nor records a refusal for want of one (`skipping`), as
    /// after tollgate's own refusal. The entries of the messages already forwarded go, with
    /// their slots; the client's Sync ends the batch.
    #[test]
    fn a_server_error_mid_batch_skips_the_rest_of_it() {
        let mut b = Backend::new();
        for text in ["select 1/0", "select 2"] {
            let execute = b.execute(text);
            let mut st = b.shared.lock();
            st.expect.push_back(Expect::bind(0, 0, None));
            st.expect.push_back(execute);
        }
        b.receive(BindComplete);
        b.receive(error());
        let recs = b.sent.statements();
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0].text, "select 1/0");
        assert_eq!(recs[0].error.as_deref(), Some("22012: division by zero"));
        assert!(b.owed().is_empty(), "{:?}", b.owed());
        assert_eq!(
            b.audit.stats().in_flight,
            0,
            "the skipped one's slot is back"
        );
        assert!(b.shared.lock().skipping, "the rest of the batch is skipped");

        // The client's Sync ends the batch.
        b.shared.lock().client_sync();
        assert!(!b.shared.lock().skipping);
        b.receive(ReadyForQuery {
            status: TransactionStatus::Idle,
        });
        assert!(b.owed().is_empty(), "{:?}", b.owed());
    }

    /// A simple Query of several statements is one record, written at its ReadyForQuery: rows
    /// summed over its statements, the first error, the values masked in any of them.
    #[test]
    fn a_query_of_several_statements_is_recorded_whole() {
        use crate::masking::{Detector, Style};
        use crate::postgres::protocol::{DataRow, FieldDescription, RowDescription};
        let mut b = Backend::new();
        b.masker = Arc::new(Masker::detecting(Detector::Card, Style::Last4));
        let stmts =
            std::iter::once(b.allowed("select 1; select note from t; select 1/0")).collect();
        let slot = b.audit.try_hold();
        b.shared.lock().expect.push_back(Expect::query(stmts, slot));
        let rows = |n: usize| CommandComplete {
            tag: format!("SELECT {n}"),
        };
        b.receive(rows(1));
        assert!(b.sent.statements().is_empty(), "recorded before its end");
        b.receive(RowDescription {
            fields: vec![FieldDescription::new("note", 25)],
        });
        for _ in 0..2 {
            b.receive(DataRow {
                values: vec![Some(Bytes::from_static(b"card 4111111111111111"))],
            });
        }
        b.receive(rows(2));
        b.receive(error());
        b.receive(ReadyForQuery {
            status: TransactionStatus::Idle,
        });
        let recs = b.sent.statements();
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(recs[0].rows, Some(3));
        assert_eq!(recs[0].error.as_deref(), Some("22012: division by zero"));
        assert_eq!(recs[0].masked.as_ref().unwrap()["by_detector"]["card"], 2);
        assert!(b.owed().is_empty(), "{:?}", b.owed());
    }

    /// What the detectors cannot read does not pass on a masking target: binary-format rows on
    /// the simple protocol (a BINARY cursor) where binary results are refused, and COPY data
    /// that is not UTF-8 (FORMAT binary); each ends the session.
    #[test]
    fn unreadable_results_end_the_session_on_a_masking_target() {
        use crate::masking::{Detector, Style};
        use crate::postgres::protocol::{CopyData, FieldDescription, RowDescription};
        let mut b = Backend::new();
        b.masker = Arc::new(Masker::detecting(Detector::Card, Style::Last4));
        let query = || Expect::query(Default::default(), None);
        let description = |format: i16| RowDescription {
            fields: vec![FieldDescription {
                format,
                ..FieldDescription::new("profile", 3802)
            }],
        };
        b.shared.lock().expect.push_back(query());
        let got = b.try_receive(description(1));
        assert!(matches!(got, Err(ReadError::Violation(_))), "{got:?}");
        // Text format: as before.
        let mut b2 = Backend::new();
        b2.masker = b.masker.clone();
        b2.shared.lock().expect.push_back(query());
        assert!(b2.try_receive(description(0)).is_ok());
        // Allowed binary results: the rows are read as the Bind path reads them.
        let mut b3 = Backend::new();
        b3.masker = b.masker.clone();
        b3.meta.binary_allowed = true;
        b3.shared.lock().expect.push_back(query());
        assert!(b3.try_receive(description(1)).is_ok());

        b2.shared.lock().copy_out = true;
        let got = b2.try_receive(CopyData {
            data: Bytes::from_static(b"PGCOPY\n\xff\r\n\0"),
        });
        assert!(matches!(got, Err(ReadError::Violation(_))), "{got:?}");
        let out = b2
            .try_receive(CopyData {
                data: Bytes::from_static(b"1\t4111111111111111\n"),
            })
            .unwrap();
        assert!(String::from_utf8_lossy(&out).contains("************1111"));
    }

    /// A server error, notice or notification may carry row values: masked for the client and
    /// the record as rows are (detectors; withheld where column rules apply), except tollgate's
    /// own denial.
    #[test]
    fn server_text_is_masked_as_rows_are() {
        use crate::masking::{ColumnRule, Detector, DetectorRule, MaskingConfig, Style};
        use crate::postgres::protocol::{NoticeResponse, NotificationResponse};
        let masker = |columns: Vec<ColumnRule>| {
            let config = MaskingConfig {
                columns,
                detectors: vec![DetectorRule::new(Detector::Ssn, Style::Redact)],
            };
            Arc::new(Masker::new(&config, None).unwrap())
        };
        let bad_ssn = || {
            ErrorResponse::new(
                "ERROR",
                "22P02",
                "invalid input syntax for type integer: \"078-05-1121\"",
            )
        };
        let mut b = Backend::new();
        b.masker = masker(vec![]);
        let execute = b.execute("select ssn::int from people");
        b.shared.lock().expect.push_back(execute);
        let out = b.receive(bad_ssn());
        let want = "22P02: invalid input syntax for type integer: \"[REDACTED:ssn]\"";
        let recs = b.sent.statements();
        assert_eq!(recs[0].error.as_deref(), Some(want));
        assert_eq!(recs[0].masked.as_ref().unwrap()["by_detector"]["ssn"], 1);
        let sent = String::from_utf8_lossy(&out);
        assert!(
            sent.contains("[REDACTED:ssn]") && !sent.contains("1121"),
            "{sent}"
        );
        // A notice and a notification, outside any statement.
        let notice = NoticeResponse {
            fields: vec![(b'S', "NOTICE".into()), (b'M', "ssn 078-05-1121".into())],
        };
        let out = b.receive(notice);
        assert!(String::from_utf8_lossy(&out).contains("ssn [REDACTED:ssn]"));
        let note = |payload: &str| NotificationResponse {
            pid: 7,
            channel: "c".into(),
            payload: payload.into(),
        };
        let out = b.receive(note("078-05-1121"));
        let mut want = BytesMut::new();
        note("[REDACTED:ssn]").encode(&mut want);
        assert_eq!(out, want);

        // Column rules: the text is withheld, whatever it holds.
        let mut b = Backend::new();
        b.masker = masker(vec![ColumnRule {
            name: "name".into(),
            table: None,
            style: Style::Redact,
        }]);
        let execute = b.execute("select name::regclass from people");
        b.shared.lock().expect.push_back(execute);
        let out = b.receive(ErrorResponse::new(
            "ERROR",
            "42P01",
            "relation \"Ada Lovelace\" does not exist",
        ));
        let sent = String::from_utf8_lossy(&out);
        assert!(!sent.contains("Ada") && sent.contains("42P01"), "{sent}");
        assert_eq!(
            b.sent.statements()[0].error.as_deref(),
            Some(format!("42P01: {}", diagnostics::MESSAGE_WITHHELD).as_str())
        );
        let out = b.receive(note("Ada Lovelace"));
        assert!(!String::from_utf8_lossy(&out).contains("Ada"));
        // tollgate's own denial keeps its text; the same error answering the client's own
        // statement (its DO block raising the same words) is withheld.
        let message = super::super::deny::denial_message("no-ddl", "");
        let forged = ErrorResponse::new("ERROR", "42501", &message)
            .with(b'W', "PL/pgSQL function inline_code_block line 1 at RAISE");
        let client_do = b.execute("do $$ ... $$");
        b.shared.lock().expect.push_back(client_do);
        let out = b.receive(forged);
        let sent = String::from_utf8_lossy(&out);
        assert!(
            !sent.contains("tollgate: statement denied") && sent.contains("42501"),
            "{sent}"
        );
        b.shared.lock().expect.push_back(Expect::raising());
        let message = super::super::deny::denial_message("no-ddl", "");
        let own = ErrorResponse::new("ERROR", "42501", &message)
            .with(b'W', "PL/pgSQL function inline_code_block line 1 at RAISE");
        let out = b.receive(own);
        let mut want = BytesMut::new();
        ErrorResponse::new("ERROR", "42501", &message).encode(&mut want);
        assert_eq!(out, want);
    }

    /// The same error once the client has sent the batch's Sync (the frontend may be in the
    /// next batch already): nothing more is skipped.
    #[test]
    fn a_server_error_after_the_batch_was_sent_skips_nothing_more() {
        let b = Backend::new();
        for text in ["select 1/0", "select 2"] {
            let execute = b.execute(text);
            b.shared.lock().expect.push_back(execute);
        }
        b.shared.lock().client_sync();
        b.shared.lock().expect.push_back(Expect::bind(0, 0, None));
        b.receive(error());
        assert_eq!(b.owed(), ["sync", "bind"]);
        assert!(!b.shared.lock().skipping);

        // A simple Query's error skips nothing either.
        let b = Backend::new();
        b.shared
            .lock()
            .expect
            .push_back(Expect::query(Default::default(), None));
        b.receive(error());
        assert!(!b.shared.lock().skipping);
    }

    /// A session let through unrecorded (`audit_failure = "open"`: its connection has no row)
    /// sends no statement record; the slots held for them are given back.
    #[test]
    fn an_unrecorded_session_sends_no_records() {
        let mut b = Backend::new();
        b.meta.recorded = false;
        let execute = b.execute("select 1/0");
        b.shared.lock().expect.push_back(execute);
        let execute = b.execute("select 2");
        b.shared.lock().expect.push_back(execute);
        b.receive(CommandComplete {
            tag: "SELECT 1".into(),
        });
        b.receive(error());
        assert!(b.sent.statements().is_empty());
        assert_eq!(b.audit.stats().in_flight, 0);
        super::super::frontend::record(&b.audit, &b.meta, denied("drop table t"), Some("no"));
        assert!(b.sent.statements().is_empty());
    }

    /// The session ends with responses owed: the statements let through (a Query, an Execute)
    /// are recorded in their slots, without duration or rows, with the reason as their error;
    /// what holds no slot (tollgate's own refusal, already recorded) is not.
    #[test]
    fn statements_owed_when_the_session_ends_are_recorded() {
        let mut b = Backend::new();
        // The audit and slot of a Query let through.
        let Expect::Execute {
            audit: Some(query),
            slot,
            ..
        } = b.execute("select pg_sleep(30)")
        else {
            unreachable!("execute() makes an Execute")
        };
        let execute = b.execute("select 2");
        {
            let mut st = b.shared.lock();
            st.expect.push_back(Expect::query([query].into(), slot));
            st.expect.push_back(execute);
            st.client_sync();
            st.injected_error();
        }
        session_ended(&b.audit, &b.meta, &b.shared);
        let recs = b.sent.statements();
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.text.as_str(), r.duration, r.rows, r.error.as_deref()))
            .collect();
        let ended = Some(super::super::frontend::SESSION_ENDED);
        assert_eq!(
            got,
            [
                ("select pg_sleep(30)", None, None, ended),
                ("select 2", None, None, ended)
            ]
        );
        assert!(b.owed().is_empty());
        assert_eq!(b.audit.stats().in_flight, 0);
    }

    /// A session played message by message: the client's messages as the frontend pump
    /// handles them (`>X`; `>Ec` and `>Qc` may start a COPY FROM STDIN), the server's responses
    /// as the backend pump does (`<X`, through [`on_frame`]). A client message the frontend
    /// waits on is tried again after each server response, with those after it.
    struct Play {
        b: Backend,
        /// What went to the server: the client's messages, `H` for a Flush sent in place of a
        /// Sync, `S` for a held Sync sent.
        sent: String,
        /// Client messages waiting, in order.
        waiting: VecDeque<String>,
        /// The frontend ended the session.
        refused: bool,
        /// Statements let through.
        let_through: usize,
        /// Statement records the writer took.
        recorded: usize,
    }

    impl Play {
        fn run(steps: &str) -> Play {
            let mut p = Play {
                b: Backend::new(),
                sent: String::new(),
                waiting: VecDeque::new(),
                refused: false,
                let_through: 0,
                recorded: 0,
            };
            for step in steps.split_whitespace() {
                let (side, msg) = step.split_at(1);
                if side == ">" {
                    p.waiting.push_back(msg.to_owned());
                    p.client();
                } else {
                    p.server(msg, steps);
                    p.recorded += p.b.sent.statements().len();
                    // Held Syncs go as soon as the server is known not to copy.
                    if p.waiting.is_empty() {
                        let held = p.b.shared.lock().release();
                        p.release(held);
                    }
                    p.client();
                }
            }
            assert!(
                p.waiting.is_empty(),
                "{steps}: still waiting: {:?}",
                p.waiting
            );
            p
        }

        fn release(&mut self, n: u32) {
            for _ in 0..n {
                self.b.shared.lock().client_sync();
                self.sent.push('S');
            }
        }

        /// The frontend takes the client's waiting messages, in order, until one waits.
        fn client(&mut self) {
            while let Some(msg) = self.waiting.front().cloned() {
                if self.refused {
                    self.waiting.clear();
                    return;
                }
                let tag = msg.as_bytes()[0];
                let step = self.b.shared.lock().client_step(tag);
                match step {
                    state::Step::Wait => return,
                    state::Step::Refuse => {
                        self.refused = true;
                        continue;
                    }
                    state::Step::Hold => {
                        self.waiting.pop_front();
                        self.sent.push('H');
                        continue;
                    }
                    state::Step::Release(n) => self.release(n),
                    state::Step::Forward => {}
                }
                self.waiting.pop_front();
                let copy = msg.len() > 1;
                let entry = match tag {
                    b'P' => Some(Expect::parse(0, None)),
                    b'B' => Some(Expect::bind(0, 0, None)),
                    b'E' => {
                        let audit = self.b.allowed(&msg);
                        let mut st = self.b.shared.lock();
                        let slot = (!st.skipping).then(|| self.b.audit.try_hold().expect("slot"));
                        let copy = (copy && slot.is_some()).then(|| st.open_copy(false));
                        self.let_through += usize::from(slot.is_some());
                        Some(Expect::Execute {
                            portal: 0,
                            statement: 0,
                            columns: None,
                            audit: Some(audit),
                            slot,
                            copy,
                            raising: false,
                        })
                    }
                    b'Q' => {
                        let audit = self.b.allowed(&msg);
                        let slot = self.b.audit.try_hold();
                        self.let_through += 1;
                        Some(Expect::Query {
                            stmts: [audit].into(),
                            columns: None,
                            exprs: None,
                            slot,
                            copy: copy.then(|| self.b.shared.lock().open_copy(true)),
                            tally: Default::default(),
                            raising: false,
                        })
                    }
                    b'S' => {
                        self.b.shared.lock().client_sync();
                        None
                    }
                    _ => None, // CopyData, CopyDone, CopyFail, Flush: nothing owed.
                };
                if let Some(e) = entry {
                    self.b.shared.lock().expect.push_back(e);
                }
                self.sent.push(char::from(tag));
            }
        }

        fn server(&mut self, msg: &str, steps: &str) {
            let r = match msg {
                "1" => self
                    .b
                    .try_receive(BackendMessage::ParseComplete(ParseComplete)),
                "2" => self.b.try_receive(BindComplete),
                "C" => self.b.try_receive(CommandComplete {
                    tag: "COPY 1".into(),
                }),
                "G" => self.b.try_receive(CopyInResponse::default()),
                "E" => self.b.try_receive(error()),
                "Z" => self.b.try_receive(ReadyForQuery {
                    status: TransactionStatus::Idle,
                }),
                _ => unreachable!("{msg}"),
            };
            if let Err(e) = r {
                panic!("{steps}: at <{msg}: {e}; owed {:?}", self.b.owed());
            }
        }

        /// Everything answered and recorded; no Sync held.
        fn in_step(&self, steps: &str) {
            assert!(
                self.b.owed().is_empty(),
                "{steps}: owed {:?}",
                self.b.owed()
            );
            let st = self.b.shared.lock();
            assert!(
                st.copy
                    .as_ref()
                    .is_none_or(|w| w.held == 0 && w.phase == state::CopyPhase::Over),
                "{steps}: {:?}",
                st.copy
            );
            drop(st);
            assert_eq!(
                self.recorded, self.let_through,
                "{steps}: every statement let through is recorded"
            );
        }
    }

    /// COPY FROM STDIN, played in the orders the two pumps can see it. The server ignores a
    /// Sync while it copies in and answers it otherwise, and where a copy fails in the
    /// client's stream cannot be known; so no Sync is forwarded while the server may be copying
    /// (a Flush goes in its place), and every ReadyForQuery the server sends is one tollgate
    /// owes. Each play ends with everything answered and recorded, and the next batch in step.
    #[test]
    fn copy_in_orders() {
        let next = ">P >B >E >S <1 <2 <C <Z";
        for (steps, sent) in [
            // tokio-postgres and libpq: Bind, Execute, Sync, then the data once
            // CopyInResponse came. The Sync is dropped: the server would ignore it.
            (">B >Ec >S <2 <G >d >d >c >S <C <Z", "BEHddcS"),
            // The CopyInResponse came before the Sync.
            (">B >Ec <2 <G >S >d >c >S <C <Z", "BEHdcS"),
            // A client that does not wait for CopyInResponse: its CopyDone waits for it.
            (">B >Ec >S >d >c >S <2 <G <C <Z", "BEHdcS"),
            // No Sync until the end: nothing held.
            (">B >Ec >d >c >S <2 <G <C <Z", "BEdcS"),
            // The copy never starts (no such table): the held Sync goes, and is answered.
            (">B >Ec >S <2 <E <Z", "BEHS"),
            // ... with the next batch sent at once: it waits for the held Sync.
            (">B >Ec >S >B >E >S <2 <E <Z <2 <C <Z", "BEHSBES"),
            // Not a copy after all (an unclassified statement): the Flush brings its result.
            (">B >Ec >S <2 <C <Z", "BEHS"),
            // A bad row, and a Sync sent among the data: not forwarded, so not answered.
            (">B >Ec >S <2 <G >d >S <E >c >S <Z", "BEHdHcS"),
            // ... all pipelined: the next batch is matched with its own responses.
            (
                ">B >Ec >S <2 <G >d >S >c >S >P >B >E >S <E <Z <1 <2 <C <Z",
                "BEHdHcSPBES",
            ),
            // CopyFail.
            (">B >Ec >S <2 <G >d >f >S <E <Z", "BEHdfS"),
            // The copy fails before reading anything (a trigger, a cancel): the Sync after
            // CopyDone is the one answered.
            (">B >Ec >S <2 <G <E >d >c >S <Z", "BEHdcS"),
            // A Sync after the copy failed is forwarded and answered.
            (">B >Ec <2 <G >d <E >S <Z >c >S <Z", "BEdScS"),
            // Simple Query: psql's \copy.
            (">Qc <G >d >c <C <Z", "Qdc"),
            // Two copies in one query string.
            (">Qc <G >d >c <C <G >d >c <C <Z", "Qdcdc"),
            // A query string that fails before its copy: the next Query waited, and goes.
            (">Qc >Q <E <Z <C <Z", "QQ"),
            // A Sync during a simple Query's copy is not forwarded.
            (">Qc <G >d >S <E <Z", "QdH"),
            // A simple Query's copy data sent before its CopyInResponse: that copy is over when
            // the response comes, and the next Query waits for the first one's end.
            (">Qc >d >c >Q <G <C <Z <C <Z", "QdcQ"),
            // ... and a Sync after it is held until then, and answered.
            (">Qc >d >c >S <G <C <Z <Z", "QdcHS"),
        ] {
            let p = Play::run(&format!("{steps} {next}"));
            assert!(!p.refused, "{steps}");
            assert_eq!(p.sent, format!("{sent}PBES"), "{steps}");
            p.in_step(steps);
        }
    }

    /// A message other than CopyData, CopyDone, CopyFail, Flush or Sync while the server copies
    /// in: the server would fail the copy on it and consume it, leaving it unanswered. The
    /// frontend ends the session instead, also when the message came before the server said it
    /// copies.
    #[test]
    fn a_message_during_a_copy_ends_the_session() {
        for steps in [
            ">Qc <G >d >Q",
            ">Qc >Q <G",
            ">B >Ec >S <2 <G >d >P",
            ">B >Ec >S >P <2 <G",
            // A Query's copy ended after a held Sync: its next copy might wait for it.
            ">Qc >S >d >c",
        ] {
            assert!(Play::run(steps).refused, "{steps}");
        }
    }

    /// A CopyInResponse for a statement that cannot start a copy (tollgate classified it as
    /// something else), and responses that answer nothing owed, end the session.
    #[test]
    fn responses_out_of_step_end_the_session() {
        let b = Backend::new();
        let execute = b.execute("select 1");
        b.shared.lock().expect.push_back(execute);
        let e = b
            .try_receive(CopyInResponse::default())
            .expect_err("desync");
        assert!(e.to_string().contains("CopyInResponse"), "{e}");
        let e = b.try_receive(BindComplete).expect_err("desync");
        assert!(e.to_string().contains("BindComplete"), "{e}");
        b.shared.lock().client_sync();
        let e = b
            .try_receive(ReadyForQuery {
                status: TransactionStatus::Idle,
            })
            .expect_err("desync");
        assert!(e.to_string().contains("the result of an Execute"), "{e}");
        assert_eq!(b.owed(), ["execute", "sync"], "left for the session's end");
    }
}
