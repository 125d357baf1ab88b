//! Upstream authentication with credentials only tollgate holds: SCRAM-SHA-256 (RFC 5802,
//! RFC 7677) and md5 as PostgreSQL speaks them. Pure: messages in, messages out.
pub mod md5;
pub mod scram;
