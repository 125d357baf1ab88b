//! Statement decisions: classify with the SQL parser, evaluate the live policy, and hold on the
//! approval gate when a rule says `approve`.
use std::time::{Instant, SystemTime};

use crate::{
    policy::{Decision, StatementFacts, Verdict},
    postgres::sql::{self, Classified, StatementClass},
    proxy::{
        Context,
        approval::{ApprovalOutcome, ApprovalRequest},
    },
};

use super::state::StmtAudit;

/// Who is asking, fixed for the session.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    /// Audit id of the connection.
    pub connection_id: uuid::Uuid,
    /// The connection has its row in the audit store (see [`super::SessionInit::recorded`]).
    pub recorded: bool,
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
    /// Database in use.
    pub database: String,
    /// Upstream role in use.
    pub role: String,
    /// Literals redacted in the audit.
    pub redact_literals: bool,
    /// The target masks columns by name (COPY TO cannot be masked by column).
    pub column_masking: bool,
    /// `binary_results = "allow"`: binary results pass unless a masked column is binary.
    pub binary_allowed: bool,
    /// Masked table columns of the target's catalog.
    pub catalog: std::sync::Arc<super::catalog::Catalog>,
    /// The server keeps statement and portal names as the client sends them (its encoding is
    /// UTF8 or SQL_ASCII): no conversion changes their bytes (see `frontend::fit_name`).
    pub names_unconverted: bool,
    /// Query text classified at most (the target's `max_statement_bytes`); longer is `unknown`.
    pub max_statement_bytes: usize,
}

/// The verdict on one message of SQL text.
#[derive(Debug)]
pub struct Checked {
    /// Its statements (shared with the classification memos).
    pub statements: std::sync::Arc<[Classified]>,
    /// The decision for the whole message (any denial blocks it).
    pub decision: Decision,
    /// Why, beyond the rule name.
    pub detail: String,
}

impl Checked {
    /// The audit entry of this message, with sequence number `seq`.
    pub fn audit(&self, seq: u32, sql_text: &str, redact: bool) -> StmtAudit {
        let mut text = if redact {
            redacted(&self.statements)
        } else {
            sql_text.to_owned()
        };
        crate::store::cap_statement_text(&mut text);
        let mut tables: Vec<String> = Vec::new();
        for c in self.statements.iter() {
            for t in c.reads.iter().chain(&c.writes) {
                if !tables.contains(t) {
                    tables.push(t.clone());
                }
            }
        }
        StmtAudit {
            seq,
            started: Instant::now(),
            started_at: SystemTime::now(),
            text,
            classes: self
                .statements
                .iter()
                .map(|c| class_name(c.class))
                .collect(),
            tables,
            decision: self.decision.label().to_owned(),
            rule: self.decision.rule.clone(),
            masked: Default::default(),
        }
    }
}

/// snake_case name of a class, as in policy files.
pub fn class_name(c: StatementClass) -> String {
    c.as_str().to_owned()
}

/// Query text classified on the worker thread at most, bytes; longer text is classified on the
/// blocking pool (the proxy's connections share the worker, and a parse of 1 MiB of SQL takes
/// it some 100 ms).
const CLASSIFY_INLINE: usize = 64 << 10;

/// Classifies and decides `sql_text` against the live policy.
pub async fn check(ctx: &Context, meta: &SessionMeta, sql_text: &str) -> Checked {
    let unread = sql_text.len() > meta.max_statement_bytes;
    let statements = classify(sql_text, meta.max_statement_bytes).await;
    let decision = decide(ctx, meta, sql_text, &statements);
    let (decision, detail) = match decision.verdict {
        Verdict::Approve if decision.enforced => hold(ctx, meta, &statements, decision).await,
        _ if unread && !decision.permits() => {
            let detail = format!(
                "{} bytes of SQL, over the target's max_statement_bytes ({}): not read, so \
                 unknown",
                sql_text.len(),
                meta.max_statement_bytes
            );
            (decision, detail)
        }
        _ => (decision, String::new()),
    };
    Checked {
        statements,
        decision,
        detail,
    }
}

