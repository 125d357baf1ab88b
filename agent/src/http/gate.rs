//! Request decisions: the live policy's `evaluate_request`, then the approval gate when a rule
//! says `approve` (as PostgreSQL statements are held).
use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use super::request::Facts;
use crate::{
    policy::{Decision, RequestDecision, Verdict, request_readings, shown_line},
    proxy::{
        Context,
        approval::{ApprovalOutcome, ApprovalRequest},
    },
};

/// How long a request may wait for an approver.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

/// Decides requests.
pub trait Gate: Send + Sync + 'static {
    /// The decision for one request, with the reading that decided when it is not the request
    /// as sent.
    fn decide<'a>(
        &'a self,
        facts: &'a Facts,
    ) -> Pin<Box<dyn Future<Output = RequestDecision> + Send + 'a>>;
}

/// The agent's gate: the live policy (reloads apply to the next request) and its approvers.
pub struct LiveGate {
    /// Shared proxy state.
    pub ctx: Arc<Context>,
    /// Audit id of the connection.
    pub connection_id: uuid::Uuid,
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
}

impl Gate for LiveGate {
    fn decide<'a>(
        &'a self,
        facts: &'a Facts,
    ) -> Pin<Box<dyn Future<Output = RequestDecision> + Send + 'a>> {
        Box::pin(async move {
            let RequestDecision { decision, read_as } = {
                let state = self.ctx.policy.load();
                match state.policy.workload(&self.workload) {
                    Some(w) => state
                        .policy
                        .decide_request(w, &self.target, &facts.as_policy()),
                    // The workload left the policy since the connection began: nothing is granted.
                    None => fixed_deny("workload-removed").into(),
                }
            };
            if decision.verdict != Verdict::Approve || !decision.enforced {
                return RequestDecision { decision, read_as };
            }
            let outcome = self
                .ctx
                .approvals
                .decide(ApprovalRequest {
                    connection_id: self.connection_id,
                    workload: self.workload.clone(),
                    target: Some(self.target.clone()),
                    rule: decision.rule.clone(),
                    summary: approval_summary(facts),
                    timeout: APPROVAL_TIMEOUT,
                })
                .await;
            RequestDecision {
                decision: approved(decision, outcome),
                read_as,
            }
        })
    }
}

/// What an approver is shown of a request: method, host and path, and every other reading an
/// upstream may take of it (`X-HTTP-Method-Override` and the like: see
/// `policy::http::readings`), since the decision covered them all; each once, with anything but
/// printable ASCII percent-encoded (a header path may hold spaces or bidi controls that would
/// show the approver something else). Never query values nor headers: they may hold secrets.
pub fn approval_summary(facts: &Facts) -> String {
    let mut s = shown_line(&facts.method, &facts.audit_host(), &facts.audit_path());
    if let Ok(readings) = request_readings(&facts.as_policy()) {
        let mut others: Vec<String> = Vec::new();
        for r in readings.iter().skip(1) {
            let l = shown_line(r.method, &r.host, &r.path);
            if l != s && !others.contains(&l) {
                others.push(l);
            }
        }
        if !others.is_empty() {
            s.push_str(" (also read as: ");
            s.push_str(&others.join(", "));
            s.push(')');
        }
    }
    s
}

/// The decision after the approver's answer: allowed, or denied with the reason in the rule
/// (`"<rule> (approval-unavailable)"`).
pub fn approved(d: Decision, outcome: ApprovalOutcome) -> Decision {
    match outcome {
        ApprovalOutcome::Approved { .. } => Decision {
            verdict: Verdict::Allow,
            ..d
        },
        ApprovalOutcome::Denied { reason } => Decision {
            verdict: Verdict::Deny,
            rule: format!("{} ({reason})", d.rule),
            ..d
        },
    }
}

/// What a request's record says of its denial: the rule, `why` it was read (a form's
/// `_method`), and the reading that decided when it is not the request as sent.
pub fn denied_by(d: &RequestDecision, why: Option<&str>) -> String {
    let mut s = format!("denied by rule {}", d.decision.rule);
    if let Some(why) = why {
        s.push_str(&format!(" ({why})"));
    }
    if let Some(read_as) = &d.read_as {
        s.push_str(&format!(": read as {read_as}"));
    }
    s
}

/// A denial by a rule of tollgate's own.
pub fn fixed_deny(rule: &str) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        enforced: true,
        rule: rule.into(),
        target: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The approver sees every reading the decision covered, and never a query value.
    #[test]
    fn approval_summary_shows_other_readings() {
        let facts = |headers: &[(&str, &str)]| Facts {
            method: "POST".into(),
            host: "API.example:443".into(),
            path: "/items/%31".into(),
            query: vec![("token".into(), "s3cret".into())],
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        assert_eq!(approval_summary(&facts(&[])), "POST api.example/items/1");
        assert_eq!(
            approval_summary(&facts(&[("x-http-method-override", "PUT")])),
            "POST api.example/items/1 (also read as: PUT api.example/items/1)"
        );
        // A header path read with two queries is shown once; what is not printable ASCII is
        // escaped.
        assert_eq!(
            approval_summary(&facts(&[("x-original-url", "/a b\u{202E}x?q=1")])),
            "POST api.example/items/1 (also read as: POST api.example/a%20b%E2%80%AEx)"
        );
    }

    #[test]
    fn approval_outcomes() {
        let d = Decision {
            verdict: Verdict::Approve,
            enforced: true,
            rule: "seal-needs-approval".into(),
            target: None,
        };
        let ok = approved(d.clone(), ApprovalOutcome::Approved { by: "ops".into() });
        assert!(ok.permits());
        let no = approved(
            d,
            ApprovalOutcome::Denied {
                reason: "approval-unavailable".into(),
            },
        );
        assert!(!no.permits());
        assert_eq!(no.rule, "seal-needs-approval (approval-unavailable)");
        assert_eq!(no.label(), "deny");
    }
}
