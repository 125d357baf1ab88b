//! Pure decisions for HTTP requests: may this workload send this request to this target.
use super::{
    model::{PathMatch, RequestFacts, RequestRule},
    path::{is_plain_host, normalize_host, normalize_path},
    readings::{Unread, has_other_readings, readings, same_header_name, same_param_name},
};
use crate::policy::{
    evaluate::{DEFAULT_DENY, Decision},
    model::{Policy, Rule, Target, Verdict, Workload},
    pg::evaluate::decision,
};

/// Rule reported when a request is allowed because no request rule applies to the workload and
/// target (the connection itself was allowed at L4).
pub const NO_REQUEST_RULES: &str = "no-request-rules";
/// Rule reported when request rules apply and the path cannot be normalized (see
/// [`normalize_path`]): `..` above the root, an encoded `/`, a bad escape...
pub const MALFORMED_PATH: &str = "malformed-path";
/// The rule reported for a request whose host is not a plain `host[:port]`
/// ([`is_plain_host`]).
pub const MALFORMED_HOST: &str = "malformed-host";
/// The rule reported for a request whose override headers give more readings than
/// [`MAX_READINGS`](super::readings::MAX_READINGS).
pub const AMBIGUOUS_REQUEST: &str = "ambiguous-request";
/// The rule reported for a request whose method override (a header or `_method`) is not a
/// method (an RFC 9110 token).
pub const MALFORMED_METHOD: &str = "malformed-method";

/// A request's decision, with the reading of it that decided when that is not the request as
/// sent (an override header or `_method` made it stricter: see [`super::readings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDecision {
    /// The decision.
    pub decision: Decision,
    /// How the deciding reading differs from the request as sent
    /// ([`Reading::read_as`](super::readings::Reading::read_as)); `None` when the request as
    /// sent decided.
    pub read_as: Option<String>,
}

impl From<Decision> for RequestDecision {
    fn from(decision: Decision) -> Self {
        Self {
            decision,
            read_as: None,
        }
    }
}

impl RequestRule {
    /// Whether this rule applies to a request, for a rule whose action is `action`. `facts`
    /// must be normalized: `path` by [`normalize_path`], `host` by [`normalize_host`] (as
    /// [`Policy::evaluate_request`] does).
    ///
    /// The method, host and path must match (when given). A query parameter or header condition
    /// needs the parameter or header to be present; for an **allow** rule every value it has
    /// must match the glob (a repeated parameter cannot smuggle a second value past it), for a
    /// **deny** or **approve** rule one matching value is enough. Values are those of every
    /// name an upstream may read as the condition's ([`same_param_name`], [`same_header_name`]);
    /// an allow rule also needs the name as it spells it (case aside for headers).
    pub fn matches(&self, action: Verdict, facts: &RequestFacts<'_>) -> bool {
        let method = self
            .methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m.eq_ignore_ascii_case(facts.method)));
        let host = self.hosts.as_ref().is_none_or(|h| h.matches(facts.host));
        let path = self.path.as_ref().is_none_or(|p| match p {
            PathMatch::Globs(g) => g.matches(facts.path),
            PathMatch::Prefix(prefixes) => prefixes.iter().any(|p| facts.path.starts_with(p)),
            PathMatch::Regex(re) => re.is_match(facts.path),
        });
        let every = action == Verdict::Allow;
        // Values are taken under every spelling an upstream may read as the name (PHP's for
        // parameters, `_` for `-` in headers), so a deny sees them all; an allow also needs the
        // name spelled as the rule spells it, since an upstream that does not fold names does
        // not see the other spellings at all.
        let query = self.query.iter().all(|(name, glob)| {
            values_match(
                facts.query.iter().filter(|(k, _)| same_param_name(k, name)),
                |v| glob.matches(v),
                every,
            ) && (!every || facts.query.iter().any(|(k, _)| k == name))
        });
        let headers = self.headers.iter().all(|(name, glob)| {
            values_match(
                facts
                    .headers
                    .iter()
                    .filter(|(k, _)| same_header_name(k, name)),
                |v| glob.matches(v),
                every,
            ) && (!every
                || facts
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(name)))
        });
        method && host && path && query && headers
    }
}

/// At least one value, and all (`every`) or some of them matching.
fn values_match<'a>(
    values: impl Iterator<Item = &'a (String, String)>,
    matches: impl Fn(&str) -> bool,
    every: bool,
) -> bool {
    let mut seen = false;
    for (_, v) in values {
        seen = true;
        match (matches(v), every) {
            (false, true) => return false,
            (true, false) => return true,
            _ => {}
        }
    }
    seen && every
}

impl Policy {
    /// Decides whether `workload` may send a request to `target`.
    ///
    /// The request rules (rules with `[rule.http]`) naming the workload and the target decide
    /// on the normalized request (host without port, lowercase; path by [`normalize_path`]) and
    /// matching it (see [`RequestRule::matches`]): any deny wins, then any approve, then any
    /// allow, the first rule by name reporting; none matching is a deny by [`DEFAULT_DENY`]. A
    /// path that cannot be normalized is a deny by [`MALFORMED_PATH`], a host that is not plain
    /// one by [`MALFORMED_HOST`]. A request with headers or a parameter an upstream may take as
    /// its method, path or host is decided on each reading ([`super::readings`]). Without any
    /// request rule for the workload and target, every request is allowed
    /// ([`NO_REQUEST_RULES`]). An unknown target is a deny by [`DEFAULT_DENY`]. In audit mode
    /// the verdict is not enforced.
    pub fn evaluate_request(
        &self,
        workload: &Workload,
        target: &str,
        facts: &RequestFacts<'_>,
    ) -> Decision {
        self.decide_request(workload, target, facts).decision
    }

