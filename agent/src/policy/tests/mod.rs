//! Tests of the policy module as a whole: loading and errors, ordering, evaluation, examples.
mod evaluate;
mod examples;
mod load;
mod ordering;

use std::path::Path;

use super::{Policy, PolicyErrors, load_str};

/// Loads `text` as `p.toml`, without a trust domain.
fn load(text: &str) -> Result<Policy, PolicyErrors> {
    load_str(Path::new("p.toml"), text, None)
}

/// Loads `text`, which must be valid.
fn policy(text: &str) -> Policy {
    load(text).unwrap_or_else(|e| panic!("policy should load:\n{e}"))
}
