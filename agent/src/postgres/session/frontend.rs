//! Client → server: every message is framed; SQL is decided before it is forwarded.
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::Notify,
};
use tracing::{debug, info};

use crate::{
    masking::Masker,
    postgres::protocol::{
        Bind, Close, Describe, Flush, FrontendFrame, FrontendMessage, MAX_MESSAGE_LEN, ObjectKind,
        Parse, Query, Sync, next_frontend,
    },
    postgres::sql::{MAX_NAME_LEN, NameEffects},
    proxy::Context,
    store::{AuditSink, Slot, StatementRecord},
};

use super::{
    check::{self, Checked, SessionMeta},
    deny, lineage,
    state::{
        Decided, Expect, MAX_SYNCS_OWED, Portal, Prepared, Shared, Step, StmtAudit, may_copy,
        name_effects,
    },
    stream::{self, ReadError},
    undo::Undo,
};

/// Pumps client messages to the server until Terminate or EOF (`Ok`).
#[allow(clippy::too_many_arguments)]
pub async fn pump<R, W>(
    ctx: &Context,
    meta: &SessionMeta,
    masker: &Masker,
    shared: &Shared,
    mut client: R,
    mut buf: BytesMut,
    mut server: W,
    bytes_up: &AtomicU64,
) -> Result<(), ReadError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = BytesMut::with_capacity(8 * 1024);
    // A copy window is open (`State::copy`; opened and closed only here), so that the lock is
    // taken for it only then.
    let mut window = false;
    let copy_changed = shared.lock().copy_changed.clone();
    loop {
        let frame = match next_frontend(&mut buf, false, MAX_MESSAGE_LEN)? {
            Some(f) => f,
            None => {
                if !out.is_empty() {
                    server.write_all(&out).await?;
                    server.flush().await?;
                    out.clear();
                }
                // Syncs held in a copy window go as soon as the server is known not to copy:
                // the client may be waiting for their ReadyForQuery. The server's answer may
                // have come already, or may come while this waits for the client.
                let holds = window && {
                    let mut st = shared.lock();
                    let held = st.release();
                    if held > 0 {
                        drop(st);
                        release(shared, held, &mut out);
                        window = shared.lock().copy.is_some();
                        continue;
                    }
                    st.holds_syncs()
                };
                let n = if holds {
                    tokio::select! {
                        n = stream::fill(&mut client, &mut buf) => n?,
                        () = copy_changed.notified() => {
                            let held = shared.lock().release();
                            release(shared, held, &mut out);
                            continue;
                        }
                    }
                } else {
                    stream::fill(&mut client, &mut buf).await?
                };
                if n == 0 {
                    return Ok(());
                }
                bytes_up.fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
        };
        let tag = frame.raw().first().copied().unwrap_or(0);
        if window {
            match copy_step(shared, &copy_changed, tag, &mut server, &mut out).await? {
                Step::Hold => {
                    Flush.encode(&mut out);
                    continue;
                }
                Step::Refuse => {
                    return Err(ReadError::Violation(format!(
                        "{} sent during COPY FROM STDIN (the server would fail the copy on it)",
                        frame.name()
                    )));
                }
                Step::Release(n) => release(shared, n, &mut out),
                Step::Forward | Step::Wait => {}
            }
            window = shared.lock().copy.is_some();
        }
        match tag {
            b'Q' => {
                let Ok(FrontendMessage::Query(q)) = frame.decode() else {
                    return Err(bad(&frame));
                };
                // Before a possibly long approval hold, what is already decided goes out.
                flush(&mut server, &mut out).await?;
                window =
                    on_query(ctx, meta, masker, shared, q, frame, &mut server, &mut out).await?;
            }
            b'P' => {
                let Ok(FrontendMessage::Parse(mut p)) = frame.decode() else {
                    return Err(bad(&frame));
                };
                fit_name(&mut p.name, meta.names_unconverted)?;
                flush(&mut server, &mut out).await?;
                on_parse(ctx, meta, masker, shared, p, frame, &mut server, &mut out).await?;
            }
            b'B' => {
                let Ok(FrontendMessage::Bind(mut b)) = frame.decode() else {
                    return Err(bad(&frame));
                };
                fit_name(&mut b.portal, meta.names_unconverted)?;
                fit_name(&mut b.statement, meta.names_unconverted)?;
                on_bind(ctx, meta, masker, shared, b, frame, &mut out);
            }
            b'D' => {
                let Ok(FrontendMessage::Describe(mut d)) = frame.decode() else {
                    return Err(bad(&frame));
                };
                fit_name(&mut d.name, meta.names_unconverted)?;
                on_describe(shared, d, frame, &mut out);
            }
            b'E' => {
                let Ok(FrontendMessage::Execute(mut e)) = frame.decode() else {
                    return Err(bad(&frame));
                };
                fit_name(&mut e.portal, meta.names_unconverted)?;
                // Each Execute of a prepared statement is a statement of its own in the audit:
                // held, then refused, like a Query or Parse when the store cannot take it.
                let Some(slot) = hold_slot(ctx, shared, &mut server, &mut out).await? else {
                    refuse_execute(ctx, meta, shared, &e.portal, &mut out);
                    continue;
                };
                let mut guard = shared.lock();
                let st = &mut *guard;
                // In a batch that already failed, the server skips it: no record will come,
                // and none is made if the session ends first.
                let slot = (!st.skipping).then_some(slot);
                let (columns, audit, may_copy, names, (generation, statement)) =
                    match st.portals.get(&e.portal) {
                        Some(p) => {
                            // The statement's description, if it came since the Bind, and the
                            // name still holds the statement bound.
                            let cols = p.columns.clone().or_else(|| {
                                st.prepared
                                    .get(&p.statement)
                                    .filter(|s| s.generation == p.statement_generation)
                                    .and_then(Prepared::row_fields)
                                    .map(|f| {
                                        super::state::columns(
                                            masker,
                                            &meta.catalog,
                                            f,
                                            Some(&p.formats),
                                            p.exprs.as_deref(),
                                        )
                                    })
                            });
                            let audit = p.audit.as_deref().cloned();
                            let generations = (p.generation, p.statement_generation);
                            (cols, audit, p.may_copy, p.names.clone(), generations)
                        }
                        None => (None, None, false, NameEffects::default(), (0, 0)),
                    };
                if audit.is_none() && slot.is_some() {
                    // No statement tollgate let through is known for this portal (its statement
                    // was closed, or tollgate's view drifted from the server's): whatever the
                    // server would run is neither decided here nor recordable. Refused (fail
                    // closed); an unknown portal fails at the server all the same.
                    drop(guard);
                    drop(slot);
                    let audit = denied_audit(shared, UNKNOWN_PORTAL_TEXT, UNKNOWN_STATEMENT);
                    let detail = "tollgate does not know the statement of this portal";
                    deny_statement(
                        ctx,
                        meta,
                        shared,
                        (UNKNOWN_STATEMENT, detail),
                        audit,
                        &mut out,
                        true,
                    );
                    continue;
                }
                let audit = audit.map(|mut a| {
                    a.seq = st.seq();
                    a.started = std::time::Instant::now();
                    a.started_at = SystemTime::now();
                    a
                });
                // One that may start a COPY FROM STDIN opens a copy window, unless the server
                // skips it.
                let copy = (may_copy && slot.is_some()).then(|| st.open_copy(false));
                window = copy.is_some();
                if slot.is_some() {
                    st.forget(&names);
                }
                st.expect.push_back(Expect::Execute {
                    portal: generation,
                    statement,
                    columns,
                    audit,
                    slot,
                    copy,
                    raising: false,
                });
                drop(guard);
                out.extend_from_slice(frame.raw());
            }
            b'C' => {
                let Ok(FrontendMessage::Close(mut c)) = frame.decode() else {
                    return Err(bad(&frame));
                };
                fit_name(&mut c.name, meta.names_unconverted)?;
                on_close(shared, c, frame, &mut out);
            }
            b'S' => {
                room_for_sync(shared, &mut server, &mut out).await?;
                shared.lock().client_sync();
                out.extend_from_slice(frame.raw());
            }
            b'H' | b'd' | b'c' | b'f' => out.extend_from_slice(frame.raw()),
            b'X' => {
                out.extend_from_slice(frame.raw());
                flush(&mut server, &mut out).await?;
                return Ok(());
            }
            b'F' => {
                // FunctionCall runs a function by OID, outside SQL: never classified, never allowed.
                let audit = denied_audit(shared, "function call (by OID)", "function-call");
                record(&ctx.audit, meta, audit, None);
                let mut st = shared.lock();
                if st.skipping {
                    // Inside a failed batch the server discards the refusal too, unanswered.
                    continue;
                }
                st.expect.push_back(Expect::query(Default::default(), None));
                drop(st);
                deny::simple(
                    deny::SQLSTATE_DENIED,
                    &deny::denial_message("function-call", "FunctionCall messages are refused"),
                    &mut out,
                );
            }
            _ => return Err(bad(&frame)),
        }
    }
}

