//! Statement decisions: classify with the SQL parser, evaluate the live policy, and hold on the
//! approval gate when a rule says `approve`.
use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

use crate::{
    policy::{Decision, StatementFacts, Verdict},
    postgres::sql::{self, Classified, StatementClass},
    proxy::{
        Context, PolicyState,
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

#[cfg(test)]
impl SessionMeta {
    /// A session of workload `w` on target `t`, database `d`, role `r`: no masking, literals
    /// recorded as sent, a 1 MiB statement bound.
    pub(crate) fn for_tests() -> Self {
        SessionMeta {
            connection_id: uuid::Uuid::now_v7(),
            recorded: true,
            workload: "w".into(),
            target: "t".into(),
            database: "d".into(),
            role: "r".into(),
            redact_literals: false,
            column_masking: false,
            binary_allowed: false,
            catalog: Default::default(),
            names_unconverted: true,
            max_statement_bytes: 1 << 20,
        }
    }
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
    /// The generation of the policy that decided ([`PolicyState::generation`]).
    pub policy: u64,
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

/// Query text classified and decided on the worker thread at most, bytes; longer text is
/// classified and decided on the blocking pool (the proxy's connections share the worker, and
/// an 840 KiB INSERT took it some 70 ms to parse: 16 KiB is about 1.3 ms; a rule's regex reads
/// the whole text, parsed or not). Statements of ORMs and drivers are shorter, and repeated
/// ones hit the classification memos in place.
pub(super) const CLASSIFY_INLINE: usize = 16 << 10;

/// The rule reported when classifying or deciding long text failed (panicked): denied.
const CHECK_FAILED: &str = "statement-check-failed";

/// Classifies and decides `sql_text` against the live policy.
pub async fn check(ctx: &Context, meta: &SessionMeta, sql_text: &str) -> Checked {
    let unread = sql_text.len() > meta.max_statement_bytes;
    let state = ctx.policy.load_full();
    let policy = state.generation;
    let (statements, decision) = classify_and_decide(state, meta, sql_text).await;
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
        policy,
        statements,
        decision,
        detail,
    }
}

/// [`classify`] and [`decide`], in place for text up to [`CLASSIFY_INLINE`] bytes, else on the
/// blocking pool. Work that fails there (panics) is denied: it fails closed.
async fn classify_and_decide(
    state: Arc<PolicyState>,
    meta: &SessionMeta,
    sql_text: &str,
) -> (Arc<[Classified]>, Decision) {
    let max = meta.max_statement_bytes;
    if sql_text.len() <= CLASSIFY_INLINE {
        let statements = classify(sql_text, max);
        let decision = decide(&state, meta, sql_text, &statements);
        return (statements, decision);
    }
    let text = sql_text.to_owned();
    let owned = meta.clone();
    let work = crate::offload::run(move || {
        let statements = classify(&text, max);
        let decision = decide(&state, &owned, &text, &statements);
        (statements, decision)
    });
    match work.await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(error = %e, "statement check failed");
            let failed: Arc<[Classified]> = Arc::new([Classified::failed(sql_text.len())]);
            (failed, fixed_deny(CHECK_FAILED))
        }
    }
}

/// The statements of `sql_text`: one `unknown` unread when it is longer than `max` bytes.
fn classify(sql_text: &str, max: usize) -> Arc<[Classified]> {
    if sql_text.len() > max {
        return Arc::new([Classified::unread(sql_text.len())]);
    }
    sql::classify(sql_text)
}

/// The decision of the live policy on statements decided before under another one (a prepared
/// statement bound after a reload), from what their Parse classified. In place: a reload is
/// rare, and the classification is not done again.
pub fn decide_again(
    state: &PolicyState,
    meta: &SessionMeta,
    sql_text: &str,
    statements: &[Classified],
) -> Decision {
    decide(state, meta, sql_text, statements)
}

fn decide(
    state: &PolicyState,
    meta: &SessionMeta,
    sql_text: &str,
    statements: &[Classified],
) -> Decision {
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
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::offload::first_poll_ends;

    /// A multi-row INSERT of about `bytes` bytes.
    fn insert(bytes: usize) -> String {
        let mut sql = "insert into t values (0, 'a')".to_owned();
        while sql.len() < bytes {
            sql.push_str(", (1, 'row')");
        }
        sql
    }

    /// Workload `w` may insert into postgres target `t`; nothing else.
    fn state(dir: &std::path::Path) -> Arc<PolicyState> {
        let pw = dir.join("pw");
        std::fs::write(&pw, "pw").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "[[workload]]\nname = \"w\"\nspiffe_id = \"spiffe://example.org/w\"\n\
             [workload.selector]\nuid = 1000\n\n\
             [[target]]\nname = \"t\"\nprotocol = \"postgres\"\naddresses = [\"127.0.0.1:5432\"]\n\
             [[target.postgres.credential]]\nrole = \"r\"\npassword_file = {:?}\n\n\
             [[rule]]\nname = \"inserts\"\nworkloads = [\"w\"]\ntargets = [\"t\"]\n\
             action = \"allow\"\n[rule.postgres]\nclasses = [\"insert\"]\n",
            pw.display().to_string()
        );
        let policy = crate::policy::load_str(std::path::Path::new("p.toml"), &text, None)
            .unwrap_or_else(|e| panic!("{e}"));
        Arc::new(PolicyState {
            policy,
            generation: 1,
            loaded_at: SystemTime::now(),
        })
    }

    fn meta(max_statement_bytes: usize) -> SessionMeta {
        SessionMeta {
            redact_literals: true,
            max_statement_bytes,
            ..SessionMeta::for_tests()
        }
    }

    /// Runs `classify_and_decide` once, then to its end: whether the first poll ended it, the
    /// classes and the rule.
    async fn first_poll(
        state: &Arc<PolicyState>,
        meta: &SessionMeta,
        sql: &str,
    ) -> (bool, Arc<[Classified]>, Decision) {
        let (ended, (statements, decision)) =
            first_poll_ends(classify_and_decide(state.clone(), meta, sql)).await;
        (ended, statements, decision)
    }

    /// Text over the inline bound is classified and decided on the blocking pool (the first
    /// poll waits, where doing it in place would end), as in place; shorter text in place; text
    /// over the target's bound is one unread `unknown`, decided as such.
    #[tokio::test]
    async fn long_text_is_checked_off_the_worker_and_too_long_text_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        let long = insert(200 << 10);
        let (ended, got, decision) = first_poll(&state, &meta(1 << 20), &long).await;
        assert!(!ended, "checked in place");
        assert_eq!(got, sql::classify(&long));
        assert_eq!(got[0].class, StatementClass::Insert);
        assert_eq!(
            (decision.verdict, decision.rule.as_str()),
            (Verdict::Allow, "inserts")
        );

        let short = insert(1 << 10);
        let (ended, got, decision) = first_poll(&state, &meta(1 << 20), &short).await;
        assert!(ended);
        assert_eq!(got[0].class, StatementClass::Insert);
        assert_eq!(decision.verdict, Verdict::Allow);

        let (_, got, decision) = first_poll(&state, &meta(100 << 10), &long).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class, StatementClass::Unknown);
        assert_eq!(
            got[0].text_redacted,
            format!("[{} bytes of SQL, not read]", long.len())
        );
        assert_eq!(decision.verdict, Verdict::Deny);
    }
}