/// The statements of `sql_text`: one `unknown` unread when it is longer than `max` bytes,
/// classified on the blocking pool when it is longer than [`CLASSIFY_INLINE`], else in place.
/// A classification that fails (panics) is `unknown`: it fails closed.
async fn classify(sql_text: &str, max: usize) -> std::sync::Arc<[Classified]> {
    if sql_text.len() > max {
        return std::sync::Arc::new([Classified::unread(sql_text.len())]);
    }
    if sql_text.len() <= CLASSIFY_INLINE {
        return sql::classify(sql_text);
    }
    let text = sql_text.to_owned();
    match tokio::task::spawn_blocking(move || sql::classify(&text)).await {
        Ok(statements) => statements,
        Err(e) => {
            tracing::warn!(error = %e, "statement classification failed");
            std::sync::Arc::new([Classified::unread(sql_text.len())])
        }
    }
}

fn decide(
    ctx: &Context,
    meta: &SessionMeta,
    sql_text: &str,
    statements: &[Classified],
) -> Decision {
    let state = ctx.policy.load();
    let Some(workload) = state.policy.workload(&meta.workload) else {
        // The workload left the policy since the session began: nothing is granted.
        return fixed_deny("workload-removed");
    };
    let classes: Vec<StatementClass> = statements.iter().map(|c| c.class).collect();
    if meta.column_masking && classes.contains(&StatementClass::CopyTo) {
        return fixed_deny("copy-out-with-column-masking");
    }
    let tables: Vec<&str> = statements
        .iter()
        .flat_map(|c| c.reads.iter().chain(&c.writes))
        .map(String::as_str)
        .collect();
    state.policy.evaluate_statement(
        workload,
        &meta.target,
        &StatementFacts {
            classes: &classes,
            tables: &tables,
            text: sql_text,
            database: &meta.database,
            role: &meta.role,
        },
    )
}

/// The message's statements, each with its literals redacted, joined by `; `.
fn redacted(statements: &[Classified]) -> String {
    statements
        .iter()
        .map(|c| c.text_redacted.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn hold(
    ctx: &Context,
    meta: &SessionMeta,
    statements: &[Classified],
    d: Decision,
) -> (Decision, String) {
    let summary = redacted(statements);
    let outcome = ctx
        .approvals
        .decide(ApprovalRequest {
            connection_id: meta.connection_id,
            workload: meta.workload.clone(),
            target: Some(meta.target.clone()),
            rule: d.rule.clone(),
            summary,
            timeout: std::time::Duration::from_secs(300),
        })
        .await;
    match outcome {
        ApprovalOutcome::Approved { by } => (
            Decision {
                verdict: Verdict::Allow,
                ..d
            },
            format!("approved by {by}"),
        ),
        ApprovalOutcome::Denied { reason } => (
            Decision {
                verdict: Verdict::Deny,
                ..d
            },
            reason,
        ),
    }
}

fn fixed_deny(rule: &str) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        enforced: true,
        rule: rule.into(),
        target: None,
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use super::*;

    /// A multi-row INSERT of about `bytes` bytes.
    fn insert(bytes: usize) -> String {
        let mut sql = "insert into t values (0, 'a')".to_owned();
        while sql.len() < bytes {
            sql.push_str(", (1, 'row')");
        }
        sql
    }

    /// Polls `classify` once, then to its end: whether the first poll ended it, and the result.
    async fn first_poll(sql: &str, max: usize) -> (bool, std::sync::Arc<[Classified]>) {
        let fut = classify(sql, max);
        tokio::pin!(fut);
        let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        let ended = first.is_ready();
        let out = match first {
            Poll::Ready(out) => out,
            Poll::Pending => fut.await,
        };
        (ended, out)
    }

    /// Text over the inline bound is classified on the blocking pool (the first poll waits,
    /// where classifying in place would end), as in place; shorter text in place; text over
    /// the target's bound is one unread `unknown`.
    #[tokio::test]
    async fn long_text_is_classified_off_the_worker_and_too_long_text_not_at_all() {
        let long = insert(200 << 10);
        let (ended, got) = first_poll(&long, 1 << 20).await;
        assert!(!ended, "classified in place");
        assert_eq!(got, sql::classify(&long));
        assert_eq!(got[0].class, StatementClass::Insert);

        let short = insert(1 << 10);
        let (ended, got) = first_poll(&short, 1 << 20).await;
        assert!(ended);
        assert_eq!(got[0].class, StatementClass::Insert);

        let (ended, got) = first_poll(&long, 100 << 10).await;
        assert!(ended, "nothing to classify");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class, StatementClass::Unknown);
        assert_eq!(
            got[0].text_redacted,
            format!("[{} bytes of SQL, not read]", long.len())
        );
    }
}
