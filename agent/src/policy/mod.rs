//! Policy: which processes are which workload (selectors, SPIFFE IDs), and which workload may
//! reach which destination (L4 rules). Pure parsing, validation and evaluation, no I/O besides
//! reading the policy files; the format and semantics are documented in `policies/README.md`.
//!
//! - [`load_dir`] / [`load_str`] parse and check every file, collecting every error
//!   ([`PolicyErrors`], each at a file, line and column).
//! - [`Policy::match_workload`] finds the workload of a [`Subject`] (the connecting process).
//! - [`Policy::evaluate`] decides for a workload and a destination; DNS names are resolved by the
//!   agent beforehand into a [`DnsTable`] ([`Policy::dns_names`] lists them).
mod address;
mod compile;
mod error;
mod evaluate;
mod file;
mod load;
mod model;
mod selector;
pub mod spiffe;

pub use address::{Address, AddressError, Host, Ports, Specificity};
pub use compile::MAX_NAME_LEN;
pub use error::{PolicyError, PolicyErrors};
pub use evaluate::{DEFAULT_DENY, Decision, DnsTable, TargetMatch};
pub use load::{load_dir, load_str};
pub use model::{Mode, Names, Policy, Protocol, Rule, Target, Verdict, Workload};
pub use selector::{Pattern, Selector, Subject};
pub use spiffe::{SpiffeId, SpiffeIdError};

#[cfg(test)]
mod tests;
