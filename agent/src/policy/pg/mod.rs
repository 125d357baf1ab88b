//! PostgreSQL parts of the policy: `[target.postgres]` (TLS, credentials, masking) and
//! `[rule.postgres]` (statement rules), and the pure decisions on them
//! ([`Policy::evaluate_statement`](super::Policy::evaluate_statement),
//! [`Policy::evaluate_login`](super::Policy::evaluate_login)).
pub(super) mod compile;
pub(super) mod evaluate;
pub(super) mod file;
pub(super) mod model;

#[cfg(test)]
mod tests;
