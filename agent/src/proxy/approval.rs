//! Asynchronous decisions: a rule with `action = "approve"` holds the connection (or, in the
//! protocol handlers to come, the statement or request) until an approver decides.
//!
//! This version has no approver: [`Unavailable`] answers at once with a denial, so `approve`
//! behaves as `deny` with a clear reason. The approvals work plugs a real gate in here (CLI,
//! webhook, web page) without touching the hand-off.
use std::{future::Future, pin::Pin, time::Duration};

/// What is waiting for a decision.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// Audit id of the connection.
    pub connection_id: uuid::Uuid,
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: Option<String>,
    /// The rule that asked for approval.
    pub rule: String,
    /// Human summary of what would run ("connect 10.0.0.5:5432", a statement, a request line).
    pub summary: String,
    /// How long the caller is willing to hold.
    pub timeout: Duration,
}

/// The approver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// Go ahead.
    Approved {
        /// Who approved.
        by: String,
    },
    /// Refused, with the reason recorded in the audit.
    Denied {
        /// Why.
        reason: String,
    },
}

/// Decides held requests.
pub trait ApprovalGate: Send + Sync + 'static {
    /// Waits for a decision on `req`.
    fn decide(
        &self,
        req: ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + '_>>;
}

/// No approver configured: every request is denied at once.
pub struct Unavailable;

impl ApprovalGate for Unavailable {
    fn decide(
        &self,
        _req: ApprovalRequest,
    ) -> Pin<Box<dyn Future<Output = ApprovalOutcome> + Send + '_>> {
        Box::pin(async {
            ApprovalOutcome::Denied {
                reason: "approval-unavailable".into(),
            }
        })
    }
}
