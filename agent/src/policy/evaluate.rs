//! Pure matching: which workload a process is, and what the policy decides for a destination.
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use serde::Serialize;

use super::{
    Subject,
    address::Specificity,
    model::{Mode, Policy, Protocol, Rule, Target, Verdict, Workload},
};

/// Rule name reported when no rule (or no target) matches.
pub const DEFAULT_DENY: &str = "default-deny";

/// Addresses of the DNS names in [`Policy::dns_names`], resolved by the agent and passed in so
/// that [`Policy::evaluate`] stays pure. A name missing from the table matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsTable(pub HashMap<String, Vec<IpAddr>>);

/// The target a destination was matched to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetMatch {
    /// Target name.
    pub name: String,
    /// Its protocol (which handler proxies the connection).
    pub protocol: Protocol,
}

/// What the policy decides for one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The policy's verdict, before audit mode is applied.
    pub verdict: Verdict,
    /// False when the workload is in audit mode (the verdict is recorded, not applied).
    pub enforced: bool,
    /// Name of the deciding rule, or [`DEFAULT_DENY`].
    pub rule: String,
    /// The most specific target containing the destination, if any.
    pub target: Option<TargetMatch>,
}

impl Decision {
    /// Whether the connection may proceed now: allowed, or not enforced.
    pub fn permits(&self) -> bool {
        self.verdict == Verdict::Allow || !self.enforced
    }

    /// Audit label: "allow", "deny", "approve", or "audit-deny" when a deny or approve was not
    /// enforced.
    pub fn label(&self) -> &'static str {
        match (self.verdict, self.enforced) {
            (Verdict::Allow, _) => "allow",
            (_, false) => "audit-deny",
            (Verdict::Deny, true) => "deny",
            (Verdict::Approve, true) => "approve",
        }
    }
}

impl Policy {
    /// The first workload (in match order) whose selector matches `s`.
    pub fn match_workload(&self, s: &Subject) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.selector.matches(s))
    }

    /// Could any workload match a process in this cgroup? Checks only cgroup-level selectors
    /// (cgroup glob, systemd_unit); a workload with neither matches every cgroup. Used to decide
    /// whether a cgroup's connections go through the proxy at all.
    pub fn cgroup_enrolled(&self, cgroup_path: &str, systemd_unit: Option<&str>) -> bool {
        self.workloads
            .iter()
            .any(|w| w.selector.matches_cgroup(cgroup_path, systemd_unit))
    }

    /// Decides whether `workload` may connect to `dst`. Pure: DNS names are looked up in `dns`.
    ///
    /// The most specific target containing `dst` is chosen (see [`Specificity`]; ties go to the
    /// first name). Among the rules naming both the workload and that target, any deny wins, then
    /// any approve, then any allow (the first rule by name reports the verdict); no rule or no
    /// target is a deny by [`DEFAULT_DENY`]. IPv4-mapped IPv6 destinations count as IPv4.
    /// Statement rules (with `[rule.postgres]`) and request rules (with `[rule.http]`) count
    /// here as follows: an allow or approve one allows the connection (its statements or
    /// requests are decided later, by [`Policy::evaluate_statement`] or
    /// [`Policy::evaluate_request`]); a deny one does not count.
    pub fn evaluate(&self, workload: &Workload, dst: SocketAddr, dns: &DnsTable) -> Decision {
        let enforced = workload.mode == Mode::Enforce;
        let Some(target) = self.most_specific_target(dst.ip().to_canonical(), dst.port(), dns)
        else {
            return Decision {
                verdict: Verdict::Deny,
                enforced,
                rule: DEFAULT_DENY.to_owned(),
                target: None,
            };
        };
        let decided = Verdict::PRECEDENCE.into_iter().find_map(|v| {
            self.applicable(workload, target)
                .find(|r| connection_effect(r) == Some(v))
                .map(|r| (v, r))
        });
        let (verdict, rule) = match decided {
            Some((v, r)) => (v, r.name.clone()),
            None => (Verdict::Deny, DEFAULT_DENY.to_owned()),
        };
        Decision {
            verdict,
            enforced,
            rule,
            target: Some(TargetMatch {
                name: target.name.clone(),
                protocol: target.protocol,
            }),
        }
    }

    /// The target with the most specific address containing `ip:port`; ties go to the first
    /// target by name (targets are kept sorted).
    fn most_specific_target(&self, ip: IpAddr, port: u16, dns: &DnsTable) -> Option<&Target> {
        let mut best: Option<(Specificity, &Target)> = None;
        for t in &self.targets {
            let spec = t
                .addresses
                .iter()
                .filter(|a| a.matches(ip, port, dns))
                .map(|a| a.specificity())
                .max();
            if let Some(spec) = spec
                && best.is_none_or(|(b, _)| spec > b)
            {
                best = Some((spec, t));
            }
        }
        best.map(|(_, t)| t)
    }
}

/// What a rule decides for a connection: an L4 rule its action; a statement or request rule
/// allows the connection when it allows or approves statements or requests, and has no say
/// when it denies them.
fn connection_effect(r: &Rule) -> Option<Verdict> {
    let l7 = r.postgres.is_some() || r.http.is_some();
    match (l7, r.action) {
        (false, action) => Some(action),
        (true, Verdict::Deny) => None,
        (true, Verdict::Allow | Verdict::Approve) => Some(Verdict::Allow),
    }
}