    /// [`Self::evaluate_request`], with the reading that decided when it is not the request as
    /// sent ([`RequestDecision::read_as`]).
    pub fn decide_request(
        &self,
        workload: &Workload,
        target: &str,
        facts: &RequestFacts<'_>,
    ) -> RequestDecision {
        let Some(t) = self.target(target) else {
            return decision(workload, None, Verdict::Deny, DEFAULT_DENY).into();
        };
        let rules: Vec<(&Rule, &RequestRule)> = self
            .applicable(workload, t)
            .filter_map(|r| r.http.as_ref().map(|h| (r, h)))
            .collect();
        if rules.is_empty() {
            return decision(workload, Some(t), Verdict::Allow, NO_REQUEST_RULES).into();
        }
        if has_other_readings(facts) {
            return self.evaluate_readings(workload, t, &rules, facts);
        }
        let Some(path) = normalize_path(facts.path) else {
            return decision(workload, Some(t), Verdict::Deny, MALFORMED_PATH).into();
        };
        if !is_plain_host(facts.host) {
            return decision(workload, Some(t), Verdict::Deny, MALFORMED_HOST).into();
        }
        let host = normalize_host(facts.host);
        let facts = RequestFacts {
            path: &path,
            host: &host,
            ..*facts
        };
        let decided = decide(&rules, &facts);
        match decided {
            Some(r) => decision(workload, Some(t), r.action, &r.name),
            None => decision(workload, Some(t), Verdict::Deny, DEFAULT_DENY),
        }
        .into()
    }

    /// [`Self::evaluate_request`] for a request with headers or a `_method` parameter that an
    /// upstream may read as its method, path or host ([`readings`]): each reading is decided
    /// on, and the strictest decision stands (deny, then approve, then allow), the first
    /// reading's rule reporting among equals (a named rule before [`DEFAULT_DENY`]). A reading
    /// that cannot be normalized is a deny by [`MALFORMED_PATH`], [`MALFORMED_HOST`] or
    /// [`MALFORMED_METHOD`]; too many of them, by [`AMBIGUOUS_REQUEST`]. The deciding reading
    /// is named when it is not the request as sent.
    fn evaluate_readings(
        &self,
        workload: &Workload,
        t: &Target,
        rules: &[(&Rule, &RequestRule)],
        facts: &RequestFacts<'_>,
    ) -> RequestDecision {
        let all = match readings(facts) {
            Ok(all) => all,
            Err(unread) => {
                let rule = match unread {
                    Unread::Method => MALFORMED_METHOD,
                    Unread::Path => MALFORMED_PATH,
                    Unread::Host => MALFORMED_HOST,
                    Unread::TooMany => AMBIGUOUS_REQUEST,
                };
                return decision(workload, Some(t), Verdict::Deny, rule).into();
            }
        };
        let mut worst: Option<(Verdict, &str, usize)> = None;
        for (i, reading) in all.iter().enumerate() {
            let (verdict, rule) = match decide(rules, &reading.facts(facts)) {
                Some(r) => (r.action, r.name.as_str()),
                None => (Verdict::Deny, DEFAULT_DENY),
            };
            // Among equals, a rule that names the reason over `default-deny`.
            let stricter = worst.is_none_or(|(w, wr, _)| {
                verdict.strictness() > w.strictness()
                    || (verdict == w && wr == DEFAULT_DENY && rule != DEFAULT_DENY)
            });
            if stricter {
                worst = Some((verdict, rule, i));
            }
        }
        let (verdict, rule, i) = worst.expect("a request has at least its own reading");
        RequestDecision {
            decision: decision(workload, Some(t), verdict, rule),
            read_as: all[i].read_as(),
        }
    }
}

/// The rule that decides a normalized request: any deny, then any approve, then any allow, the
/// first by name; `None` when none matches. An approve rule matches loosely (one value, any
/// spelling), which only makes it stricter than an allow rule the request also matches; when
/// no allow rule matches, the approve is what grants the request, and it must then match as an
/// allow does (every value, its own spelling), or the request is not granted at all: an
/// approver is never shown a request whose headers an upstream may read otherwise.
fn decide<'r>(rules: &[(&'r Rule, &RequestRule)], facts: &RequestFacts<'_>) -> Option<&'r Rule> {
    let first = |v: Verdict, strict: bool| {
        let how = if strict { Verdict::Allow } else { v };
        rules
            .iter()
            .find(|(r, h)| r.action == v && h.matches(how, facts))
            .map(|(r, _)| *r)
    };
    if let Some(r) = first(Verdict::Deny, false) {
        return Some(r);
    }
    let allow = first(Verdict::Allow, true);
    match first(Verdict::Approve, false) {
        Some(r) if allow.is_some() => Some(r),
        Some(_) => first(Verdict::Approve, true),
        None => allow,
    }
}
