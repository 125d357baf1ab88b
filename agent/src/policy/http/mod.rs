//! HTTP parts of the policy: `[target.http]` (TLS handling, credential injection, limits,
//! masking) and `[rule.http]` (request rules), the pure decision on them
//! ([`Policy::evaluate_request`](super::Policy::evaluate_request)) and the canonical forms it
//! decides on ([`normalize_path`](path::normalize_path), [`normalize_host`](path::normalize_host)).
pub(super) mod compile;
pub(super) mod evaluate;
pub(super) mod file;
pub(super) mod form;
pub(super) mod headers;
pub(super) mod json_key;
pub(super) mod model;
pub(super) mod path;
pub(super) mod readings;

#[cfg(test)]
mod tests;