/// Cuts a statement or portal name to what PostgreSQL keeps of it, so that tollgate's view holds
/// one object where the server does (never a record or masking plan taken for another's).
///
/// The server looks prepared statements and portals up by the first 63 bytes of their name (its
/// hash tables copy, hash and compare no more), in its own encoding. An ASCII prefix is the same
/// bytes in every server encoding: the name is cut there. Where the cut falls on or after a
/// non-ASCII byte, what the server keeps depends on its encoding: the session ends. So it does
/// for any non-ASCII name when the server converts names (`unconverted` false: its encoding is
/// neither UTF8 nor SQL_ASCII): a conversion may lengthen a name past the cut, or make two
/// names one (EUC_JP takes `é` as three bytes, and two distinct characters as the same one).
fn fit_name(name: &mut String, unconverted: bool) -> Result<(), ReadError> {
    if !unconverted && !name.is_ascii() {
        return Err(ReadError::Violation(format!(
            "a statement or portal name not ASCII, on a server whose encoding converts it \
             ({} bytes)",
            name.len()
        )));
    }
    if name.len() <= MAX_NAME_LEN {
        return Ok(());
    }
    if !name.as_bytes()[..MAX_NAME_LEN].is_ascii() {
        return Err(ReadError::Violation(format!(
            "a statement or portal name of {} bytes, not ASCII in the {MAX_NAME_LEN} bytes \
             PostgreSQL keeps",
            name.len()
        )));
    }
    name.truncate(MAX_NAME_LEN);
    Ok(())
}

