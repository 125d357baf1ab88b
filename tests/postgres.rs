//! Root suite: PostgreSQL through tollgate (issue 3). Work in progress.
