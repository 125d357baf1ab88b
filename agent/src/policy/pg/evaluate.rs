//! Pure decisions for PostgreSQL sessions: may this workload log in as this role to this
//! database, and may it run this statement.
use super::model::{StatementFacts, StatementRule};
use crate::{
    policy::{
        evaluate::{DEFAULT_DENY, Decision, TargetMatch},
        model::{Mode, Policy, Rule, Target, Verdict, Workload},
    },
    postgres::sql::StatementClass,
};

/// Rule reported when a message holding a statement of class `unknown` is denied because no
/// statement rule applies (so none opted in to unknown statements).
pub const UNKNOWN_STATEMENT: &str = "unknown-statement";
/// Rule reported when a message is allowed because no statement rule applies to the workload
/// and target (the connection itself was allowed at L4).
pub const NO_STATEMENT_RULES: &str = "no-statement-rules";

impl StatementRule {
    /// Whether this rule applies to a message, for a rule whose action is `action`.
    ///
    /// An **allow** rule must cover the whole message: every statement's class is listed (class
    /// `unknown` only when listed explicitly, even when `classes` is omitted) and every table
    /// matches a glob. A **deny** or **approve** rule applies as soon as one part hits: some
    /// statement's class is listed, and some table matches a glob; so adding a harmless
    /// statement or table to a message never escapes it. In both cases `regex` must match
    /// somewhere in the text, and the session's database and role must be listed. An omitted
    /// condition matches anything.
    pub fn matches(&self, action: Verdict, facts: &StatementFacts<'_>) -> bool {
        let session = listed(&self.databases, facts.database)
            && listed(&self.roles, facts.role)
            && self.regex.as_ref().is_none_or(|re| re.is_match(facts.text));
        session
            && match action {
                Verdict::Allow => self.covers(facts),
                Verdict::Deny | Verdict::Approve => self.hits(facts),
            }
    }

    /// Every class and every table is allowed.
    fn covers(&self, facts: &StatementFacts<'_>) -> bool {
        let class_ok = |c: &StatementClass| match &self.classes {
            Some(list) => list.contains(c),
            None => *c != StatementClass::Unknown,
        };
        facts.classes.iter().all(class_ok)
            && self
                .tables
                .as_ref()
                .is_none_or(|g| facts.tables.iter().all(|t| g.matches(t)))
    }

    /// Some class and some table are named.
    fn hits(&self, facts: &StatementFacts<'_>) -> bool {
        self.classes
            .as_ref()
            .is_none_or(|list| facts.classes.iter().any(|c| list.contains(c)))
            && self
                .tables
                .as_ref()
                .is_none_or(|g| facts.tables.iter().any(|t| g.matches(t)))
    }
}

/// Whether `value` is in `list`; an absent list holds everything.
fn listed(list: &Option<Vec<String>>, value: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|x| x == value))
}

impl Policy {
    /// The target called `name`.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.targets.get(i))
    }

    /// Decides whether `workload` may run a message (a simple Query or a Parse) on `target`.
    ///
    /// The statement rules (rules with `[rule.postgres]`) naming the workload and the target and
    /// matching the message (see [`StatementRule::matches`]) decide: any deny wins, then any
    /// approve, then any allow, the first rule by name reporting; none matching is a deny by
    /// [`DEFAULT_DENY`]. Without any statement rule for the workload and target, every message
    /// is allowed ([`NO_STATEMENT_RULES`]) except one holding a statement of class `unknown`
    /// ([`UNKNOWN_STATEMENT`]). An unknown target is a deny by [`DEFAULT_DENY`]. In audit mode
    /// the verdict is not enforced.
    pub fn evaluate_statement(
        &self,
        workload: &Workload,
        target: &str,
        facts: &StatementFacts<'_>,
    ) -> Decision {
        let Some(t) = self.target(target) else {
            return decision(workload, None, Verdict::Deny, DEFAULT_DENY);
        };
        let rules: Vec<(&Rule, &StatementRule)> = self
            .applicable(workload, t)
            .filter_map(|r| r.postgres.as_ref().map(|p| (r, p)))
            .collect();
        if rules.is_empty() {
            return if facts.classes.contains(&StatementClass::Unknown) {
                decision(workload, Some(t), Verdict::Deny, UNKNOWN_STATEMENT)
            } else {
                decision(workload, Some(t), Verdict::Allow, NO_STATEMENT_RULES)
            };
        }
        let decided = Verdict::PRECEDENCE.into_iter().find_map(|v| {
            rules
                .iter()
                .find(|(r, p)| r.action == v && p.matches(v, facts))
        });
        match decided {
            Some((r, _)) => decision(workload, Some(t), r.action, &r.name),
            None => decision(workload, Some(t), Verdict::Deny, DEFAULT_DENY),
        }
    }

    /// Decides whether `workload` may open a session on `target` as upstream role `role` on
    /// `database`: allowed when some allow or approve rule naming the workload and the target
    /// has no `[rule.postgres]`, or one whose `roles` and `databases` (when given) list them;
    /// the first such rule by name reports. Otherwise (and for an empty role) a deny by
    /// [`DEFAULT_DENY`]. Whether the target has a credential for `role` is the session's check
    /// ([`PostgresTarget::credential`](super::model::PostgresTarget::credential)).
    pub fn evaluate_login(
        &self,
        workload: &Workload,
        target: &str,
        role: &str,
        database: &str,
    ) -> Decision {
        let Some(t) = self.target(target) else {
            return decision(workload, None, Verdict::Deny, DEFAULT_DENY);
        };
        let allowing = self.applicable(workload, t).find(|r| {
            r.action != Verdict::Deny
                && r.postgres
                    .as_ref()
                    .is_none_or(|p| listed(&p.roles, role) && listed(&p.databases, database))
        });
        match allowing {
            Some(r) if !role.is_empty() => decision(workload, Some(t), Verdict::Allow, &r.name),
            _ => decision(workload, Some(t), Verdict::Deny, DEFAULT_DENY),
        }
    }

    /// Rules naming both `workload` and `target`, by name.
    pub(in crate::policy) fn applicable<'a>(
        &'a self,
        workload: &'a Workload,
        target: &'a Target,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(|r| r.workloads.includes(&workload.name) && r.targets.includes(&target.name))
    }
}

/// A decision of `workload` on `target` (with its mode).
pub(in crate::policy) fn decision(
    workload: &Workload,
    target: Option<&Target>,
    verdict: Verdict,
    rule: &str,
) -> Decision {
    Decision {
        verdict,
        enforced: workload.mode == Mode::Enforce,
        rule: rule.to_owned(),
        target: target.map(|t| TargetMatch {
            name: t.name.clone(),
            protocol: t.protocol,
        }),
    }
}
