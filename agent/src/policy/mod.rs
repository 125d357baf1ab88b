//! Policy: which processes are which workload (selectors, SPIFFE IDs), and which workload may
//! reach which destination (L4 rules), and what it may do there (PostgreSQL login and statement
//! rules). Pure parsing, validation and evaluation, no I/O besides reading the policy files and
//! the secrets they name (at load); the format and semantics are documented in
//! `policies/README.md`.
//!
//! - [`load_dir`] / [`load_str`] parse and check every file, collecting every error
//!   ([`PolicyErrors`], each at a file, line and column).
//! - [`Policy::match_workload`] finds the workload of a [`Subject`] (the connecting process).
//! - [`Policy::evaluate`] decides for a workload and a destination; DNS names are resolved by the
//!   agent beforehand into a [`DnsTable`] ([`Policy::dns_names`] lists them).
//! - PostgreSQL targets: [`Policy::evaluate_login`] (role and database at session start) and
//!   [`Policy::evaluate_statement`] (each Query or Parse, from [`StatementFacts`]); secrets named
//!   by `[target.postgres]` are read at load into [`Secret`]s, which never print.
//! - HTTP targets: [`Policy::evaluate_request`] (each request, from [`RequestFacts`], on the
//!   path as [`normalize_path`] puts it); `[target.http]` ([`HttpTarget`]) says how TLS is
//!   handled, which credential is injected, and what is masked in bodies ([`JsonKey`]).
mod address;
mod compile;
mod error;
mod evaluate;
mod file;
mod http;
mod load;
mod model;
mod pg;
mod secret;
mod selector;
pub mod spiffe;

pub use address::{Address, AddressError, Host, Ports, Specificity};
pub use compile::MAX_NAME_LEN;
pub use error::{PolicyError, PolicyErrors};
pub use evaluate::{DEFAULT_DENY, Decision, DnsTable, TargetMatch};
pub use http::{
    compile::{DEFAULT_BODY_CAP, DEFAULT_MAX_BODY_BUFFER, DEFAULT_MAX_REQUEST_HEADER},
    evaluate::{
        AMBIGUOUS_REQUEST, MALFORMED_HOST, MALFORMED_METHOD, MALFORMED_PATH, NO_REQUEST_RULES,
        RequestDecision,
    },
    form::{
        BodyCoding, Fed as FormFed, FormScan, Found as FormFound, NamedCodings, brotli_window_bits,
    },
    headers::{recorded as recorded_headers, without_userinfo},
    json_key::{JsonKey, JsonKeyError, JsonStep, json_key_for},
    model::{
        Compressed, Globs, HttpCredential, HttpTarget, HttpTls, PathMatch, RequestFacts,
        RequestRule, Unmaskable,
    },
    path::{decode_query_component, is_plain_host, normalize_host, normalize_path, parse_query},
    readings::{readings as request_readings, same_header_name, same_param_name, shown_line},
};
pub use load::{load_dir, load_str};
pub use model::{Mode, Names, Policy, Protocol, Rule, Target, Verdict, Workload};
pub use pg::{
    compile::MAX_REGEX_LEN,
    evaluate::{NO_STATEMENT_RULES, UNKNOWN_STATEMENT},
    model::{
        BinaryResults, Credential, CredentialSecret, PostgresTarget, StatementFacts, StatementRule,
        TableGlobs, UpstreamTls,
    },
};
pub use secret::{MAX_SECRET_LEN, Secret, SecretOrigin};
pub use selector::{Pattern, Selector, Subject};
pub use spiffe::{SpiffeId, SpiffeIdError};

#[cfg(test)]
mod tests;
