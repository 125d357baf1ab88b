//! PostgreSQL protocol v3 handling: wire codec, statement classification, session.
pub mod auth;
pub mod protocol;
pub mod session;
pub mod sql;