/// A slot in the audit queue for the record of a statement about to be let through
/// ([`crate::store::AuditSink::hold`]); `None`: refuse it (fail closed).
///
/// When there is none at once, the statement waits, after sending what is decided and a Flush:
/// in an extended-protocol batch the server keeps its results until the client's Sync, and the
/// records of the statements before this one (which the writer must take before there is room)
/// come only with their results. (Flush has no response: nothing is owed to the client.) Inside
/// a batch that already failed ([`super::state::State::skipping`]), nothing waits: the server
/// skips to the Sync anyway.
///
/// The session holds at most [`crate::store::SESSION_IN_FLIGHT`] slots: at that cap it waits, the
/// same way, for results of its own to give slots back (however long they take: only this
/// session stalls, as it would behind a slow server).
///
/// Either wait ends, without a slot, when the server's error fails the batch meanwhile (the
/// Flush may bring it): the server skips this statement anyway.
async fn hold_slot<W: AsyncWrite + Unpin>(
    ctx: &Context,
    shared: &Shared,
    server: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<Option<Slot>> {
    let permit = match shared.budget.try_take() {
        Some(p) => p,
        None => {
            if shared.lock().skipping {
                return Ok(None);
            }
            Flush.encode(out);
            flush(server, out).await?;
            tokio::select! {
                p = shared.budget.take(&ctx.audit) => p,
                () = batch_failed(shared) => return Ok(None),
            }
        }
    };
    if let Some(slot) = ctx.audit.try_hold() {
        return Ok(Some(slot.in_session(permit)));
    }
    if shared.lock().skipping {
        return Ok(None);
    }
    Flush.encode(out);
    flush(server, out).await?;
    tokio::select! {
        slot = ctx.audit.hold() => Ok(slot.map(|s| s.in_session(permit))),
        () = batch_failed(shared) => Ok(None),
    }
}

/// Waits, after sending what is decided, while [`MAX_SYNCS_OWED`] Syncs are owed: each of them
/// is forwarded, so the server answers it.
async fn room_for_sync<W: AsyncWrite + Unpin>(
    shared: &Shared,
    server: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    let answered = {
        let st = shared.lock();
        if st.syncs < MAX_SYNCS_OWED {
            return Ok(());
        }
        st.answered.clone()
    };
    loop {
        let notified = answered.notified();
        tokio::pin!(notified);
        // Registered before the check, so an answer between the check and the await is not lost.
        notified.as_mut().enable();
        if shared.lock().syncs < MAX_SYNCS_OWED {
            return Ok(());
        }
        flush(server, out).await?;
        notified.await;
    }
}

/// Resolves once the current extended-protocol batch has failed ([`super::state::State::skipping`]).
async fn batch_failed(shared: &Shared) {
    let rung = shared.lock().batch_failed.clone();
    loop {
        let notified = rung.notified();
        tokio::pin!(notified);
        // Registered before the check, so a ring between the check and the await is not lost.
        notified.as_mut().enable();
        if shared.lock().skipping {
            return;
        }
        notified.await;
    }
}

/// What to do with a client message of type `tag` while a copy window is open
/// ([`super::state::CopyWindow`]). [`Step::Wait`] is waited out here: what is decided goes to
/// the server, with a Flush (the server then sends what settles the window), until the
/// server's responses settle it. Never returns [`Step::Wait`].
async fn copy_step<W: AsyncWrite + Unpin>(
    shared: &Shared,
    changed: &Notify,
    tag: u8,
    server: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<Step> {
    loop {
        let step = shared.lock().client_step(tag);
        if step != Step::Wait {
            return Ok(step);
        }
        Flush.encode(out);
        flush(server, out).await?;
        changed.notified().await;
    }
}

/// Sends `n` Syncs held in a copy window, each owed a ReadyForQuery.
fn release(shared: &Shared, n: u32, out: &mut BytesMut) {
    if n == 0 {
        return;
    }
    let mut st = shared.lock();
    for _ in 0..n {
        st.client_sync();
        Sync.encode(out);
    }
}

async fn flush<W: AsyncWrite + Unpin>(server: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    if !out.is_empty() {
        server.write_all(out).await?;
        server.flush().await?;
        out.clear();
    }
    Ok(())
}

fn bad(frame: &FrontendFrame) -> ReadError {
    ReadError::Violation(format!(
        "unexpected or malformed {} after startup",
        frame.name()
    ))
}

/// Decides a Query and forwards it, or the denial in its place. Returns whether it opened a
/// copy window.
#[allow(clippy::too_many_arguments)]
async fn on_query<W: AsyncWrite + Unpin>(
    ctx: &Context,
    meta: &SessionMeta,
    masker: &Masker,
    shared: &Shared,
    q: Query,
    frame: FrontendFrame,
    server: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<bool> {
    let checked = check::check(ctx, meta, &q.query).await;
    let (checked, slot) = audit_gate(ctx, shared, checked, server, out).await?;
    let seq = shared.lock().seq();
    let audit = checked.audit(seq, &q.query, meta.redact_literals);
    if checked.decision.permits() {
        // One audit entry per message; rows are summed over its statements.
        let stmts = std::iter::once(audit).collect();
        let exprs = lineage::plan_of(
            masker,
            &q.query,
            &checked.statements,
            meta.max_statement_bytes,
        )
        .await;
        let mut st = shared.lock();
        if st.skipping {
            // Sent inside a failed extended-protocol batch: the server discards it, a Query
            // too, up to the client's Sync, and answers nothing. An entry owed for it would stay
            // behind that Sync's ReadyForQuery and shift every later response by one.
            drop(st);
            out.extend_from_slice(frame.raw());
            return Ok(false);
        }
        let copy = may_copy(&checked.statements).then(|| st.open_copy(true));
        st.forget(&name_effects(&checked.statements));
        st.expect.push_back(Expect::Query {
            stmts,
            columns: None,
            exprs,
            slot,
            copy,
            tally: Default::default(),
            raising: false,
        });
        drop(st);
        out.extend_from_slice(frame.raw());
        return Ok(copy.is_some());
    }
    let why = (checked.decision.rule.as_str(), checked.detail.as_str());
    deny_statement(ctx, meta, shared, why, audit, out, false);
    Ok(false)
}

#[allow(clippy::too_many_arguments)]
async fn on_parse<W: AsyncWrite + Unpin>(
    ctx: &Context,
    meta: &SessionMeta,
    masker: &Masker,
    shared: &Shared,
    p: Parse,
    frame: FrontendFrame,
    server: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    // A Parse is recorded only if denied: each Execute of it holds its own slot.
    let checked = check::check(ctx, meta, &p.query).await;
    let (checked, _) = audit_gate(ctx, shared, checked, server, out).await?;
    let audit = checked.audit(0, &p.query, meta.redact_literals);
    if checked.decision.permits() && prepared_full(shared, &p.name) {
        let audit = StmtAudit {
            seq: shared.lock().seq(),
            decision: "deny".into(),
            rule: PREPARED_LIMIT.into(),
            ..audit
        };
        let detail = format!(
            "the session holds {MAX_PREPARED} prepared statements, or {} MiB of them: close some \
             (Close, DEALLOCATE)",
            MAX_HELD_BYTES >> 20
        );
        deny_statement(
            ctx,
            meta,
            shared,
            (PREPARED_LIMIT, &detail),
            audit,
            out,
            true,
        );
        return Ok(());
    }
    if checked.decision.permits() {
        let exprs = lineage::plan_of(
            masker,
            &p.query,
            &checked.statements,
            meta.max_statement_bytes,
        )
        .await;
        let mut st = shared.lock();
        let generation = st.generation();
        // In a batch that already failed the server skips this Parse and keeps what the name
        // was: so does tollgate (a later Bind of the name runs that, and is recorded and
        // masked as that). Otherwise what the name was comes back if the server skips or
        // fails it all the same (`super::undo`).
        let undo = (!st.skipping).then(|| {
            let prepared = Prepared {
                audit: std::sync::Arc::new(audit),
                fields: None,
                exprs,
                may_copy: may_copy(&checked.statements),
                generation,
                names: name_effects(&checked.statements),
                decided: Some(std::sync::Arc::new(Decided {
                    policy: checked.policy,
                    // Moved, not copied: the Parse is done with it.
                    text: std::sync::Arc::new(p.query),
                    statements: checked.statements.clone(),
                    denial: None,
                })),
            };
            let name = p.name.clone();
            Undo::statement(name, generation, st.prepared.insert(p.name, prepared))
        });
        st.expect.push_back(Expect::parse(generation, undo));
        drop(st);
        out.extend_from_slice(frame.raw());
    } else {
        let seq = shared.lock().seq();
        let audit = StmtAudit { seq, ..audit };
        // A named statement keeps what it was: the server never sees this Parse (the unnamed
        // one is replaced by the refusal's own Parse, `State::injected_error`).
        let why = (checked.decision.rule.as_str(), checked.detail.as_str());
        deny_statement(ctx, meta, shared, why, audit, out, true);
    }
    Ok(())
}

/// Named prepared statements a session may hold. tollgate keeps what each one is (its record,
/// its masking plan), so a client preparing without end would grow the agent, which serves
/// every workload of the host. Drivers cache far fewer (pgjdbc 256, psycopg 100).
pub const MAX_PREPARED: usize = 10_000;

/// The rule named when a Parse would pass [`MAX_PREPARED`].
const PREPARED_LIMIT: &str = "prepared-limit";

/// A Parse of `name` would make one prepared statement more than [`MAX_PREPARED`] (the unnamed
/// statement is replaced, and a name in use fails at the server).
fn prepared_full(shared: &Shared, name: &str) -> bool {
    let st = shared.lock();
    full(&st.prepared, st.closing.0, name, MAX_PREPARED)
        || over_budget(&st.prepared, name, Prepared::weight)
}

/// Bytes, roughly, that a session's named prepared statements may hold (texts, descriptions,
/// plans), and apart its portals: past it a new named one is refused, as past the count.
/// Without it 10 000 statements of 1 664 described columns each would take gigabytes of the
/// agent every session shares.
pub const MAX_HELD_BYTES: usize = 64 << 20;

/// Entries held before [`over_budget`] adds their weights up (a Parse or Bind pays for it only
/// when a session holds that many).
const WEIGH_FROM: usize = 64;

/// Whether a new named entry `name` would be one past [`MAX_HELD_BYTES`] of `held`.
fn over_budget<V>(
    held: &std::collections::HashMap<String, V>,
    name: &str,
    weight: impl Fn(&V) -> usize,
) -> bool {
    !name.is_empty()
        && !held.contains_key(name)
        && held.len() >= WEIGH_FROM
        && held.values().map(weight).sum::<usize>() >= MAX_HELD_BYTES
}

/// Whether `held` (by name), with `closing` of them closed by a Close the server has not
/// answered (it may skip it, and they come back), is at `max` named entries; a name held
/// already fits, and so does the unnamed one (it is replaced).
fn full<V>(
    held: &std::collections::HashMap<String, V>,
    closing: usize,
    name: &str,
    max: usize,
) -> bool {
    if name.is_empty() {
        return false;
    }
    let named = held.len() - usize::from(held.contains_key(""));
    !held.contains_key(name) && named + closing >= max
}

/// Named portals a session may hold. The server drops them when their transaction ends (and
/// tollgate with it, `State::idle`); inside one transaction a client could bind without end.
pub const MAX_PORTALS: usize = 10_000;

/// The rule named when a Bind would pass [`MAX_PORTALS`].
const PORTAL_LIMIT: &str = "portal-limit";

/// A Bind of `name` would make one named portal more than [`MAX_PORTALS`].
fn portals_full(shared: &Shared, name: &str) -> bool {
    let st = shared.lock();
    full(&st.portals, st.closing.1, name, MAX_PORTALS)
        || over_budget(&st.portals, name, Portal::weight)
}

/// The rule named when the audit store cannot take a statement's record.
const AUDIT_UNAVAILABLE: &str = "audit-unavailable";

/// The rule named when an Execute's portal has no statement tollgate let through.
const UNKNOWN_STATEMENT: &str = "unknown-statement";

/// The recorded text of such an Execute.
const UNKNOWN_PORTAL_TEXT: &str = "execute of a portal without a known statement";

/// A statement let through holds a slot in the audit queue for its record ([`hold_slot`]). When
/// the store is behind, the statement waits for one while the store catches up, then is refused
/// (fail closed): it would otherwise run unrecorded. (Under `audit_failure = "open"` the sink
/// gives a slot that holds no place instead, and the statement runs.)
async fn audit_gate<W: AsyncWrite + Unpin>(
    ctx: &Context,
    shared: &Shared,
    mut checked: Checked,
    server: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<(Checked, Option<Slot>)> {
    if !checked.decision.permits() {
        return Ok((checked, None));
    }
    let slot = hold_slot(ctx, shared, server, out).await?;
    if slot.is_none() {
        checked.decision.verdict = crate::policy::Verdict::Deny;
        checked.decision.enforced = true;
        checked.decision.rule = AUDIT_UNAVAILABLE.into();
    }
    Ok((checked, slot))
}

/// Records the denial by `(rule, detail)` and makes the server raise it in place of the
/// statement.
fn deny_statement(
    ctx: &Context,
    meta: &SessionMeta,
    shared: &Shared,
    (rule, detail): (&str, &str),
    audit: StmtAudit,
    out: &mut BytesMut,
    extended: bool,
) {
    let message = deny::denial_message(rule, detail);
    // In a batch that already failed, the server skips the message anyway: a refusal for
    // want of audit room is not recorded (a pipelined batch would flood the queue's margin, kept
    // for other sessions' records, with statements that never ran).
    if rule == AUDIT_UNAVAILABLE && shared.lock().skipping {
        debug!(target = %meta.target, "statement in a failed batch refused: audit store behind");
    } else {
        info!(
            workload = %meta.workload, target = %meta.target, rule = %rule,
            classes = ?audit.classes, "statement denied"
        );
        record(&ctx.audit, meta, audit, Some(&message));
    }
    let mut st = shared.lock();
    if extended {
        st.injected_error();
        drop(st);
        deny::extended(deny::SQLSTATE_DENIED, &message, out);
    } else if !st.skipping {
        st.expect.push_back(Expect::raising());
        drop(st);
        deny::simple(deny::SQLSTATE_DENIED, &message, out);
    }
    // Else a Query inside a failed extended-protocol batch: the server would discard the
    // refusal with the rest of the batch, and owe nothing for it (see `on_query`).
}

/// Refuses an Execute the audit store cannot record: the upstream raises the denial in its
/// place (and skips to the client's Sync, as after any error), and the denial is recorded if the
/// store takes it by then.
fn refuse_execute(
    ctx: &Context,
    meta: &SessionMeta,
    shared: &Shared,
    portal: &str,
    out: &mut BytesMut,
) {
    let mut st = shared.lock();
    let audit = st
        .portals
        .get(portal)
        .and_then(|p| p.audit.as_deref().cloned());
    let seq = st.seq();
    drop(st);
    let audit = match audit {
        Some(a) => StmtAudit {
            seq,
            started: std::time::Instant::now(),
            started_at: SystemTime::now(),
            decision: "deny".into(),
            rule: AUDIT_UNAVAILABLE.into(),
            ..a
        },
        None => denied_audit_seq(seq, "execute of an unknown portal", AUDIT_UNAVAILABLE),
    };
    let detail = "the audit store cannot record it";
    deny_statement(
        ctx,
        meta,
        shared,
        (AUDIT_UNAVAILABLE, detail),
        audit,
        out,
        true,
    );
}

/// A prepared statement bound under another policy than the one its Parse was decided by is
/// decided again (a reload applies to statements already prepared, as to new ones): its rule
/// and audit become the live policy's, or the denial's rule and audit come back. An `approve`
/// is a denial here (the approver is asked at Parse: prepare it again).
fn decided_again(
    ctx: &Context,
    meta: &SessionMeta,
    shared: &Shared,
    statement: &str,
) -> Option<(String, StmtAudit)> {
    let state = ctx.policy.load();
    let (decided, audit) = {
        let st = shared.lock();
        let p = st.prepared.get(statement)?;
        let decided = p.decided.clone()?;
        (decided, p.audit.clone())
    };
    let denied = |rule: String, seq: u32| {
        let audit = StmtAudit {
            seq,
            decision: "deny".into(),
            rule: rule.clone(),
            ..(*audit).clone()
        };
        Some((rule, audit))
    };
    if decided.policy == state.generation {
        let rule = decided.denial.clone()?;
        return denied(rule, shared.lock().seq());
    }
    // Outside the lock: a rule's regex reads the whole text (once per reload).
    let d = check::decide_again(&state, meta, &decided.text, &decided.statements);
    let denial = (!d.permits()).then(|| d.rule.clone());
    {
        let mut st = shared.lock();
        if let Some(p) = st.prepared.get_mut(statement)
            && p.decided
                .as_ref()
                .is_some_and(|now| std::sync::Arc::ptr_eq(now, &decided))
        {
            if denial.is_none() {
                p.audit = std::sync::Arc::new(StmtAudit {
                    decision: d.label().to_owned(),
                    rule: d.rule.clone(),
                    ..(*audit).clone()
                });
            }
            p.decided = Some(std::sync::Arc::new(Decided {
                policy: state.generation,
                text: decided.text.clone(),
                statements: decided.statements.clone(),
                denial: denial.clone(),
            }));
        }
    }
    let rule = denial?;
    debug!(target = %meta.target, %rule, "prepared statement denied after a policy reload");
    denied(rule, shared.lock().seq())
}

fn on_bind(
    ctx: &Context,
    meta: &SessionMeta,
    masker: &Masker,
    shared: &Shared,
    b: Bind,
    frame: FrontendFrame,
    out: &mut BytesMut,
) {
    if portals_full(shared, &b.portal) {
        let audit = denied_audit(
            shared,
            "bind of a portal past the session's limit",
            PORTAL_LIMIT,
        );
        let detail = format!(
            "the session holds {MAX_PORTALS} portals, or {} MiB of them: close some, or end \
                 the transaction",
            MAX_HELD_BYTES >> 20
        );
        deny_statement(ctx, meta, shared, (PORTAL_LIMIT, &detail), audit, out, true);
        return;
    }
    if let Some((rule, audit)) = decided_again(ctx, meta, shared, &b.statement) {
        let detail = "the policy changed since the statement was prepared";
        deny_statement(ctx, meta, shared, (&rule, detail), audit, out, true);
        return;
    }
    // One look at the statement, under one lock: the backend may put back another under the
    // name meanwhile (`super::undo`).
    let mut guard = shared.lock();
    let st = &mut *guard;
    let statement = st.prepared.get(&b.statement);
    let exprs = statement.and_then(|p| p.exprs.clone());
    let fields = statement.and_then(Prepared::row_fields);
    let columns = fields.map(|f| {
        super::state::columns(
            masker,
            &meta.catalog,
            f,
            Some(&b.result_formats),
            exprs.as_deref(),
        )
    });
    // Binary values of non-text types cannot be masked. "refuse": no binary result column while
    // the target masks anything; "allow": binary passes unless a column with a rule is binary and
    // not a text type. A statement with no result columns (Describe said NoData) returns none.
    let binary_ok = !b.result_formats.contains(&1)
        || masker.is_empty()
        || match (&columns, fields) {
            (_, Some([])) => true,
            (Some(c), _) if meta.binary_allowed => c
                .iter()
                .all(|c| !(c.binary && !c.text_like && c.mask.is_some())),
            (Some(c), _) => c.iter().all(|c| !c.binary),
            (None, _) => false,
        };
    let (statement_generation, audit, may_copy, names) =
        statement.map_or((0, None, false, NameEffects::default()), |p| {
            (
                p.generation,
                Some(p.audit.clone()),
                p.may_copy,
                p.names.clone(),
            )
        });
    if !binary_ok {
        let msg =
            "tollgate: binary result format is refused on a target with masking; use text format";
        debug!(target = %meta.target, "binary results refused");
        st.injected_error();
        drop(guard);
        deny::extended(deny::SQLSTATE_REFUSED, msg, out);
        return;
    }
    let generation = st.generation();
    // Skipped by the server in a failed batch: the portal stays what it was.
    let undo = (!st.skipping).then(|| {
        let portal = Portal {
            statement: b.statement,
            formats: b.result_formats,
            columns,
            exprs,
            generation,
            statement_generation,
            audit,
            may_copy,
            names,
        };
        let name = b.portal.clone();
        Undo::portal(name, generation, st.portals.insert(b.portal, portal))
    });
    st.expect
        .push_back(Expect::bind(generation, statement_generation, undo));
    drop(guard);
    out.extend_from_slice(frame.raw());
}

fn on_describe(shared: &Shared, d: Describe, frame: FrontendFrame, out: &mut BytesMut) {
    let mut st = shared.lock();
    let (generation, exprs) = match d.kind {
        ObjectKind::Statement => (st.prepared.get(&d.name).map_or(0, |p| p.generation), None),
        ObjectKind::Portal => st
            .portals
            .get(&d.name)
            .map_or((0, None), |p| (p.generation, p.exprs.clone())),
    };
    st.expect.push_back(Expect::Describe {
        kind: d.kind,
        name: d.name,
        generation,
        exprs,
    });
    drop(st);
    out.extend_from_slice(frame.raw());
}

fn on_close(shared: &Shared, c: Close, frame: FrontendFrame, out: &mut BytesMut) {
    let mut st = shared.lock();
    // Skipped by the server in a failed batch: nothing is closed.
    let undo = match c.kind {
        _ if st.skipping => None,
        ObjectKind::Statement => {
            let before = st.prepared.remove(&c.name);
            Some(Undo::statement(c.name, 0, before))
        }
        ObjectKind::Portal => {
            let before = st.portals.remove(&c.name);
            Some(Undo::portal(c.name, 0, before))
        }
    };
    let close = Expect::Close {
        undo: undo.map(Box::new),
    };
    if let Some((statements, portals)) = close.closes() {
        st.closing.0 += statements;
        st.closing.1 += portals;
    }
    st.expect.push_back(close);
    drop(st);
    out.extend_from_slice(frame.raw());
}

fn denied_audit(shared: &Shared, text: &str, rule: &str) -> StmtAudit {
    denied_audit_seq(shared.lock().seq(), text, rule)
}

fn denied_audit_seq(seq: u32, text: &str, rule: &str) -> StmtAudit {
    StmtAudit {
        seq,
        started: std::time::Instant::now(),
        started_at: SystemTime::now(),
        text: text.into(),
        classes: vec!["unknown".into()],
        tables: Vec::new(),
        decision: "deny".into(),
        rule: rule.into(),
        masked: Default::default(),
    }
}

/// Queues the audit record of a statement not let through, without a held slot (never waits;
/// a full queue is logged).
pub fn record(audit: &AuditSink, meta: &SessionMeta, a: StmtAudit, error: Option<&str>) {
    record_done(audit, meta, a, None, None, error);
}

/// Queues the audit record of a completed statement, in the `slot` held for it.
pub fn record_done(
    audit: &AuditSink,
    meta: &SessionMeta,
    a: StmtAudit,
    slot: Option<Slot>,
    rows: Option<u64>,
    error: Option<&str>,
) {
    let duration = Some(a.started.elapsed());
    send(audit, meta, a, slot, duration, rows, error);
}

/// The error recorded for a statement whose session ended before its result.
pub const SESSION_ENDED: &str = "session ended before the result";

/// Queues the audit record of a statement let through whose result never came (its session
/// ended first: it may have run), in the `slot` held for it: no duration, no rows.
pub fn record_unanswered(audit: &AuditSink, meta: &SessionMeta, a: StmtAudit, slot: Slot) {
    send(audit, meta, a, Some(slot), None, None, Some(SESSION_ENDED));
}

/// Queues a statement record. A session without a connection row has none sent (the slot is
/// given back): the store would refuse it.
fn send(
    audit: &AuditSink,
    meta: &SessionMeta,
    a: StmtAudit,
    slot: Option<Slot>,
    duration: Option<std::time::Duration>,
    rows: Option<u64>,
    error: Option<&str>,
) {
    if !meta.recorded {
        return;
    }
    let masked = (!a.masked.is_empty())
        .then(|| serde_json::to_value(&a.masked).ok())
        .flatten();
    let rec = StatementRecord {
        connection_id: meta.connection_id,
        seq: a.seq,
        started_at: a.started_at,
        duration,
        text: a.text,
        classes: a.classes,
        tables: a.tables,
        decision: a.decision,
        rule: a.rule,
        rows,
        error: error.map(str::to_owned),
        masked,
    };
    if let Err(e) = audit.statement(rec, slot) {
        audit.warn_dropped("statement", &e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the byte budget a new named entry is refused; a name held already, the unnamed
    /// one, and a session holding few entries are not weighed.
    #[test]
    fn the_byte_budget_bounds_named_entries() {
        let each = MAX_HELD_BYTES / WEIGH_FROM;
        let held = |n: usize, w: usize| -> std::collections::HashMap<String, usize> {
            (0..n).map(|i| (format!("s{i}"), w)).collect()
        };
        let weight = |w: &usize| *w;
        assert!(over_budget(&held(WEIGH_FROM, each), "new", weight));
        assert!(!over_budget(&held(WEIGH_FROM, each - 1), "new", weight));
        assert!(!over_budget(&held(WEIGH_FROM, each), "s1", weight));
        assert!(!over_budget(&held(WEIGH_FROM, each), "", weight));
        assert!(!over_budget(
            &held(WEIGH_FROM - 1, MAX_HELD_BYTES),
            "new",
            weight
        ));
    }

    fn fitted(name: &str) -> Result<String, String> {
        fitted_on(name, true)
    }

    fn fitted_on(name: &str, unconverted: bool) -> Result<String, String> {
        let mut name = name.to_owned();
        fit_name(&mut name, unconverted)
            .map(|()| name)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_name_postgresql_keeps_whole_is_left_alone() {
        for name in ["", "s1", &"s".repeat(63), "é", &"é".repeat(31)] {
            assert_eq!(fitted(name).as_deref(), Ok(name));
        }
    }

    #[test]
    fn a_longer_name_is_cut_to_the_63_bytes_postgresql_keeps() {
        let long = format!("{}_first", "s".repeat(63));
        assert_eq!(fitted(&long), Ok("s".repeat(63)));
        // What follows the cut may be anything: the server never reads it.
        let tail = format!("{}é", "s".repeat(63));
        assert_eq!(fitted(&tail), Ok("s".repeat(63)));
    }

    #[test]
    fn a_server_that_converts_names_takes_ascii_ones_only() {
        assert_eq!(fitted_on("s1", false).as_deref(), Ok("s1"));
        let long = format!("{}_first", "s".repeat(63));
        assert_eq!(fitted_on(&long, false), Ok("s".repeat(63)));
        for name in ["é", "sé", &format!("{}é", "s".repeat(63))] {
            let err = fitted_on(name, false).expect_err(name);
            assert!(err.contains("converts"), "{err}");
        }
    }

    #[test]
    fn a_cut_on_or_after_a_non_ascii_byte_is_refused() {
        for name in [format!("{}éx", "s".repeat(62)), "é".repeat(32)] {
            let err = fitted(&name).expect_err(&name);
            assert!(err.contains("not ASCII"), "{err}");
        }
    }
}
